"""`train.eval_every` (the reference's with_test): evaluation of the current weights during
training. Embeds the eval split with the step's path and runs `evaluate.protocol`; the scalars
go to TensorBoard under eval/. The dataset and the jitted embed function are built once."""
from __future__ import annotations

import time

import numpy as np
from absl import logging

from gait_jax import config as config_lib
from gait_jax.evaluation import embed as embed_lib
from gait_jax.evaluation import protocols


class Evaluator:

  def __init__(self, config, model, mesh):
    self.config, self.model, self.mesh = config, model, mesh
    self.dataset = None

  def __call__(self, state, path, step, writer) -> dict:
    c = self.config
    if self.dataset is None:
      self.dataset, self.limit = embed_lib.open_eval_split(c)
      self.embed_fn = embed_lib.make_embed_fn(self.model, self.mesh)
    t0 = time.monotonic()
    out = embed_lib.embed_dataset(
        self.model, state.variables, self.dataset, tuple(int(v) for v in path),
        batch_per_device=int(c.embed.batch), frames_all_limit=self.limit, mesh=self.mesh,
        embed_fn=self.embed_fn, workers=max(1, int(c.data.workers)), progress=False,
        flip=bool(c.embed.flip))
    metrics, table = protocols.run_protocol(
        c.evaluate.protocol, out["embeddings"], out["labels"], out["types"], out["views"],
        c.evaluate)
    logging.info("evaluation at step %d with path %s (%.1f s):\n%s", step,
                 config_lib.format_path(path), time.monotonic() - t0, table)
    scalars = {f"eval/{k}": float(v) for k, v in metrics.items()
               if isinstance(v, (int, float, np.floating, np.integer))}
    writer.write_scalars(step, scalars)
    return metrics
