"""Ranking arithmetic shared by the protocols: probe × gallery orders (re-ranked when asked),
cumulative hits, the reference's percentages and identical-view exclusion, and Gait3D's CMC /
mAP / mINP. Ties are ranked by ascending gallery index (see distance.py)."""
from __future__ import annotations

import numpy as np

from gait_jax.evaluation import distance as dist_lib
from gait_jax.evaluation import rerank as rerank_lib

NUM_RANK = 5  # Rank-1..5 of the cross-view and grouped tables


def percent(hits, total):
  """round(100 · hits / total, 2) exactly as the reference computes it (NaN when total = 0)."""
  with np.errstate(divide="ignore", invalid="ignore"):
    return np.round(np.asarray(hits) * 100 / total, 2)


def cumulative_hits(probe_ids, gallery_ids, order, max_rank: int) -> np.ndarray:
  """`[max_rank]` counts of probes with a true match among their top-(k) ranked gallery items.

  `order [P, k']` are gallery indices nearest first; ranks beyond k' repeat the last count.
  """
  order = np.asarray(order)
  if order.shape[1] == 0:
    return np.zeros(max_rank, np.int64)
  match = np.asarray(gallery_ids)[order] == np.asarray(probe_ids)[:, None]
  counts = np.sum(np.cumsum(match, 1) > 0, 0)
  if counts.shape[0] < max_rank:
    counts = np.concatenate([counts, np.full(max_rank - counts.shape[0], counts[-1])])
  return counts[:max_rank]


def de_diag(acc: np.ndarray, each_view: bool = False):
  """Identical-view cells excluded: per probe view, mean of the other gallery views."""
  with np.errstate(divide="ignore", invalid="ignore"):
    per_view = np.sum(acc - np.diag(np.diag(acc)), 1) / (acc.shape[1] - 1.0)
  return per_view if each_view else np.mean(per_view)


def probe_gallery_dist(probe_x, gallery_x, eval_cfg) -> np.ndarray:
  """Full probe × gallery distances, k-reciprocal re-ranked when evaluate.rerank is on."""
  if not eval_cfg.rerank:
    return dist_lib.distance_matrix(probe_x, gallery_x, eval_cfg.metric, chunk=eval_cfg.chunk)
  both = np.concatenate([probe_x, gallery_x], axis=0)
  full = dist_lib.distance_matrix(both, both, eval_cfg.metric, chunk=eval_cfg.chunk)
  return rerank_lib.k_reciprocal_rerank(full, probe_x.shape[0], k1=eval_cfg.k1, k2=eval_cfg.k2,
                                        lambda_value=eval_cfg.lambda_value)


def ranked(probe_x, gallery_x, k: int, eval_cfg) -> np.ndarray:
  """`[P, min(k, G)]` gallery indices nearest first (ties by index), re-ranked if asked."""
  if not probe_x.shape[0] or not gallery_x.shape[0]:
    return np.zeros((probe_x.shape[0], 0), np.int64)
  if eval_cfg.rerank:
    return dist_lib.rank_rows(probe_gallery_dist(probe_x, gallery_x, eval_cfg), k)
  _, idx = dist_lib.topk(probe_x, gallery_x, k, eval_cfg.metric, chunk=eval_cfg.chunk)
  return idx


def evaluate_rank(distmat, probe_ids, gallery_ids, max_rank: int = 50):
  """Reference `evaluate_rank`: (cmc float32 [max_rank'], AP list, INP list) over probes that
  have at least one true match (others skipped); max_rank capped by the gallery size."""
  num_p, num_g = distmat.shape
  max_rank = min(max_rank, num_g)
  order = dist_lib.rank_rows(distmat)
  matches = (np.asarray(gallery_ids)[order] == np.asarray(probe_ids)[:, None]).astype(np.int32)
  cmcs, aps, inps = [], [], []
  for p in range(num_p):
    raw = matches[p]
    if not raw.any():
      continue
    cum = raw.cumsum()
    last = int(np.flatnonzero(raw)[-1])
    inps.append(cum[last] / (last + 1.0))
    cmcs.append(np.minimum(cum, 1)[:max_rank])
    precision = cum / np.arange(1.0, num_g + 1)
    aps.append(float(np.sum(precision * raw) / raw.sum()))
  if not cmcs:
    return np.full(max_rank, np.nan, np.float32), aps, inps
  cmc = np.asarray(cmcs).astype(np.float32).sum(0) / len(cmcs)
  return cmc, aps, inps


def mean_ap(dist, probe_ids, gallery_ids) -> float:
  """Mean AP ×100 over probes with at least one true match (NaN if none has one)."""
  _, aps, _ = evaluate_rank(dist, probe_ids, gallery_ids)
  return float(np.mean(aps) * 100) if aps else float("nan")
