#!/usr/bin/env python
"""One table from the JSON files that `tools/benchmark.py train|embed --json` wrote into a
folder (what tools/gpu_check.sh prints): `python tools/benchmark_table.py DIR`."""
import glob
import json
import os
import sys


def rows(folder):
  for path in sorted(glob.glob(os.path.join(folder, "*.json"))):
    with open(path) as f:
      for r in json.load(f):
        yield os.path.basename(path), r


def table(folder) -> str:
  lines = ["| model | path | dtype | compile s | step s | seq/s | TFLOP/s | XLA temp GiB/device |",
           "|---|---|---|---|---|---|---|---|"]
  embed = ["| model | path | sequences | seq/s | frames/s | first pass s |", "|---|---|---|---|---|---|"]
  for name, r in rows(folder):
    if name.startswith("embed"):
      embed.append(f"| {r['model']} | {r['path']} | {r['sequences']} | {r['seq_per_s']} | "
                   f"{r['frames_per_s']} | {r['first_pass_s']} |")
    else:
      lines.append(f"| {r['model']} | {r['path']} | {r['dtype']} | {r['compile_s']} | "
                   f"{r['step_s']} | {r['seq_per_s']} | {r['gflops'] / 1000:.3f} | "
                   f"{r['temp_gib']} |")
  if len(lines) == 2 and len(embed) == 2:
    raise SystemExit(f"no benchmark results (*.json) in {folder}")
  return "\n".join(lines + [""] + embed)


if __name__ == "__main__":
  if len(sys.argv) != 2:
    raise SystemExit(__doc__)
  print(table(sys.argv[1]))
