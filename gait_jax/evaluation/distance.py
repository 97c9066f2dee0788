"""Part-wise distances between embedding sets and chunked nearest-gallery ranking.

Embeddings are `[N, c, p]` (c channels, p horizontal parts). The reference distance is an
average over parts of per-part distances, never the distance of the flattened vectors:

* `euc`: d(i, j) = mean_k sqrt(max(0, |x_ik|² + |y_jk|² − 2 x_ik·y_jk))
* `cos`: d(i, j) = 1 − mean_k cos(x_ik, y_jk)   (parts L2-normalised over c, eps 1e-12)

Nothing here materialises `[probes, gallery, parts]`: each jitted call takes a chunk of
probes against a chunk of gallery and scans over parts, accumulating a `[a, b]` block.

Tie rule (documented once, used everywhere): gallery items at equal distance are ranked by
ascending gallery index (a stable ascending sort). The reference sorts with `torch.sort`
(CASIA-B, OU-MVLP, GREW) or NumPy's default quicksort (Gait3D), neither of which is stable,
so on ties it is not even deterministic; a stable order is the one deterministic choice
that agrees with it whenever the reference's result is well defined. NaN distances rank
last (as both `torch.sort` and `np.argsort` put NaN last), ties among them by index; `topk`
reports their distance as float32's largest finite value.

Chunk shapes are rounded up (powers of two, then multiples of 1024; capped by the chunk size)
and padded, so a protocol that ranks many differently sized subsets compiles a bounded
number of programs.
"""
from __future__ import annotations

import functools
from typing import Tuple

import jax
import jax.numpy as jnp
import numpy as np

METRICS = ("euc", "cos")
_EPS = 1e-12  # as torch.nn.functional.normalize


def check_metric(metric: str) -> str:
  if metric not in METRICS:
    raise ValueError(f"evaluate.metric={metric!r}: expected one of {METRICS}")
  return metric


def check_embeddings(x, name: str = "embeddings") -> np.ndarray:
  """`x` as a float32 `[N, c, p]` array, or a ValueError naming `name`."""
  x = np.asarray(x)
  if x.ndim != 3:
    raise ValueError(f"{name}: expected a [N, c, p] array, got shape {x.shape}")
  if not np.issubdtype(x.dtype, np.floating):
    raise ValueError(f"{name}: expected floating point values, got dtype {x.dtype}")
  return x.astype(np.float32, copy=False)


def _block_distance(x, y, metric: str):
  """`[a, c, p]` × `[b, c, p]` → `[a, b]` float32, scanning over parts (never `[a, b, p]`)."""
  x = jnp.asarray(x, jnp.float32)
  y = jnp.asarray(y, jnp.float32)
  if metric == "cos":
    x = x / jnp.maximum(jnp.linalg.norm(x, axis=1, keepdims=True), _EPS)
    y = y / jnp.maximum(jnp.linalg.norm(y, axis=1, keepdims=True), _EPS)
  xs = jnp.moveaxis(x, 2, 0)  # [p, a, c]
  ys = jnp.moveaxis(y, 2, 0)  # [p, b, c]
  num_parts = xs.shape[0]

  def part(acc, xy):
    xp, yp = xy
    dot = jnp.matmul(xp, yp.T, precision=jax.lax.Precision.HIGHEST)
    if metric == "cos":
      return acc + dot, None
    sq = jnp.sum(xp * xp, 1)[:, None] + jnp.sum(yp * yp, 1)[None, :] - 2.0 * dot
    return acc + jnp.sqrt(jnp.maximum(sq, 0.0)), None

  acc0 = jnp.zeros((xs.shape[1], ys.shape[1]), jnp.float32)
  acc, _ = jax.lax.scan(part, acc0, (xs, ys))
  if metric == "cos":
    return 1.0 - acc / num_parts
  return acc / num_parts


@functools.partial(jax.jit, static_argnames=("metric",))
def _distance_chunk(x, y, metric):
  return _block_distance(x, y, metric)


@functools.partial(jax.jit, static_argnames=("metric", "k"))
def _topk_chunk(x, y, y_valid, offset, best_d, best_i, metric, k):
  """Merges one gallery chunk into a running top-k (smallest distance first).

  The running entries come first in the concatenation and hold lower gallery indices than
  the new chunk, and `lax.top_k` puts the lower position first on ties, so the merge keeps
  the global tie rule (ascending gallery index)."""
  d = _block_distance(x, y, metric)
  # Non-finite distances rank last (torch/NumPy sorts put NaN last) but must still beat the
  # -inf of padded gallery rows and of the initial sentinels, hence the largest finite value.
  d = jnp.where(jnp.isfinite(d), d, jnp.finfo(jnp.float32).max)
  score = jnp.where(y_valid[None, :], -d, -jnp.inf)
  idx = offset + jnp.arange(y.shape[0], dtype=jnp.int32)
  all_score = jnp.concatenate([-best_d, score], axis=1)
  all_idx = jnp.concatenate([best_i, jnp.broadcast_to(idx[None, :], score.shape)], axis=1)
  top, pos = jax.lax.top_k(all_score, k)
  return -top, jnp.take_along_axis(all_idx, pos, axis=1)


def _bucket(n: int, cap: int) -> int:
  """Padded size for n rows, at most `cap`: the next power of two up to 1024, then the next
  multiple of 1024 (a bounded set of compiled shapes, at most ~10 % padding for big sets)."""
  b = 1
  while b < n and b < 1024:
    b *= 2
  if b < n:
    b = -(-n // 1024) * 1024
  return max(1, min(b, cap))


def _pad_rows(a: np.ndarray, rows: int) -> np.ndarray:
  if a.shape[0] == rows:
    return a
  pad = np.zeros((rows - a.shape[0],) + a.shape[1:], a.dtype)
  return np.concatenate([a, pad], axis=0)


def distance_matrix(x, y, metric: str = "euc", chunk: int = 1024,
                    gallery_chunk: int = 16384) -> np.ndarray:
  """Full `[Nx, Ny]` float32 distance matrix, computed in jitted `[chunk, gallery_chunk]` blocks."""
  check_metric(metric)
  x = check_embeddings(x, "probe embeddings")
  y = check_embeddings(y, "gallery embeddings")
  if x.shape[1:] != y.shape[1:]:
    raise ValueError(f"probe embeddings {x.shape} and gallery embeddings {y.shape} differ in [c, p]")
  out = np.empty((x.shape[0], y.shape[0]), np.float32)
  if x.shape[0] == 0 or y.shape[0] == 0:
    return out
  pc = _bucket(x.shape[0], chunk)
  gc = _bucket(y.shape[0], gallery_chunk)
  for i in range(0, x.shape[0], pc):
    xb = _pad_rows(x[i:i + pc], pc)
    n = min(pc, x.shape[0] - i)
    for j in range(0, y.shape[0], gc):
      yb = _pad_rows(y[j:j + gc], gc)
      m = min(gc, y.shape[0] - j)
      out[i:i + n, j:j + m] = np.asarray(_distance_chunk(xb, yb, metric=metric))[:n, :m]
  return out


def topk(x, y, k: int, metric: str = "euc", chunk: int = 1024,
         gallery_chunk: int = 16384) -> Tuple[np.ndarray, np.ndarray]:
  """The k nearest gallery items of every probe: `(distances [Nx, k'], indices [Nx, k'])`.

  k' = min(k, Ny). Rows are sorted by ascending distance, ties by ascending gallery index.
  Memory stays at one `[chunk, gallery_chunk]` block plus the running `[chunk, k]` lists.
  """
  check_metric(metric)
  x = check_embeddings(x, "probe embeddings")
  y = check_embeddings(y, "gallery embeddings")
  if x.shape[1:] != y.shape[1:]:
    raise ValueError(f"probe embeddings {x.shape} and gallery embeddings {y.shape} differ in [c, p]")
  k = int(min(k, y.shape[0]))
  if x.shape[0] == 0 or k <= 0:
    return np.zeros((x.shape[0], max(k, 0)), np.float32), np.zeros((x.shape[0], max(k, 0)), np.int64)
  pc = _bucket(x.shape[0], chunk)
  gc = _bucket(y.shape[0], gallery_chunk)
  gc = max(gc, _bucket(k, gallery_chunk))
  out_d = np.empty((x.shape[0], k), np.float32)
  out_i = np.empty((x.shape[0], k), np.int64)
  # Gallery chunks are padded and masked once, not per probe chunk.
  y_chunks = []
  for j in range(0, y.shape[0], gc):
    m = min(gc, y.shape[0] - j)
    valid = np.zeros((gc,), bool)
    valid[:m] = True
    y_chunks.append((jnp.asarray(_pad_rows(y[j:j + gc], gc)), jnp.asarray(valid), np.int32(j)))
  for i in range(0, x.shape[0], pc):
    n = min(pc, x.shape[0] - i)
    xb = jnp.asarray(_pad_rows(x[i:i + pc], pc))
    # Sentinels (score -inf) lose to every real gallery item, and k ≤ Ny real items exist.
    best_d = jnp.full((pc, k), jnp.inf, jnp.float32)
    best_i = jnp.full((pc, k), np.int32(y.shape[0]), jnp.int32)
    for yb, valid, offset in y_chunks:
      best_d, best_i = _topk_chunk(xb, yb, valid, offset, best_d, best_i, metric=metric, k=k)
    out_d[i:i + n] = np.asarray(best_d)[:n]
    out_i[i:i + n] = np.asarray(best_i)[:n]
  return out_d, out_i


def rank_rows(dist: np.ndarray, k: int | None = None) -> np.ndarray:
  """Stable ascending order of each row of a host distance matrix (NaN last), first k columns."""
  dist = np.asarray(dist)
  order = np.argsort(dist, axis=1, kind="stable")
  return order if k is None else order[:, :k]
