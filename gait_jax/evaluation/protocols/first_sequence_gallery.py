"""`holdout`: any labelled sequences — each id's first sequence is the gallery, its others
are the probes (one group, `holdout`). What a search candidate and `train.eval_on=holdout`
are scored by when the asked protocol cannot rank the held-out training ids; never
re-ranked (the neighbourhoods of a few held-out ids are too small)."""
import numpy as np

from gait_jax.evaluation.protocol import Protocol, Selection, Sequences


class FirstSequenceGallery(Protocol):
  name = "holdout"
  headline = "holdout/rank1"

  def __init__(self, eval_cfg):
    cfg = eval_cfg.copy_and_resolve_references()
    with cfg.unlocked():
      cfg.rerank = False
    super().__init__(cfg)

  def select(self, seqs: Sequences) -> Selection:
    _, first = np.unique(seqs.labels, return_index=True)
    gallery = np.zeros(len(seqs.labels), bool)
    gallery[first] = True
    return Selection(gallery, (("holdout", ~gallery),))

  def scores_holdout(self, seqs: Sequences) -> bool:
    return True


PROTOCOL = FirstSequenceGallery
