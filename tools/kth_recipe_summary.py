#!/usr/bin/env python
"""The KTH-walk recipe's table: every row tools/kth_recipe.sh measured, Rank-1 (Rank-5) per
probe group with the probe counts, the validation curve's last point, and the wall time per
stage on this machine. Writes RUN/summary.json too.

  python tools/kth_recipe_summary.py --run runs/kth_recipe
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gait_jax.benchmarks import _machine  # noqa: E402

GROUPS = ("d4", "d1", "d2", "d3")
ROWS = (  # (file under RUN, row name)
    ("gei_plain.json", "GEI + 1-NN"),
    ("gei_flip.json", "GEI + 1-NN, flip-aware"),
    ("kth_only/metrics.json", "KTH TRAIN_SET only (same network and schedule)"),
    ("walkers_only/metrics.json", "KTH-like walkers only (zero-shot)"),
    ("finetune/metrics.json", "walkers-pretrained + KTH fine-tuned (the recipe)"),
)


def _load(path):
  if not os.path.exists(path):
    return None
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, ValueError) as e:
    raise SystemExit(f"kth_recipe_summary: {path} is unreadable ({e}); rerun its stage")


def stage_seconds(run: str) -> dict:
  """{stage: seconds}, summed over reruns (a resumed stage's parts add up)."""
  out = {}
  path = os.path.join(run, "stage_seconds.txt")
  if os.path.exists(path):
    with open(path) as f:
      for line in f:
        name, _, sec = line.strip().partition(" ")
        if name and sec.isdigit():
          out[name] = out.get(name, 0) + int(sec)
  return out


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--run", default="runs/kth_recipe")
  args = parser.parse_args(argv)
  rows, missing = [], []
  head = "| model | " + " | ".join(GROUPS) + " | mean |"
  lines = ["=== KTH-walk, Rank-1 % (Rank-5 %), gallery d4-00 of each test person ===", head,
           "|" + "---|" * (len(GROUPS) + 2)]
  for rel, name in ROWS:
    m = _load(os.path.join(args.run, rel))
    if m is None:
      missing.append(rel)
      continue
    cells = [f"{m[f'{g}/rank1']:.2f} ({m[f'{g}/rank5']:.2f})" for g in GROUPS]
    lines.append(f"| {name} | " + " | ".join(cells) +
                 f" | **{m['mean/rank1']:.2f}** ({m['mean/rank5']:.2f}) |")
    rows.append({"model": name, "file": rel, **{k: m[k] for k in m if "/" in k}})
  if rows:
    m = _load(os.path.join(args.run, rows[-1]["file"]))
    lines.append("probes: " + ", ".join(f"{g} {int(m[f'{g}/probes'])}" for g in GROUPS))
  val = _load(os.path.join(args.run, "finetune_val", "validation.json"))
  if val and val.get("points"):
    pts = val["points"]
    lines.append("validation (3 held-out training people, KTH-walk): " + ", ".join(
        f"step {p['step']}: {p['validation']:.1f}" for p in pts) +
                 f"  -> {os.path.join(args.run, 'finetune_val', 'validation.png')}")
  secs = stage_seconds(args.run)
  if secs:
    lines.append("wall time: " + ", ".join(f"{k} {v / 60:.1f} min" for k, v in secs.items()) +
                 f"; total {sum(secs.values()) / 60:.1f} min on {_machine.describe()}")
  if os.path.isdir(os.path.join(args.run, "finetune", "examples")):
    lines.append(f"examples: {os.path.join(args.run, 'finetune', 'examples')}/<group>.png")
  if missing:
    lines.append("not yet measured: " + ", ".join(missing) + " (rerun tools/kth_recipe.sh)")
  print("\n".join(lines))
  with open(os.path.join(args.run, "summary.json"), "w") as f:
    json.dump({"rows": rows, "stage_seconds": secs, "machine": _machine.describe(),
               "validation": val}, f, indent=1)


if __name__ == "__main__":
  main()
