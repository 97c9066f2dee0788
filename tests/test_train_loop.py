"""The training loop (`train.run`) on generated walkers with the stand-in network: resume
equals an uninterrupted run, checkpoints/TensorBoard/config land in the workdir, another
architecture is refused, init_from loads weights, and repeated bad steps stop training."""
import glob
import json
import os

import jax
import numpy as np
import pytest

import train_standin
from conftest import load_config
from gait_jax import checkpoint
from gait_jax import train
from gait_jax.data import walkers


@pytest.fixture(scope="module")
def data(tmp_path_factory):
  out = str(tmp_path_factory.mktemp("walkers") / "walk")
  return walkers.generate(out, ids=8, seqs_per_id=2, views=("000", "090"), frames=10, seed=0)


@pytest.fixture(autouse=True)
def standin(monkeypatch):
  monkeypatch.setattr(train, "_build_model_and_loss", None)
  train_standin.install(train)


def _config(data, **overrides):
  c = load_config("test_tiny").unlock()
  c.data.root, c.data.partition = data["root"], data["partition"]
  c.train.total_steps = 6
  c.train.save_every = 2
  c.train.log_every = 2
  c.train.image_every = 2
  for key, value in overrides.items():
    node = c
    *parents, leaf = key.split(".")
    for p in parents:
      node = node[p]
    node[leaf] = value
  return c.lock()


def _final(workdir):
  variables, step = checkpoint.restore_variables(workdir)
  return variables, step


def test_resume_matches_uninterrupted_run(data, tmp_path):
  whole, parts = str(tmp_path / "whole"), str(tmp_path / "parts")
  train.run(_config(data), whole)
  train.run(_config(data, **{"train.total_steps": 3}), parts)  # "killed" after step 3
  assert checkpoint.restore_variables(parts)[1] == 3
  train.run(_config(data), parts)  # the same command again resumes from step 3
  (a, sa), (b, sb) = _final(whole), _final(parts)
  assert sa == sb == 6
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    assert np.array_equal(x, y), "resumed run diverged from the uninterrupted run"

  # Workdir contents: kept checkpoints, config, TensorBoard events.
  ck = checkpoint.Checkpointer(checkpoint.checkpoint_dir(whole), keep=3)
  assert sorted(ck.all_steps()) == [2, 4, 6]
  ck.close()
  saved = json.load(open(os.path.join(whole, "config.json")))
  assert saved["model"]["channels"] == [4, 8, 8]
  assert glob.glob(os.path.join(whole, "tb", "events.out.tfevents.*"))
  from test_train_writer import _read_events
  tags = {v.tag for e in _read_events(os.path.join(whole, "tb")) for v in e.summary.value}
  for tag in ("train/loss", "train/triplet/loss", "train/softmax/accuracy", "train/lr",
              "train/grad_norm", "train/param_norm", "train/skipped_steps",
              "train/data_wait_fraction", "train/seq_per_s", "train/silhouettes"):
    assert tag in tags, f"{tag} missing from TensorBoard ({sorted(tags)})"


def test_refuses_other_architecture_and_finished_run_is_a_noop(data, tmp_path):
  workdir = str(tmp_path / "w")
  train.run(_config(data, **{"train.total_steps": 2}), workdir)
  with pytest.raises(ValueError, match="model.channels"):
    train.run(_config(data, **{"model.channels": (4, 8, 16)}), workdir)
  before = _final(workdir)
  train.run(_config(data, **{"train.total_steps": 2}), workdir)  # already done
  after = _final(workdir)
  assert before[1] == after[1] == 2


def test_init_from_loads_params_and_batch_stats(data, tmp_path):
  src = str(tmp_path / "src")
  train.run(_config(data, **{"train.total_steps": 2}), src)
  from gait_jax import mesh as mesh_lib, optim
  c = _config(data)
  model = train_standin.build(c.model, bnneck=True)
  state, _ = train.init_state(model, optim.SGD(c.optim), mesh_lib.make_mesh(), seed=1,
                              frames=6, fixed_path=None, path_len=4)
  loaded = train.load_weights(state, src)
  want, _ = checkpoint.restore_variables(src)
  for x, y in zip(jax.tree.leaves(want), jax.tree.leaves(jax.device_get(loaded.variables))):
    assert np.array_equal(x, y)
  # A retrain model (one path) takes its subset of the supernet weights by name.
  fixed = (0, 2, 3, 1)
  small = train_standin.build(c.model, bnneck=True, fixed_path=fixed)
  state, _ = train.init_state(small, optim.SGD(c.optim), mesh_lib.make_mesh(), seed=1,
                              frames=6, fixed_path=fixed, path_len=4)
  loaded = train.load_weights(state, src)
  np.testing.assert_array_equal(
      np.asarray(loaded.params["conv3d_30"]["cand3"]["fc"]["kernel"]),
      want["params"]["conv3d_30"]["cand3"]["fc"]["kernel"])
  state, _ = train.init_state(train_standin.StandIn(features=6, parts=7, class_num=8),
                              optim.SGD(c.optim), mesh_lib.make_mesh(), seed=1, frames=6,
                              fixed_path=None, path_len=4)
  with pytest.raises(ValueError, match="shape"):
    train.load_weights(state, src)


def test_repeated_nonfinite_steps_stop_training(data, tmp_path):
  c = _config(data, **{"optim.lr": 1e38, "train.max_bad_steps": 2, "train.total_steps": 20})
  with pytest.raises(FloatingPointError, match=r"training stopped at step \d+"):
    train.run(c, str(tmp_path / "bad"))
