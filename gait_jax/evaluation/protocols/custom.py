"""`custom`: any dataset, gallery and probe groups chosen by globs on "type/view".

`evaluate.custom_gallery` = comma-separated globs (e.g. `nm-0[1-4]/*`); `evaluate.custom_probes`
= `name=glob,glob;name2=glob` (probes never include gallery sequences). The grouped table:
`<group>/rank1`, `rank5`, `mAP`, `probes`, and `mean/rank1|rank5|mAP`. A search candidate scores
the mean Rank-1 over the non-empty groups, when the gallery holds a sequence of every held-out
id."""
from typing import List, Tuple

import numpy as np

from gait_jax.evaluation.protocol import Protocol, Selection, Sequences, match_globs


def parse_custom_probes(text: str) -> List[Tuple[str, str]]:
  """'name=glob,glob;name2=glob' → [(name, 'glob,glob')] in the given order."""
  groups = []
  for part in str(text).split(";"):
    if not part.strip():
      continue
    if "=" not in part:
      raise ValueError(f"evaluate.custom_probes: group {part!r} lacks '=': expected "
                       "'name=glob,glob;name2=glob'")
    name, pats = part.split("=", 1)
    name = name.strip()
    if not name or name in dict(groups) or name == "mean":
      raise ValueError(f"evaluate.custom_probes: bad or repeated group name {name!r}")
    groups.append((name, pats))
  if not groups:
    raise ValueError("evaluate.custom_probes is empty: expected 'name=glob,glob;name2=glob'")
  return groups


class Custom(Protocol):
  name = "custom"
  headline = "mean/rank1"

  def globs(self) -> Tuple[str, str]:
    """(gallery globs, probe groups) as the config's `custom_gallery` / `custom_probes`."""
    return self.cfg.custom_gallery, self.cfg.custom_probes

  def select(self, seqs: Sequences) -> Selection:
    gallery_text, probes_text = self.globs()
    keys = seqs.keys()
    gallery = match_globs(keys, gallery_text, "evaluate.custom_gallery")
    if not gallery.any():
      raise ValueError(f"evaluate.custom_gallery={gallery_text!r} matches no sequence "
                       "(patterns are globs on 'type/view')")
    return Selection(gallery, tuple(
        (name, match_globs(keys, pats, f"evaluate.custom_probes[{name}]") & ~gallery)
        for name, pats in parse_custom_probes(probes_text)))

  def scores_holdout(self, seqs: Sequences) -> bool:
    gallery = match_globs(seqs.keys(), self.globs()[0], "evaluate.custom_gallery")
    return set(seqs.labels[gallery].tolist()) == set(seqs.labels.tolist())

  def fitness(self, metrics) -> float:
    return float(np.nanmean([v for k, v in metrics.items()
                             if k.endswith("/rank1") and k != "mean/rank1"]))


PROTOCOL = Custom
