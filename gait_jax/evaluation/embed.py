"""`embed_dataset`: whole-sequence embeddings of a split, many sequences per step.

The reference embeds one whole sequence per GPU per step (one compile per length under
XLA). Here each device's step is one row of frames packed with as many whole sequences as fit
(`packing`: a row of `batch_per_device` × the length bucket of the longest waiting sequence;
each sequence apart from its neighbours, so it embeds as alone, to float rounding), and the
rows are sharded over every device on the mesh's "data" axis. The row length is the only
shape that varies, so the number of compilations is the number of row lengths met (full rows,
and the shorter rows of the last sequences), and the frames computed are the sequences' own
plus 1–3 blank frames each and what the last rows leave over. The path
is a traced int32 argument: one compiled function serves every path of a supernet (search
reuses it).

Output (dataset order, deterministic): `embeddings` float32 [N, c, p], `labels` (id strings),
`types`, `views` (the embed mode adds `step` and `path` before writing `embeddings.npz`).
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Protocol, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from gait_jax.common import huge_pages, parallel
from gait_jax.evaluation import packing
from gait_jax.evaluation.packing import MIN_BUCKET
from gait_jax.models import conv


_EMBED_FNS: Dict[tuple, Callable] = {}


def make_embed_fn(model, mesh, bf16: bool = False) -> Callable:
  """Jitted `(variables, sils [R, T, 64, 44], segments int32 [R, T], path int32 [L]) ->
  [R, packing.max_segments(T), c, p]` (packed rows, `packing.layout`), sils/segments sharded
  over "data", variables and path replicated, output replicated. `bf16`: the convolutions
  multiply in bfloat16 where the CPU has bfloat16 units (`conv.bf16_products`).

  Cached per (model, mesh, bf16) (flax modules compare by value), so repeated `embed_dataset`
  calls — one per candidate path in a search — reuse the compiled programs."""
  key = (model, mesh, bool(bf16))
  if key not in _EMBED_FNS:
    _EMBED_FNS[key] = _make_embed_fn(model, mesh, conv.bf16_usable("embed.bf16", bf16))
  return _EMBED_FNS[key]


def _make_embed_fn(model, mesh, bf16: bool = False) -> Callable:
  data = parallel.data_sharding(mesh)
  rep = parallel.replicated(mesh)

  def apply(variables, sils, segments, path):
    with conv.bf16_products(bf16):  # traced here, so the convolutions see it
      out = model.apply(variables, sils, path, train=False, segments=segments,
                        num_segments=packing.max_segments(sils.shape[1]))
    return out["embeddings"]

  return jax.jit(apply, in_shardings=(rep, data, data, rep), out_shardings=rep)


def _embed_batch(embed_fn, variables, sils, segments, sharding, path_arr, flip: bool):
  """Embeddings of one host batch of packed rows; with `flip`, the mean with the mirrored
  batch's."""
  # Every process holds the whole host batch (the same deterministic iteration).
  segments_arr = parallel.global_array(segments, sharding, segments.shape)

  def run(x):
    return np.asarray(embed_fn(variables, parallel.global_array(x, sharding, x.shape),
                               segments_arr, path_arr))

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


@huge_pages.paused()  # embedding runs faster on 4 KiB pages (huge_pages.py)
def embed_dataset(model, variables, dataset: EmbedSource, path, *, batch_per_device: int = 8,
                  frames_all_limit: int = 0, mesh=None, embed_fn: Optional[Callable] = None,
                  indices: Optional[Sequence[int]] = None, workers: int = 2,
                  progress: bool = True, min_bucket: int = MIN_BUCKET,
                  batch: Optional[int] = None, flip: bool = False,
                  bf16: bool = False) -> Dict[str, np.ndarray]:
  """Embeds whole sequences of `dataset` (all frames, first `frames_all_limit` when > 0).

  Args:
    model: a SPOSGait module; variables: {"params", "batch_stats"} matching it.
    path: the architecture, a tuple of ints or an int32 array; always passed traced, so
      `embed_fn` (from `make_embed_fn`) compiles once per row length whatever the path.
    batch_per_device: a device's row per step holds `batch_per_device` × the length
      bucket of the longest waiting sequence's frames: that many sequences of the longest
      length, more of shorter ones (config `embed.batch`; `batch` is an alias of it).
    embed_fn: from `make_embed_fn` (default: the cached one for (model, mesh)).
    indices: sequences to embed (default all), in this order.
    flip: each embedding is the mean of the sequence's and its horizontal mirror's (config
      `embed.flip`): a side-view walk in the other direction is a mirror image, so this makes
      the embedding independent of the walking direction. The same compiled function runs
      both halves.
    bf16: the convolutions multiply in bfloat16 (config `embed.bf16`; `make_embed_fn`), when
      `embed_fn` is not given.
  Returns {"embeddings": f32 [n, c, p], "labels", "types", "views": str [n]}.
  """
  from gait_jax.data import loader as loader_lib  # pylint: disable=g-import-not-at-top
  mesh = mesh or parallel.make_mesh()
  embed_fn = embed_fn or make_embed_fn(model, mesh, bf16)
  n_dev = mesh.devices.size
  if batch is not None:
    batch_per_device = batch
  if int(batch_per_device) * n_dev <= 0:
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

  def flush(frames: int, placed):
    sils, segments = packing.layout(placed, frames)
    emb = _embed_batch(embed_fn, variables, sils, segments, data, path_arr, flip)
    for r, row in enumerate(placed):
      for k, (i, _, _) in enumerate(row):
        results[i] = emb[r, k]
    if bar is not None:
      bar.update(sum(len(row) for row in placed))

  sequences = loader_lib.iter_sequences(dataset, indices, frames_all_limit, workers=workers)
  for frames, placed in packing.packed_batches(sequences, n_dev, int(batch_per_device),
                                               min_bucket):
    flush(frames, placed)
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
