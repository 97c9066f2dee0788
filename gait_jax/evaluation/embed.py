"""`embed_dataset`: whole-sequence embeddings of a split, many sequences per step.

The reference embeds one whole sequence per GPU per step (one compile per length under
XLA). Here many sequences share a step: each sequence is padded to a length bucket
(8, 12, 16, 24, 32, 48, ... — powers of two and 1.5× steps in between), rows carry their true
`lengths` (the model masks padded frames, so a padded sequence embeds exactly as unpadded),
and a bucket's batch is sharded over every device on the mesh's "data" axis. The batch shape
per bucket is fixed (`batch_per_device × devices` rows), so the number of compilations is the
number of buckets met. A bucket runs when it holds a full batch; what is left of every bucket
at the end is packed longest first into batches of the bucket of their longest sequence, and
only the last of those has blank (1-frame) rows. The path is a traced int32
argument: one compiled function serves every path of a supernet (search reuses it).

Output (dataset order, deterministic): `embeddings` float32 [N, c, p], `labels` (id strings),
`types`, `views` (the embed mode adds `step` and `path` before writing `embeddings.npz`).
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Iterable, Iterator, Optional, Protocol, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from gait_jax.common import parallel

MIN_BUCKET = 8


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


def length_batches(sequences: Iterable[Tuple[int, np.ndarray]], rows: int,
                   min_bucket: int = MIN_BUCKET) -> Iterator[Tuple[int, list]]:
  """Groups `(index, [T, ...] frames)` into batches of at most `rows`: yields
  `(bucket length, [(index, frames)])`.

  A bucket is yielded when it holds `rows` sequences. Each bucket's leftovers (fewer than
  `rows`) are then packed longest first, so the shorter buckets' fill the longer ones' empty
  rows instead of blank rows, which cost as much as real ones. A batch takes the bucket of its
  longest sequence: never a new shape (no new compilation), never more batches, and padding is
  masked, so no embedding changes."""
  pending: Dict[int, list] = {}  # bucket length -> [(index, frames)]
  for i, seq in sequences:
    t = bucket_length(seq.shape[0], min_bucket)
    pending.setdefault(t, []).append((i, seq))
    if len(pending[t]) == rows:
      yield t, pending.pop(t)
  left = sorted((item for items in pending.values() for item in items),
                key=lambda item: (-item[1].shape[0], item[0]))
  for start in range(0, len(left), rows):
    group = left[start:start + rows]
    yield bucket_length(group[0][1].shape[0], min_bucket), group


_EMBED_FNS: Dict[tuple, Callable] = {}


def make_embed_fn(model, mesh) -> Callable:
  """Jitted `(variables, sils [B, T, 64, 44], lengths [B], path int32 [L]) -> [B, c, p]`,
  sils/lengths sharded over "data", variables and path replicated, output replicated.

  Cached per (model, mesh) (flax modules compare by value), so repeated `embed_dataset`
  calls — one per candidate path in a search — reuse the compiled programs."""
  key = (model, mesh)
  if key not in _EMBED_FNS:
    _EMBED_FNS[key] = _make_embed_fn(model, mesh)
  return _EMBED_FNS[key]


def _make_embed_fn(model, mesh) -> Callable:
  data = parallel.data_sharding(mesh)
  rep = parallel.replicated(mesh)

  def apply(variables, sils, lengths, path):
    out = model.apply(variables, sils, path, lengths=lengths, train=False)
    return out["embeddings"]

  return jax.jit(apply, in_shardings=(rep, data, data, rep), out_shardings=rep)


def _embed_batch(embed_fn, variables, sils, lengths, sharding, path_arr, flip: bool):
  """Embeddings of one host batch; with `flip`, the mean with the mirrored batch's."""
  # Every process holds the whole host batch (the same deterministic iteration).
  lengths_arr = parallel.global_array(lengths, sharding, lengths.shape)

  def run(x):
    return np.asarray(embed_fn(variables, parallel.global_array(x, sharding, x.shape),
                               lengths_arr, path_arr))

  emb = run(sils)
  if flip:
    emb = (emb + run(np.ascontiguousarray(sils[..., ::-1]))) / 2
  return emb


class EmbedSource(Protocol):
  """What `embed_dataset` reads: a GaitDataset, or any sequences held this way (the
  Recognizer's in-memory probes)."""
  sequences: Sequence[Any]  # per sequence: .id, .type, .view, .name and .files (errors)

  def __len__(self) -> int:
    ...

  def load(self, index: int) -> Sequence[np.ndarray]:
    """[uint8 frames [T, 64, 64]] (the pkl list's first array is the silhouettes)."""
    ...


def embed_dataset(model, variables, dataset: EmbedSource, path, *, batch_per_device: int = 8,
                  frames_all_limit: int = 0, mesh=None, embed_fn: Optional[Callable] = None,
                  indices: Optional[Sequence[int]] = None, workers: int = 2,
                  progress: bool = True, min_bucket: int = MIN_BUCKET,
                  batch: Optional[int] = None, flip: bool = False) -> Dict[str, np.ndarray]:
  """Embeds whole sequences of `dataset` (all frames, first `frames_all_limit` when > 0).

  Args:
    model: a SPOSGait module; variables: {"params", "batch_stats"} matching it.
    path: the architecture, a tuple of ints or an int32 array; always passed traced, so
      `embed_fn` (from `make_embed_fn`) compiles once per bucket whatever the path.
    batch_per_device: sequences per device per step (config `embed.batch`; `batch` is an
      alias of it).
    embed_fn: from `make_embed_fn` (default: the cached one for (model, mesh)).
    indices: sequences to embed (default all), in this order.
    flip: each embedding is the mean of the sequence's and its horizontal mirror's (config
      `embed.flip`): a side-view walk in the other direction is a mirror image, so this makes
      the embedding independent of the walking direction. The same compiled function runs
      both halves.
  Returns {"embeddings": f32 [n, c, p], "labels", "types", "views": str [n]}.
  """
  from gait_jax.data import loader as loader_lib  # pylint: disable=g-import-not-at-top
  mesh = mesh or parallel.make_mesh()
  embed_fn = embed_fn or make_embed_fn(model, mesh)
  n_dev = mesh.devices.size
  if batch is not None:
    batch_per_device = batch
  rows = int(batch_per_device) * n_dev
  if rows <= 0:
    raise ValueError(f"embed.batch={batch_per_device}: expected at least 1 sequence per device")
  indices = list(range(len(dataset))) if indices is None else [int(i) for i in indices]
  rep = parallel.replicated(mesh)
  data = parallel.data_sharding(mesh)
  variables = jax.device_put(variables, rep)
  if hasattr(model, "check_runs"):
    model.check_runs(path)  # the path is traced below: a fixed model's own check cannot see it
  path_arr = jax.device_put(jnp.asarray(np.asarray(path, np.int32).reshape(-1)), rep)

  results: Dict[int, np.ndarray] = {}
  bar = None
  if progress:
    from tqdm import tqdm  # pylint: disable=g-import-not-at-top
    bar = tqdm(total=len(indices), desc="embed", unit="seq", smoothing=0.1,
               disable=jax.process_index() > 0)

  def flush(t: int, items):
    sils = np.zeros((rows, t) + items[0][1].shape[1:], np.float32)
    lengths = np.ones((rows,), np.int32)  # blank padding rows: one (black) frame
    for r, (_, seq) in enumerate(items):
      sils[r, :seq.shape[0]] = seq
      lengths[r] = seq.shape[0]
    emb = _embed_batch(embed_fn, variables, sils, lengths, data, path_arr, flip)
    for r, (i, _) in enumerate(items):
      results[i] = emb[r]
    if bar is not None:
      bar.update(len(items))

  sequences = loader_lib.iter_sequences(dataset, indices, frames_all_limit, workers=workers)
  for t, items in length_batches(sequences, rows, min_bucket):
    flush(t, items)
  if bar is not None:
    bar.close()

  info = {"ids": np.asarray([dataset.sequences[i].id for i in indices], np.str_),
          "types": np.asarray([dataset.sequences[i].type for i in indices], np.str_),
          "views": np.asarray([dataset.sequences[i].view for i in indices], np.str_)}
  emb = np.stack([results[i] for i in indices]) if indices else np.zeros((0, 0, 0), np.float32)
  return {"embeddings": emb.astype(np.float32), "labels": info["ids"], "types": info["types"],
          "views": info["views"]}


def open_eval_split(config):
  """(dataset, frame limit) of the split that embed/test/in-training evaluation embed:
  `embed.split` of embed.root/partition (default data.root/partition), whole sequences cut to
  the first `embed.frames_all_limit` (default data.test_frames_all_limit; 0 = all) frames."""
  from gait_jax.data import splits  # pylint: disable=g-import-not-at-top
  dataset = splits.open_split(config.data, config.embed.split, root=config.embed.root,
                              partition=config.embed.partition, cache=False)
  return dataset, frames_limit(config)


def frames_limit(config) -> int:
  return int(config.embed.frames_all_limit or config.data.test_frames_all_limit or 0)
