"""`evaluate` mode: run `evaluate.protocol` on saved embeddings.

Reads `evaluate.embeddings` (default `WORKDIR/embeddings.npz`, written by the `embed` mode:
`embeddings` float32 [N, c, p], `labels`, `types`, `views` strings), prints the protocol's
table, writes the flat metrics to `WORKDIR/metrics.json` (atomically) and to TensorBoard
(`WORKDIR/tb`, step = the npz's `step` entry if present, else 0).
"""
from __future__ import annotations

import os
from typing import Dict, Tuple

import numpy as np
from absl import logging

from gait_jax.common import io
from gait_jax.evaluation import embedding_checks
from gait_jax.evaluation import protocols

NPZ_KEYS = ("embeddings", "labels", "types", "views")


def load_embeddings(path: str) -> Dict[str, np.ndarray]:
  """The embeddings npz as a dict, checked; errors name the file and the missing/bad key."""
  if not os.path.isfile(path):
    raise FileNotFoundError(f"embeddings file {path} does not exist (run --config.mode=embed first, "
                            "or set --config.evaluate.embeddings=FILE.npz)")
  try:
    with np.load(path, allow_pickle=False) as z:
      data = {k: z[k] for k in z.files}
  except Exception as e:  # zipfile/pickle/format errors: say which file
    raise ValueError(f"embeddings file {path} is not a readable .npz: {e}") from None
  missing = [k for k in NPZ_KEYS if k not in data]
  if missing:
    raise ValueError(f"embeddings file {path} lacks key(s) {missing}; expected {list(NPZ_KEYS)} "
                     f"(found {sorted(data)})")
  emb = data["embeddings"]
  if emb.ndim != 3 or not np.issubdtype(emb.dtype, np.floating):
    raise ValueError(f"embeddings file {path}: 'embeddings' must be float [N, c, p], "
                     f"got {emb.dtype} {emb.shape}")
  for k in NPZ_KEYS[1:]:
    if data[k].shape != (emb.shape[0],):
      raise ValueError(f"embeddings file {path}: '{k}' must hold {emb.shape[0]} strings "
                       f"(one per embedding), got shape {data[k].shape}")
  embedding_checks.check_finite(emb, data["labels"], data["types"], data["views"],
                                f"embeddings file {path}")
  return data


def partition_of(config) -> str:
  """The partition file the protocol may need (Gait3D PROBE_SET): embed.partition or data.partition."""
  return config.embed.partition or config.data.partition


def evaluate_arrays(config, workdir: str, data: Dict[str, np.ndarray]) -> Tuple[Dict[str, float], str]:
  """Runs the configured protocol on in-memory embeddings (used by `test` mode too)."""
  return protocols.run_protocol(
      config.evaluate.protocol, data["embeddings"], data["labels"], data["types"], data["views"],
      config.evaluate, workdir=workdir, partition=partition_of(config))


def report(workdir: str, metrics: Dict[str, float], table: str, step: int = 0) -> None:
  """Prints the table, writes metrics.json and the TensorBoard scalars."""
  from gait_jax import metric_writer  # pylint: disable=g-import-not-at-top
  print(table, flush=True)
  os.makedirs(workdir, exist_ok=True)
  io.write_json(os.path.join(workdir, "metrics.json"), {k: float(v) for k, v in metrics.items()},
                sort_keys=True)
  writer = metric_writer.create_writer(os.path.join(workdir, "tb"))
  try:
    writer.write_scalars(step, {f"eval/{k}": float(v) for k, v in metrics.items()})
    writer.write_texts(step, {"eval/table": "```\n" + table + "\n```"})
    writer.flush()
  finally:
    writer.close()
  logging.info("metrics written to %s", os.path.join(workdir, "metrics.json"))


def run(config, workdir: str) -> None:
  import jax  # pylint: disable=g-import-not-at-top
  if jax.process_index() > 0:
    return  # evaluation is host-side work: one process reads, evaluates and writes
  path = config.evaluate.embeddings or os.path.join(workdir, "embeddings.npz")
  data = load_embeddings(path)
  logging.info("evaluating %d embeddings %s from %s with protocol %s", data["embeddings"].shape[0],
               data["embeddings"].shape[1:], path, config.evaluate.protocol)
  metrics, table = evaluate_arrays(config, workdir, data)
  step = int(data["step"]) if "step" in data and np.ndim(data["step"]) == 0 else 0
  report(workdir, metrics, table, step)
