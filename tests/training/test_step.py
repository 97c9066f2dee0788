"""The jitted train step: one compilation for every path, masked updates of unselected ops,
skipped non-finite steps, float16 loss scaling, and 8 devices == 1 device."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import fast_compile, train_standin
from conftest import load_config
from gait_jax.common import parallel as mesh_lib
from gait_jax.training import optim
from gait_jax.training import step as train
from gait_jax.training import train_state as ts
from gait_jax.training.losses import compute_losses
from gait_jax.models import path_mask, sample_path

CONFIG = load_config("test_tiny")
CMN = tuple(CONFIG.model.choice_max_num)
MASK = functools.partial(path_mask, model_name="sposgait_small")  # the stand-in's layer names


def _batch(seed=0, nan=False, n=8, t=6):
  rng = np.random.default_rng(seed)
  sils = rng.random((n, t, 64, 44), dtype=np.float32)
  if nan:
    sils[0, 0, 0, 0] = np.nan
  return {"sils": sils, "labels": np.repeat(np.arange(n // 2), 2).astype(np.int32),
          "lengths": np.full(n, t, np.int32)}


def _setup(model, mesh, fixed=None, float16=False, optim_cfg=None):
  opt = optim.SGD(optim_cfg or CONFIG.optim)
  state, sharding = train.init_state(model, opt, mesh, seed=0, frames=6, fixed_path=fixed,
                                     path_len=len(CMN), float16=float16)
  step = train.make_train_step(model, opt, lambda o, l: compute_losses(o, l, CONFIG.loss),
                               fixed_path=fixed, mask_fn=MASK if fixed is None else None,
                               float16=float16)
  return state, train.jit_train_step(step, mesh, sharding)


def _run(step, state, batch, path, mesh):
  return step(state, *train.device_inputs(batch, path, mesh))


@pytest.fixture(scope="module")
def mesh():
  return mesh_lib.make_mesh()


@pytest.fixture(scope="module")
def standin():
  return train_standin.build(CONFIG.model, bnneck=True)


@pytest.fixture(scope="module")
def engine(standin, mesh):
  """One compiled supernet step shared by the tests (compiling is the slow part on CPU);
  `fresh()` gives a new copy of the initial state (the step donates its input)."""
  state, step = _setup(standin, mesh)
  template = _host(state)
  sharding = jax.tree.map(lambda x: x.sharding, state)
  return (lambda: jax.device_put(template, sharding)), step


def _host(tree):
  return jax.tree.map(lambda x: np.array(x, copy=True), jax.device_get(tree))


def _assert_masked_update(before, after, path):
  """Unselected leaves bit-identical (params, momentum, BN stats); selected params moved."""
  checked = {"kept": 0, "moved": 0}
  for name, old, new in (("params", before.params, after.params),
                         ("momentum", before.opt_state["momentum"],
                          after.opt_state["momentum"]),
                         ("batch_stats", before.batch_stats, after.batch_stats)):
    mask = MASK(old, tuple(path))
    for (kp, m), o, n in zip(jax.tree_util.tree_leaves_with_path(mask),
                             jax.tree.leaves(old), jax.tree.leaves(new)):
      where = f"{name}{jax.tree_util.keystr(kp)}"
      if not m:
        assert np.array_equal(o, n), f"{where} changed although path {path} did not select it"
        checked["kept"] += 1
      elif name == "params" and "cand" in where and "kernel" in where:
        assert not np.array_equal(o, n), f"{where} selected by {path} but not updated"
        checked["moved"] += 1
  assert checked["kept"] > 0 and checked["moved"] > 0, checked


def test_one_compilation_serves_every_path(engine, mesh):
  fresh, step = engine
  state = fresh()
  paths = [sample_path(CMN, 0, s) for s in range(20)]
  assert len(set(paths)) >= 10
  for s, path in enumerate(paths):
    state, info = _run(step, state, _batch(s), path, mesh)
  assert bool(info["ok"]) and int(info["step"]) == 20
  # The step is shared with the other tests of this module: still one trace in total.
  assert step._cache_size() == 1, f"the step was compiled {step._cache_size()} times for 20 paths"


def test_unselected_candidates_get_no_update(engine, mesh):
  fresh, step = engine
  state = fresh()
  # Give every candidate momentum first, so "no momentum step" is a real check.
  for s, path in enumerate([(0, 0, 0, 0), (0, 1, 1, 1), (0, 2, 2, 2), (0, 3, 3, 3),
                            (0, 4, 4, 4), (0, 5, 5, 5)]):
    state, _ = _run(step, state, _batch(s), path, mesh)
  before = _host(state)
  path = (0, 2, 5, 1)
  state, info = _run(step, state, _batch(9), path, mesh)
  assert bool(info["ok"])
  _assert_masked_update(before, _host(state), path)


def test_nonfinite_step_is_skipped_and_counted(engine, mesh):
  fresh, step = engine
  state = fresh()
  state, _ = _run(step, state, _batch(0), (0, 1, 2, 3), mesh)
  before = _host(state)
  for k in (1, 2):
    state, info = _run(step, state, _batch(1, nan=True), (0, 1, 2, 3), mesh)
    assert not bool(info["ok"])
    assert int(info["bad_run"]) == k and int(info["skipped"]) == k
  after = _host(state)
  assert int(after.step) == 1
  for a, b in zip(jax.tree.leaves((before.params, before.batch_stats, before.opt_state)),
                  jax.tree.leaves((after.params, after.batch_stats, after.opt_state))):
    assert np.array_equal(a, b)
  # Skipped steps do not enter the averaged metrics.
  assert int(info["metrics"]["loss"].count) == 0
  state, info = _run(step, state, _batch(2), (0, 1, 2, 3), mesh)
  assert bool(info["ok"]) and int(info["bad_run"]) == 0 and int(info["step"]) == 2


def test_float16_loss_scale_backs_off_and_counts(mesh):
  model = train_standin.build(CONFIG.model, bnneck=True, dtype=jnp.float16)
  state, step = _setup(model, mesh, float16=True)
  assert float(state.loss_scale) == ts.FP16_INIT_SCALE
  state, info = _run(step, state, _batch(1, nan=True), (0, 1, 2, 3), mesh)
  assert float(info["loss_scale"]) == ts.FP16_INIT_SCALE / 2
  # As torch's GradScaler: overflowing float16 gradients halve the scale until they fit.
  scale = ts.FP16_INIT_SCALE / 2
  for tries in range(1, 25):
    state, info = _run(step, state, _batch(2), (0, 1, 2, 3), mesh)
    if bool(info["ok"]):
      break
    scale /= 2
    assert float(info["loss_scale"]) == scale and int(info["skipped"]) == tries + 1
  assert bool(info["ok"]), "float16 steps never became finite"
  assert int(state.good_run) == 1 and float(state.loss_scale) == scale
  assert int(state.step) == 1
  assert state.params["head"]["kernel"].dtype == jnp.float32  # params stay float32


def test_retrain_fixed_path_updates_every_parameter(mesh):
  fixed = (0, 3, 1, 4)
  model = train_standin.build(CONFIG.model, bnneck=True, fixed_path=fixed)
  state, step = _setup(model, mesh, fixed=fixed)
  assert set(state.params["conv3d_20"]) == {"cand3"}  # only the chosen ops exist
  before = _host(state.params)
  state, info = _run(step, state, _batch(0), (0, 0, 0, 0), mesh)  # path ignored
  assert bool(info["ok"])
  for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(_host(state.params))):
    assert not np.array_equal(a, b)


def test_eight_devices_match_one_device(standin, engine, mesh):
  assert jax.device_count() == 8, "run with XLA_FLAGS=--xla_force_host_platform_device_count=8"
  results = []
  for m in (mesh_lib.make_mesh(jax.devices()[:1]), mesh):
    if m is mesh:
      fresh, step = engine
      state = fresh()
    else:
      state, step = _setup(standin, m)
    losses = []
    for s in range(2):
      state, info = _run(step, state, _batch(s), sample_path(CMN, 0, s), m)
      losses.append(float(info["loss"]))
    results.append((losses, _host((state.params, state.batch_stats))))
  # Only the summation order differs (cross-device reductions); per-device BN statistics or
  # a per-device triplet loss would differ by percents.
  np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-3)
  # Leaf-wise relative checks would trip on biases in front of BatchNorm, whose gradient is
  # analytically zero (their values are rounding noise); compare the whole tree instead.
  one = np.concatenate([np.ravel(x) for x in jax.tree.leaves(results[0][1])])
  eight = np.concatenate([np.ravel(x) for x in jax.tree.leaves(results[1][1])])
  assert np.linalg.norm(one - eight) <= 1e-4 * np.linalg.norm(eight)
  assert np.max(np.abs(one - eight)) <= 1e-3 * np.max(np.abs(eight))


def test_real_sposgait_masked_update():
  """The same masking guarantee with the real network (nn.switch over candidates), on one
  device (its subject is the variables' names; sharding is the engine's, tested above)."""
  from gait_jax.models import build_model
  model = build_model(CONFIG.model, bnneck=True)
  mesh = mesh_lib.make_mesh(jax.devices()[:1])
  state, step = _setup(model, mesh)
  # One program for every path (the traced path: test_one_compilation_serves_every_path).
  step = fast_compile.compiled_once(step)
  for s, path in enumerate([(0, 1, 1, 1), (0, 4, 4, 4)]):
    state, _ = _run(step, state, _batch(s), path, mesh)
  before = _host(state)
  path = (0, 1, 4, 2)
  state, info = _run(step, state, _batch(5), path, mesh)
  assert bool(info["ok"]) and np.isfinite(float(info["loss"]))
  _assert_masked_update(before, _host(state), path)


@pytest.mark.parametrize("units", ["this CPU's", "none"])
def test_bf16_products_where_the_cpu_has_them_float32_elsewhere(monkeypatch, caplog, units):
  """`train.bf16`: on one device with oneDNN's convolutions, a step whose convolutions multiply
  in bfloat16 (forward and gradients) where the CPU has bfloat16 units — the loss and the
  parameter update within 15 % of float32's, not equal to them; elsewhere float32
  exactly, with one log line saying why ("none": a CPU without them, on any machine)."""
  from gait_jax.models import conv, onednn_conv
  from gait_jax.training import setup
  if units == "none":
    monkeypatch.setattr(conv.cpu, "has_bf16_units", lambda: False)
  if onednn_conv.available():
    monkeypatch.setenv(conv.ENV_VAR, "onednn")  # the suite's 8 CPU devices default to fold
  config = load_config("test_tiny").unlock()
  config.model.path = "0,3,1,4"
  mesh = mesh_lib.make_mesh(jax.devices()[:1])
  opt = optim.SGD(config.optim)
  start, sharding = setup.init_state(config, setup.build_network(config), opt, mesh)
  start = _host(start)

  def one_step(bf16):
    config.train.bf16 = bf16
    net = setup.build_network(config)
    assert net.bf16 == (bf16 and not conv.bf16_available())
    step = setup.train_step(config, net, opt, mesh, sharding)
    state, info = _run(step, jax.device_put(start, sharding), _batch(1), (0, 0, 0, 0), mesh)
    assert bool(info["ok"])
    delta = [np.ravel(b - a) for a, b in zip(jax.tree.leaves(start.params),
                                             jax.tree.leaves(_host(state.params)))]
    return float(info["loss"]), np.concatenate(delta)

  loss, update = one_step(False)
  with caplog.at_level("WARNING"):
    loss16, update16 = one_step(True)
  why = conv.bf16_available()
  lines = [r.getMessage() for r in caplog.records if "train.bf16" in r.getMessage()]
  if why:
    assert len(lines) == 1 and why in lines[0]
    assert loss16 == loss
    np.testing.assert_array_equal(update16, update)
  else:
    assert not lines
    assert loss16 != loss and abs(loss16 - loss) <= 1e-2 * abs(loss)
    # Measured 6 % here: bfloat16 rounds each operand by up to 2^-9, and BN's backward
    # subtracts nearly equal sums, which magnifies it at 4-8 channels; a broken route (a
    # wrong layout, a dropped gradient) is off by ~100 %.
    deviation = np.linalg.norm(update16 - update) / np.linalg.norm(update)
    assert 0 < deviation < 0.15, deviation
