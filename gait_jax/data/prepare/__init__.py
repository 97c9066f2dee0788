"""Each dataset's raw release → the OpenGait pkl tree and its partition JSON.

`prepare(name, raw, output)` plans the sequences of a release tree (refusing a tree in
another layout by name, with the layout expected), converts them with the pretreatment's
workers (resumable: pkls already written are kept) and writes `<output>.json`, the
partition of what was prepared. One module per dataset holds its layout and partition rule;
the command line is `tools/prepare.py`.
"""
from __future__ import annotations

import os
from typing import Optional

from gait_jax.common import io
from gait_jax.data import pretreat
from gait_jax.data.prepare import (casiab_release, gait3d_release, grew_release, hid_release,
                                   layout, oumvlp_release)

DATASETS = {"casiab": casiab_release, "oumvlp": oumvlp_release, "grew": grew_release,
            "gait3d": gait3d_release, "hid": hid_release}
# Frame size of the output: the aligned datasets are cut to 64x64 (SPOSGait's input); HID's
# frames are stacked as released (0) unless --img-size says otherwise.
DEFAULT_SIZE = {"hid": 0}
LayoutError = layout.LayoutError


def partition_path(output: str) -> str:
  return os.path.normpath(os.path.abspath(output)) + ".json"


def prepare(name: str, raw: str, output: str, workers: int = 4, progress: bool = True,
            img_size: Optional[int] = None, **options) -> dict:
  """Prepares release `raw` of dataset `name` into `output`; returns the conversion summary
  with `partition` (the JSON's path, or None when the release does not define a split)."""
  if name not in DATASETS:
    raise ValueError(f"dataset {name!r}: expected one of {', '.join(DATASETS)}")
  if not os.path.isdir(raw):
    raise ValueError(f"--input {raw} is not a directory")
  if os.path.abspath(output).startswith(os.path.abspath(raw) + os.sep):
    raise ValueError(f"--output {output} lies inside --input {raw}: a rerun would read it back")
  size = DEFAULT_SIZE.get(name, 64) if img_size is None else int(img_size)
  plan = DATASETS[name].plan(os.path.abspath(raw), size, **options)
  if not plan.jobs:
    raise DATASETS[name].RELEASE.refuse(raw, "holds no sequence folders")
  summary = pretreat.convert(plan.jobs, output, workers, progress, desc=name)
  done = [j.key for j in plan.jobs if os.path.exists(os.path.join(output, *j.key, j.name))]
  split = plan.split(sorted({k[0] for k in done}), {"-".join(k) for k in done})
  summary["partition"], summary["split"] = None, split
  if split is not None:
    summary["partition"] = io.write_json(partition_path(output), split, indent=1)
  return summary


def format_partition(summary: dict) -> str:
  if summary["partition"] is None:
    return "partition: none written (the release alone does not define the split; see --help)"
  return f"partition: {summary['partition']} (" + ", ".join(
      f"{k}: {len(v)}" for k, v in summary["split"].items()) + ")"
