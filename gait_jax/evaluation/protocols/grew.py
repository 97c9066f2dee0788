"""GREW local validation: gallery type `01`, probes `02`; Rank-1, 5, 10 and 20."""
from typing import Tuple

from gait_jax.evaluation import ranking
from gait_jax.evaluation.protocol import Metrics, Protocol, Selection, Sequences

RANKS = (1, 5, 10, 20)


class Grew(Protocol):
  name = "grew"
  headline = "rank1"
  GALLERY, PROBE = "01", "02"

  def select(self, seqs: Sequences) -> Selection:
    return Selection(seqs.types == self.GALLERY, (("probe", seqs.types == self.PROBE),))

  def evaluate(self, emb, seqs: Sequences) -> Tuple[Metrics, str]:
    sel = self.select(seqs)
    gmask, (_, pmask) = sel.gallery, sel.groups[0]
    order = ranking.ranked(emb[pmask], emb[gmask], max(RANKS), self.cfg)
    hits = ranking.cumulative_hits(seqs.labels[pmask], seqs.labels[gmask], order, max(RANKS))
    acc = ranking.percent(hits, int(pmask.sum()))
    metrics = {f"rank{r}": float(acc[r - 1]) for r in RANKS}
    table = (f"GREW: {int(pmask.sum())} probes (type {self.PROBE}) vs {int(gmask.sum())} "
             f"gallery (type {self.GALLERY})\n"
             + "  ".join(f"Rank-{r}: {metrics[f'rank{r}']:.2f}" for r in RANKS))
    return metrics, table


PROTOCOL = Grew
