"""Which sequences form a batch (P×K) and which frames of a sequence are used.

Both draw from a NumPy `Generator` passed in, so a batch is a pure function of the generator's
seed. The reference draws from Python's `random`, torch and NumPy's global state; the random
*streams* therefore differ from it, the distributions and rules do not.
"""
from __future__ import annotations

import math

import numpy as np

SAMPLE_TYPES = ("fixed_ordered", "fixed_unordered", "unfixed_ordered", "unfixed_unordered",
                "all_ordered")


def fixed_length(sample_type: str) -> bool:
  """fixed_* samplers give every sequence `data.frames` frames; unfixed_* give between
  `frames_min` and `frames_max`, zero-padded to `frames_max`, with their lengths."""
  return sample_type.startswith("fixed")


def batch_frames(data_cfg) -> int:
  """T of a training batch `[b, T, H, W]`."""
  return data_cfg.frames if fixed_length(data_cfg.sample_type) else data_cfg.frames_max


def _pick(rng: np.random.Generator, n: int, count: int) -> np.ndarray:
  """`count` positions of `range(n)`: without replacement when n >= count, else with.

  This is the reference's `sync_random_sample_list`: a truncated random permutation, or
  independent uniform draws when there are too few items.
  """
  if n < count:
    return rng.integers(0, n, size=count)
  return rng.permutation(n)[:count]


def sample_pk(rng: np.random.Generator, dataset, p: int, k: int, shuffle: bool) -> np.ndarray:
  """One global batch of sequence indices, int64 `[p*k]` (reference TripletSampler).

  P ids from `dataset.label_set` (without replacement when there are at least P ids), then
  K sequences of each id (without replacement when the id has at least K), id-major;
  `shuffle` (the reference `batch_shuffle`) then permutes the whole P·K list.
  """
  if p < 1 or k < 1:
    raise ValueError(f"batch P×K = {p}×{k}: both must be >= 1")
  labels = dataset.label_set
  if not labels:
    raise ValueError("sample_pk: the dataset has no ids")
  out = []
  for c in _pick(rng, len(labels), p):
    members = dataset.indices_by_label[labels[c]]
    out.extend(members[j] for j in _pick(rng, len(members), k))
  out = np.asarray(out, np.int64)
  if shuffle:
    out = out[rng.permutation(len(out))]
  return out


def ordered_clip(rng: np.random.Generator, length: int, count: int, skip: int = 0) -> np.ndarray:
  """A random in-order clip of `count` frames (the reference's `*_ordered` rule).

  Window F = count + skip. A sequence shorter than F has its index list tiled ceil(F/L) times
  (wrap-around); a start is drawn uniformly in [0, L' - F] (L' = tiled length); of the F
  window positions a sorted random subset of `count` is kept (all of them when skip = 0).
  """
  window = count + skip
  indices = np.arange(length, dtype=np.int64)
  if length < window:
    indices = np.tile(indices, math.ceil(window / length))
  start = int(rng.integers(0, len(indices) - window + 1))
  positions = np.arange(start, start + window)
  if skip > 0:
    positions = np.sort(rng.choice(positions, count, replace=False))
  return indices[positions]


def select_frames(rng: np.random.Generator, length: int, sample_type: str, *, frames: int = 30,
                  skip: int = 0, frames_min: int = 25, frames_max: int = 50,
                  all_limit: int = 0) -> np.ndarray:
  """Frame indices int64 `[t]` of one sequence of `length` frames.

  - `fixed_ordered`: `ordered_clip` of `frames` frames (window `frames + skip`).
  - `fixed_unordered`: `frames` frames drawn uniformly (without replacement unless the
    sequence is shorter), in random order.
  - `unfixed_*`: as above with a count drawn uniformly from [frames_min, frames_max]; as in
    the reference collate, the count is drawn per sequence.
  - `all_ordered`: every frame in order; only the first `all_limit` when all_limit > 0.
  """
  if length < 1:
    raise ValueError(f"select_frames: a sequence needs at least one frame, got length={length}")
  if sample_type not in SAMPLE_TYPES:
    raise ValueError(f"sample_type={sample_type!r}: expected one of {', '.join(SAMPLE_TYPES)}")
  sampler, order = sample_type.split("_")
  if sampler == "all":
    n = length if all_limit <= 0 else min(length, int(all_limit))
    return np.arange(n, dtype=np.int64)
  if sampler == "fixed":
    count = int(frames)
  else:
    if not 1 <= frames_min <= frames_max:
      raise ValueError(f"frames_min={frames_min}, frames_max={frames_max}: expected "
                       "1 <= frames_min <= frames_max")
    count = int(rng.integers(frames_min, frames_max + 1))
  if count < 1 or skip < 0:
    raise ValueError(f"select_frames: frames={count} must be >= 1 and skip={skip} >= 0")
  if order == "ordered":
    return ordered_clip(rng, length, count, int(skip))
  return rng.choice(length, count, replace=length < count).astype(np.int64)
