#!/usr/bin/env python
"""How much does BN recalibration change the search's ranking of paths?

Scores the same random paths of a trained supernet twice on the held-out training ids — with the
supernet's running BatchNorm statistics (the reference) and with per-path recalibration
(`search.bn_batches` batches) — and reports Kendall's tau between the two rankings, the overlap
of their top-5, and the mean fitness change.

  python tools/bn_recalibration_study.py --config configs/quickstart.py \\
      --supernet runs/quickstart/supernet --paths 24 [--config.search.bn_batches=8] [--out F.json]
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from gait_jax.common import huge_pages  # noqa: E402

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Supernet config file.", lock_config=True)
flags.DEFINE_string("supernet", None, "Workdir (or checkpoints dir) of the trained supernet.")
flags.DEFINE_integer("paths", 24, "Number of distinct random paths to score.")
flags.DEFINE_integer("seed", 0, "Seed of the path sample.")
flags.DEFINE_string("out", "", "Optional JSON file for the figures.")
flags.mark_flags_as_required(["config", "supernet"])


def kendall_tau(a, b) -> float:
  """Kendall's tau-b of two score lists (ties in either list count as neither)."""
  a, b = np.asarray(a, float), np.asarray(b, float)
  concordant = discordant = ties_a = ties_b = 0
  for i in range(len(a)):
    for j in range(i + 1, len(a)):
      da, db = np.sign(a[i] - a[j]), np.sign(b[i] - b[j])
      if da == 0 and db == 0:
        continue
      if da == 0:
        ties_a += 1
      elif db == 0:
        ties_b += 1
      elif da == db:
        concordant += 1
      else:
        discordant += 1
  denom = np.sqrt((concordant + discordant + ties_a) * (concordant + discordant + ties_b))
  return float((concordant - discordant) / denom) if denom else float("nan")


def main(argv):
  del argv
  from gait_jax import config_check  # pylint: disable=g-import-not-at-top
  from gait_jax.search import fitness  # pylint: disable=g-import-not-at-top
  config = config_check.check(FLAGS.config)
  if config.search.bn_batches <= 0:
    raise app.UsageError("search.bn_batches must be > 0 to compare with recalibration")
  scorer = fitness.CandidateScorer(config, FLAGS.supernet)
  rng = np.random.default_rng(FLAGS.seed)
  space = config.model.choice_max_num
  paths = []
  while len(paths) < min(FLAGS.paths, int(np.prod(space))):
    p = tuple(int(rng.integers(m)) for m in space)
    if p not in paths:
      paths.append(p)
  rows = []
  for p in paths:
    stale, recal = scorer.score(p, recalibrate=False), scorer.score(p, recalibrate=True)
    rows.append({"path": list(p), "running_stats": stale, "recalibrated": recal})
    print(f"{','.join(map(str, p))}: running stats {stale:6.2f}  recalibrated {recal:6.2f}",
          flush=True)
  a = [r["running_stats"] for r in rows]
  b = [r["recalibrated"] for r in rows]
  top = lambda v: {tuple(rows[i]["path"]) for i in np.argsort(-np.asarray(v), kind="stable")[:5]}
  summary = {"paths": len(rows), "bn_batches": int(config.search.bn_batches),
             "kendall_tau": kendall_tau(a, b), "top5_overlap": len(top(a) & top(b)),
             "mean_running_stats": float(np.mean(a)), "mean_recalibrated": float(np.mean(b)),
             "mean_abs_change": float(np.mean(np.abs(np.subtract(b, a)))),
             "protocol": scorer.protocol.name, "rows": rows}
  print(f"\n{len(rows)} paths, fitness = {scorer.protocol.name} on {len(scorer.val_ids)} held-out ids: "
        f"mean {summary['mean_running_stats']:.2f} (running stats) vs "
        f"{summary['mean_recalibrated']:.2f} (recalibrated); Kendall tau {summary['kendall_tau']:.3f}; "
        f"top-5 overlap {summary['top5_overlap']}/5")
  if FLAGS.out:
    with open(FLAGS.out, "w") as f:
      json.dump(summary, f, indent=1)


if __name__ == "__main__":
  huge_pages.ensure()
  app.run(main)
