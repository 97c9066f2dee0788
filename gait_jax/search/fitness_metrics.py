"""One number per search candidate from its held-out embeddings (`search.fitness_metric`).

- `rank1` (the reference): the protocol's headline, e.g. CASIA-B's mean Rank-1 across views.
  It moves in steps of one probe (100 / probes per cell), so candidates a probe apart tie or
  swap by chance.
- `map`: mean average precision over the same probe/gallery cells: every true match's place
  counts, not only whether the first one is right.
- `margin`: per probe, (d_other - d_own) / (d_other + d_own), d_own / d_other the distance to
  its nearest gallery item of its own / another id (x100, in [-100, 100]): how far each probe is
  from being ranked right or wrong, free of the embedding's scale (distances are >= 0 for
  both `evaluate.metric`s).

The cells are the protocol's own (`Protocol.fitness_cells`): cross-view protocols (CASIA-B,
OU-MVLP) score each probe view against each other gallery view (identical views excluded, as
their headline), the others each probe group against the whole gallery; groups weigh equally,
as in the headline.
"""
from __future__ import annotations

import numpy as np

from gait_jax.evaluation import distance as dist_lib
from gait_jax.evaluation import protocols
from gait_jax.evaluation import ranking
from gait_jax.evaluation.protocol import Protocol, Sequences

EMBEDDING_METRICS = ("rank1", "map", "margin")
FITNESS_METRICS = EMBEDDING_METRICS + ("angle",)


def fitness(protocol: Protocol, emb: np.ndarray, seqs: Sequences, metric: str) -> float:
  """The candidate's fitness under `metric` (NaN when no probe has a match to score)."""
  if metric == "rank1":
    metrics, _ = protocols.evaluate(protocol, emb, *seqs)
    return protocol.fitness(metrics)
  if metric not in EMBEDDING_METRICS:
    raise ValueError(f"search.fitness_metric={metric!r}: expected one of "
                     f"{', '.join(EMBEDDING_METRICS)} (from embeddings)")
  emb = dist_lib.check_embeddings(emb)
  per_group = []
  for cells in protocol.fitness_cells(seqs):
    values = []
    for probe, gallery in cells:
      dist = ranking.probe_gallery_dist(emb[probe], emb[gallery], protocol.cfg)
      if metric == "map":
        values.append(ranking.mean_ap(dist, seqs.labels[probe], seqs.labels[gallery]))
      else:
        values.append(mean_margin(dist, seqs.labels[probe], seqs.labels[gallery]))
    per_group.append(np.nanmean(values) if np.isfinite(values).any() else np.nan)
  return float(np.mean(per_group)) if per_group else float("nan")


def mean_margin(dist: np.ndarray, probe_ids, gallery_ids) -> float:
  """Mean (d_other - d_own) / (d_other + d_own) x100 over probes whose id is in the gallery
  next to another id (NaN when none is)."""
  same = np.asarray(probe_ids)[:, None] == np.asarray(gallery_ids)[None, :]
  usable = same.any(1) & (~same).any(1)
  if not usable.any():
    return float("nan")
  dist, same = dist[usable], same[usable]
  own = np.where(same, dist, np.inf).min(1)
  other = np.where(same, np.inf, dist).min(1)
  total = own + other
  with np.errstate(invalid="ignore", divide="ignore"):
    margin = np.where(total > 0, (other - own) / total, 0.0)
  return float(np.mean(margin) * 100)

