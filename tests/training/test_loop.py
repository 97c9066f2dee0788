"""The training loop (`train.run`) on generated walkers with the stand-in network: resume
equals an uninterrupted run, checkpoints/TensorBoard/config land in the workdir, another
architecture is refused, init_from loads weights, and repeated bad steps stop training."""
import glob
import json
import os

import jax
import numpy as np
import pytest

from helpers import configs, train_standin
from gait_jax.common import checkpoint
from gait_jax.models import space
from gait_jax.modes import train
from gait_jax.training import restore, setup
from gait_jax.training import step as step_lib
from gait_jax.synthetic import walkers


# Session-scoped, as `whole` below: the suite starts some of this module's tests early
# (conftest.LONG_FIRST), and a module-scoped fixture is rebuilt each time a worker comes back.
@pytest.fixture(scope="session")
def data(tmp_path_factory):
  out = str(tmp_path_factory.mktemp("walkers") / "walk")
  return walkers.generate(out, ids=8, seqs_per_id=2, views=("000", "090"), frames=10, seed=0)


@pytest.fixture(autouse=True)
def standin(monkeypatch):
  monkeypatch.setattr(setup, "build_network", train_standin.build_network)


def _config(data, **overrides):
  return configs.tiny(data, **{"train.total_steps": 6, "train.save_every": 2,
                               "train.log_every": 2, "train.image_every": 2, **overrides})


def _final(workdir):
  variables, step = checkpoint.restore_variables(workdir)
  return variables, step


@pytest.fixture(scope="session")
def whole(data, tmp_path_factory):
  """The workdir of one uninterrupted run of `_config(data)` (6 steps, uniform paths): what
  the resumed runs below must equal. Read only."""
  workdir = str(tmp_path_factory.mktemp("uninterrupted") / "whole")
  with pytest.MonkeyPatch.context() as m:  # the autouse stand-in is function-scoped
    m.setattr(setup, "build_network", train_standin.build_network)
    train.run(_config(data), workdir)
  return workdir


def test_resume_matches_uninterrupted_run(data, whole, tmp_path, monkeypatch):
  created = []  # the runs that compiled and ran the initialiser
  fresh_state = setup.fresh_state
  monkeypatch.setattr(setup, "fresh_state", lambda *a: (lambda f: f._replace(
      create=lambda: created.append(1) or f.create()))(fresh_state(*a)))
  parts = str(tmp_path / "parts")
  train.run(_config(data, **{"train.total_steps": 3}), parts)  # "killed" after step 3
  assert checkpoint.restore_variables(parts)[1] == 3 and len(created) == 1
  train.run(_config(data), parts)  # the same command again resumes from step 3
  assert len(created) == 1  # the resumed run restored into the state's shapes alone
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
  # The supernet records its split; the search reads it from there.
  split = json.load(open(os.path.join(whole, "holdout.json")))
  train_ids = json.load(open(data["partition"]))["TRAIN_SET"]
  assert split["held_out_ids"] and not set(split["held_out_ids"]) & set(split["train_ids"])
  assert sorted(split["held_out_ids"] + split["train_ids"]) == sorted(train_ids)
  assert glob.glob(os.path.join(whole, "tb", "events.out.tfevents.*"))
  from helpers.events import read_events
  tags = {v.tag for e in read_events(os.path.join(whole, "tb")) for v in e.summary.value}
  for tag in ("train/loss", "train/triplet/loss", "train/softmax/accuracy", "train/lr",
              "train/grad_norm", "train/param_norm", "train/skipped_steps",
              "train/data_wait_fraction", "train/seq_per_s", "train/silhouettes"):
    assert tag in tags, f"{tag} missing from TensorBoard ({sorted(tags)})"


def test_fair_path_sampler_drives_the_supernet_and_resumes(data, whole, tmp_path, monkeypatch):
  drawn = []
  fair = space.fair_path
  monkeypatch.setitem(space.PATH_SAMPLERS, "fair",
                      lambda cmn, seed, step: drawn.append(step) or fair(cmn, seed, step))
  fair_run, parts = str(tmp_path / "fair"), str(tmp_path / "parts")
  train.run(_config(data, **{"train.path_sampler": "fair"}), fair_run)
  assert drawn == list(range(6))
  train.run(_config(data, **{"train.path_sampler": "fair", "train.total_steps": 3}), parts)
  train.run(_config(data, **{"train.path_sampler": "fair"}), parts)
  assert drawn == list(range(6)) + list(range(3)) + [3, 4, 5]
  (a, _), (b, _) = _final(fair_run), _final(parts)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    assert np.array_equal(x, y), "resumed fair-sampled run diverged"
  uniform, _ = _final(whole)
  assert any(not np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a),
                                                      jax.tree.leaves(uniform)))


def test_a_run_moves_between_pkl_and_tfds_and_resumes(data, whole, tmp_path):
  from gait_jax.data import tfds_format
  tfds_dir = str(tmp_path / "tfds")
  tfds_format.write(data["root"], data["partition"], tfds_dir, progress=False)
  packed = {"data.format": "tfds", "data.root": tfds_dir, "data.partition": ""}
  moved = str(tmp_path / "moved")
  train.run(_config(data, **{"train.total_steps": 3}), moved)  # pkl, "killed" after step 3
  train.run(_config(data, **packed), moved)  # the same run from the TFDS form
  (a, sa), (b, sb) = _final(whole), _final(moved)
  assert sa == sb == 6
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    assert np.array_equal(x, y), "a run resumed from the TFDS form diverged"


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
  from gait_jax.common import parallel as mesh_lib
  from gait_jax.training import optim
  c = _config(data)
  model = train_standin.build(c.model, bnneck=True)
  state, _ = step_lib.init_state(model, optim.SGD(c.optim), mesh_lib.make_mesh(), seed=1,
                              frames=6, fixed_path=None, path_len=4)
  loaded = restore.load_weights(state, src)
  want, _ = checkpoint.restore_variables(src)
  for x, y in zip(jax.tree.leaves(want), jax.tree.leaves(jax.device_get(loaded.variables))):
    assert np.array_equal(x, y)
  # A retrain model (one path) takes its subset of the supernet weights by name.
  fixed = (0, 2, 3, 1)
  small = train_standin.build(c.model, bnneck=True, fixed_path=fixed)
  state, _ = step_lib.init_state(small, optim.SGD(c.optim), mesh_lib.make_mesh(), seed=1,
                              frames=6, fixed_path=fixed, path_len=4)
  loaded = restore.load_weights(state, src)
  np.testing.assert_array_equal(
      np.asarray(loaded.params["conv3d_30"]["cand3"]["fc"]["kernel"]),
      want["params"]["conv3d_30"]["cand3"]["fc"]["kernel"])
  state, _ = step_lib.init_state(train_standin.StandIn(features=6, parts=7, class_num=8),
                              optim.SGD(c.optim), mesh_lib.make_mesh(), seed=1, frames=6,
                              fixed_path=None, path_len=4)
  with pytest.raises(ValueError, match="shape"):
    restore.load_weights(state, src)


def test_repeated_nonfinite_steps_stop_training(data, tmp_path):
  c = _config(data, **{"optim.lr": 1e38, "train.max_bad_steps": 2, "train.total_steps": 20})
  with pytest.raises(FloatingPointError, match=r"training stopped at step \d+"):
    train.run(c, str(tmp_path / "bad"))


def test_overflowing_update_is_skipped_and_never_checkpointed(data, tmp_path):
  # lr 1e38: the loss and gradients are finite, the updated parameters are not.
  workdir = str(tmp_path / "poison")
  c = _config(data, **{"optim.lr": 1e38, "train.max_bad_steps": 3, "train.total_steps": 20,
                       "train.save_every": 1, "train.log_every": 1})
  with pytest.raises(FloatingPointError, match="training stopped at step 0") as err:
    train.run(c, workdir)
  assert "or updated parameters" in str(err.value)
  assert "train.dtype=float32" not in str(err.value)  # the run is float32 already
  ck = checkpoint.Checkpointer(checkpoint.checkpoint_dir(workdir), read_only=True)
  assert ck.all_steps() == []
  ck.close()


def test_failed_first_run_does_not_lock_the_workdir(data, tmp_path):
  # The run fails before its first checkpoint; the corrected config may reuse the workdir.
  workdir = str(tmp_path / "w")
  bad = _config(data, **{"model.class_num": 1, "train.total_steps": 2})
  with pytest.raises(ValueError, match="model.class_num"):
    train.run(bad, workdir)
  assert os.path.exists(os.path.join(workdir, "config.json"))
  train.run(_config(data, **{"model.class_num": 8, "train.total_steps": 2}), workdir)
  assert checkpoint.restore_variables(workdir)[1] == 2
  # Once it holds a checkpoint, it is protected.
  with pytest.raises(ValueError, match="another model architecture"):
    train.run(_config(data, **{"model.class_num": 9, "train.total_steps": 4}), workdir)


def test_missing_data_is_refused_before_the_train_state_is_built(data, tmp_path, monkeypatch):
  """A wrong data.root is a one-line error at once, not after the initialiser has compiled
  (7-9 s for a tiny supernet); a finished run does not open its data at all."""
  fresh_state = setup.fresh_state

  def never_created(*args):
    def create():
      raise AssertionError("the train state was built before the data was opened")
    return fresh_state(*args)._replace(create=create)

  monkeypatch.setattr(setup, "fresh_state", never_created)
  bad = _config(data, **{"data.root": str(tmp_path / "nowhere")})
  with pytest.raises((FileNotFoundError, ValueError), match="nowhere"):
    train.run(bad, str(tmp_path / "w"))
  monkeypatch.setattr(setup, "fresh_state", fresh_state)
  workdir = str(tmp_path / "done")
  train.run(_config(data, **{"train.total_steps": 2}), workdir)
  train.run(_config(data, **{"train.total_steps": 2, "data.root": str(tmp_path / "gone")}),
            workdir)  # already done: a no-op, wherever the data went
  assert _final(workdir)[1] == 2


def _damage(step_dir, how):
  if how == "empty":
    for entry in os.listdir(step_dir):
      path = os.path.join(step_dir, entry)
      (os.remove if os.path.isfile(path) else __import__("shutil").rmtree)(path)
    return
  files = sorted((os.path.getsize(p), p) for p in glob.glob(os.path.join(step_dir, "**", "*"),
                                                              recursive=True)
                 if os.path.isfile(p))
  for _, path in files:  # truncate every file: whatever orbax reads first is broken
    with open(path, "r+b") as f:
      f.truncate(os.path.getsize(path) // 3)


@pytest.mark.parametrize("how", ["truncated", "empty"])
def test_corrupt_newest_checkpoint_falls_back_and_is_kept(data, whole, tmp_path, how):
  workdir = str(tmp_path / "w")
  train.run(_config(data, **{"train.total_steps": 4}), workdir)
  step_dir = os.path.join(checkpoint.checkpoint_dir(workdir), "4")
  _damage(step_dir, how)
  # embed / test / search read weights through restore_variables: the broken step is named.
  with pytest.raises(ValueError, match=f"checkpoint {step_dir} is unreadable"):
    checkpoint.restore_variables(workdir)
  # Training resumes from the newest intact step (2) and keeps the broken files.
  train.run(_config(data), workdir)
  assert checkpoint.restore_variables(workdir)[1] == 6
  kept = glob.glob(os.path.join(workdir, "broken_checkpoints", "4-*"))
  assert len(kept) == 1 and os.path.isdir(kept[0])
  # The resumed run equals an uninterrupted one: step 4 was recomputed from step 2.
  for x, y in zip(jax.tree.leaves(_final(whole)[0]), jax.tree.leaves(_final(workdir)[0])):
    assert np.array_equal(x, y)


def test_second_run_in_a_workdir_is_refused(data, tmp_path):
  from gait_jax.common import workdir_lock
  workdir = str(tmp_path / "w")
  with workdir_lock.hold(workdir, "train"):
    with pytest.raises(SystemExit, match=f"in use by another gait_jax run \\(pid {os.getpid()}"):
      train.run(_config(data, **{"train.total_steps": 2}), workdir)
  assert not os.path.exists(checkpoint.checkpoint_dir(workdir))
  train.run(_config(data, **{"train.total_steps": 2}), workdir)  # released: runs


def test_lock_of_a_killed_run_is_not_stale(tmp_path):
  import subprocess
  import sys
  from conftest import REPO
  workdir = str(tmp_path / "w")
  code = ("import os, signal, sys; sys.path.insert(0, %r)\n"
          "from gait_jax.common import workdir_lock\n"
          "with workdir_lock.hold(%r, 'train'):\n"
          "  os.kill(os.getpid(), signal.SIGKILL)\n" % (REPO, workdir))
  proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120)
  assert proc.returncode == -9
  assert os.path.exists(os.path.join(workdir, ".lock"))
  from gait_jax.common import workdir_lock
  with workdir_lock.hold(workdir, "train"):
    pass


def test_a_supernet_continued_from_another_holds_out_only_ids_it_never_saw(data, tmp_path):
  # A second cycle (a supernet trained again from a supernet's weights) holds ids out for the
  # search's fitness: any the first supernet trained on would make that fitness false.
  src = str(tmp_path / "src")
  train.run(_config(data, **{"train.total_steps": 2}), src)
  with open(os.path.join(src, "holdout.json")) as f:
    first = json.load(f)
  seen = ",".join(first["train_ids"][:len(first["held_out_ids"])])
  bad = str(tmp_path / "bad")
  with pytest.raises(ValueError, match=f"train.init_from={src} trained on .* a validation or a "
                     "search fitness on them would be false"):
    train.run(_config(data, **{"train.init_from": src, "search.val_ids": seen}), bad)
  assert not glob.glob(os.path.join(bad, "checkpoints", "*"))  # nothing trained
  again = str(tmp_path / "again")  # the same config holds the same ids out: it runs
  train.run(_config(data, **{"train.total_steps": 2, "train.init_from": src}), again)
  with open(os.path.join(again, "holdout.json")) as f:
    assert json.load(f)["held_out_ids"] == first["held_out_ids"]


def test_init_from_on_a_workdir_with_checkpoints_says_it_is_not_used(data, tmp_path, caplog):
  src, workdir = str(tmp_path / "src"), str(tmp_path / "w")
  train.run(_config(data, **{"train.total_steps": 2}), src)
  train.run(_config(data, **{"train.total_steps": 2}), workdir)
  train.run(_config(data, **{"train.total_steps": 4, "train.init_from": src}), workdir)
  assert f"train.init_from={src} is not used: this workdir already has checkpoints" in (
      caplog.text)
