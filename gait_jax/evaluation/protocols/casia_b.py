"""CASIA-B: probes NM = nm-05/06, BG = bg-01/02, CL = cl-01/02 against the gallery nm-01..04,
one gallery view at a time (the cross-view table). A search candidate scores the mean Rank-1 of
the three groups, identical views excluded, when the held-out ids carry all these condition
names (generated walkers with 10 walks per id do)."""
import numpy as np

from gait_jax.evaluation.cross_view import CrossView


class CasiaB(CrossView):
  name = "casia_b"
  PROBES = (("NM", ("nm-05", "nm-06")), ("BG", ("bg-01", "bg-02")), ("CL", ("cl-01", "cl-02")))
  GALLERY = ("nm-01", "nm-02", "nm-03", "nm-04")

  def scores_holdout(self, seqs) -> bool:
    """Only when every probe group has probes: the headline is the mean over the three
    groups, NaN when one is empty."""
    types = set(np.asarray(seqs.types).tolist())
    return bool(types & set(self.GALLERY)) and all(types & set(t) for _, t in self.PROBES)


PROTOCOL = CasiaB
