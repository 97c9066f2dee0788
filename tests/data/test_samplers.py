"""P×K identity sampling and the reference's frame-selection rules, against hand-worked cases."""
import collections
import itertools
import types

import numpy as np
import pytest

from gait_jax.data.samplers import sample_pk, select_frames


def fake_dataset(seqs_per_id):
  """label_set/indices_by_label of ids 'id0'.. with the given sequence counts."""
  labels, by_label, n = [], {}, 0
  for i, count in enumerate(seqs_per_id):
    labels.append(f"id{i}")
    by_label[f"id{i}"] = list(range(n, n + count))
    n += count
  owner = {s: pid for pid, seqs in by_label.items() for s in seqs}
  return types.SimpleNamespace(label_set=labels, indices_by_label=by_label), owner


def rngs(n):
  return (np.random.default_rng(s) for s in range(n))


# ---------------------------------------------------------------------------- P×K
def test_pk_without_replacement_unshuffled():
  ds, owner = fake_dataset([5] * 6)
  for rng in rngs(50):
    batch = sample_pk(rng, ds, 4, 3, shuffle=False)
    assert batch.dtype == np.int64 and batch.shape == (12,)
    groups = [batch[i:i + 3] for i in range(0, 12, 3)]
    ids = [owner[g[0]] for g in groups]
    assert len(set(ids)) == 4  # P distinct ids when there are enough
    for g in groups:  # K distinct sequences of one id, id-major
      assert len({owner[s] for s in g}) == 1 and len(set(g)) == 3


def test_pk_shuffled_keeps_composition():
  ds, owner = fake_dataset([4] * 8)
  seen_unsorted = False
  for rng in rngs(30):
    batch = sample_pk(rng, ds, 3, 2, shuffle=True)
    counts = collections.Counter(owner[s] for s in batch)
    assert len(counts) == 3 and set(counts.values()) == {2}
    assert len(set(batch)) == 6
    ids = [owner[s] for s in batch]
    seen_unsorted |= ids[0::2] != ids[1::2]
  assert seen_unsorted  # the P·K list really is permuted


def test_pk_with_replacement_fallbacks():
  # 2 ids but P = 5: ids drawn with replacement; id1 has a single sequence but K = 3.
  ds, owner = fake_dataset([4, 1])
  saw_repeat_id = False
  for rng in rngs(30):
    batch = sample_pk(rng, ds, 5, 3, shuffle=False)
    assert batch.shape == (15,)
    groups = [batch[i:i + 3] for i in range(0, 15, 3)]
    ids = [owner[g[0]] for g in groups]
    saw_repeat_id |= len(set(ids)) < len(ids)
    for g in groups:
      assert len({owner[s] for s in g}) == 1
      if owner[g[0]] == "id1":
        assert list(g) == [4, 4, 4]
      else:
        assert len(set(g)) == 3  # id0 has 4 >= K sequences: no repeats
  assert saw_repeat_id


def test_pk_deterministic_and_covers_ids():
  ds, _ = fake_dataset([3] * 10)
  a = sample_pk(np.random.default_rng(7), ds, 4, 2, True)
  b = sample_pk(np.random.default_rng(7), ds, 4, 2, True)
  np.testing.assert_array_equal(a, b)
  seen = set()
  for rng in rngs(100):
    seen |= set(sample_pk(rng, ds, 4, 2, False).tolist())
  assert seen == set(range(30))


# ---------------------------------------------------------------------------- frames
def test_fixed_ordered_short_sequence_tiling():
  # L = 5, F = 8: indices tiled ceil(8/5) = 2 times -> [0..4, 0..4], L' = 10, start in [0, 2].
  windows = {(0, 1, 2, 3, 4, 0, 1, 2), (1, 2, 3, 4, 0, 1, 2, 3), (2, 3, 4, 0, 1, 2, 3, 4)}
  got = {tuple(select_frames(rng, 5, "fixed_ordered", frames=8)) for rng in rngs(60)}
  assert got == windows


def test_fixed_ordered_long_sequence_is_contiguous():
  starts = set()
  for rng in rngs(200):
    idx = select_frames(rng, 40, "fixed_ordered", frames=30)
    assert idx.dtype == np.int64 and len(idx) == 30
    assert np.all(np.diff(idx) == 1)
    starts.add(int(idx[0]))
  assert starts == set(range(11))  # uniform start in [0, 40 - 30]
  np.testing.assert_array_equal(select_frames(np.random.default_rng(0), 30, "fixed_ordered",
                                              frames=30), np.arange(30))


def test_fixed_ordered_with_skip():
  # L = 20, frames 4 + skip 2: a window of 6 consecutive frames, 4 of them kept in order.
  for rng in rngs(50):
    idx = select_frames(rng, 20, "fixed_ordered", frames=4, skip=2)
    assert len(idx) == 4 and np.all(np.diff(idx) > 0) and idx[-1] - idx[0] <= 5
  # L = 3, window 6: tiled twice -> [0,1,2,0,1,2], start 0; kept = 4 sorted window positions.
  tiled = [0, 1, 2, 0, 1, 2]
  allowed = {tuple(tiled[p] for p in c) for c in itertools.combinations(range(6), 4)}
  got = {tuple(select_frames(rng, 3, "fixed_ordered", frames=4, skip=2)) for rng in rngs(200)}
  assert got <= allowed and len(got) > 3
  assert (0, 1, 2, 0) in got or (1, 2, 0, 1) in got or (0, 2, 0, 1) in got


def test_fixed_unordered():
  unsorted = False
  for rng in rngs(50):
    idx = select_frames(rng, 10, "fixed_unordered", frames=5)
    assert len(idx) == 5 and len(set(idx)) == 5 and idx.min() >= 0 and idx.max() < 10
    unsorted |= bool(np.any(np.diff(idx) < 0))
    short = select_frames(rng, 3, "fixed_unordered", frames=5)  # with replacement
    assert len(short) == 5 and set(short) <= {0, 1, 2}
  assert unsorted


def test_unfixed_counts_per_sequence():
  counts = set()
  for rng in rngs(100):
    idx = select_frames(rng, 30, "unfixed_ordered", frames_min=2, frames_max=4)
    assert 2 <= len(idx) <= 4 and np.all(np.diff(idx) == 1)
    counts.add(len(idx))
    un = select_frames(rng, 30, "unfixed_unordered", frames_min=2, frames_max=4)
    assert 2 <= len(un) <= 4 and len(set(un)) == len(un)
  assert counts == {2, 3, 4}


def test_all_ordered_and_limit():
  np.testing.assert_array_equal(select_frames(None, 7, "all_ordered"), np.arange(7))
  np.testing.assert_array_equal(select_frames(None, 7, "all_ordered", all_limit=3), [0, 1, 2])
  np.testing.assert_array_equal(select_frames(None, 7, "all_ordered", all_limit=720),
                                np.arange(7))


def test_frame_selection_errors():
  rng = np.random.default_rng(0)
  with pytest.raises(ValueError, match="sample_type='all_unordered'"):
    select_frames(rng, 5, "all_unordered")
  with pytest.raises(ValueError, match="at least one frame"):
    select_frames(rng, 0, "fixed_ordered")
  with pytest.raises(ValueError, match="frames_min=5, frames_max=2"):
    select_frames(rng, 9, "unfixed_ordered", frames_min=5, frames_max=2)
