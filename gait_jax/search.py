"""`--config.mode=search`: evolutionary search over a trained supernet's paths (spec §7).

The reference's search bugs are fixed (spec §10.1–7): real MACs/params constraints from the
analytic counter, fitness on training identities held out from supernet training (never the
test split), BatchNorm recalibration per candidate, the last generation ranked, a clean end when
the space is exhausted, and state saved after every candidate so a rerun resumes.

Scoring a candidate = (optional) BN recalibration + one bucketed embedding pass over the held-out
sequences + ranking; the recalibration and embedding functions take the path as a traced int32
array, so they compile once for every candidate.
"""
from __future__ import annotations

import hashlib
import json
import os
import shlex
import sys
import time
from typing import Dict, List, Tuple

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from gait_jax import checkpoint
from gait_jax import configuration
from gait_jax import flops
from gait_jax import mesh as mesh_lib
from gait_jax import metric_writer
from gait_jax.data.dataset import GaitDataset, read_partition
from gait_jax.data.loader import TrainLoader
from gait_jax.embed import embed_dataset
from gait_jax.evaluation.protocols import run_protocol
from gait_jax.evolution import EvolutionarySearch, Result, SearchSettings
from gait_jax.models import build_model, path_mask
from gait_jax import validation_split
from gait_jax import workdir_lock
from gait_jax.common import io
from gait_jax.evaluation import embedding_checks

# PyTorch BN momentum (running = (1 - m)·running + m·batch), as the model's BatchNorm.
BN_MOMENTUM = 0.1
STATE_FILE = "state.json"
RESULT_FILE = "result.json"


# ---- fitness protocol -------------------------------------------------------------------

def fitness_protocol(config, types) -> str:
  """`casia_b` when the held-out sequences carry CASIA-B condition names (e.g. walkers),
  else `holdout`: each id's first sequence is the gallery, its others are probes."""
  name = config.search.protocol or config.evaluate.protocol
  if name == "casia_b" and {"nm-01", "nm-05"} <= set(np.asarray(types).tolist()):
    return "casia_b"
  return "holdout"


def score_embeddings(protocol: str, emb, labels, types, views, eval_cfg) -> Tuple[float, Dict]:
  """(fitness, metrics): mean of NM/BG/CL Rank-1 (identical views excluded) for `casia_b`,
  Rank-1 for `holdout`."""
  if protocol == "casia_b":
    metrics, _ = run_protocol("casia_b", emb, labels, types, views, eval_cfg)
    return float(metrics["mean/rank1_exclude"]), metrics
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
  metrics, _ = run_protocol("custom", emb, labels, roles.astype(str), views, cfg)
  return float(metrics["holdout/rank1"]), metrics


# ---- BN recalibration -------------------------------------------------------------------

def make_recalibrate(model, mesh):
  """`recalibrate(variables, path, sils, lengths) -> batch_stats` with the running statistics
  of the path's BatchNorms replaced by the average of their per-batch statistics over the
  stacked batches `sils [B, b, T, 64, 44]` (PyTorch's cumulative `momentum=None` average, as
  single-path one-shot NAS recalibrates). Statistics the path does not use are unchanged."""

  def recalibrate(variables, path, sils, lengths):
    old = variables["batch_stats"]

    def one_batch(total, batch):
      x, n = batch
      _, updates = model.apply(variables, x, path, n, train=True, mutable=["batch_stats"])
      # One EMA step from `old`: new = (1-m)·old + m·batch  =>  batch = (new - (1-m)·old) / m.
      stats = jax.tree.map(lambda new, o: (new - (1 - BN_MOMENTUM) * o) / BN_MOMENTUM,
                           updates["batch_stats"], old)
      return jax.tree.map(jnp.add, total, stats), None

    zeros = jax.tree.map(jnp.zeros_like, old)
    total, _ = jax.lax.scan(one_batch, zeros, (sils, lengths))
    count = sils.shape[0]
    used = path_mask(old, path)
    return jax.tree.map(lambda u, t, o: jnp.where(u, t / count, o), used, total, old)

  replicated = mesh_lib.replicated(mesh)
  return jax.jit(recalibrate, out_shardings=replicated)


def recalibration_batches(config, train_ids, mesh):
  """The same `search.bn_batches` training batches for every candidate (a fair comparison)."""
  partition = read_partition(config.data.partition)
  dataset = GaitDataset(config.data.root, partition, "train", num_train=config.data.num_train,
                        cache=config.data.cache, ids=train_ids)
  count = int(config.search.bn_batches)
  sils, lengths = [], []
  loader = TrainLoader(dataset, config.data, seed=config.seed + 7919, start_step=0,
                       process_index=jax.process_index(), process_count=jax.process_count())
  try:
    for _, batch in loader:
      sils.append(batch["sils"])
      lengths.append(batch["lengths"])
      if len(sils) == count:
        break
  finally:
    loader.close()
  sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(None, mesh_lib.DATA_AXIS))
  stack = lambda xs: mesh_lib.global_array(
      np.stack(xs), sharding,
      (len(xs), xs[0].shape[0] * jax.process_count()) + xs[0].shape[1:])
  return stack(sils), stack(lengths)


# ---- state ------------------------------------------------------------------------------

def _parse_state(path: str) -> dict:
  """The state file's content, checked; ValueError saying what is wrong with it."""
  try:
    with open(path) as f:
      state = json.load(f)
    results = state["results"]
    known = {}
    for r in results:
      info = {k: v for k, v in r.items() if k not in ("path", "fitness", "generation")}
      path_t = tuple(int(v) for v in r["path"])
      known[path_t] = Result(path_t, float(r["fitness"]), int(r["generation"]), info)
    return {"fingerprint": state["fingerprint"], "known": known}
  except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
    raise ValueError(f"{type(e).__name__}: {e}") from None


def _differences(saved: dict, now: dict) -> List[str]:
  """What differs between a recorded fingerprint and the current one: changed keys first,
  then the keys the record lacks (a state written by an older version)."""
  saved = saved if isinstance(saved, dict) else {}
  changed = [f"{k}: saved {saved[k]!r}, now {now.get(k)!r}" for k in sorted(saved)
             if saved.get(k) != now.get(k)]
  missing = sorted(set(now) - set(saved))
  return changed + ([f"not recorded: {', '.join(missing)}"] if missing else [])


def load_state(path: str, fingerprint: dict) -> Dict[tuple, Result]:
  """Recorded results of an earlier run of the same search (same supernet, data and fitness
  settings). A damaged state file falls back to its backup (the state before the last
  candidate); settings that changed refuse the resume, naming them."""
  if not os.path.exists(path) and not os.path.exists(path + ".bak"):
    return {}
  try:
    state = _parse_state(path)
  except ValueError as e:
    try:
      state = _parse_state(path + ".bak")
    except ValueError:
      raise SystemExit(
          f"{path} is unreadable ({e}) and so is its backup {path}.bak. The recorded fitness "
          f"values cannot be reused: move both away (mv {path} {path}.broken) to start the "
          "search afresh, or use another --workdir") from None
    logging.warning("%s is unreadable (%s); resuming from its backup %s.bak (at most the last "
                    "candidate is evaluated again)", path, e, path)
  diff = _differences(state["fingerprint"], fingerprint)
  if diff:
    raise SystemExit(
        f"{path} was recorded with other settings, so its fitness values do not apply: "
        + "; ".join(diff) + ". Use another --workdir, or move the file away to start afresh")
  return state["known"]


def save_state(path: str, fingerprint: dict, results: List[Result]) -> None:
  """Atomic write; the previous state stays as `<path>.bak` (a fallback if this one is hurt)."""
  if os.path.exists(path):
    os.replace(path, path + ".bak")
  io.write_json(path, {"fingerprint": fingerprint, "results": [r.to_json() for r in results]})


def write_pareto(path: str, results: List[Result], best: Result) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
  macs = np.array([r.info.get("macs", 0) for r in results]) / 1e9
  fit = np.array([r.fitness for r in results])
  gen = np.array([r.generation for r in results])
  sc = ax.scatter(macs, fit, c=gen, cmap="viridis", s=14)
  ax.scatter([best.info.get("macs", 0) / 1e9], [best.fitness], marker="*", s=200, c="red",
             label=f"best {','.join(map(str, best.path))}")
  fig.colorbar(sc, ax=ax, label="generation")
  ax.set_xlabel("GMACs per sequence")
  ax.set_ylabel("fitness (held-out Rank-1, %)")
  ax.legend(loc="lower right", fontsize=8)
  ax.grid(alpha=0.3)
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)


_DROPPED_FLAGS = ("--config.mode", "--config.model.path", "--config.train.init_from",
                  "--workdir")


def retrain_command(argv, workdir: str, best_path) -> str:
  """This search's own command line turned into the retrain of `best_path` from scratch."""
  args, skip = [], False
  for a in argv[1:]:
    if skip:
      skip = False
      continue
    name = a.split("=", 1)[0]
    if name in _DROPPED_FLAGS:
      skip = "=" not in a and name == "--workdir"
      continue
    args.append(shlex.quote(a))
  retrain_dir = os.path.join(os.path.dirname(os.path.abspath(workdir)), "retrain")
  return " ".join(["python -m gait_jax.main", *args, "--workdir", shlex.quote(retrain_dir),
                   "--config.mode=train",
                   f"--config.model.path={configuration.format_path(best_path)}"])


# ---- the mode -----------------------------------------------------------------------------

class CandidateScorer:
  """Fitness of a path of a trained supernet on the held-out training ids.

  Holds the supernet variables on the mesh, the held-out sequences (in memory) and the
  recalibration batches; `score(path)` compiles nothing new after the first call.
  """

  def __init__(self, config, source: str):
    if not config.data.root or not config.data.partition:
      raise SystemExit("search needs data.root and data.partition (training ids are scored)")
    self.config = config
    self.source = source
    variables, self.step = checkpoint.restore_variables(source)
    self.bnneck = configuration.use_bnneck(config)
    self.model = build_model(config.model, bnneck=self.bnneck)
    self.mesh = mesh_lib.make_mesh()
    partition = read_partition(config.data.partition)
    all_train = GaitDataset(config.data.root, partition, "train",
                            num_train=config.data.num_train)
    self.train_ids, self.val_ids = validation_split.search_split(
        config, all_train.label_set, checkpoint.source_workdir(source))
    self.val_set = GaitDataset(config.data.root, partition, "train",
                               num_train=config.data.num_train, cache=True, ids=self.val_ids)
    self.protocol = fitness_protocol(config, self.val_set.types)
    self.variables = jax.device_put(variables, mesh_lib.replicated(self.mesh))
    self._recalibrate = None
    if config.search.bn_batches > 0:
      self._recalibrate = make_recalibrate(self.model, self.mesh)
      self._bn_batches = recalibration_batches(config, self.train_ids, self.mesh)
    self.limit = config.embed.frames_all_limit or config.data.test_frames_all_limit

  def variables_for(self, path, recalibrate: bool = True):
    """The supernet variables, with the path's BN statistics recalibrated when enabled."""
    path_arr = jnp.asarray(path, jnp.int32)
    if recalibrate and self._recalibrate is not None:
      return {**self.variables,
              "batch_stats": self._recalibrate(self.variables, path_arr, *self._bn_batches)}
    return self.variables

  def score(self, path, recalibrate: bool = True) -> float:
    path_arr = jnp.asarray(path, jnp.int32)
    emb = embed_dataset(self.model, self.variables_for(path, recalibrate), self.val_set,
                        path_arr, batch=self.config.embed.batch, frames_all_limit=self.limit,
                        mesh=self.mesh, progress=False)
    embedding_checks.check_finite(
        emb["embeddings"], emb["labels"], emb["types"], emb["views"],
        f"search: path {configuration.format_path(path)} on the supernet {self.source}")
    fitness, _ = score_embeddings(self.protocol, emb["embeddings"], emb["labels"],
                                  emb["types"], emb["views"], self.config.evaluate)
    return fitness

  def fingerprint(self) -> dict:
    """Everything that changes a candidate's fitness: a recorded fitness is reused only when
    all of it is unchanged."""
    c = self.config
    held = sorted(self.val_ids)
    return {
        "supernet": os.path.abspath(self.source), "step": int(self.step),
        "held_out_ids": len(held),
        "held_out_ids_sha256": hashlib.sha256("\n".join(held).encode()).hexdigest(),
        "protocol": self.protocol, "search.protocol": str(c.search.protocol),
        "evaluate.protocol": str(c.evaluate.protocol),
        "evaluate.metric": str(c.evaluate.metric), "evaluate.rerank": bool(c.evaluate.rerank),
        "evaluate.k1": int(c.evaluate.k1), "evaluate.k2": int(c.evaluate.k2),
        "evaluate.lambda_value": float(c.evaluate.lambda_value),
        "data.root": os.path.abspath(c.data.root),
        "data.partition": os.path.abspath(c.data.partition),
        "data.num_train": int(c.data.num_train), "frames_all_limit": int(self.limit or 0),
        # BN recalibration: which batches, drawn how.
        "bn_batches": int(c.search.bn_batches),
        "bn_data": {k: c.data[k] for k in ("batch_p", "batch_k", "batch_shuffle",
                                           "sample_type", "frames", "frames_skip",
                                           "frames_min", "frames_max", "transforms")}
        if c.search.bn_batches else None,
        "bn_data_seed": int(c.seed) if c.search.bn_batches else None,
        "model": checkpoint.architecture(json.loads(c.to_json_best_effort())),
    }


def run(config, workdir: str) -> None:
  if configuration.model_path(config) is not None:
    raise SystemExit("search needs a supernet config: model.path must be empty "
                     f"(got {config.model.path!r})")
  with workdir_lock.hold(workdir, "search"):
    _search(config, workdir)


def _search(config, workdir: str) -> None:
  out_dir = os.path.join(workdir, "search")
  os.makedirs(out_dir, exist_ok=True)
  source = config.train.init_from or workdir
  trained = checkpoint.trained_space(source)
  space = tuple(int(m) for m in config.model.choice_max_num)
  if trained is not None and any(m > t for m, t in zip(space, trained)):
    raise SystemExit(f"model.choice_max_num={configuration.format_path(space)} is wider than the "
                     f"space the supernet {source} trained "
                     f"({configuration.format_path(trained)}): its other candidates keep their "
                     "initial weights and would be scored as if trained")
  scorer = CandidateScorer(config, source)
  bnneck, ckpt_step, val_ids, protocol = (scorer.bnneck, scorer.step, scorer.val_ids,
                                          scorer.protocol)
  logging.info("search: %d held-out ids, %d sequences, fitness protocol %s", len(val_ids),
               len(scorer.val_set), protocol)
  print(f"[search] supernet {source} (step {ckpt_step}); fitness = {protocol} on "
        f"{len(val_ids)} held-out training ids ({len(scorer.val_set)} sequences)", flush=True)

  def evaluate(path):
    t0 = time.time()
    fitness = scorer.score(path)
    return fitness, {"seconds": round(time.time() - t0, 3)}

  def constraints(path):
    c = flops.count(config.model, path, config.flops.frames, bnneck=bnneck)
    info = {"macs": c["macs"], "params": c["params_path"]}
    ok = ((not config.search.max_macs or c["macs"] <= config.search.max_macs) and
          (not config.search.max_params or c["params_path"] <= config.search.max_params))
    return ok, info

  fingerprint = scorer.fingerprint()
  state_path = os.path.join(out_dir, STATE_FILE)
  known = load_state(state_path, fingerprint)
  if known:
    print(f"[search] resuming: {len(known)} candidates already evaluated", flush=True)
  recorded: Dict[tuple, Result] = dict(known)
  writer = metric_writer.create_writer(os.path.join(workdir, "tb"),
                                       just_logging=jax.process_index() > 0)

  def on_result(result: Result, cached: bool):
    tag = "cached" if cached else f"{result.info.get('seconds', 0):.1f}s"
    print(f"[search] gen {result.generation:2d} path {configuration.format_path(result.path)} "
          f"fitness {result.fitness:6.2f} MACs {result.info.get('macs', 0) / 1e9:8.3f} G "
          f"params {result.info.get('params', 0) / 1e6:7.3f} M ({tag})", flush=True)
    if not cached:
      recorded[result.path] = result
      if jax.process_index() == 0:
        save_state(state_path, fingerprint, list(recorded.values()))

  def on_generation(generation: int, top: List[Result]):
    gen = [r.fitness for r in recorded.values() if r.generation == generation]
    writer.write_scalars(generation, {
        "search/best_fitness": top[0].fitness if top else float("nan"),
        "search/generation_mean": float(np.mean(gen)) if gen else float("nan"),
        "search/generation_best": float(np.max(gen)) if gen else float("nan"),
        "search/evaluated": float(len(recorded))})
    writer.flush()

  settings = SearchSettings.from_config(config.search)
  search = EvolutionarySearch(config.model.choice_max_num, settings, evaluate, constraints,
                              known=known, on_result=on_result, on_generation=on_generation)
  ranked = search.run()
  writer.close()
  if not ranked:
    raise SystemExit("search evaluated no path: every path violates search.max_macs / "
                     "search.max_params")
  best = ranked[0]
  result = {
      "best_path": list(best.path),
      "best_fitness": best.fitness,
      "fitness_protocol": protocol,
      "top": [{"path": list(r.path), "fitness": r.fitness, "macs": r.info.get("macs"),
               "params": r.info.get("params")} for r in search.top[:settings.select_num]],
      "history": [{"path": list(r.path), "generation": r.generation, "fitness": r.fitness,
                   "macs": r.info.get("macs"), "params": r.info.get("params")}
                  for r in search.results.values()],
      "rejected": len(search.rejected),
      "exhausted": search.exhausted,
      "retrain_command": retrain_command(sys.argv, workdir, best.path),
  }
  if jax.process_index() == 0:
    io.write_json(os.path.join(out_dir, RESULT_FILE), result)
    write_pareto(os.path.join(out_dir, "pareto.png"), list(search.results.values()), best)
  print(f"[search] best path {configuration.format_path(best.path)} fitness {best.fitness:.2f} "
        f"({len(search.results)} evaluated, {len(search.rejected)} rejected by constraints"
        f"{', space exhausted' if search.exhausted else ''})")
  print(f"[search] results: {os.path.join(out_dir, RESULT_FILE)}, {os.path.join(out_dir, 'pareto.png')}")
  print(f"[search] retrain it: {result['retrain_command']}")
