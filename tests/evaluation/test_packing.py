"""Packing whole sequences into embedding rows (gait_jax/evaluation/packing.py)."""
import numpy as np
import pytest

from gait_jax.evaluation import packing


@pytest.mark.parametrize("length,bucket", [(1, 8), (8, 8), (9, 12), (12, 12), (13, 16),
                                           (17, 24), (25, 32), (33, 48), (97, 128), (720, 768)])
def test_bucket_length(length, bucket):
  assert packing.bucket_length(length) == bucket


@pytest.mark.parametrize("length", range(3, 40))
def test_slot_keeps_a_blank_frame_after_the_sequence_before_and_after_the_lta(length):
  slot = packing.slot_length(length)
  assert slot % 3 == 0 and length + 1 <= slot <= length + 3
  assert slot // 3 >= length // 3 + 1  # after the stride-3 LTA: floor(L/3) frames, then a gap


def test_short_clip_tiles_as_the_reference():
  seq = np.arange(5)[:, None]
  np.testing.assert_array_equal(packing.short_clip(seq[:1])[:, 0], [0, 0, 0])
  np.testing.assert_array_equal(packing.short_clip(seq[:2])[:, 0], [0, 1, 0, 1])
  np.testing.assert_array_equal(packing.short_clip(seq)[:, 0], [0, 1, 2, 3, 4])
  with pytest.raises(ValueError, match="0 frames"):
    packing.short_clip(seq[:0])


def _check_batches(out, n, rows, batch_per_device):
  seen = []
  for frames, placed in out:
    assert len(placed) == rows and placed[0]
    longest = max(packing.slot_length(s.shape[0]) for row in placed for _, s, _ in row)
    full = batch_per_device * packing.bucket_length(longest)
    # A full row, or for the tail a bucket between the longest slot and a full row.
    assert frames == full or (longest <= frames < full
                              and frames == packing.bucket_length(frames))
    for row in placed:
      end = 0
      assert len(row) <= packing.max_segments(frames)
      for i, seq, offset in sorted(row, key=lambda item: item[2]):
        assert offset % 3 == 0 and offset >= end  # aligned, after the previous slot
        end = offset + packing.slot_length(seq.shape[0])
        seen.append(i)
      assert end <= frames
  assert sorted(seen) == list(range(n))


def test_packed_batches_every_sequence_once_aligned_apart_and_dense():
  rng = np.random.default_rng(0)
  lengths = rng.integers(1, 200, 500)
  seqs = [(i, np.zeros((int(t), 1, 1))) for i, t in enumerate(lengths)]
  out = list(packing.packed_batches(iter(seqs), 2, 4))
  _check_batches(out, 500, 2, 4)
  real = sum(max(int(t), 3) for t in lengths)
  computed = sum(frames * 2 for frames, _ in out)
  # Each sequence padded to its own bucket: 84 % of the frames computed would be real here.
  assert real / computed > 0.9
  # The benchmark's lengths (24 of 40-90 frames, one row of 8 buckets): the tail's row is cut
  # to what it holds (a full-length one would leave 31 % of the frames blank).
  bench = np.random.default_rng(1).integers(40, 91, 24)
  out_bench = list(packing.packed_batches(
      iter([(i, np.zeros((int(t), 1, 1))) for i, t in enumerate(bench)]), 1, 8))
  _check_batches(out_bench, 24, 1, 8)
  assert bench.sum() / sum(frames for frames, _ in out_bench) > 0.9
  again = [(f, [[(i, o) for i, _, o in row] for row in p])
           for f, p in packing.packed_batches(iter(seqs), 2, 4)]
  assert again == [(f, [[(i, o) for i, _, o in row] for row in p]) for f, p in out]


def test_packed_batches_short_and_single_sequences():
  seqs = [(0, np.ones((1, 2, 2))), (1, np.ones((2, 2, 2))), (2, np.ones((7, 2, 2)))]
  out = list(packing.packed_batches(iter(seqs), 3, 1))
  _check_batches(out, 3, 3, 1)
  lengths = {i: s.shape[0] for _, placed in out for row in placed for i, s, _ in row}
  assert lengths == {0: 3, 1: 4, 2: 7}  # short clips tiled on the host
  assert list(packing.packed_batches(iter([]), 2, 8)) == []


def test_layout_marks_each_sequence_and_the_gaps():
  a, b = np.full((4, 1, 1), 1.0), np.full((3, 1, 1), 2.0)
  sils, segments = packing.layout([[(7, a, 0), (9, b, 6)], []], 12)
  assert sils.shape == (2, 12, 1, 1) and sils.dtype == np.float32
  np.testing.assert_array_equal(segments[0], [0, 0, 0, 0, -1, -1, 1, 1, 1, -1, -1, -1])
  np.testing.assert_array_equal(segments[1], [-1] * 12)
  np.testing.assert_array_equal(sils[0, :, 0, 0], [1, 1, 1, 1, 0, 0, 2, 2, 2, 0, 0, 0])
