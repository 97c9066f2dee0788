"""What a benchmark protocol is: one class per protocol (in `evaluation/protocols/`) declares,
in one place, its gallery and probe groups, its table, its headline figure, whether
k-reciprocal re-ranking applies, and whether it can score a search candidate on held-out
training ids.

The default table is the grouped one (`custom`'s): per probe group Rank-1, Rank-5, mAP and the
probe count, and their mean. Probes whose id has no gallery item count as misses in the ranks
and are skipped in mAP (the reference's conventions); an empty group gives NaN.
"""
from __future__ import annotations

import fnmatch
from typing import ClassVar, Dict, NamedTuple, Tuple

import numpy as np

from gait_jax.evaluation import distance as dist_lib
from gait_jax.evaluation import ranking

Metrics = Dict[str, float]


class Sequences(NamedTuple):
  """Who, in which condition, from which view: one string per embedding."""
  labels: np.ndarray
  types: np.ndarray
  views: np.ndarray

  @classmethod
  def of(cls, labels, types, views, count: int = -1) -> "Sequences":
    """String arrays of equal length (`count` of them when given), or a ValueError."""
    arrays = [np.asarray(a).astype(str) for a in (labels, types, views)]
    n = arrays[0].shape[0] if count < 0 else count
    for name, a in zip(cls._fields, arrays):
      if a.shape != (n,):
        raise ValueError(f"{name}: expected {n} strings (one per embedding), got shape {a.shape}")
    return cls(*arrays)

  def keys(self) -> np.ndarray:
    """The "type/view" string of every sequence: what protocol globs match."""
    return np.array([f"{t}/{v}" for t, v in zip(self.types, self.views)])


class Selection(NamedTuple):
  gallery: np.ndarray  # bool [N]
  groups: Tuple[Tuple[str, np.ndarray], ...]  # (probe group name, bool [N]), in table order


def match_globs(keys, text: str, what: str) -> np.ndarray:
  """bool mask of the "type/view" keys matched by the comma-separated globs `text`."""
  pats = [p.strip() for p in str(text).split(",") if p.strip()]
  if not pats:
    raise ValueError(f"{what}={text!r}: expected comma-separated globs on 'type/view', "
                     "e.g. 'nm-0[1-4]/*'")
  return np.array([any(fnmatch.fnmatchcase(k, p) for p in pats) for k in keys], bool)


class Protocol:
  """Base: subclasses set `name`, `headline` and `select`, and may replace `evaluate`."""
  name: ClassVar[str] = ""
  headline: ClassVar[str] = ""  # the metric that sums up the table ("" = none)
  rerank: ClassVar[bool] = True  # evaluate.rerank applies (else it is refused)
  figures: ClassVar[bool] = True  # evaluate.examples can draw its probe groups

  def __init__(self, eval_cfg):
    self.cfg = eval_cfg

  @classmethod
  def from_config(cls, config, workdir: str = "") -> "Protocol":
    """The protocol as an experiment config sets it (subclasses read what else they need)."""
    del workdir
    return cls(config.evaluate)

  def select(self, seqs: Sequences) -> Selection:
    raise NotImplementedError

  def evaluate(self, emb: np.ndarray, seqs: Sequences) -> Tuple[Metrics, str]:
    return grouped_table(self.name, emb, seqs, self.select(seqs), self.cfg)

  # -- as the fitness of a search candidate on held-out training ids --

  def scores_holdout(self, seqs: Sequences) -> bool:
    """Whether this protocol can rank held-out training sequences (else each id's first
    sequence is the gallery: protocol `holdout`)."""
    del seqs
    return False

  def fitness(self, metrics: Metrics) -> float:
    return float(metrics[self.headline])

  def fitness_cells(self, seqs: Sequences):
    """Per probe group, its (probe mask, gallery mask) cells that hold both: what
    `search.fitness_metric` map / margin average, cell by cell, as the headline does. Here
    each group against the whole gallery."""
    sel = self.select(seqs)
    return [[(group, sel.gallery)] if group.any() and sel.gallery.any() else []
            for _, group in sel.groups]


def grouped_table(title: str, emb, seqs: Sequences, sel: Selection, eval_cfg
                  ) -> Tuple[Metrics, str]:
  """Per probe group Rank-1, Rank-5, mAP and probe count against one gallery, and the mean."""
  if not sel.gallery.any():
    raise ValueError(f"{title}: the gallery selects no sequence")
  labels, gallery = seqs.labels, sel.gallery
  metrics: Metrics = {}
  lines = [f"{title}: gallery {int(gallery.sum())} sequences",
           f"{'group':10s} {'probes':>6s} {'Rank-1':>7s} {'Rank-5':>7s} {'mAP':>7s}"]
  for name, pmask in sel.groups:
    n = int(pmask.sum())
    if n:
      dist = ranking.probe_gallery_dist(emb[pmask], emb[gallery], eval_cfg)
      order = dist_lib.rank_rows(dist, ranking.NUM_RANK)
      acc = ranking.percent(ranking.cumulative_hits(labels[pmask], labels[gallery], order,
                                                    ranking.NUM_RANK), n)
      m_ap = ranking.mean_ap(dist, labels[pmask], labels[gallery])
    else:
      acc, m_ap = np.full(ranking.NUM_RANK, np.nan), float("nan")
    metrics[f"{name}/rank1"], metrics[f"{name}/rank5"] = float(acc[0]), float(acc[4])
    metrics[f"{name}/mAP"], metrics[f"{name}/probes"] = m_ap, float(n)
    lines.append(f"{name:10s} {n:6d} {acc[0]:7.2f} {acc[4]:7.2f} {m_ap:7.2f}")
  for m in ("rank1", "rank5", "mAP"):
    metrics[f"mean/{m}"] = float(np.mean([metrics[f"{name}/{m}"] for name, _ in sel.groups]))
  lines.append(f"{'mean':10s} {'':6s} {metrics['mean/rank1']:7.2f} {metrics['mean/rank5']:7.2f} "
               f"{metrics['mean/mAP']:7.2f}")
  return metrics, "\n".join(lines)
