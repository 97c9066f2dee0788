"""What a finished search leaves behind: result.json (best path, top paths, history, the
retrain command) and pareto.png (fitness vs MACs of every candidate)."""
from __future__ import annotations

import os
import shlex
from typing import List

import numpy as np

from gait_jax import config as config_lib
from gait_jax.common import io
from gait_jax.search.evolution import Result

RESULT_FILE = "result.json"


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


# `python -m gait_jax.main` puts this file's path in argv[0].
_MAIN = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "main.py")


def retrain_command(argv, workdir: str, best_path) -> str:
  """This search's own command line turned into the retrain of `best_path` from scratch. Where
  another program ran the search (a study, a test), its flags are not gait_jax.main's: the
  command then names the config as CONFIG, for the reader to fill in."""
  args, skip = [], False
  if not argv or os.path.abspath(argv[0]) != _MAIN:
    argv = ["", "--config", "CONFIG"]
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
                   f"--config.model.path={config_lib.format_path(best_path)}"])


def write_result(out_dir: str, search, best: Result, protocol: str, argv, workdir: str) -> dict:
  """result.json and pareto.png in `out_dir`; returns the result dict."""
  settings = search.settings
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
      "retrain_command": retrain_command(argv, workdir, best.path),
  }
  io.write_json(os.path.join(out_dir, RESULT_FILE), result)
  write_pareto(os.path.join(out_dir, "pareto.png"), list(search.results.values()), best)
  return result
