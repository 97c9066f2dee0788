"""The cross-view table of CASIA-B and OU-MVLP: a single-view gallery, one view at a time.

For each probe group, probe view and gallery view: Rank-1..5 of the group's probes in that
view against the gallery types in that view. Metrics: `<G>/rank<k>_include` (mean of the
view × view matrix), `<G>/rank<k>_exclude` (identical views excluded, reference `de_diag`),
`<G>/rank1_exclude/<view>` per probe view, and `mean/...` over the groups. Cells are
round(100·hits/probes, 2); a view without gallery items is NaN (the reference would crash).
"""
from __future__ import annotations

from typing import ClassVar, Tuple

import numpy as np

from gait_jax.evaluation import ranking
from gait_jax.evaluation.protocol import Metrics, Protocol, Selection, Sequences

K = ranking.NUM_RANK


class CrossView(Protocol):
  """Subclasses set PROBES ((group, (types...)), ...) and GALLERY (types...)."""
  PROBES: ClassVar[Tuple[Tuple[str, Tuple[str, ...]], ...]] = ()
  GALLERY: ClassVar[Tuple[str, ...]] = ()
  headline = "mean/rank1_exclude"
  # Single-view galleries of ~50–5000 items per cell make k-reciprocal neighbourhoods
  # meaningless (and the reference never re-ranks these benchmarks).
  rerank = False

  def select(self, seqs: Sequences) -> Selection:
    return Selection(np.isin(seqs.types, self.GALLERY),
                     tuple((name, np.isin(seqs.types, types)) for name, types in self.PROBES))

  def evaluate(self, emb, seqs: Sequences) -> Tuple[Metrics, str]:
    acc, view_list = self.accuracy(emb, seqs)
    return report(acc, view_list, [name for name, _ in self.PROBES])

  def fitness_cells(self, seqs: Sequences):
    """Each probe view against each other gallery view (identical views excluded, as the
    headline)."""
    sel = self.select(seqs)
    views = sorted(set(seqs.views.tolist()))
    cells = []
    for _, group in sel.groups:
      pairs = [(group & (seqs.views == pv), sel.gallery & (seqs.views == gv))
               for pv in views for gv in views if pv != gv]
      cells.append([(p, g) for p, g in pairs if p.any() and g.any()])
    return cells

  def accuracy(self, emb, seqs: Sequences):
    """acc `[groups, views, views, K]` and the view list."""
    sel = self.select(seqs)
    view_list = sorted(set(seqs.views.tolist()))
    acc = np.full((len(sel.groups), len(view_list), len(view_list), K), np.nan)
    for g, (_, probe_type_mask) in enumerate(sel.groups):
      for v1, probe_view in enumerate(view_list):
        pmask = probe_type_mask & (seqs.views == probe_view)
        for v2, gallery_view in enumerate(view_list):
          gmask = sel.gallery & (seqs.views == gallery_view)
          if not gmask.any():
            continue
          order = ranking.ranked(emb[pmask], emb[gmask], K, self.cfg)
          hits = ranking.cumulative_hits(seqs.labels[pmask], seqs.labels[gmask], order, K)
          acc[g, v1, v2, :] = ranking.percent(hits, int(pmask.sum()))
    return acc, view_list


def report(acc, view_list, groups) -> Tuple[Metrics, str]:
  metrics: Metrics = {}
  for g, group in enumerate(groups):
    for k in range(K):
      metrics[f"{group}/rank{k + 1}_include"] = float(np.mean(acc[g, :, :, k]))
      metrics[f"{group}/rank{k + 1}_exclude"] = float(ranking.de_diag(acc[g, :, :, k]))
    for view, value in zip(view_list, ranking.de_diag(acc[g, :, :, 0], each_view=True)):
      metrics[f"{group}/rank1_exclude/{view}"] = float(value)
  for k in range(K):
    for kind in ("include", "exclude"):
      metrics[f"mean/rank{k + 1}_{kind}"] = float(np.mean(
          [metrics[f"{group}/rank{k + 1}_{kind}"] for group in groups]))
  names = list(groups) + ["mean"]
  lines = ["Rank-1 / Rank-5 (%)      " + "  ".join(f"{g:>13s}" for g in names)]
  for kind in ("include", "exclude"):
    row = [f"{metrics[f'{g}/rank1_{kind}']:6.2f}/{metrics[f'{g}/rank5_{kind}']:6.2f}"
           for g in names]
    lines.append(f"{kind} identical views   " + "  ".join(f"{r:>13s}" for r in row))
  lines.append("Rank-1 per probe view, identical view excluded:")
  lines.append("view   " + "  ".join(f"{g:>7s}" for g in groups))
  for view in view_list:
    lines.append(f"{view:6s} " + "  ".join(
        f"{metrics[f'{g}/rank1_exclude/{view}']:7.2f}" for g in groups))
  return metrics, "\n".join(lines)
