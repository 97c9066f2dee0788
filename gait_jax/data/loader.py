"""Training batches from a GaitDataset: P×K sampling, frame selection, transforms, prefetch.

Determinism: the global batch of step s is a pure function of (seed, s).
Identity sampling uses the generator seeded by `[seed, s, TAG, 0]` and row r of the global
batch (its frame selection and transform) the one seeded by `[seed, s, TAG, r + 1]`. So a run
resumed at `start_step=k` sees exactly the batches of an uninterrupted run, every process
agrees on the selection, and each process builds only its own rows. (The reference re-seeds
Python's `random` with the step index for the same reason, but its worker processes keep their
own streams, so its frame selection is not reproducible; here it is.)

Work: `data.workers` threads load + select + transform one sequence each and write straight
into a preallocated batch; `data.prefetch` batches are kept in flight ahead of the consumer.
pickle/zlib/OpenCV/PIL release the GIL for most of their work, so threads scale on a few cores
without the inter-process copies of multiprocessing.
"""
from __future__ import annotations

import collections
import concurrent.futures
import time
from typing import Iterator, Optional, Sequence, Tuple

import numpy as np

from gait_jax.data import samplers
from gait_jax.data import transforms as transforms_lib

# Separates the data streams from other users of (seed, step), e.g. the path sampler.
_TAG = 0x6A17D


def selection_rng(seed: int, step: int) -> np.random.Generator:
  """The generator of step `step`'s identity sampling (the same on every process)."""
  return np.random.default_rng([int(seed), int(step), _TAG, 0])


def row_rng(seed: int, step: int, row: int) -> np.random.Generator:
  """The generator of row `row` of the global batch of step `step` (frames + transform)."""
  return np.random.default_rng([int(seed), int(step), _TAG, int(row) + 1])


class LoaderError(RuntimeError):
  """A sequence could not be loaded or transformed (the message names its files)."""


def process_rows(global_batch: int, process_index: int, process_count: int) -> range:
  """The rows of the global batch that process `process_index` loads."""
  if process_count < 1 or not 0 <= process_index < process_count:
    raise ValueError(f"process_index={process_index}, process_count={process_count}: "
                     "expected 0 <= process_index < process_count")
  if global_batch % process_count:
    raise ValueError(f"global batch P·K = {global_batch} is not divisible by the "
                     f"{process_count} processes")
  local = global_batch // process_count
  return range(process_index * local, (process_index + 1) * local)


def batch_labels(dataset, indices) -> dict:
  return {"labels": dataset.labels[indices].astype(np.int32),
          "types": np.asarray([dataset.sequences[i].type for i in indices], np.str_),
          "views": np.asarray([dataset.sequences[i].view for i in indices], np.str_)}


class WaitClock:
  """The share of wall time a consumer spent waiting for data, since its first batch or the
  last reset (each logging interval)."""

  def __init__(self):
    self.waited, self.since = 0.0, None

  def start(self) -> None:
    if self.since is None:
      self.since = time.perf_counter()

  def fraction(self) -> float:
    total = 0.0 if self.since is None else time.perf_counter() - self.since
    return self.waited / total if total > 0 else 0.0

  def reset(self) -> None:
    self.waited, self.since = 0.0, time.perf_counter()


class TrainLoader:
  """Infinite iterator of `(step, batch)` for training.

  batch = {"sils": float32 [b_local, T, 64, 44] in [0, 1] (uint8 with `uint8=True`),
           "labels": int32 [b_local] (index into dataset.label_set),
           "lengths": int32 [b_local] (valid frames; T for the fixed samplers),
           "types", "views": np.str_ [b_local]}
  with b_local = P·K / process_count; process i gets rows [i·b/n, (i+1)·b/n) of the global batch.
  T = data.frames for `fixed_*`; for `unfixed_*` each sequence gets its own count in
  [frames_min, frames_max] (as the reference collate) and T = frames_max, zero-padded.

  Args:
    dataset: a GaitDataset (training split).
    data_cfg: `config.data` (batch_p, batch_k, batch_shuffle, sample_type, frames, frames_skip,
      frames_min, frames_max, transforms, workers, prefetch).
    seed: non-negative int (checked with the config); with the step it determines every batch.
    start_step: the first step yielded (resume).
    uint8: yield the cut uint8 frames (divide by 255 on the device); only with
      transforms="base_sil_cutting". None = `data_cfg.uint8`.
  """

  def __init__(self, dataset, data_cfg, seed: int, start_step: int = 0, process_index: int = 0,
               process_count: int = 1, uint8: Optional[bool] = None):
    self.dataset, self.seed = dataset, seed
    self.p, self.k = data_cfg.batch_p, data_cfg.batch_k
    self.shuffle = data_cfg.batch_shuffle
    self.global_batch = self.p * self.k
    self.rows = process_rows(self.global_batch, process_index, process_count)
    self.sample_type = data_cfg.sample_type
    self.frame_args = dict(frames=data_cfg.frames, skip=data_cfg.frames_skip,
                           frames_min=data_cfg.frames_min, frames_max=data_cfg.frames_max)
    self.frames = samplers.batch_frames(data_cfg)
    self.uint8 = data_cfg.uint8 if uint8 is None else uint8
    self.transform = transforms_lib.build_transform(data_cfg.transforms, uint8=self.uint8)
    h, w = getattr(dataset, "frame_size", None) or (64, 64)
    self.frame_shape = (h, w - 2 * ((w // 64) * 10))

    self.workers = max(0, data_cfg.workers)
    self.prefetch = max(1, data_cfg.prefetch)
    self._pool = (concurrent.futures.ThreadPoolExecutor(self.workers,
                                                        thread_name_prefix="gait-loader")
                  if self.workers else None)
    self._pending = collections.deque()
    self._next_submit = int(start_step)
    self._closed = False
    self._clock = WaitClock()

  # ---------------------------------------------------------------- pure functions of (seed, step)
  def global_indices(self, step: int) -> np.ndarray:
    """Dataset indices of the whole global batch of `step` (int64 [P·K])."""
    return samplers.sample_pk(selection_rng(self.seed, step), self.dataset, self.p, self.k,
                              self.shuffle)

  def _fill_row(self, step, row, index, out, lengths, j):
    info = self.dataset.sequences[index]
    try:
      rng = row_rng(self.seed, step, row)
      # SPOSGait uses one modality: the first pkl (sorted) of the sequence.
      seq = self.dataset.load(index)[0]
      frames = samplers.select_frames(rng, seq.shape[0], self.sample_type, **self.frame_args)
      x = self.transform(seq[frames], rng)
      if x.shape[1:] != self.frame_shape:
        raise ValueError(f"transformed frames have shape {x.shape[1:]}, expected "
                         f"{self.frame_shape}")
      out[j, :x.shape[0]] = x
      lengths[j] = x.shape[0]
    except Exception as e:
      raise LoaderError(f"step {step}: sequence {info.name} ({', '.join(info.files)}): "
                        f"{type(e).__name__}: {e}") from e

  def _submit(self, step):
    indices = self.global_indices(step)[self.rows.start:self.rows.stop]
    n = len(indices)
    dtype = np.uint8 if self.uint8 else np.float32
    out = np.zeros((n, self.frames) + self.frame_shape, dtype)
    lengths = np.zeros((n,), np.int32)
    jobs = []
    for j, (row, index) in enumerate(zip(self.rows, indices)):
      args = (step, row, int(index), out, lengths, j)
      if self._pool is None:
        jobs.append(args)  # run by the consumer (workers=0)
      else:
        jobs.append(self._pool.submit(self._fill_row, *args))
    batch = {"sils": out, "lengths": lengths, **batch_labels(self.dataset, indices)}
    self._pending.append((step, jobs, batch))

  # ---------------------------------------------------------------- iteration
  def __iter__(self) -> Iterator[Tuple[int, dict]]:
    return self

  def __next__(self) -> Tuple[int, dict]:
    if self._closed:
      raise RuntimeError("TrainLoader is closed")
    self._clock.start()
    while len(self._pending) < self.prefetch:
      self._submit(self._next_submit)
      self._next_submit += 1
    step, jobs, batch = self._pending.popleft()
    t0 = time.perf_counter()
    try:
      for job in jobs:
        if isinstance(job, tuple):
          self._fill_row(*job)
        else:
          job.result()
    except LoaderError:
      self.close()
      raise
    self._clock.waited += time.perf_counter() - t0
    # Keep `prefetch` batches in flight while the caller trains on this one.
    self._submit(self._next_submit)
    self._next_submit += 1
    return step, batch

  @property
  def wait_fraction(self) -> float:
    """Fraction of wall time since the first batch (or the last reset) spent waiting."""
    return self._clock.fraction()

  def reset_wait_stats(self) -> None:
    self._clock.reset()

  # ---------------------------------------------------------------- shutdown
  def close(self) -> None:
    """Cancels queued work and joins the worker threads (idempotent)."""
    if self._closed:
      return
    self._closed = True
    for _, jobs, _ in self._pending:
      for job in jobs:
        if not isinstance(job, tuple):
          job.cancel()
    self._pending.clear()
    if self._pool is not None:
      self._pool.shutdown(wait=True, cancel_futures=True)

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()

  def __del__(self):
    try:
      self.close()
    except Exception:  # interpreter shutdown: nothing left to release
      pass


def load_sequence(dataset, index: int, frames_all_limit: int = 0, uint8: bool = False) -> np.ndarray:
  """A whole test-time sequence (all_ordered): float32 [T, 64, 44] (first `frames_all_limit`
  frames when > 0), cut and scaled as the reference's test transform; uint8 cut frames with
  `uint8=True`."""
  info = dataset.sequences[index]
  try:
    seq = dataset.load(index)[0]
    frames = samplers.select_frames(None, seq.shape[0], "all_ordered", all_limit=frames_all_limit)
    seq = seq[frames]
    if uint8:
      return np.ascontiguousarray(transforms_lib.cut_width(seq))
    return transforms_lib.base_sil_cutting(seq)
  except Exception as e:
    raise LoaderError(f"sequence {info.name} ({', '.join(info.files)}): "
                      f"{type(e).__name__}: {e}") from e


def iter_sequences(dataset, indices: Sequence[int], frames_all_limit: int = 0, *,
                   workers: int = 2, prefetch: int = 16,
                   uint8: bool = False) -> Iterator[Tuple[int, np.ndarray]]:
  """Yields `(index, float32 [T, 64, 44])` for each index, in the given order.

  Sequences are read by `workers` threads, at most `prefetch` ahead of the consumer.
  """
  indices = [int(i) for i in indices]
  if workers <= 0:
    for i in indices:
      yield i, load_sequence(dataset, i, frames_all_limit, uint8)
    return
  with concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="gait-seq") as pool:
    window = collections.deque()
    it = iter(indices)
    try:
      for i in it:
        window.append((i, pool.submit(load_sequence, dataset, i, frames_all_limit, uint8)))
        if len(window) >= max(1, prefetch):
          j, fut = window.popleft()
          yield j, fut.result()
      while window:
        j, fut = window.popleft()
        yield j, fut.result()
    finally:
      for _, fut in window:
        fut.cancel()
