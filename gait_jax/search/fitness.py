"""The fitness of a supernet path: how well the path, with the supernet's weights, recognises
training identities the supernet never saw (or, `search.fitness_metric=angle`, how far training
turned its weights: weight_angle.py).

Scoring a candidate = (optional) BN recalibration + one packed embedding pass over the
held-out sequences + ranking. The recalibration and embedding functions take the path as a
traced int32 array, so they compile once for every candidate.
"""
from __future__ import annotations

import hashlib
import json
import os
from typing import Dict, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from gait_jax import config as config_lib
from gait_jax.common import checkpoint
from gait_jax.common import parallel
from gait_jax.data import holdout
from gait_jax.data import splits
from gait_jax.data.loader import TrainLoader
from gait_jax.evaluation import embed as embed_lib
from gait_jax.evaluation import embedding_checks
from gait_jax.evaluation.embed import embed_dataset
from gait_jax.evaluation import protocols
from gait_jax.evaluation.protocol import Sequences
from gait_jax.models import build_model, cost, space
from gait_jax.models.batch_norm import BN_MOMENTUM
from gait_jax.search import fitness_metrics
from gait_jax.search import path_finetune
from gait_jax.search import weight_angle
from gait_jax.training import step as step_lib

# The data.* keys that decide which training batches a candidate's recalibration or fine-tune
# draws.
BATCH_DRAW = ("batch_p", "batch_k", "batch_shuffle", "sample_type", "frames", "frames_skip",
              "frames_min", "frames_max", "transforms")


_RECALIBRATE_FNS = {}


def make_recalibrate(model, mesh):
  """`recalibrate(variables, path, sils, lengths) -> batch_stats` with the running statistics
  of the path's BatchNorms replaced by the average of their per-batch statistics over the
  stacked batches `sils [B, b, T, 64, 44]` (PyTorch's cumulative `momentum=None` average, as
  single-path one-shot NAS recalibrates). Statistics the path does not use are unchanged.

  Cached per (model, mesh), as the embedding function is: every scorer of one supernet
  architecture in a process (a study's fitness variants) reuses the compiled programs."""
  key = (model, mesh)
  if key not in _RECALIBRATE_FNS:
    _RECALIBRATE_FNS[key] = _make_recalibrate(model, mesh)
  return _RECALIBRATE_FNS[key]


def _make_recalibrate(model, mesh):

  def recalibrate(variables, path, sils, lengths):
    old = variables["batch_stats"]

    def one_batch(total, batch):
      x, n = batch
      _, updates = model.apply(variables, x, path, n, train=True, mutable=["batch_stats"])
      # One EMA step from `old`: new = (1-m)·old + m·batch  =>  batch = (new - (1-m)·old) / m.
      m = BN_MOMENTUM
      stats = jax.tree.map(lambda new, o: (new - (1 - m) * o) / m,
                           updates["batch_stats"], old)
      return jax.tree.map(jnp.add, total, stats), None

    zeros = jax.tree.map(jnp.zeros_like, old)
    total, _ = jax.lax.scan(one_batch, zeros, (sils, lengths))
    count = sils.shape[0]
    used = space.path_mask(old, path, model.model_name)
    return jax.tree.map(lambda u, t, o: jnp.where(u, t / count, o), used, total, old)

  replicated = parallel.replicated(mesh)
  return jax.jit(recalibrate, out_shardings=replicated)


def drawn_batches(config, train_ids, count: int, seed: int) -> list:
  """The first `count` training batches (this process's part, host arrays) of `train_ids`
  drawn with `seed`: the same batches for every candidate, a fair comparison."""
  dataset = splits.open_split(config.data, "train", num_train=config.data.num_train,
                              cache=config.data.cache, ids=train_ids)
  drawn = []
  loader = TrainLoader(dataset, config.data, seed=seed, start_step=0,
                       process_index=jax.process_index(), process_count=jax.process_count())
  try:
    for _, batch in loader:
      drawn.append(batch)
      if len(drawn) == count:
        break
  finally:
    loader.close()
  return drawn


def recalibration_batches(config, train_ids, mesh):
  """`search.bn_batches` training batches, (sils, lengths) each stacked [B, b, ...]."""
  drawn = drawn_batches(config, train_ids, config.search.bn_batches, config.seed + 7919)
  sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(None, parallel.DATA_AXIS))
  stack = lambda xs: parallel.global_array(
      np.stack(xs), sharding,
      (len(xs), xs[0].shape[0] * jax.process_count()) + xs[0].shape[1:])
  return stack([b["sils"] for b in drawn]), stack([b["lengths"] for b in drawn])


class CandidateScorer:
  """Fitness of a path of a trained supernet on the held-out training ids.

  Holds the supernet variables on the mesh, the held-out sequences (in memory) and the
  recalibration batches; `score(path)` compiles nothing new after the first call.
  """

  def __init__(self, config, source: str, held_out: int = 0):
    """held_out > 0: score on only the first `held_out` (sorted) of the ids the supernet held
    out (how the fitness's noise depends on their number, with the same supernet)."""
    self.config = config
    self.source = source
    variables, self.step = checkpoint.restore_variables(source)
    self.bnneck = config_lib.use_bnneck(config)
    self.model = build_model(config.model, bnneck=self.bnneck)
    self.mesh = parallel.make_mesh()
    all_train = splits.open_split(config.data, "train", num_train=config.data.num_train)
    self.train_ids, self.val_ids = holdout.search_split(
        config, all_train.label_set, checkpoint.source_workdir(source))
    if held_out:
      if held_out > len(self.val_ids):
        raise ValueError(f"held_out={held_out}: the supernet {source} held out only "
                         f"{len(self.val_ids)} ids")
      self.val_ids = sorted(self.val_ids)[:held_out]
    # Only the metrics computed from embeddings read the silhouettes; the angle needs just the
    # held-out ids' names, types and views (the protocol in the fingerprint).
    needs_silhouettes = config.search.fitness_metric in fitness_metrics.EMBEDDING_METRICS
    self.val_set = splits.open_split(config.data, "train", num_train=config.data.num_train,
                                     cache=needs_silhouettes, ids=self.val_ids)
    self.protocol = protocols.for_holdout(config, Sequences.of(
        self.val_set.ids, self.val_set.types, self.val_set.views))
    self.variables = jax.device_put(variables, parallel.replicated(self.mesh))
    self._recalibrate = self._finetune = self._angle = None
    if config.search.fitness_metric == "angle":
      self._initial = weight_angle.initial_params(source)
      self._angle = weight_angle.PathAngle(self._initial, variables["params"],
                                           self.model.model_name, f"the supernet {source}")
    elif config.search.bn_batches > 0:  # the angle does not use BN statistics
      self._recalibrate = make_recalibrate(self.model, self.mesh)
      self._bn_batches = recalibration_batches(config, self.train_ids, self.mesh)
    if config.search.finetune_steps > 0:
      self._finetune = path_finetune.make_finetune(config, self.mesh)
      self._finetune_batches = [
          parallel.global_batch(b, self.mesh, step_lib.DEVICE_KEYS)
          for b in drawn_batches(config, self.train_ids, config.search.finetune_steps,
                                 config.seed + 104729)]
    self.limit = embed_lib.frames_limit(config)

  def variables_for(self, path, recalibrate: bool = True):
    """The supernet variables, fine-tuned on the path (search.finetune_steps) and with its BN
    statistics recalibrated when enabled."""
    path_arr = jnp.asarray(path, jnp.int32)
    variables = self.variables
    if self._finetune is not None:
      variables, skipped = self._finetune(variables, path_arr, self._finetune_batches)
      if int(skipped):
        raise ValueError(
            f"search: path {config_lib.format_path(path)}: {int(skipped)} of the "
            f"{self.config.search.finetune_steps} fine-tuning steps on the supernet "
            f"{self.source} were not finite (lower search.finetune_lr)")
    if recalibrate and self._recalibrate is not None:
      return {**variables,
              "batch_stats": self._recalibrate(variables, path_arr, *self._bn_batches)}
    return variables

  def score(self, path, recalibrate: bool = True) -> float:
    if self._angle is not None:
      return self._angle_of(path)
    path_arr = jnp.asarray(path, jnp.int32)
    emb = embed_dataset(self.model, self.variables_for(path, recalibrate), self.val_set,
                        path_arr, batch=self.config.embed.batch, frames_all_limit=self.limit,
                        mesh=self.mesh, progress=False, flip=self.config.embed.flip,
                        bf16=self.config.embed.bf16)
    embedding_checks.check_finite(
        emb["embeddings"], emb["labels"], emb["types"], emb["views"],
        f"search: path {config_lib.format_path(path)} on the supernet {self.source}")
    metric = self.config.search.fitness_metric
    value = fitness_metrics.fitness(
        self.protocol, emb["embeddings"],
        Sequences.of(emb["labels"], emb["types"], emb["views"]), metric)
    if not np.isfinite(value):  # a NaN would win or lose every comparison silently
      raise ValueError(f"search: path {config_lib.format_path(path)} scores {value} on the "
                       f"held-out ids with protocol {self.protocol.name} (its {metric} is not a "
                       "number: a probe group or gallery without sequences there)")
    return value

  def _angle_of(self, path) -> float:
    if self._finetune is None:
      return self._angle.degrees(path)
    tuned = jax.device_get(self.variables_for(path, recalibrate=False)["params"])
    return weight_angle.PathAngle(self._initial, tuned, self.model.model_name,
                                  f"the supernet {self.source} fine-tuned").degrees(path)

  def fingerprint(self) -> dict:
    """Everything that changes a candidate's fitness: a recorded fitness is reused only when
    all of it is unchanged."""
    c = self.config
    held = sorted(self.val_ids)
    return {
        "supernet": os.path.abspath(self.source), "step": int(self.step),
        "held_out_ids": len(held),
        "held_out_ids_sha256": hashlib.sha256("\n".join(held).encode()).hexdigest(),
        "protocol": self.protocol.name, "search.protocol": c.search.protocol,
        "search.fitness_metric": c.search.fitness_metric,
        "evaluate.protocol": c.evaluate.protocol,
        "evaluate.metric": c.evaluate.metric, "evaluate.rerank": c.evaluate.rerank,
        "evaluate.k1": c.evaluate.k1, "evaluate.k2": c.evaluate.k2,
        "evaluate.lambda_value": c.evaluate.lambda_value,
        "data.root": os.path.abspath(c.data.root),
        "data.format": c.data.format,
        "data.partition": os.path.abspath(c.data.partition) if c.data.partition else "",
        "data.num_train": c.data.num_train, "frames_all_limit": int(self.limit or 0),
        "embed.flip": c.embed.flip,
        # Only when set: what searches recorded before the key existed stays the same.
        **({"embed.bf16": True} if c.embed.bf16 else {}),
        # BN recalibration: which batches, drawn how.
        "bn_batches": c.search.bn_batches,
        "bn_data": {k: c.data[k] for k in BATCH_DRAW}
        if c.search.bn_batches else None,
        "bn_data_seed": c.seed if c.search.bn_batches else None,
        # Only when set, as embed.bf16; the fine-tune's batches are drawn as bn_data's.
        **({"finetune_steps": c.search.finetune_steps, "finetune_lr": c.search.finetune_lr,
            "finetune_data": {k: c.data[k] for k in BATCH_DRAW},
            "finetune_seed": c.seed, "optim": json.loads(c.optim.to_json()),
            "loss": json.loads(c.loss.to_json()),
            "train.dtype": c.train.dtype, "train.bf16": c.train.bf16}
           if c.search.finetune_steps else {}),
        "model": config_lib.architecture(c),
    }


def path_cost(config, path, bnneck: bool) -> Tuple[bool, Dict]:
  """(within search.max_macs / search.max_params, {macs, params}) from the analytic counter."""
  c = cost.count(config.model, path, config.flops.frames, bnneck=bnneck)
  ok = ((not config.search.max_macs or c["macs"] <= config.search.max_macs) and
        (not config.search.max_params or c["params_path"] <= config.search.max_params))
  return ok, {"macs": c["macs"], "params": c["params_path"]}
