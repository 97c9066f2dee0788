"""Fine-tuning on other people: `train.init_from` re-initialises only the BN-neck when its
class count differs (or the source has none), and `train.eval_on=holdout` validates on
training ids the run never trains on, recording a curve."""
import json
import os

import jax
import numpy as np
import pytest

from helpers import configs, train_standin
from gait_jax.common import checkpoint
from gait_jax.common import parallel as mesh_lib
from gait_jax.data import holdout
from gait_jax.modes import train
from gait_jax.synthetic import walkers
from gait_jax.training import evaluator, optim, restore, setup
from gait_jax.training import step as step_lib


@pytest.fixture(scope="module")
def data(tmp_path_factory):
  out = str(tmp_path_factory.mktemp("walkers") / "walk")
  return walkers.generate(out, ids=8, seqs_per_id=3, views=("090",), frames=10, seed=0,
                          train_ids=6)


@pytest.fixture(autouse=True)
def standin(monkeypatch):
  monkeypatch.setattr(setup, "build_network", train_standin.build_network)


def _config(data, **overrides):
  return configs.tiny(data, **{"model.path": "0,1,2,3", "train.total_steps": 4,
                               "train.save_every": 2, "train.log_every": 2, **overrides})


def _state(c, class_num, bnneck=True):
  model = train_standin.StandIn(features=int(c.model.out_channels), parts=int(sum(c.model.bins)),
                                class_num=class_num, bnneck=bnneck, fixed_path=(0, 1, 2, 3))
  state, _ = step_lib.init_state(model, optim.SGD(c.optim), mesh_lib.make_mesh(), seed=5,
                                 frames=6, fixed_path=(0, 1, 2, 3), path_len=4)
  return state


def test_init_from_reinitialises_only_a_neck_of_another_size(data, tmp_path, caplog):
  src = str(tmp_path / "src")
  train.run(_config(data, **{"train.total_steps": 2}), src)
  want, _ = checkpoint.restore_variables(src)
  c = _config(data)
  state = _state(c, class_num=5)  # the source's neck classifies 8
  fresh = jax.device_get(state.params["BNNecks"])
  loaded = restore.load_weights(state, src)
  got = jax.device_get(loaded.variables)
  for name in ("conv3d_00", "conv3d_40", "head"):
    for x, y in zip(jax.tree.leaves(want["params"][name]), jax.tree.leaves(got["params"][name])):
      np.testing.assert_array_equal(x, y)
  # The classifier's kernel changed size: its fresh values are kept; its bias too (shape).
  np.testing.assert_array_equal(got["params"]["BNNecks"]["kernel"], fresh["kernel"])
  assert not np.array_equal(got["params"]["BNNecks"]["kernel"].shape,
                            want["params"]["BNNecks"]["kernel"].shape)
  assert "BN-neck" in caplog.text and "BNNecks/kernel" in caplog.text
  # Continuing the optimizer of a run on other ids makes no sense: refused by name.
  with pytest.raises(ValueError, match="resume_optimizer"):
    restore.load_weights(_state(c, class_num=5), src, with_optimizer=True)
  # A source without a neck (triplet-only pretraining) still serves a two-loss fine-tuning.
  src2 = str(tmp_path / "src2")
  train.run(_config(data, **{"train.total_steps": 2, "loss.ce_weight": 0.0,
                             "model.class_num": 0}), src2)
  assert "BNNecks" not in checkpoint.restore_variables(src2)[0]["params"]
  loaded = restore.load_weights(_state(c, class_num=5), src2)
  np.testing.assert_array_equal(jax.device_get(loaded.params["BNNecks"]["kernel"]),
                                fresh["kernel"])


def test_init_from_other_mismatches_are_still_errors(data, tmp_path):
  src = str(tmp_path / "src")
  train.run(_config(data, **{"train.total_steps": 2}), src)
  c = _config(data)
  model = train_standin.StandIn(features=int(c.model.out_channels) + 2,
                                parts=int(sum(c.model.bins)), class_num=8,
                                fixed_path=(0, 1, 2, 3))
  state, _ = step_lib.init_state(model, optim.SGD(c.optim), mesh_lib.make_mesh(), seed=5,
                                 frames=6, fixed_path=(0, 1, 2, 3), path_len=4)
  with pytest.raises(ValueError, match="conv3d_00.*shape"):
    restore.load_weights(state, src)


def test_eval_on_holdout_validates_on_unseen_training_ids(data, tmp_path):
  workdir = str(tmp_path / "val")
  c = _config(data, **{"train.eval_on": "holdout", "train.eval_every": 2,
                       "search.val_ids": "2", "train.total_steps": 4})
  train.run(c, workdir)
  trained, held = holdout.read_holdout(workdir)
  assert len(held) == 2 and not set(held) & set(trained) and len(trained) == 4
  with open(os.path.join(workdir, evaluator.HISTORY_FILE)) as f:
    history = json.load(f)
  assert [p["step"] for p in history["points"]] == [2, 4]
  for p in history["points"]:
    assert 0 <= p["validation"] <= 100 and p["holdout/probes"] == 4  # 2 ids x 2 probes
  assert os.path.getsize(os.path.join(workdir, evaluator.CURVE_FILE)) > 1000
  # A resumed run re-evaluates from where it resumes: no duplicate steps.
  train.run(_config(data, **{"train.eval_on": "holdout", "train.eval_every": 2,
                             "search.val_ids": "2", "train.total_steps": 6}), workdir)
  with open(os.path.join(workdir, evaluator.HISTORY_FILE)) as f:
    assert [p["step"] for p in json.load(f)["points"]] == [2, 4, 6]


def test_eval_on_is_checked_where_the_config_enters(data, tmp_path):
  from gait_jax import config_check  # pylint: disable=g-import-not-at-top
  with pytest.raises(ValueError, match="train.eval_on='val'"):
    config_check.check(_config(data, **{"train.eval_on": "val", "train.eval_every": 2}))


def test_history_keeps_earlier_steps_only(tmp_path):
  evaluator.record(str(tmp_path), 2, {"validation": 10.0}, "x")
  evaluator.record(str(tmp_path), 4, {"validation": 20.0}, "x")
  evaluator.record(str(tmp_path), 3, {"validation": 15.0}, "x")
  assert [p["step"] for p in evaluator.read_history(str(tmp_path))] == [2, 3]
  with open(tmp_path / evaluator.HISTORY_FILE, "w") as f:
    f.write("{broken")
  with pytest.raises(ValueError, match="validation.json is unreadable"):
    evaluator.read_history(str(tmp_path))


def test_curve_draws_each_protocols_headline_and_its_probe_groups(tmp_path):
  """The curve's lines are the protocol's headline and that figure per probe group — whatever
  the protocol names it (CASIA-B's `rank1_exclude`, KTH-walk's `rank1`) — never per view."""
  from gait_jax import config as config_lib  # pylint: disable=g-import-not-at-top
  from gait_jax.evaluation import protocols  # pylint: disable=g-import-not-at-top

  def headline(name):
    cfg = config_lib.base_config().evaluate
    cfg.protocol = name
    return protocols.build(name, cfg).headline

  casia = {f"{g}/rank1_{w}": 90.0 for g in ("NM", "BG", "CL", "mean") for w in ("include",
                                                                               "exclude")}
  casia.update({"NM/rank1_exclude/090": 95.0, "mean/rank5_exclude": 99.0})
  got = evaluator.draw_curve([{"step": 2, **casia}], str(tmp_path / "c.png"), "x",
                             headline("casia_b"))
  assert got == ["BG/rank1_exclude", "CL/rank1_exclude", "NM/rank1_exclude",
                 "mean/rank1_exclude"]
  kth = {"d1/rank1": 20.0, "d4/rank1": 60.0, "mean/rank1": 40.0, "d1/rank5": 70.0}
  assert evaluator.draw_curve([{"step": 2, **kth}], str(tmp_path / "k.png"), "x",
                              headline("kth_walk")) == ["d1/rank1", "d4/rank1", "mean/rank1"]
  held = {"holdout/rank1": 50.0, "holdout/rank5": 80.0, "validation": 50.0}
  assert evaluator.draw_curve([{"step": 2, **held}], str(tmp_path / "h.png"), "x",
                              "holdout/rank1") == ["validation"]
  assert (tmp_path / "c.png").stat().st_size > 1000
