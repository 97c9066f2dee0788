"""`--config.mode=search`: evolutionary search over a trained supernet's paths.

Unlike the reference (see docs/reference.md): MACs/params constraints are real and checked
before evaluation, fitness is measured on training ids the supernet held out (never the test
split), BatchNorm statistics are recalibrated per candidate, the last generation is ranked, the
search ends cleanly when the space is exhausted, and its state is saved after every candidate
so a rerun resumes.
"""
from __future__ import annotations

import os
import sys
import time
from typing import Dict, List

import jax
import numpy as np
from absl import logging

from gait_jax import config as config_lib
from gait_jax.common import checkpoint
from gait_jax.common import metric_writer
from gait_jax.common import workdir_lock
from gait_jax.search import ensemble
from gait_jax.search import fitness as fitness_lib
from gait_jax.search import report
from gait_jax.search import search_state as state_lib
from gait_jax.search.evolution import EvolutionarySearch, Result, SearchSettings


def run(config, workdir: str) -> None:
  if config_lib.model_path(config) is not None:
    raise SystemExit("search needs a supernet config: model.path must be empty "
                     f"(got {config.model.path!r})")
  with workdir_lock.hold(workdir, "search"):
    _search(config, workdir)


def _check_trained_space(config, source: str) -> None:
  trained = checkpoint.trained_space(source)
  space = tuple(int(m) for m in config.model.choice_max_num)
  if trained is not None and any(m > t for m, t in zip(space, trained)):
    raise SystemExit(f"model.choice_max_num={config_lib.format_path(space)} is wider than the "
                     f"space the supernet {source} trained "
                     f"({config_lib.format_path(trained)}): its other candidates keep their "
                     "initial weights and would be scored as if trained")


def _print_result(result: Result, cached: bool) -> None:
  tag = "cached" if cached else f"{result.info.get('seconds', 0):.1f}s"
  print(f"[search] gen {result.generation:2d} path {config_lib.format_path(result.path)} "
        f"fitness {result.fitness:6.2f} MACs {result.info.get('macs', 0) / 1e9:8.3f} G "
        f"params {result.info.get('params', 0) / 1e6:7.3f} M ({tag})", flush=True)


def _search(config, workdir: str) -> None:
  out_dir = os.path.join(workdir, "search")
  os.makedirs(out_dir, exist_ok=True)
  source = config.train.init_from or workdir
  supernets = ensemble.sources(config, source)
  for supernet in supernets:
    _check_trained_space(config, supernet)
  scorer = ensemble.make_scorer(config, source)
  logging.info("search: %d held-out ids, %d sequences, fitness protocol %s",
               len(scorer.val_ids), len(scorer.val_set), scorer.protocol.name)
  measure = ("angle (degrees) between each path's initial and trained kernels"
             if config.search.fitness_metric == "angle" else
             f"{config.search.fitness_metric} of {scorer.protocol.name} on "
             f"{len(scorer.val_ids)} held-out training ids ({len(scorer.val_set)} sequences)")
  print(f"[search] supernet {source} (step {scorer.step}); fitness = {measure}"
        + (f", averaged with {len(supernets) - 1} more supernets (search.ensemble)"
           if len(supernets) > 1 else ""), flush=True)

  def evaluate(path):
    t0 = time.time()
    return scorer.score(path), {"seconds": round(time.time() - t0, 3)}

  fingerprint = scorer.fingerprint()
  state_path = os.path.join(out_dir, state_lib.STATE_FILE)
  known = state_lib.load_state(state_path, fingerprint)
  if known:
    print(f"[search] resuming: {len(known)} candidates already evaluated", flush=True)
  recorded: Dict[tuple, Result] = dict(known)
  writer = metric_writer.create_writer(os.path.join(workdir, "tb"),
                                       just_logging=jax.process_index() > 0)

  def on_result(result: Result, cached: bool):
    _print_result(result, cached)
    if not cached:
      recorded[result.path] = result
      if jax.process_index() == 0:
        state_lib.save_state(state_path, fingerprint, list(recorded.values()))

  def on_generation(generation: int, top: List[Result]):
    gen = [r.fitness for r in recorded.values() if r.generation == generation]
    writer.write_scalars(generation, {
        "search/best_fitness": top[0].fitness if top else float("nan"),
        "search/generation_mean": float(np.mean(gen)) if gen else float("nan"),
        "search/generation_best": float(np.max(gen)) if gen else float("nan"),
        "search/evaluated": float(len(recorded))})
    writer.flush()

  search = EvolutionarySearch(
      config.model.choice_max_num, SearchSettings.from_config(config.search), evaluate,
      lambda path: fitness_lib.path_cost(config, path, scorer.bnneck), known=known,
      on_result=on_result, on_generation=on_generation)
  ranked = search.run()
  writer.close()
  if not ranked:
    raise SystemExit("search evaluated no path: every path violates search.max_macs / "
                     "search.max_params")
  _finish(search, ranked[0], scorer.protocol.name, out_dir, workdir)


def _finish(search, best: Result, protocol: str, out_dir: str, workdir: str) -> None:
  if jax.process_index() == 0:
    result = report.write_result(out_dir, search, best, protocol, sys.argv, workdir)
  else:
    result = {"retrain_command": report.retrain_command(sys.argv, workdir, best.path)}
  print(f"[search] best path {config_lib.format_path(best.path)} fitness {best.fitness:.2f} "
        f"({len(search.results)} evaluated, {len(search.rejected)} rejected by constraints"
        f"{', space exhausted' if search.exhausted else ''})")
  print(f"[search] results: {os.path.join(out_dir, report.RESULT_FILE)}, "
        f"{os.path.join(out_dir, 'pareto.png')}")
  print(f"[search] retrain it: {result['retrain_command']}")
