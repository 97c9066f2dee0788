"""`evaluate.examples=N`: what the numbers look like. One PNG per probe group, N probes spread
over the group, each probe's gait-energy image beside its top-3 gallery matches (green =
the probe's own id, red = someone else), with the distances the protocol ranked by."""
from __future__ import annotations

import os
from typing import Dict, List

import numpy as np
from absl import logging

from gait_jax.evaluation import distance as dist_lib
from gait_jax.evaluation import match_figures as figures
from gait_jax.evaluation.protocol import Protocol, Sequences

TOP = 3
EXAMPLES_DIR = "examples"


def write_examples(workdir: str, data: Dict[str, np.ndarray], dataset, protocol: Protocol,
                   count: int) -> List[str]:
  """Writes WORKDIR/examples/<group>.png for each of the protocol's probe groups; returns the
  paths.

  `data`: embeddings with labels/types/views; `dataset` holds the same sequences (found by
  id/type/view) for their silhouettes."""
  if not protocol.figures:
    raise ValueError(f"evaluate.examples: protocol {protocol.name!r} has no labelled probes to "
                     "show")
  seqs = Sequences.of(data["labels"], data["types"], data["views"])
  labels, types, views = seqs
  gallery, groups = protocol.select(seqs)
  if not gallery.any():
    raise ValueError(f"evaluate.examples: protocol {protocol.name} selects no gallery sequence")
  index = {(str(i), str(t), str(v)): k for k, (i, t, v) in
           enumerate(zip(dataset.ids, dataset.types, dataset.views))}

  geis = {}  # a gallery sequence is the match of many probes: load and average it once

  def gei(k: int) -> np.ndarray:
    if k not in geis:
      key = (labels[k], types[k], views[k])
      if key not in index:
        raise ValueError(f"evaluate.examples: sequence {'/'.join(key)} of the embeddings is "
                         f"not in {dataset} (embeddings from another split?)")
      geis[k] = figures.gei(dataset.load(index[key])[0])
    return geis[k]

  emb = dist_lib.check_embeddings(data["embeddings"])
  g_idx = np.flatnonzero(gallery)
  out_dir = os.path.join(workdir, EXAMPLES_DIR)
  os.makedirs(out_dir, exist_ok=True)
  paths = []
  for name, pmask in groups:
    p_idx = np.flatnonzero(pmask)
    if not len(p_idx):
      continue
    # Spread over the group (probes are ordered by id), not its first few of one person.
    chosen = p_idx[np.unique(np.linspace(0, len(p_idx) - 1, min(count, len(p_idx))).astype(int))]
    dist = dist_lib.distance_matrix(emb[chosen], emb[g_idx], protocol.cfg.metric,
                                    chunk=protocol.cfg.chunk)
    order = dist_lib.rank_rows(dist, min(TOP, len(g_idx)))
    rows, right = [], 0
    for r, k in enumerate(chosen):
      matches = [(gei(g_idx[j]), f"{labels[g_idx[j]]}\n{types[g_idx[j]]}", float(dist[r, j]),
                  bool(labels[g_idx[j]] == labels[k])) for j in order[r]]
      right += bool(matches[0][3])
      rows.append((gei(k), f"probe {labels[k]}\n{types[k]}/{views[k]}", matches))
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)
    path = figures.match_rows(os.path.join(out_dir, f"{safe}.png"), rows,
                              f"{name}: {len(chosen)} of {len(p_idx)} probes, top-{TOP} of "
                              f"{len(g_idx)} gallery sequences; {right} right at Rank-1")
    paths.append(path)
  logging.info("evaluate.examples: %d figures in %s", len(paths), out_dir)
  return paths
