"""GREW's official test: probes `03` against the gallery `01`, `02` (+ `04` distractors when
present); writes WORKDIR/submission/<time>.csv and .zip for CodaLab. Metrics: the probe and
gallery counts (the accuracy is computed by the challenge server)."""
import os
from typing import Tuple

import numpy as np

from gait_jax.evaluation import ranking
from gait_jax.evaluation import submission as submission_lib
from gait_jax.evaluation.protocol import Metrics, Protocol, Selection, Sequences


class GrewSubmission(Protocol):
  name = "grew_submission"
  figures = False  # probes carry no identity to colour a match by

  def __init__(self, eval_cfg, workdir: str = ""):
    super().__init__(eval_cfg)
    self.out_dir = os.path.join(workdir or os.getcwd(), "submission")

  @classmethod
  def from_config(cls, config, workdir: str = ""):
    return cls(config.evaluate, workdir)

  @staticmethod
  def gallery_types(seqs: Sequences):
    return ["01", "02"] + (["04"] if np.any(seqs.types == "04") else [])

  def select(self, seqs: Sequences) -> Selection:
    return Selection(np.isin(seqs.types, self.gallery_types(seqs)),
                     (("probe", seqs.types == "03"),))

  def evaluate(self, emb, seqs: Sequences) -> Tuple[Metrics, str]:
    sel = self.select(seqs)
    gmask, (_, pmask) = sel.gallery, sel.groups[0]
    kinds = ",".join(self.gallery_types(seqs))
    if not pmask.any():
      raise ValueError("grew_submission: no probe sequences (type '03') in the embeddings")
    if gmask.sum() < submission_lib.RANKS:
      raise ValueError(f"grew_submission: {int(gmask.sum())} gallery sequences (types "
                       f"{kinds}); the CSV needs at least {submission_lib.RANKS}")
    order = ranking.ranked(emb[pmask], emb[gmask], submission_lib.RANKS, self.cfg)
    gallery_labels = seqs.labels[gmask]
    csv_path, zip_path = submission_lib.write_submission(
        self.out_dir, seqs.views[pmask].tolist(), [gallery_labels[row].tolist() for row in order])
    metrics = {"submission/probes": float(pmask.sum()), "submission/gallery": float(gmask.sum())}
    table = (f"GREW submission: {int(pmask.sum())} probes vs {int(gmask.sum())} gallery "
             f"(types {kinds})\nCSV: {csv_path}\nzip for CodaLab: {zip_path}")
    return metrics, table


PROTOCOL = GrewSubmission
