"""`search.fitness_metric=angle`: the start it measures from is the run's own, the angle is that
of the path's concatenated kernels, and the scorer and the search use it."""
import json
import os
import shutil

import jax
import numpy as np
import pytest

from helpers import configs, train_standin
from gait_jax.common import checkpoint
from gait_jax.modes import search, train
from gait_jax.search import fitness, weight_angle
from gait_jax.synthetic import walkers
from gait_jax.training import setup

MODEL = "sposgait_small"  # the stand-in's layer names


@pytest.fixture(autouse=True)
def standin(monkeypatch):
  monkeypatch.setattr(setup, "build_network", train_standin.build_network)


def _config(data, **overrides):
  return configs.tiny(data, **{"train.total_steps": 3, "train.save_every": 3,
                               "search.val_ids": "2", **overrides})


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  """Two stand-in supernets: `still` (lr 1e-30: its kernels cannot move in float32) and
  `moved` (a real learning rate, another seed)."""
  base = tmp_path_factory.mktemp("angle")
  data = walkers.generate(str(base / "walk"), ids=8, seqs_per_id=4, views=("000", "090"),
                          frames=8, seed=0, train_ids=6)
  out = {"data": data}
  with pytest.MonkeyPatch.context() as m:  # the autouse stand-in is function-scoped
    m.setattr(setup, "build_network", train_standin.build_network)
    for name, extra in (("still", {"optim.lr": 1e-30}), ("moved", {"seed": 5})):
      out[name] = str(base / name)
      train.run(_config(data, **extra), out[name])
      out[name + "_start"] = weight_angle.initial_params(out[name])
  return out


def _kernels(variables):
  return {jax.tree_util.keystr(k): np.asarray(v)
          for k, v in jax.tree_util.tree_flatten_with_path(variables["params"])[0]
          if str(k[-1].key) in weight_angle.WEIGHT_NAMES}


def test_the_start_is_the_runs_own_initialisation(runs):
  initial = runs["still_start"]
  trained, _ = checkpoint.restore_variables(runs["still"])
  start, end = _kernels({"params": initial}), _kernels(trained)
  assert start.keys() == end.keys() and len(start) > 6
  for key in start:
    np.testing.assert_array_equal(start[key], end[key], err_msg=key)
  angle = weight_angle.PathAngle(initial, trained["params"], MODEL, "still")
  for path in ((0, 0, 0, 0), (0, 5, 3, 1)):
    assert angle.degrees(path) < 1e-4
  # Another seed's start is another direction: the recorded seed is the one drawn again.
  other = runs["moved_start"]
  assert weight_angle.PathAngle(other, trained["params"], MODEL, "x").degrees((0, 1, 2, 3)) > 30


def _concatenated_angle(initial, trained, path):
  """The angle of the path's kernels, concatenated into one float64 vector each."""
  start, end = [], []
  for key, value in _kernels({"params": initial}).items():
    parts = key.replace("']", "").split("['")[1:]
    layer = train_standin.LAYERS.index(parts[0]) if parts[0] in train_standin.LAYERS else None
    if layer is not None and parts[1] != f"cand{path[layer]}":
      continue
    start.append(value.astype(np.float64).ravel())
    end.append(np.asarray(trained[key], np.float64).ravel())
  a, b = np.concatenate(start), np.concatenate(end)
  return np.degrees(np.arccos(a @ b / np.linalg.norm(a) / np.linalg.norm(b)))


def test_angle_is_that_of_the_paths_concatenated_kernels(runs):
  initial = runs["moved_start"]
  trained, _ = checkpoint.restore_variables(runs["moved"])
  angle = weight_angle.PathAngle(initial, trained["params"], MODEL, "moved")
  values = {}
  for path in ((0, 0, 0, 0), (0, 5, 3, 1), (0, 2, 2, 4)):
    values[path] = angle.degrees(path)
    expected = _concatenated_angle(initial, _kernels(trained), path)
    assert values[path] == pytest.approx(expected, rel=1e-9)
    assert values[path] > 0.01
  assert len(set(values.values())) == 3  # the path decides


def test_scorer_and_search_rank_by_the_angle(runs, tmp_path, capsys):
  config = _config(runs["data"], **{"search.fitness_metric": "angle", "mode": "search",
                                    "train.init_from": runs["moved"], "search.epochs": 1})
  trained, _ = checkpoint.restore_variables(runs["moved"])
  angle = weight_angle.PathAngle(runs["moved_start"], trained["params"], MODEL, "moved")
  scorer = fitness.CandidateScorer(config, runs["moved"])
  assert scorer.score((0, 4, 1, 2)) == angle.degrees((0, 4, 1, 2))
  search.run(config, str(tmp_path / "s"))
  assert "fitness = angle (degrees)" in capsys.readouterr().out
  result = json.load(open(tmp_path / "s" / "search" / "result.json"))
  for h in result["history"]:
    assert h["fitness"] == pytest.approx(angle.degrees(h["path"]), rel=1e-12)
  assert result["best_fitness"] == max(h["fitness"] for h in result["history"])


def _copy_with(source, where, section, key, value):
  """A copy of the workdir `source` whose config.json records `section.key = value`."""
  shutil.copytree(source, where)
  path = os.path.join(where, checkpoint.CONFIG_FILE)
  saved = json.load(open(path))
  saved[section][key] = value
  json.dump(saved, open(path, "w"))
  return where


def test_a_start_that_is_not_known_is_refused(runs, tmp_path):
  fixed = _copy_with(runs["moved"], str(tmp_path / "fixed"), "model", "path", "0,1,2,3")
  with pytest.raises(ValueError, match="is a fixed network"):
    weight_angle.initial_params(fixed)
  continued = _copy_with(runs["moved"], str(tmp_path / "continued"), "train", "init_from",
                         runs["still"])
  with pytest.raises(ValueError, match="started from train.init_from"):
    weight_angle.initial_params(continued)


def test_non_finite_weights_are_refused(runs):
  initial = runs["still_start"]
  broken = jax.tree.map(np.array, initial)
  leaf = broken["conv3d_20"]["cand1"]["fc"]["kernel"]
  leaf[0, 0] = np.nan
  with pytest.raises(ValueError, match=r"conv3d_20.*cand1.*non-finite"):
    weight_angle.PathAngle(initial, broken, MODEL, "the supernet X")
