"""Reference checkpoints in and out: a checkpoint PyTorch wrote (fixtures/make_fixtures.py)
imports to the embeddings and momentum PyTorch computed; Flax → .pt → Flax is bit-exact for
every variant; mismatching files and configs are refused by name; `train.resume_optimizer`
continues an imported run."""
import collections
import os
import subprocess
import sys

import jax
import ml_collections
import numpy as np
import pytest

from conftest import REPO, load_config
from gait_jax.common import checkpoint as ckpt_lib
from gait_jax.common import parallel
from gait_jax.interop import reference_checkpoint as rc
from gait_jax.interop import torch_file
from gait_jax.models import abstract_variables, build_model, torch_keys
from gait_jax.training import optim, restore
from gait_jax.training import step as step_lib
from helpers import assert_close
from helpers.variables import random_variables

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
CKPT = os.path.join(FIXTURES, "sposgait_small_tiny_2loss.pt")
PATH = (0, 5, 0, 1)


def _config(**overrides):
  c = load_config("test_tiny").unlock()  # the fixture's network: widths 4/8/8, BN-neck
  for key, value in overrides.items():
    section, leaf = key.split(".")
    c[section][leaf] = value
  return c.lock()


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("imported"))
  step_dir, meta = rc.import_reference(CKPT, _config(), workdir)
  assert step_dir == os.path.join(workdir, "checkpoints", "3") and meta["optimizer"] == "momentum"
  return workdir


@pytest.fixture(scope="module")
def expected():
  return torch_file.load(os.path.join(FIXTURES, "sposgait_small_tiny_2loss_expected.pt"))


def _embed(workdir, path, sils):
  restored, _ = ckpt_lib.restore_variables(workdir)
  model = build_model(_config().model, bnneck=False, fixed_path=path)
  variables = ckpt_lib.select_by_name(restored, abstract_variables(model), workdir)
  return np.asarray(model.apply(variables, sils, path)["embeddings"])


def test_imported_checkpoint_embeds_as_pytorch_did(imported, expected):
  for name in ("long", "short"):  # 10 frames, and 2 frames that the network tiles to 4
    got = _embed(imported, PATH, expected[f"{name}_sils"].astype(np.float32))
    assert_close(got, expected[f"{name}_embeddings"], rtol=1e-5, err_msg=f"{name} embeddings")


def test_momentum_buffers_land_on_their_parameters(imported, expected):
  momentum, step = ckpt_lib.restore_optimizer(imported)
  assert step == 3
  flat = {tuple(getattr(k, "key", k) for k in kp): v
          for kp, v in jax.tree_util.tree_leaves_with_path(momentum)}
  # Torch's own numbering of the optimizer's parameters (named_parameters order) gives each
  # buffer its name, independently of the import's state-dict-order rule.
  optimizer = torch_file.load(CKPT)["optimizer"]
  indices = [i for g in optimizer["param_groups"] for i in g["params"]]
  by_name = dict(zip(expected["parameter_names"], indices))
  nonzero = 0
  for entry in torch_keys.torch_layout(_config().model, bnneck=True):
    if entry.collection != "params":
      continue
    buf = optimizer["state"].get(by_name[entry.torch_key], {}).get("momentum_buffer")
    want = np.zeros(entry.torch_shape, np.float32) if buf is None else buf
    if entry.conv:
      want = np.transpose(want, torch_keys.CONV_TO_FLAX)
    np.testing.assert_array_equal(flat[entry.flax_path], want, err_msg=entry.torch_key)
    nonzero += bool(np.any(want))
  assert len(by_name) == len(flat)
  assert 0 < nonzero < len(flat)  # sampled candidates have momentum, never-sampled ones none


def test_retrain_import_keeps_only_the_path(imported, tmp_path):
  workdir = str(tmp_path / "retrain")
  rc.import_reference(CKPT, _config(**{"model.path": "0,5,0,1"}), workdir)
  fixed, _ = ckpt_lib.restore_variables(workdir)
  full, _ = ckpt_lib.restore_variables(imported)
  assert sorted(fixed["params"]["conv3d_20"]) == ["cand5"]
  for kp, leaf in jax.tree_util.tree_leaves_with_path(fixed):
    node = full
    for k in kp:
      node = node[k.key]
    np.testing.assert_array_equal(leaf, node, err_msg=jax.tree_util.keystr(kp))


def test_mismatches_are_refused_and_nothing_is_overwritten(imported, tmp_path):
  with pytest.raises(ValueError, match="BN-neck.*loss.ce_weight > 0"):
    rc.import_reference(CKPT, _config(**{"loss.ce_weight": 0.0}), str(tmp_path / "a"))
  with pytest.raises(ValueError, match=r"shapes differ: conv3d_30.0.0.conv3d.weight is "
                                       r"\(8, 8, 3, 3, 3\), expected \(16, 8, 3, 3, 3\)"):
    rc.import_reference(CKPT, _config(**{"model.channels": (4, 8, 16)}), str(tmp_path / "b"))
  with pytest.raises(ValueError, match="is not a model checkpoint"):
    rc.import_reference(os.path.join(FIXTURES, "tensor_layouts.pt"), _config(),
                        str(tmp_path / "c"))
  before = sorted(os.listdir(os.path.join(imported, "checkpoints")))
  with pytest.raises(FileExistsError, match=r"already holds checkpoints \[3\]"):
    rc.import_reference(CKPT, _config(), imported)
  assert sorted(os.listdir(os.path.join(imported, "checkpoints"))) == before


def _tiny(name):
  channels = {"sposgait_small": (4, 8, 8), "sposgait_medium": (4, 8, 8, 8),
              "sposgait_large": (4, 8, 8, 8)}[name]
  return ml_collections.ConfigDict(dict(name=name, channels=channels, bins=(4, 2, 1), parts=7,
                                        out_channels=6, class_num=5))


@pytest.mark.parametrize("name", ["sposgait_small", "sposgait_medium", "sposgait_large"])
@pytest.mark.parametrize("fixed", [False, True])
def test_flax_to_pt_to_flax_is_bit_exact(name, fixed, tmp_path):
  cfg = _tiny(name)
  n_layers = {"sposgait_small": 4, "sposgait_medium": 7, "sposgait_large": 10}[name]
  path = tuple((3 * i + 1) % 6 for i in range(n_layers)) if fixed else None
  model = build_model(cfg, bnneck=True, fixed_path=path)
  variables = random_variables(model, path if fixed else tuple([0] * n_layers), seed=n_layers)
  variables = jax.tree.map(np.asarray, variables)
  sd = torch_keys.to_torch_state_dict(variables, cfg, bnneck=True, complete=True)
  out = str(tmp_path / "m.pt")
  torch_file.save({"model": collections.OrderedDict(sd), "iteration": 9}, out)
  back = rc.read_reference(out)
  assert back["iteration"] == 9 and list(back["model"]) == list(sd)
  again = torch_keys.convert_torch_state_dict(back["model"], cfg, bnneck=True, fixed_path=path)
  a = jax.tree_util.tree_leaves_with_path(variables)
  b = dict(jax.tree_util.tree_leaves_with_path(again))
  assert len(a) == len(b)
  for kp, leaf in a:
    assert b[kp].dtype == leaf.dtype
    np.testing.assert_array_equal(b[kp], leaf, err_msg=jax.tree_util.keystr(kp))


def test_export_then_import_round_trips_and_matches_the_pytorch_file(imported, tmp_path):
  out = str(tmp_path / "exported.pt")
  info = rc.export_reference(imported, out)
  assert info["step"] == 3
  exported, original = rc.read_reference(out), rc.read_reference(CKPT)
  assert set(exported["model"]) == set(original["model"])  # what strict loading needs
  for k, v in original["model"].items():
    if not k.endswith("num_batches_tracked"):  # not kept: BN momentum is set, it is unused
      np.testing.assert_array_equal(exported["model"][k], v, err_msg=k)
  again = str(tmp_path / "again")
  rc.import_reference(out, _config(), again)
  a, b = ckpt_lib.restore_variables(imported)[0], ckpt_lib.restore_variables(again)[0]
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(x, y)


def test_resume_optimizer_continues_the_imported_run(imported, tmp_path):
  c = _config()
  model = build_model(c.model, bnneck=True)
  state, _ = step_lib.init_state(model, optim.SGD(c.optim), parallel.make_mesh(), seed=1,
                                 frames=6, fixed_path=None, path_len=4)
  weights_only = restore.load_weights(state, imported)
  assert int(weights_only.step) == 0
  cont = restore.load_weights(state, imported, with_optimizer=True)
  assert int(cont.step) == 3
  want, _ = ckpt_lib.restore_optimizer(imported)
  for x, y in zip(jax.tree.leaves(want), jax.tree.leaves(jax.device_get(cont.opt_state))):
    np.testing.assert_array_equal(x, y)
  # A file with weights only (a bare state dict) records no optimizer: resuming one is refused.
  bare = str(tmp_path / "bare.pt")
  torch_file.save(rc.read_reference(CKPT)["model"], bare)
  workdir = str(tmp_path / "bare")
  _, meta = rc.import_reference(bare, c, workdir)
  assert meta["optimizer"] == "none" and meta["step"] == 0
  with pytest.raises(ValueError, match="holds no optimizer state"):
    restore.load_weights(state, workdir, with_optimizer=True)
  with pytest.raises(ValueError, match="resume_optimizer=True needs train.init_from"):
    restore.resume_or_init(ckpt_lib.Checkpointer(str(tmp_path / "empty"), keep=1), state,
                        _config(**{"train.resume_optimizer": True}))


def test_command_line_tools(tmp_path):
  env = dict(os.environ, XLA_FLAGS="", JAX_PLATFORMS="cpu")
  workdir, out = str(tmp_path / "w"), str(tmp_path / "back.pt")
  run = lambda *args: subprocess.run([sys.executable, *args], cwd=REPO, env=env,  # noqa: E731
                                     capture_output=True, text=True, timeout=300)
  r = run("tools/import_torch.py", CKPT, "--config", "configs/test_tiny.py", "--workdir", workdir,
          "--config.model.path=0,5,0,1")
  assert r.returncode == 0, r.stderr[-2000:]
  assert "iteration 3, weights + SGD momentum, path 0,5,0,1" in r.stdout
  r = run("tools/export_torch.py", workdir, "--out", out)
  assert r.returncode == 0 and "exported step 3 (249 state-dict keys, path 0,5,0,1)" in r.stdout
  r = run("tools/import_torch.py", os.path.join(FIXTURES, "legacy_format.pt"), "--config",
          "configs/test_tiny.py", "--workdir", str(tmp_path / "x"))
  assert r.returncode == 1 and "legacy" in r.stderr and "Traceback" not in r.stderr


def test_non_finite_weights_are_refused_and_imports_hold_nothing_out(tmp_path):
  """NaN weights are not imported (nothing is written); an imported workdir records that it
  trained on every TRAIN_SET id, so a search on it cannot claim held-out ids."""
  from gait_jax.data import holdout  # pylint: disable=g-import-not-at-top
  ckpt = torch_file.load(CKPT)
  key = next(k for k in ckpt["model"] if k.endswith("conv3d.weight"))
  ckpt["model"][key] = ckpt["model"][key].copy()
  ckpt["model"][key][0, 0, 0, 0, 0] = np.nan
  bad = str(tmp_path / "nan.pt")
  torch_file.save(ckpt, bad)
  with pytest.raises(ValueError, match="holds 1 non-finite values"):
    rc.import_reference(bad, load_config("test_tiny"), str(tmp_path / "w_nan"))
  assert not os.path.exists(tmp_path / "w_nan" / "checkpoints")
  workdir = str(tmp_path / "w")
  rc.import_reference(CKPT, load_config("test_tiny"), workdir)
  assert "imported from" in holdout.trained_on_all(workdir)
  with pytest.raises(ValueError, match="trained on every training id"):
    holdout.search_split(load_config("test_tiny"), ["a", "b", "c", "d"], workdir)
