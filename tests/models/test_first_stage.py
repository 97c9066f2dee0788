"""The small network's first stage as one native pass (`first_stage.py`): at inference the same
embeddings as XLA's route for the single-convolution stem candidates, widths that fill and do
not fill a channel block, padded and packed rows and odd frame sizes; in training the same
outputs, batch statistics, running statistics and gradients as XLA's route, independent of the
number of threads; each pass against its XLA form; XLA's route wherever a pass does not apply;
one log line and XLA's route without the library."""
import logging
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from gait_jax.evaluation import packing
from gait_jax.models import build_model, conv, first_stage, init_variables, layers, onednn_conv
from conftest import REPO
from helpers import assert_close, assert_trees_close

BUILT = onednn_conv.library_path().is_file()
built = pytest.mark.skipif(not BUILT,
                           reason="the library is not built here (tools/build_onednn.sh)")
TARGET = first_stage._TARGETS[0][0]
TRAIN_TARGET = first_stage._TRAIN_TARGETS[0][0]


def small_model(c0, fixed_path=None, dtype=jnp.float32, space=(6,) * 4):
  cfg = ml_collections.ConfigDict(dict(
      name="sposgait_small", channels=(c0, 8, 8), bins=(4, 2, 1), parts=7, out_channels=8,
      class_num=5, choice_max_num=space))
  return build_model(cfg, bnneck=False, fixed_path=fixed_path, dtype=dtype)


def variables_of(model, seed, h, w):
  """Reference-initialised weights with non-trivial BN statistics, scales and biases."""
  v = init_variables(model, seed, height=h, width=w)
  rng = np.random.default_rng(seed)

  def draw(path, leaf):
    name = path[-1].key
    if name in ("mean", "bias"):
      return jnp.asarray(rng.normal(0, 0.3, leaf.shape), jnp.float32)
    if name in ("var", "scale"):
      return jnp.asarray(rng.uniform(0.5, 2.0, leaf.shape), jnp.float32)
    return leaf
  return jax.tree_util.tree_map_with_path(draw, v)


def sils(n, t, h, w, seed):
  rng = np.random.default_rng(seed)
  return jnp.asarray((rng.random((n, t, h, w)) < 0.3) * 255.0, jnp.float32)


def lowered(monkeypatch, mode, fn, *args):
  """`fn` traced and lowered with the first stage `mode` ("auto" or "xla")."""
  monkeypatch.setenv(conv.ENV_VAR, "onednn")
  monkeypatch.setenv(first_stage.ENV_VAR, mode)
  # A fresh function each time: JAX caches traces by function, and the mode is read at trace.
  return jax.jit(lambda *a: fn(*a)).lower(*args)


def run(monkeypatch, mode, fn, *args):
  """(fn(*args), its HLO text) with the first stage `mode`."""
  program = lowered(monkeypatch, mode, fn, *args)
  return program.compile()(*args), program.as_text()


def uses_native(monkeypatch, fn, *args, target=TARGET) -> bool:
  return target in lowered(monkeypatch, "auto", fn, *args).as_text()


@built
@pytest.mark.parametrize("op,c0,hw", [(0, 12, (33, 23)), (2, 5, (17, 9))])  # op 1: below
def test_embeddings_equal_xla_route(monkeypatch, op, c0, hw):
  """Padded rows (one with a short clip the reference tiles) and packed rows alike."""
  path = (op, 5, 2, 4)
  model = small_model(c0, fixed_path=path)
  h, w = hw
  v = variables_of(model, op + c0, h, w)
  x, lengths = sils(3, 12, h, w, seed=1), jnp.array([12, 7, 2], jnp.int32)

  def padded(v, x, lengths):
    return model.apply(v, x, path, lengths)["embeddings"]

  fused, text = run(monkeypatch, "auto", padded, v, x, lengths)
  plain, plain_text = run(monkeypatch, "xla", padded, v, x, lengths)
  assert TARGET in text and TARGET not in plain_text
  assert np.all(np.isfinite(fused))
  assert_close(fused, plain, rtol=1e-5)

  seqs = [np.asarray(sils(1, t, h, w, seed=10 + t)[0]) for t in (9, 5, 2)]
  placed, offset = [[]], 0
  for i, seq in enumerate(seqs):
    placed[0].append((i, packing.short_clip(seq), offset))
    offset += packing.slot_length(packing.short_clip(seq).shape[0])
  rows, segments = (jnp.asarray(a) for a in packing.layout(placed, 24))
  num = packing.max_segments(24)

  def packed(v, rows, segments):  # the embed mode's call: the path traced
    return model.apply(v, rows, jnp.asarray(path, jnp.int32), segments=segments,
                       num_segments=num)["embeddings"]

  fused, text = run(monkeypatch, "auto", packed, v, rows, segments)
  plain, _ = run(monkeypatch, "xla", packed, v, rows, segments)
  assert TARGET in text
  assert_close(fused, plain, rtol=1e-5)


@built
def test_xla_route_where_it_does_not_apply(monkeypatch):
  h, w = 16, 12
  x = sils(2, 6, h, w, seed=2)
  supernet = small_model(8)
  v = variables_of(supernet, 0, h, w)
  cases = {
      "a traced path on a supernet": lambda v, x: supernet.apply(
          v, x, jnp.array([0, 1, 2, 3], jnp.int32))["embeddings"],
      "a two-convolution stem candidate": lambda v, x: supernet.apply(
          v, x, (3, 1, 2, 3))["embeddings"],
  }
  for why, fn in cases.items():
    assert not uses_native(monkeypatch, fn, v, x), why
  assert uses_native(monkeypatch, lambda v, x: supernet.apply(v, x, (0, 1, 2, 3))["embeddings"],
                     v, x)  # the same network where it applies
  with layers.export_form():
    assert not uses_native(
        monkeypatch, lambda v, x: supernet.apply(v, x, (0, 1, 2, 3))["embeddings"], v, x)
  half = small_model(8, dtype=jnp.bfloat16)
  assert not uses_native(monkeypatch,
                         lambda v, x: half.apply(v, x, (0, 1, 2, 3))["embeddings"], v, x)
  def train(model, path):
    return lambda v, x: model.apply(v, x, path, train=True,
                                    mutable=["batch_stats"])[0]["embeddings"]
  for why, fn in {"a traced path": train(supernet, jnp.array([0, 1, 2, 3], jnp.int32)),
                  "a two-convolution stem candidate": train(supernet, (3, 1, 2, 3)),
                  "bfloat16": train(half, (0, 1, 2, 3))}.items():
    assert not uses_native(monkeypatch, fn, v, x, target=TRAIN_TARGET), f"training: {why}"
  assert uses_native(monkeypatch, train(supernet, (0, 1, 2, 3)), v, x, target=TRAIN_TARGET)
  monkeypatch.setenv(conv.ENV_VAR, "fold")
  assert not first_stage.enabled(), "XLA's convolutions"
  assert not first_stage.enabled(train=True), "XLA's convolutions"


def test_without_the_library_xla_route_and_one_line(monkeypatch, tmp_path, caplog):
  monkeypatch.setenv(onednn_conv.LIB_ENV_VAR, str(tmp_path / "missing.so"))
  monkeypatch.setenv(conv.ENV_VAR, "auto")
  monkeypatch.setattr(jax, "device_count", lambda: 1)
  onednn_conv.version.cache_clear()
  onednn_conv.registered.cache_clear()
  try:
    with caplog.at_level(logging.INFO):
      assert not first_stage.enabled()
      model = small_model(8, fixed_path=(0, 1, 2, 3))
      v = variables_of(model, 0, 16, 12)
      text = jax.jit(lambda v, x: model.apply(v, x)["embeddings"]).lower(
          v, sils(1, 6, 16, 12, seed=0)).as_text()
    assert TARGET not in text
    lines = [r.getMessage() for r in caplog.records if "missing.so" in r.getMessage()]
    assert len(lines) == 1 and "build_onednn.sh" in lines[0]  # oneDNN's line: decided once
  finally:
    monkeypatch.delenv(onednn_conv.LIB_ENV_VAR)
    onednn_conv.version.cache_clear()
    onednn_conv.registered.cache_clear()


def test_a_bad_mode_names_the_variable(monkeypatch):
  monkeypatch.setenv(first_stage.ENV_VAR, "fast")
  with pytest.raises(ValueError, match="GAIT_JAX_FIRST_STAGE='fast'.*auto, xla"):
    first_stage.enabled()


@built
def test_native_pass_equals_its_reference_and_has_its_gradient(monkeypatch):
  """`first_stage.reference` (XLA's ops) is what the pass computes, and its gradient is the
  pass's: an eval-mode forward stays differentiable."""
  monkeypatch.setenv(conv.ENV_VAR, "onednn")
  rng = np.random.default_rng(4)
  x = jnp.asarray(rng.random((2, 7, 10, 8)) < 0.4, jnp.float32)
  mask = jnp.asarray([[1] * 7, [1] * 5 + [0] * 2], jnp.float32)
  x = x * mask[:, :, None, None]
  kernel = jnp.asarray(rng.normal(size=(3, 1, 3, 1, 11)), jnp.float32)  # op 1's
  stem = jnp.asarray(np.stack([rng.normal(size=11), rng.uniform(0.5, 2, 11),
                               rng.normal(size=11)]), jnp.float32)
  down = jnp.asarray(np.stack([rng.normal(size=11), rng.normal(size=11),
                               rng.uniform(0.5, 2, 11), rng.normal(size=11)]), jnp.float32)
  args = (x, mask, kernel, stem, down)
  got = jax.jit(first_stage._native)(*args)
  want = jax.jit(first_stage.reference)(*args)
  assert got.shape == (2, 7, 5, 4, 11)  # floor mode: 10 × 8 → 5 × 4
  assert_close(got, want, rtol=1e-6)

  def loss(f):
    return lambda k, s, d: jnp.sum(f(x, mask, k, s, d) * jnp.linspace(-1, 1, 11))
  g_native = jax.jit(jax.grad(loss(first_stage._native), argnums=(0, 1, 2)))(kernel, stem, down)
  g_ref = jax.jit(jax.grad(loss(first_stage.reference), argnums=(0, 1, 2)))(kernel, stem, down)
  for a, b in zip(g_native, g_ref):
    assert_close(a, b, rtol=1e-6)


def training_pass_operands(seed, kernel_shape, c, hw=(11, 9)):
  """x [2, 7, h, w] with the second sequence's last two frames padding, and the pass's weights."""
  rng = np.random.default_rng(seed)
  mask = jnp.asarray([[1] * 7, [1] * 5 + [0] * 2], jnp.float32)
  x = jnp.asarray(rng.random((2, 7) + hw) < 0.4, jnp.float32) * mask[:, :, None, None]
  kernel = jnp.asarray(rng.normal(0, 0.3, kernel_shape + (1, c)), jnp.float32)
  stem = jnp.asarray(np.stack([rng.uniform(0.5, 2, c), rng.normal(size=c)]), jnp.float32)
  down = jnp.asarray(np.stack([rng.normal(size=c), rng.normal(size=c)]), jnp.float32)
  x_mean = (jnp.sum(x) / (jnp.sum(mask) * hw[0] * hw[1])).reshape(1)
  return x, mask, kernel, stem, down, x_mean


@built
@pytest.mark.parametrize("kernel_shape,c", [((3, 3, 3), 12), ((3, 1, 3), 8), ((3, 3, 1), 5)])
def test_training_pass_equals_its_reference_with_its_gradient(monkeypatch, kernel_shape, c):
  """Odd frame sizes (the pool drops the last row and column; the statistics keep them), padded
  frames, widths under, at and over a channel block; every operand's gradient, the
  silhouettes' too (XLA's route's, where they are differentiated)."""
  monkeypatch.setenv(conv.ENV_VAR, "onednn")
  assert first_stage.enabled(train=True)
  args = training_pass_operands(c, kernel_shape, c)
  got, got_stats = jax.jit(first_stage._native_train)(*args)
  want, want_stats = jax.jit(first_stage.reference_train)(*args)
  assert got.shape == (2, 7, 5, 4, c)
  assert_close(got, want, rtol=1e-6)
  assert_close(got_stats, want_stats, rtol=1e-6)
  weights = jnp.asarray(np.random.default_rng(1).normal(size=got.shape), jnp.float32)

  def loss(f):
    return lambda *a: jnp.sum(f(*a)[0] * weights)
  everything = (0, 2, 3, 4, 5)
  g_native = jax.jit(jax.grad(loss(first_stage._native_train), argnums=everything))(*args)
  g_ref = jax.jit(jax.grad(loss(first_stage.reference_train), argnums=everything))(*args)
  for name, a, b in zip(("x", "kernel", "stem", "down", "x_mean"), g_native, g_ref):
    assert np.max(np.abs(b)) > 0, name
    assert_close(a, b, rtol=2e-6, err_msg=name)


@built
@pytest.mark.parametrize("kind", ["fixed", "traced"])
def test_training_step_equals_xla_route(monkeypatch, kind):
  """A train-mode step of the small network — a fixed-path model (retraining), or a supernet's
  traced path in the reference's space (its first layer has one candidate; the other
  candidates' statistics kept): the same embeddings, running statistics and gradient of every
  parameter."""
  path = (0, 5, 2, 4)
  model = small_model(12, fixed_path=path if kind == "fixed" else None, space=(1, 6, 6, 6))
  if kind == "traced":
    path = jnp.asarray(path, jnp.int32)
  h, w = 17, 13
  v = variables_of(model, 3, h, w)
  x, lengths = sils(3, 9, h, w, seed=5), jnp.array([9, 6, 8], jnp.int32)
  weights = jnp.asarray(np.random.default_rng(2).normal(size=(3, 8, 7)), jnp.float32)

  def step(v, x, lengths, *traced):
    def loss(params):
      out, new = model.apply({**v, "params": params}, x, traced[0] if traced else path,
                             lengths, train=True, mutable=["batch_stats"])
      return jnp.sum(out["embeddings"] * weights), new["batch_stats"]
    return jax.value_and_grad(loss, has_aux=True)(v["params"])

  args = (v, x, lengths) + ((path,) if kind == "traced" else ())
  ((loss_n, stats_n), grads_n), text = run(monkeypatch, "auto", step, *args)
  ((loss_x, stats_x), grads_x), plain = run(monkeypatch, "xla", step, *args)
  assert TRAIN_TARGET in text and TRAIN_TARGET not in plain
  assert_close(loss_n, loss_x, rtol=1e-5)
  assert_trees_close(stats_n, stats_x, rtol=1e-5)
  changed = jax.tree.map(lambda a, b: bool(np.any(a != b)), stats_n, v["batch_stats"])
  assert changed["conv3d_00"]["cand0"]["bn1"] == {"mean": True, "var": True}
  assert changed["downsample0"]["bn1"] == {"mean": True, "var": True}
  assert_trees_close(grads_n, grads_x, rtol=1e-4)


@built
def test_training_pass_does_not_depend_on_the_thread_count(monkeypatch, tmp_path):
  """Frames' sums are added in frame order: one thread and two give the same bits (a resumed
  run repeats its steps exactly on any machine size)."""
  script = tmp_path / "one.py"
  script.write_text(
      "import sys, numpy as np, jax, jax.numpy as jnp\n"
      "sys.path.insert(0, sys.argv[1])\n"
      "from test_first_stage import training_pass_operands\n"
      "from gait_jax.models import first_stage\n"
      "assert first_stage.enabled(train=True)\n"
      "args = training_pass_operands(7, (3, 3, 3), 12, hw=(24, 20))\n"
      "f = lambda *a: jnp.sum(first_stage._native_train(*a)[0] * 0.37)\n"
      "out = [first_stage._native_train(*args)[0], *jax.grad(f, argnums=(2, 3, 4))(*args)]\n"
      "np.savez(sys.argv[2], *[np.asarray(o) for o in out])\n")
  runs = {}
  for threads in ("1", "2"):
    env = {**os.environ, "OMP_NUM_THREADS": threads, conv.ENV_VAR: "onednn",
           "PYTHONPATH": os.pathsep.join([REPO, os.path.join(REPO, "tests")])}
    out = tmp_path / f"{threads}.npz"
    r = subprocess.run([sys.executable, str(script), os.path.dirname(__file__), str(out)],
                       env=env, capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 0, r.stderr[-2000:]
    runs[threads] = np.load(out)
  for key in runs["1"]:
    np.testing.assert_array_equal(runs["1"][key], runs["2"][key], err_msg=key)
