#!/usr/bin/env python
"""Does the architecture search help on real people? SPOSGait's search on KTH, measured.

  python tools/kth_search_study.py [--out runs/kth_search] [--seeds 0,1,2]
      [--supernet-steps 400] [--retrain-steps 150] [--config.key=value ...]

1. trains the small supernet (configs/kth_recipe.py:supernet) on KTH TRAIN_SET with 3 people
   held out (its holdout.json);
2. searches it, the fitness being KTH-walk on those 3 held-out people (never the test people);
3. retrains from scratch, under the same schedule, for every seed: the searched best path, the
   hand-picked path 0,5,5,4 (the reference's small GREW path, configs/kth_walking.py) and one
   random path per seed, each with that training seed;
4. tests each on KTH-walk and prints mean ± sample standard deviation over the seeds per kind.

Every stage resumes (rerun to continue); RUN/study.json holds the numbers. Extra --config.*
arguments go to every run (e.g. smaller widths for a quick look).
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gait_jax.benchmarks import _machine  # noqa: E402
from gait_jax.models import space  # noqa: E402

CFG = "configs/kth_recipe.py"
HAND_PICKED = "0,5,5,4"
RANDOM_SEED = 1000  # random paths: space.sample_path(choice_max_num, RANDOM_SEED, seed)
GROUPS = ("d4", "d1", "d2", "d3")
KINDS = ("searched", "hand-picked", "random")


def _gj(stage, workdir, *args, extra=()):
  cmd = [sys.executable, "-m", "gait_jax.main", "--config", f"{CFG}:{stage}",
         "--workdir", workdir, *args, *extra]
  print("$", " ".join(cmd), flush=True)
  subprocess.run(cmd, check=True)


def _load(path):
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def summarise(runs, best: str, best_fitness: float, seeds: int, steps: int):
  """(printable lines, {kind: {metric: (mean, sample std)}}) over the seeds of each kind."""
  lines = [f"search: best path {best} (fitness {best_fitness:.2f} on 3 held-out "
           f"training people), {seeds} seeds, {steps} retraining steps each",
           "| path | " + " | ".join(GROUPS) + " | mean Rank-1 | mean Rank-5 |",
           "|" + "---|" * (len(GROUPS) + 3)]
  table = {}
  for kind in KINDS:
    mine = [x for x in runs if x["kind"] == kind]
    if not mine:
      continue
    cell = lambda key: (float(np.mean([x[key] for x in mine])),  # noqa: E731
                        float(np.std([x[key] for x in mine], ddof=1)) if len(mine) > 1 else 0.0)
    table[kind] = {k: cell(k) for k in [f"{g}/rank1" for g in GROUPS] + ["mean/rank1",
                                                                          "mean/rank5"]}
    paths = sorted({x["path"] for x in mine})
    lines.append(f"| {kind} ({'; '.join(paths)}) | " + " | ".join(
        f"{table[kind][f'{g}/rank1'][0]:.1f} ± {table[kind][f'{g}/rank1'][1]:.1f}"
        for g in GROUPS) + f" | **{table[kind]['mean/rank1'][0]:.2f} ± "
        f"{table[kind]['mean/rank1'][1]:.2f}** | {table[kind]['mean/rank5'][0]:.2f} ± "
        f"{table[kind]['mean/rank5'][1]:.2f} |")
  return lines, table


def main(argv=None):
  # No abbreviations: an unknown flag must be refused, not taken for a known one's prefix.
  parser = argparse.ArgumentParser(description=__doc__, allow_abbrev=False,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--out", default="runs/kth_search")
  parser.add_argument("--seeds", default="0,1,2")
  parser.add_argument("--supernet-steps", type=int, default=400)
  parser.add_argument("--retrain-steps", type=int, default=150)
  args, extra = parser.parse_known_args(argv)
  bad = [a for a in extra if not a.startswith("--config.")]
  if bad:
    parser.error(f"unknown arguments {bad} (only --config.* overrides pass through)")
  seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
  if len(seeds) < 1:
    parser.error("--seeds: expected at least one seed")
  times = {}
  t0 = time.monotonic()
  sup = os.path.join(args.out, "supernet")
  s = args.supernet_steps
  _gj("supernet", sup, f"--config.train.total_steps={s}",
      f"--config.optim.milestones=({s * 3 // 4},{s * 9 // 10})", extra=extra)
  times["supernet"] = time.monotonic() - t0
  t0 = time.monotonic()
  search_dir = os.path.join(args.out, "search")
  _gj("supernet", search_dir, "--config.mode=search", f"--config.train.init_from={sup}",
      extra=extra)
  result = _load(os.path.join(search_dir, "search", "result.json"))
  best = ",".join(map(str, result["best_path"]))
  times["search"] = time.monotonic() - t0
  import importlib.util  # the config's search space, for the random paths
  spec = importlib.util.spec_from_file_location("kth_recipe", CFG)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  choice_max = tuple(int(m) for m in module.get_config("supernet").model.choice_max_num)
  r = args.retrain_steps
  schedule = [f"--config.train.total_steps={r}",
              f"--config.optim.milestones=({r * 2 // 3},{r * 13 // 15})",
              "--config.optim.lr=0.1", "--config.train.eval_every=0"]
  runs = []
  t0 = time.monotonic()
  for seed in seeds:
    rand = ",".join(map(str, space.sample_path(choice_max, RANDOM_SEED, seed)))
    for kind, path in zip(KINDS, (best, HAND_PICKED, rand)):
      wd = os.path.join(args.out, "retrain", f"{kind}_seed{seed}")
      common = [f"--config.model.path={path}", f"--config.seed={seed}", *schedule]
      _gj("finetune", wd, *common, extra=extra)
      if _load(os.path.join(wd, "metrics.json")) is None:
        _gj("finetune", wd, "--config.mode=test", *common, extra=extra)
      m = _load(os.path.join(wd, "metrics.json"))
      runs.append({"kind": kind, "seed": seed, "path": path, "workdir": wd,
                   **{k: m[k] for k in m if k.endswith("rank1") or k.endswith("rank5")}})
  times["retrain_and_test"] = time.monotonic() - t0
  lines, table = summarise(runs, best, result["best_fitness"], len(seeds), r)
  lines.append("wall: " + ", ".join(f"{k} {v / 60:.1f} min" for k, v in times.items()) +
               f" (this invocation) on {_machine.describe()}")
  print("\n".join(lines))
  with open(os.path.join(args.out, "study.json"), "w") as f:
    json.dump({"best_path": best, "best_fitness": result["best_fitness"], "runs": runs,
               "summary": table, "seconds": times, "machine": _machine.describe()}, f, indent=1)


if __name__ == "__main__":
  main()
