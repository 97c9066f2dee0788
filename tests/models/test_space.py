"""The search space table, path sampling, path masks and layer names (models/space.py)."""
import collections

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gait_jax.models import space as paths
from gait_jax.models.space import CHOICE_MAX_NUM


def test_layer_names_match_spec_positions():
  assert paths.layer_names("sposgait_small") == ("conv3d_00", "conv3d_20", "conv3d_30",
                                                 "conv3d_40")
  assert paths.layer_names("medium")[4:] == ("conv3d_20", "conv3d_30", "conv3d_40")
  assert paths.layer_names("sposgait_large")[7] == "conv3d_31"
  for name, cmn in CHOICE_MAX_NUM.items():
    assert len(paths.layer_names(name)) == len(cmn)
  with pytest.raises(ValueError, match="huge"):
    paths.layer_names("huge")


def test_sample_path_deterministic_in_range_and_uniform():
  cmn = CHOICE_MAX_NUM["sposgait_large"]
  assert paths.sample_path(cmn, 3, 17) == paths.sample_path(cmn, 3, 17)
  draws = [paths.sample_path(cmn, 0, s) for s in range(3000)]
  assert len(set(draws[:50])) > 45  # a fresh path nearly every step
  assert paths.sample_path(cmn, 1, 0) != paths.sample_path(cmn, 0, 0) or \
      paths.sample_path(cmn, 1, 1) != paths.sample_path(cmn, 0, 1)
  arr = np.array(draws)
  assert (arr[:, :2] == 0).all()  # choice_max_num 1 → always candidate 0
  assert arr.min() == 0 and arr.max() == 5
  counts = collections.Counter(arr[:, 5])
  assert all(abs(counts[j] / 3000 - 1 / 6) < 0.03 for j in range(6))
  assert all(isinstance(v, int) for v in draws[0])


@pytest.mark.parametrize("cmn", [CHOICE_MAX_NUM["sposgait_large"], (1, 6, 4, 3)])
def test_fair_path_trains_each_candidate_equally_often_per_group(cmn):
  group = np.lcm.reduce(cmn)
  draws = np.array([paths.fair_path(cmn, 7, s) for s in range(group * 40)])
  for g in range(40):
    block = draws[g * group:(g + 1) * group]
    for i, m in enumerate(cmn):
      counts = collections.Counter(block[:, i].tolist())
      assert counts == {j: group // m for j in range(m)}, (g, i, counts)
  assert paths.fair_path(cmn, 7, 123) == paths.fair_path(cmn, 7, 123)  # resume, processes
  assert all(isinstance(v, int) for v in paths.fair_path(cmn, 7, 0))
  # Random across groups and seeds, not one fixed cycle.
  firsts = {tuple(draws[g * group:(g + 1) * group, -1]) for g in range(40)}
  assert len(firsts) > 10
  other = np.array([paths.fair_path(cmn, 8, s) for s in range(group * 4)])
  assert not np.array_equal(other, draws[:group * 4])
  with pytest.raises(ValueError, match="seed and step must be >= 0"):
    paths.fair_path(cmn, 0, -1)


def _tree():
  leaf = np.zeros(2)
  return {"conv3d_00": {f"cand{j}": {"conv0": {"kernel": leaf}} for j in range(6)},
          "conv3d_20": {f"cand{j}": {"bn1": {"scale": leaf}} for j in range(6)},
          "conv3d_30": {f"cand{j}": {"bn1": {"scale": leaf}} for j in range(6)},
          "conv3d_40": {f"cand{j}": {"bn1": {"scale": leaf}} for j in range(6)},
          "downsample0": {"conv0": {"kernel": leaf}}, "HPP": {"p": leaf}}


def test_path_mask_static():
  m = paths.path_mask(_tree(), (0, 5, 2, 1), "sposgait_small")
  assert m["HPP"]["p"] is True and m["downsample0"]["conv0"]["kernel"] is True
  assert [m["conv3d_20"][f"cand{j}"]["bn1"]["scale"] for j in range(6)] == \
      [False, False, False, False, False, True]
  assert m["conv3d_40"]["cand1"]["bn1"]["scale"] and not m["conv3d_40"]["cand0"]["bn1"]["scale"]
  assert sum(jax.tree.leaves(m)) == 2 + 4  # two shared leaves + one candidate per layer


def test_path_mask_traced_matches_static_and_nested_tree():
  tree = {"params": _tree()}

  @jax.jit
  def f(p):
    return paths.path_mask(tree, p, "sposgait_small")

  for path in [(0, 5, 2, 1), (3, 0, 0, 4)]:
    traced = f(jnp.array(path, jnp.int32))
    static = paths.path_mask(tree, path, "sposgait_small")
    assert jax.tree.map(lambda a: bool(a), traced) == static


def test_path_mask_rejects_wrong_length():
  with pytest.raises(ValueError, match="sposgait_small path has 4 entries, got 3"):
    paths.path_mask(_tree(), (0, 1, 2), "sposgait_small")


def test_the_table_derives_names_channels_and_flops_plan():
  # One description of the architecture: the other views are derived from space.STAGES.
  from gait_jax.models import cost
  for name, stages in paths.STAGES.items():
    assert paths.LAYER_NAMES[name] == tuple(l[0] for s in stages for l in s.layers)
    searchable, fixed, order, _ = cost._plan(name)  # pylint: disable=protected-access
    assert tuple(l.name for l in searchable) == paths.LAYER_NAMES[name]
    assert [c.name for c in fixed if c.name.startswith("downsample")] == \
        [f"downsample{s.index}" for s in stages]
    assert sum(s.lta_after for s in stages) == 1 and "LTA" in order
  assert paths.NUM_CHANNELS == {"sposgait_large": 4, "sposgait_medium": 4, "sposgait_small": 3}


def test_path_mask_uses_the_models_positions():
  # The same layer names sit at other path positions in sposgait_medium.
  tree = _tree()
  m = paths.path_mask(tree, (0, 0, 1, 2, 3, 4, 5), "sposgait_medium")
  assert m["conv3d_20"]["cand3"]["bn1"]["scale"] and not m["conv3d_20"]["cand0"]["bn1"]["scale"]
  assert m["conv3d_30"]["cand4"]["bn1"]["scale"] and m["conv3d_40"]["cand5"]["bn1"]["scale"]
