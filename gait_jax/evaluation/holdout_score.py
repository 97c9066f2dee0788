"""How training ids held out of a run are scored: the search's fitness and the validation of
`train.eval_on=holdout` use the same protocol choice and the same headline figure."""
from __future__ import annotations

from typing import Dict, Tuple

import numpy as np

from gait_jax.evaluation import protocols


def fitness_protocol(config, types, views=None, labels=None) -> str:
  """`casia_b` when the held-out sequences carry CASIA-B condition names (e.g. walkers);
  `custom` (evaluate.custom_gallery / custom_probes, e.g. KTH-walk) when that protocol is
  asked for and its gallery glob picks a sequence of every held-out id; else `holdout`: each
  id's first sequence is the gallery, its others are probes."""
  name = config.search.protocol or config.evaluate.protocol
  if name == "casia_b" and {"nm-01", "nm-05"} <= set(np.asarray(types).tolist()):
    return "casia_b"
  if name == "custom" and views is not None and labels is not None:
    keys = protocols.type_view_keys(types, views)
    gallery = protocols.match_globs(keys, config.evaluate.custom_gallery,
                                    "evaluate.custom_gallery")
    if set(np.asarray(labels)[gallery].tolist()) == set(np.asarray(labels).tolist()):
      return "custom"
  return "holdout"


def score_embeddings(protocol: str, emb, labels, types, views, eval_cfg) -> Tuple[float, Dict]:
  """(fitness, metrics): mean of NM/BG/CL Rank-1 (identical views excluded) for `casia_b`,
  mean Rank-1 over the probe groups for `custom`, Rank-1 for `holdout`."""
  if protocol == "casia_b":
    metrics, _ = protocols.run_protocol("casia_b", emb, labels, types, views, eval_cfg)
    return float(metrics["mean/rank1_exclude"]), metrics
  if protocol == "custom":
    metrics, _ = protocols.run_protocol("custom", emb, labels, types, views, eval_cfg)
    return float(np.nanmean([v for k, v in metrics.items()
                             if k.endswith("/rank1") and k != "mean/rank1"])), metrics
  labels = np.asarray(labels).astype(str)
  roles = np.full(len(labels), "probe", dtype=object)
  seen = set()
  for i, pid in enumerate(labels):
    if pid not in seen:
      roles[i] = "gallery"
      seen.add(pid)
  cfg = eval_cfg.copy_and_resolve_references()
  with cfg.unlocked():
    cfg.custom_gallery = "gallery/*"
    cfg.custom_probes = "holdout=probe/*"
    cfg.rerank = False
  metrics, _ = protocols.run_protocol("custom", emb, labels, roles.astype(str), views, cfg)
  return float(metrics["holdout/rank1"]), metrics
