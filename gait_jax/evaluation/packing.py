"""Packing whole sequences of any length into the fixed-shape rows an embedding step takes.

Each device gets one row of `batch_per_device × bucket` frames, the bucket being the
smallest of 8, 12, 16, 24, 32, 48, ... (powers of two and 1.5× steps in between) that holds
the longest sequence waiting; the row carries as many sequences as fit (first fit, longest
first), so the padding a step computes on is what the rows' ends leave over, not each
sequence's distance to its bucket. Inside a row a sequence starts at a multiple of 3 frames
and is followed by a gap of 1–3 blank frames (`slot_length`): every temporal kernel of the
network reads one frame either side, and the model zeroes the gaps after every layer, so no
sequence sees its neighbours, and the LTA's stride-3 groups (output frame j reads frames
3j..3j+2) never straddle two sequences and leave a blank frame between them after it too. A
packed sequence therefore embeds exactly as it does alone (up to float summation order).

The row length is the only shape that varies (one compilation each): `batch_per_device`
buckets of the longest slot, or for the last sequences the bucket that holds them
(`tail_frames`); the number of segment slots per row follows from it (`max_segments`).
"""
from __future__ import annotations

from typing import Iterable, Iterator, List, Sequence, Tuple

import numpy as np

from gait_jax.models.frames import tiled_length
from gait_jax.models.layers import LTA_STRIDE

MIN_BUCKET = 8
Item = Tuple[int, np.ndarray]  # (dataset index, frames [T, ...])


def bucket_length(length: int, min_bucket: int = MIN_BUCKET) -> int:
  """Smallest bucket ≥ length among min_bucket·{1, 1.5, 2, 3, 4, 6, 8, ...}."""
  if length <= 0:
    raise ValueError(f"sequence length {length}: expected at least one frame")
  b = min_bucket
  while True:
    if length <= b:
      return b
    if length <= b * 3 // 2:
      return b * 3 // 2
    b *= 2


def short_clip(frames: np.ndarray) -> np.ndarray:
  """The reference's tiling of clips under 3 frames (1 → a,a,a; 2 → a,b,a,b), on the host."""
  length = frames.shape[0]
  if length == 0:
    raise ValueError("sequence of 0 frames: expected at least one")
  tiled = int(tiled_length(length))
  return frames if tiled == length else frames[np.arange(tiled) % length]


def slot_length(length: int) -> int:
  """Frames a sequence of `length` (already tiled) takes in a row, with the gap after it: a
  multiple of 3 that leaves ≥ 1 blank frame after it, before and after the LTA."""
  return LTA_STRIDE * (length // LTA_STRIDE) + LTA_STRIDE


MIN_SLOT = slot_length(3)  # the shortest sequence the network runs on (clips are tiled)


def max_segments(row_frames: int) -> int:
  """Segment slots of a row: as many sequences as can fit in it."""
  return max(1, row_frames // MIN_SLOT)


def row_frames(items: Sequence[Item], batch_per_device: int, min_bucket: int = MIN_BUCKET) -> int:
  """A row's length for these items: `batch_per_device` times the bucket of the longest slot."""
  longest = max(slot_length(seq.shape[0]) for _, seq in items)
  return batch_per_device * bucket_length(longest, min_bucket)


def first_fit(items: Sequence[Item], rows: int, frames: int
              ) -> Tuple[List[List[Tuple[int, np.ndarray, int]]], List[Item]]:
  """Longest first, each item into the first of `rows` rows of `frames` that has room:
  (per row [(index, frames, offset)], the items that fit nowhere, in index order)."""
  order = sorted(items, key=lambda item: (-item[1].shape[0], item[0]))
  placed: List[List[Tuple[int, np.ndarray, int]]] = [[] for _ in range(rows)]
  used = [0] * rows
  rest = []
  for index, seq in order:
    need = slot_length(seq.shape[0])
    row = next((r for r in range(rows) if used[r] + need <= frames), None)
    if row is None:
      rest.append((index, seq))
      continue
    placed[row].append((index, seq, used[row]))
    used[row] += need
  return placed, sorted(rest, key=lambda item: item[0])


def packed_batches(sequences: Iterable[Item], rows: int, batch_per_device: int,
                   min_bucket: int = MIN_BUCKET
                   ) -> Iterator[Tuple[int, List[List[Tuple[int, np.ndarray, int]]]]]:
  """Streams `(index, frames)` into batches of `rows` packed rows: yields
  `(row frames, per row [(index, tiled frames, offset)])`, every sequence exactly once, in
  an order fixed by the input order (deterministic on every process).

  A batch is packed once the waiting sequences' slots fill all its rows; what is left at the
  end is packed into rows of `tail_frames`, so only the last batches have room to spare."""
  pending: List[Item] = []
  waiting = 0
  for index, seq in sequences:
    seq = short_clip(seq)
    pending.append((index, seq))
    waiting += slot_length(seq.shape[0])
    frames = row_frames(pending, batch_per_device, min_bucket)
    if waiting >= rows * frames:
      placed, pending = first_fit(pending, rows, frames)
      waiting = sum(slot_length(s.shape[0]) for _, s in pending)
      yield frames, placed
  while pending:
    frames = tail_frames(pending, rows, batch_per_device, min_bucket)
    placed, pending = first_fit(pending, rows, frames)
    yield frames, placed


def tail_frames(items: Sequence[Item], rows: int, batch_per_device: int,
                min_bucket: int = MIN_BUCKET) -> int:
  """A row's length for the last sequences: the bucket of what each row must hold (at least
  the longest slot), up to the full `row_frames`, so the tail does not run full-length rows
  of blank frames."""
  slots = [slot_length(seq.shape[0]) for _, seq in items]
  need = max(max(slots), -(-sum(slots) // rows))
  return min(row_frames(items, batch_per_device, min_bucket), bucket_length(need, min_bucket))


def layout(placed: Sequence[Sequence[Tuple[int, np.ndarray, int]]], frames: int
           ) -> Tuple[np.ndarray, np.ndarray]:
  """(silhouettes float32 `[rows, frames, h, w]`, segment ids int32 `[rows, frames]`: k for
  the k-th sequence of a row, -1 in the gaps) of packed rows (the first row is never empty)."""
  frame_shape = placed[0][0][1].shape[1:]
  sils = np.zeros((len(placed), frames) + tuple(frame_shape), np.float32)
  segments = np.full((len(placed), frames), -1, np.int32)
  for r, row in enumerate(placed):
    for k, (_, seq, offset) in enumerate(row):
      sils[r, offset:offset + seq.shape[0]] = seq
      segments[r, offset:offset + seq.shape[0]] = k
  return sils, segments
