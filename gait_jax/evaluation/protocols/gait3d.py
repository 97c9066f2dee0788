"""Gait3D: probes are the partition file's `PROBE_SET` ('<id>-<type>-<view>'), the gallery is
every other sequence. Rank-1/5/10, mAP and mINP by the reference's `evaluate_rank` (probes
without a true match in the gallery are skipped)."""
import json
from typing import Tuple

import numpy as np
from absl import logging

from gait_jax.data import splits
from gait_jax.evaluation import ranking
from gait_jax.evaluation.protocol import Metrics, Protocol, Selection, Sequences


def read_probe_set(partition) -> set:
  if isinstance(partition, dict):
    data, where = partition, "the partition"
  else:
    if not partition:
      raise ValueError("gait3d protocol: no partition file (set data.partition or embed.partition "
                       "to the Gait3D JSON with a PROBE_SET)")
    where = partition
    try:
      with open(partition) as f:
        data = json.load(f)
    except (OSError, ValueError) as e:
      raise ValueError(f"gait3d protocol: cannot read partition file {partition}: {e}") from None
  if "PROBE_SET" not in data:
    raise ValueError(f"gait3d protocol: {where} has no key 'PROBE_SET' (list of "
                     "'<id>-<type>-<view>')")
  return set(data["PROBE_SET"])


class Gait3D(Protocol):
  name = "gait3d"
  headline = "rank1"

  def __init__(self, eval_cfg, partition=""):
    super().__init__(eval_cfg)
    self.partition = partition  # path of the partition JSON, or its dict

  @classmethod
  def from_config(cls, config, workdir: str = ""):
    partition = config.embed.partition or config.data.partition
    if config.data.format == "tfds" and not partition:  # the partition stored with the data
      partition = splits.open_split(config.data, config.embed.split,
                                    root=config.embed.root).partition
    return cls(config.evaluate, partition)

  def select(self, seqs: Sequences) -> Selection:
    probe_set = read_probe_set(self.partition)
    pmask = np.array([f"{i}-{t}-{v}" in probe_set for i, t, v in zip(*seqs)], bool)
    return Selection(~pmask, (("probe", pmask),))

  def evaluate(self, emb, seqs: Sequences) -> Tuple[Metrics, str]:
    pmask = self.select(seqs).groups[0][1]
    if not pmask.any() or pmask.all():
      raise ValueError(f"gait3d protocol: {int(pmask.sum())} of {len(pmask)} sequences are in "
                       "PROBE_SET; need both probes and gallery")
    dist = ranking.probe_gallery_dist(emb[pmask], emb[~pmask], self.cfg)
    cmc, aps, inps = ranking.evaluate_rank(dist, seqs.labels[pmask], seqs.labels[~pmask])
    if not aps:
      logging.warning("gait3d: no probe id appears in the gallery; metrics are NaN")
    metrics = {f"rank{r}": float(cmc[min(r, len(cmc)) - 1] * 100) for r in (1, 5, 10)}
    metrics["mAP"] = float(np.mean(aps) * 100) if aps else float("nan")
    metrics["mINP"] = float(np.mean(inps) * 100) if inps else float("nan")
    table = (f"Gait3D: {int(pmask.sum())} probes ({len(aps)} with a gallery match) vs "
             f"{int((~pmask).sum())} gallery\n"
             + "  ".join(f"{k}: {metrics[k]:.2f}" for k in ("rank1", "rank5", "rank10", "mAP",
                                                             "mINP")))
    return metrics, table


PROTOCOL = Gait3D
