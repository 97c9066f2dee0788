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
from gait_jax.models import space
from gait_jax.modes import search, train
from gait_jax.search import fitness, weight_angle
from gait_jax.synthetic import walkers
from gait_jax.training import setup

MODEL = "sposgait_small"  # the stand-in's layer names
STEPS, SEED = 3, 5


@pytest.fixture(autouse=True)
def standin(monkeypatch):
  monkeypatch.setattr(setup, "build_network", train_standin.build_network)


def _config(data, **overrides):
  return configs.tiny(data, **{"train.total_steps": STEPS, "train.save_every": STEPS,
                               "search.val_ids": "2", **overrides})


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  """One stand-in supernet trained for a few steps (seed 5) and the start its config.json
  gives; `other_start`: the start of the same config with another seed (nothing trained)."""
  base = tmp_path_factory.mktemp("angle")
  data = walkers.generate(str(base / "walk"), ids=8, seqs_per_id=4, views=("000", "090"),
                          frames=8, seed=0, train_ids=6)
  out = {"data": data, "moved": str(base / "moved")}
  with pytest.MonkeyPatch.context() as m:  # the autouse stand-in is function-scoped
    m.setattr(setup, "build_network", train_standin.build_network)
    train.run(_config(data, seed=SEED), out["moved"])
    out["moved_start"] = weight_angle.initial_params(out["moved"])
    other = _copy_with(out["moved"], str(base / "other"), None, "seed", 0)
    out["other_start"] = weight_angle.initial_params(other)
  return out


def _copy_with(source, where, section, key, value):
  """A copy of the workdir `source` whose config.json records `section.key = value`
  (section None: a top-level key)."""
  shutil.copytree(source, where)
  path = os.path.join(where, checkpoint.CONFIG_FILE)
  saved = json.load(open(path))
  (saved if section is None else saved[section])[key] = value
  json.dump(saved, open(path, "w"))
  return where


def _kernels(params):
  """{(module names...): kernel} of the weights the angle measures."""
  return {tuple(str(p.key) for p in k[:-1]): np.asarray(v)
          for k, v in jax.tree_util.tree_flatten_with_path(params)[0]
          if str(k[-1].key) in weight_angle.WEIGHT_NAMES}


def _on_path(names, path) -> bool:
  """Whether the kernel at module `names` is one `path` uses (shared ones always are)."""
  if names[0] not in train_standin.LAYERS:
    return True
  return names[1] == f"cand{path[train_standin.LAYERS.index(names[0])]}"


def test_the_start_is_the_runs_own_initialisation(runs):
  trained, _ = checkpoint.restore_variables(runs["moved"])
  start, end = _kernels(runs["moved_start"]), _kernels(trained["params"])
  assert start.keys() == end.keys() and len(start) > 6
  # The candidates no training step sampled kept their start to the bit; every other kernel
  # moved. A start drawn with another seed is about orthogonal to the run's.
  config = _config(runs["data"])
  sampled = [space.sample_path(config.model.choice_max_num, SEED, step) for step in range(STEPS)]
  kept = set()
  for names in start:
    on_path = any(_on_path(names, p) for p in sampled)
    assert np.array_equal(start[names], end[names]) != on_path, names
    if not on_path:
      kept.add(names)
  assert len(kept) >= 3 * len(train_standin.LAYERS)  # of 6 candidates, at most STEPS sampled
  angle = weight_angle.PathAngle(runs["moved_start"], trained["params"], MODEL, "moved")
  other = weight_angle.PathAngle(runs["other_start"], trained["params"], MODEL, "other")
  for path in ((0, 0, 0, 0), (0, 5, 3, 1)):
    assert angle.degrees(path) + 30 < other.degrees(path)  # independent starts: about 90°


def _concatenated_angle(initial, trained, path):
  """The angle of the path's kernels, concatenated into one float64 vector each."""
  start, end = [], []
  for names, value in _kernels(initial).items():
    if not _on_path(names, path):
      continue
    start.append(value.astype(np.float64).ravel())
    end.append(np.asarray(trained[names], np.float64).ravel())
  a, b = np.concatenate(start), np.concatenate(end)
  return np.degrees(np.arccos(a @ b / np.linalg.norm(a) / np.linalg.norm(b)))


def test_angle_is_that_of_the_paths_concatenated_kernels(runs):
  initial = runs["moved_start"]
  trained, _ = checkpoint.restore_variables(runs["moved"])
  angle = weight_angle.PathAngle(initial, trained["params"], MODEL, "moved")
  values = {}
  for path in ((0, 0, 0, 0), (0, 5, 3, 1), (0, 2, 2, 4)):
    values[path] = angle.degrees(path)
    expected = _concatenated_angle(initial, _kernels(trained["params"]), path)
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
  assert not scorer.val_set.cache  # the held-out silhouettes are never read
  search.run(config, str(tmp_path / "s"))
  assert "fitness = angle (degrees)" in capsys.readouterr().out
  result = json.load(open(tmp_path / "s" / "search" / "result.json"))
  for h in result["history"]:
    assert h["fitness"] == pytest.approx(angle.degrees(h["path"]), rel=1e-12)
  assert result["best_fitness"] == max(h["fitness"] for h in result["history"])


def test_a_start_that_is_not_known_is_refused(runs, tmp_path):
  fixed = _copy_with(runs["moved"], str(tmp_path / "fixed"), "model", "path", "0,1,2,3")
  with pytest.raises(ValueError, match="is a fixed network"):
    weight_angle.initial_params(fixed)
  continued = _copy_with(runs["moved"], str(tmp_path / "continued"), "train", "init_from",
                         str(tmp_path / "fixed"))
  with pytest.raises(ValueError, match="started from train.init_from"):
    weight_angle.initial_params(continued)


def test_non_finite_weights_are_refused(runs):
  initial = runs["moved_start"]
  broken = jax.tree.map(np.array, initial)
  leaf = broken["conv3d_20"]["cand1"]["fc"]["kernel"]
  leaf[0, 0] = np.nan
  with pytest.raises(ValueError, match=r"conv3d_20.*cand1.*non-finite"):
    weight_angle.PathAngle(initial, broken, MODEL, "the supernet X")
