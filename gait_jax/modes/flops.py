"""`--config.mode=flops`: MACs, FLOPs and parameter counts of the config's path.

Replaces the reference `calculate_flops_and_params.py` with the analytic counter
of `gait_jax/models/cost.py`: no data, device or checkpoint is needed. Prints a per-layer table
and writes `WORKDIR/flops.json` with the keys of `cost.count`.
"""
from __future__ import annotations

import os
from typing import Any, Dict, List

from gait_jax import config as config_lib
from gait_jax.models import cost
from gait_jax.common import io


def _giga(v: int) -> str:
  return f"{v / 1e9:,.3f} G"


def _mega(v: int) -> str:
  return f"{v / 1e6:,.3f} M"


def format_table(rows: List[Dict[str, Any]], result: Dict[str, Any], *, frames: int,
                 model_name: str, note: str = "") -> str:
  """The human-readable report: one line per op, then the totals."""
  lines = [f"{model_name}  path {config_lib.format_path(result['path'])}  "
           f"{frames} frames (backbone sees {cost.tiled_frames(frames)})"]
  if note:
    lines.append(note)
  header = f"{'layer':<12} {'op':<34} {'output t x h x w x c':>22} {'MACs':>14} {'params':>12}"
  lines += [header, "-" * len(header)]
  for r in rows:
    shape = " x ".join(str(s) for s in r["shape"])
    lines.append(f"{r['name']:<12} {r['op']:<34} {shape:>22} {_giga(r['macs']):>14} "
                 f"{_mega(r['params']):>12}")
  lines.append("-" * len(header))
  lines += [
      f"conv MACs        {_giga(result['macs_conv'])}",
      f"MACs             {_giga(result['macs'])}   ({result['macs']:,})",
      f"FLOPs (2 x MACs) {_giga(result['flops'])}",
      f"params backbone  {_mega(result['params_backbone'])}",
      f"params path      {_mega(result['params_path'])}   (+ GeM + SeparateFCs)",
      f"params total     {_mega(result['params_total'])}   (+ BN-neck when configured)",
      f"params supernet  {_mega(result['params_supernet'])}   (every candidate of every layer)",
  ]
  return "\n".join(lines)


def run(config, workdir: str) -> None:
  """Counts `config.model.path` (the all-zeros path for a supernet config) at
  `config.flops.frames` frames and writes WORKDIR/flops.json."""
  path = config_lib.model_path(config)
  note = ""
  if path is None:
    path = (0,) * len(config.model.choice_max_num)
    note = ("supernet config (model.path is empty): reporting the all-zeros path; "
            "set --config.model.path=... for another one")
  frames = config.flops.frames
  if frames < 1:
    raise ValueError(f"flops.frames={frames}: expected a positive frame count")
  bnneck = config_lib.use_bnneck(config)
  result = cost.count(config.model, path, frames, bnneck=bnneck)
  rows = cost.breakdown(config.model, path, frames, bnneck=bnneck)
  print(format_table(rows, result, frames=frames, model_name=config.model.name, note=note))
  os.makedirs(workdir, exist_ok=True)
  out = os.path.join(workdir, "flops.json")
  io.write_json(out, result, indent=2)
  print(f"wrote {out}")
