"""The inference modes: `embed` (a split → WORKDIR/embeddings.npz), `evaluate` (embeddings →
the protocol's table, WORKDIR/metrics.json and TensorBoard) and `test` (both in one go, the
reference's `--phase test`).

Weights come from `train.init_from` or the workdir's newest checkpoint; a supernet checkpoint
serves any of its trained paths (the path's variables are picked by name).
"""
from __future__ import annotations

import os
import time
from typing import Dict, Tuple

import jax
import numpy as np
from absl import logging

from gait_jax import config as config_lib
from gait_jax.common import io
from gait_jax.common import metric_writer
from gait_jax.evaluation import embed as embed_lib
from gait_jax.evaluation import embedding_checks
from gait_jax.evaluation import embeddings_file
from gait_jax.evaluation import examples
from gait_jax.evaluation import protocols
from gait_jax.models import weights


def embed_config(config, workdir: str, mode: str = "embed") -> Dict[str, np.ndarray]:
  """Embeds the configured split with the config's path and weights; returns the npz dict."""
  config, source = config_lib.inference_weights(config, workdir)
  path = config_lib.fixed_path(config, f"mode={mode}")
  model, variables, step = weights.load_fixed(config.model, path, source)
  dataset, limit = embed_lib.open_eval_split(config)
  logging.info("embedding %s with path %s, step %d weights from %s, frame limit %s",
               dataset, config_lib.format_path(path), step, source, limit or "none")
  t0 = time.time()
  out = embed_lib.embed_dataset(model, variables, dataset, path,
                                batch_per_device=config.embed.batch, frames_all_limit=limit,
                                workers=max(1, config.data.workers),
                                flip=config.embed.flip, bf16=config.embed.bf16)
  dt = time.time() - t0
  logging.info("embedded %d sequences in %.1f s (%.1f seq/s)", len(dataset), dt,
               len(dataset) / max(dt, 1e-9))
  embedding_checks.check_usable(out["embeddings"], out["labels"], out["types"], out["views"],
                                f"embed: {dataset} with checkpoint {source} (step {step})")
  out["step"] = np.asarray(step, np.int64)
  out["path"] = np.asarray(config_lib.format_path(path))
  return out


def evaluate_arrays(config, workdir: str, data) -> Tuple[Dict[str, float], str]:
  """Runs the configured protocol on in-memory embeddings."""
  return protocols.evaluate(protocols.from_config(config, workdir), data["embeddings"],
                            data["labels"], data["types"], data["views"])


def write_examples(config, workdir: str, data) -> None:
  """`evaluate.examples=N`: the match figures of N probes per group (from the eval split's
  silhouettes)."""
  count = config.evaluate.examples
  if count:
    dataset, _ = embed_lib.open_eval_split(config)
    paths = examples.write_examples(workdir, data, dataset,
                                    protocols.from_config(config, workdir), count)
    print(f"examples: {len(paths)} figures in {os.path.join(workdir, examples.EXAMPLES_DIR)}",
          flush=True)


def report(workdir: str, metrics: Dict[str, float], table: str, step: int = 0) -> None:
  """Prints the table, writes metrics.json and the TensorBoard scalars."""
  print(table, flush=True)
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


def run_embed(config, workdir: str) -> None:
  out = embed_config(config, workdir)
  dest = os.path.join(workdir, "embeddings.npz")
  if jax.process_index() == 0:
    embeddings_file.save_embeddings(dest, out)
  print(f"embeddings {out['embeddings'].shape} of {len(out['labels'])} sequences -> {dest}",
        flush=True)


def run_evaluate(config, workdir: str) -> None:
  if jax.process_index() > 0:
    return  # evaluation is host-side work: one process reads, evaluates and writes
  path = config.evaluate.embeddings or os.path.join(workdir, "embeddings.npz")
  data = embeddings_file.load_embeddings(path)
  logging.info("evaluating %d embeddings %s from %s with protocol %s", data["embeddings"].shape[0],
               data["embeddings"].shape[1:], path, config.evaluate.protocol)
  metrics, table = evaluate_arrays(config, workdir, data)
  step = int(data["step"]) if "step" in data and np.ndim(data["step"]) == 0 else 0
  report(workdir, metrics, table, step)
  write_examples(config, workdir, data)


def run_test(config, workdir: str) -> None:
  data = embed_config(config, workdir, mode="test")
  if jax.process_index() > 0:
    return  # every process embeds (collective); one evaluates and writes
  embeddings_file.save_embeddings(os.path.join(workdir, "embeddings.npz"), data)
  metrics, table = evaluate_arrays(config, workdir, data)
  report(workdir, metrics, table, step=int(data["step"]))
  write_examples(config, workdir, data)
