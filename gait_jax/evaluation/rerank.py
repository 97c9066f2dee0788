"""k-reciprocal re-ranking (Zhong et al., CVPR 2017) with the reference's conventions.

Input: the full distance matrix over probes followed by gallery, `[q+g, q+g]`; output: the
re-ranked probe × gallery block `[q, g]` (float32). Steps, as the reference does them:

1. Normalise each column by its maximum, then transpose.
2. Initial ranking of every row (stable: ties by ascending index, see distance.py).
3. R(i, k1): the j among i's k1+1 nearest whose own k1+1 nearest contain i; expanded by the
   R(c, round(k1/2)) of every candidate c ∈ R(i, k1) that shares more than 2/3 of its members
   with R(i, k1).
4. V[i, j] = exp(−d[i, j]) / Σ over the expanded set, stored in `dtype` (reference: float16).
5. Query expansion (k2 ≠ 1): V[i] ← mean of V over i's k2 nearest (float32 mean, stored in `dtype`).
6. Jaccard distance 1 − S/(2 − S) with S[i, k] = Σ_j min(V[i, j], V[k, j]), accumulated in
   `dtype` in ascending j (the reference accumulates float16 sums in that order).
7. final = (1 − λ)·Jaccard + λ·normalised original.

Memory is O((q+g)²): a dense `dtype` V and the float32 input. Fine for Gait3D / custom sets;
for a GREW-sized test (~36k sequences) expect ~10 GB.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np


@functools.partial(jax.jit, static_argnames=("k",))
def _smallest_k(rows, k):
  # lax.top_k keeps the lower index first on ties: a stable ascending order.
  rows = jnp.where(jnp.isnan(rows), jnp.inf, rows)
  return jax.lax.top_k(-rows, k)[1]


def nearest(matrix: np.ndarray, k: int, chunk: int = 1024) -> np.ndarray:
  """Indices of the k smallest entries of every row, ascending, ties by index. `[n, k]` int64."""
  n, m = matrix.shape
  k = min(k, m)
  out = np.empty((n, k), np.int64)
  rows = min(chunk, max(n, 1))
  for i in range(0, n, rows):
    block = matrix[i:i + rows]
    valid = block.shape[0]
    if valid < rows:  # pad so every call has one shape
      block = np.concatenate([block, np.zeros((rows - valid, m), matrix.dtype)], axis=0)
    out[i:i + valid] = np.asarray(_smallest_k(jnp.asarray(block), k))[:valid]
  return out


def _reciprocal_sets(rank: np.ndarray, k: int):
  """For every i, its k-reciprocal neighbours (in forward order): j ∈ N(i, k) with i ∈ N(j, k)."""
  fwd = rank[:, :k + 1]
  back = fwd[fwd]  # [n, k+1, k+1]: the neighbours of each forward neighbour
  mutual = np.any(back == np.arange(rank.shape[0])[:, None, None], axis=2)
  return [fwd[i][mutual[i]] for i in range(rank.shape[0])]


def k_reciprocal_rerank(dist, num_query: int, k1: int = 20, k2: int = 6,
                        lambda_value: float = 0.3, dtype=np.float16) -> np.ndarray:
  """Re-ranked `[num_query, n − num_query]` distances from a `[n, n]` probe+gallery matrix."""
  dist = np.asarray(dist, np.float32)
  if dist.ndim != 2 or dist.shape[0] != dist.shape[1]:
    raise ValueError(f"re-ranking needs a square [q+g, q+g] distance matrix, got {dist.shape}")
  n = dist.shape[0]
  if not 0 < num_query < n:
    raise ValueError(f"re-ranking: num_query={num_query} must be in (0, {n})")
  if k1 < 1 or k2 < 1:
    raise ValueError(f"re-ranking: evaluate.k1={k1} and evaluate.k2={k2} must be ≥ 1")
  dtype = np.dtype(dtype)
  with np.errstate(divide="ignore", invalid="ignore"):
    d = np.ascontiguousarray((dist / np.max(dist, axis=0)).T)
  half = int(np.around(k1 / 2))
  rank = nearest(d, max(k1 + 1, half + 1, k2))

  recip = _reciprocal_sets(rank, k1)
  recip_half = _reciprocal_sets(rank, half)
  v = np.zeros((n, n), dtype)
  for i in range(n):
    base = recip[i]
    members = [base]
    for c in base:
      cand = recip_half[c]
      if len(np.intersect1d(cand, base)) > 2 / 3 * len(cand):
        members.append(cand)
    expanded = np.unique(np.concatenate(members))
    weight = np.exp(-d[i, expanded])
    v[i, expanded] = weight / np.sum(weight)

  if k2 != 1:
    v_qe = np.empty_like(v)
    step = max(1, (1 << 26) // max(1, n * k2))  # rows per block: ~256 MB of float32
    for i in range(0, n, step):
      nb = rank[i:i + step, :k2]
      v_qe[i:i + step] = (v[nb].astype(np.float32).sum(axis=1) / np.float32(k2)).astype(dtype)
    v = v_qe

  # Inverted index: rows holding a non-zero in each column.
  holders = [np.flatnonzero(col) for col in v.T]
  jaccard = np.empty((num_query, n), dtype)
  for i in range(num_query):
    overlap = np.zeros(n, dtype)
    for j in np.flatnonzero(v[i]):
      rows = holders[j]
      overlap[rows] = overlap[rows] + np.minimum(v[i, j], v[rows, j])
    jaccard[i] = 1 - overlap / (2 - overlap)
  final = jaccard * dtype.type(1 - lambda_value) + d[:num_query] * lambda_value
  return np.asarray(final[:, num_query:], np.float32)
