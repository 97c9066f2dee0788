"""`test` mode: `embed` then `evaluate` in one go (the reference's `--phase test`).

Writes `WORKDIR/embeddings.npz`, prints the protocol table, writes `WORKDIR/metrics.json`
and the TensorBoard scalars at the checkpoint's step.
"""
from __future__ import annotations

import os

import jax

from gait_jax import embed
from gait_jax import evaluate
from gait_jax.common import io


def run(config, workdir: str) -> None:
  data = embed.embed_config(config, workdir, mode="test")
  if jax.process_index() > 0:
    return  # every process embeds (collective); one evaluates and writes
  io.write_npz(os.path.join(workdir, "embeddings.npz"), data)
  metrics, table = evaluate.evaluate_arrays(config, workdir, data)
  evaluate.report(workdir, metrics, table, step=int(data["step"]))
