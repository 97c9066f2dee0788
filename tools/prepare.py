#!/usr/bin/env python
"""A dataset's raw release → the OpenGait pkl tree OUT and its partition OUT.json.

  python tools/prepare.py DATASET --input RAW --output OUT [--workers N]

Resumable (a rerun keeps the sequences already written), parallel, with a progress bar and a
report of every frame and sequence that could not be converted. Exits 1 when a sequence
failed. Then train/test with --config.data.root=OUT --config.data.partition=OUT.json, or pack
the tree with tools/to_tfds.py.
"""
import argparse
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gait_jax.data import prepare as lib  # noqa: E402
from gait_jax.data import pretreat  # noqa: E402


def epilog() -> str:
  lines = ["datasets and the raw layout each expects:"]
  for name, module in lib.DATASETS.items():
    lines.append(f"  {name:7s} {module.RELEASE.title}: {module.RELEASE.layout}")
  lines += ["", "dataset options:",
            "  grew    --distractors   also prepare distractor/ as id 99999, type 04",
            "  gait3d  --smpl          also the SMPL parameters (a second pkl per sequence)",
            "  gait3d  --split FILE    Gait3D's split (TRAIN_SET, TEST_SET, PROBE_SET JSON); "
            "without it no partition is written",
            "  hid     --img-size 64   resize the frames (default: kept as released)",
            "", "docs/data.md has a section per dataset (source, commands, expected counts)."]
  return "\n".join(lines)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__, epilog=epilog(),
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("dataset", choices=sorted(lib.DATASETS), metavar="DATASET",
                      help="one of: " + ", ".join(lib.DATASETS))
  parser.add_argument("-i", "--input", required=True, help="the unpacked release (RAW)")
  parser.add_argument("-o", "--output", required=True, help="the pkl tree to write (OUT)")
  parser.add_argument("-n", "--workers", type=int, default=4, help="processes (default 4)")
  parser.add_argument("-r", "--img-size", type=int, default=None,
                      help="output frame size (default 64; HID: as released)")
  parser.add_argument("--distractors", action="store_true", help="grew: prepare distractor/")
  parser.add_argument("--smpl", action="store_true", help="gait3d: also the SMPL parameters")
  parser.add_argument("--split", default="", help="gait3d: the split JSON (Gait3D.json)")
  parser.add_argument("--no-progress", action="store_true", help="no progress bar")
  args = parser.parse_args(argv)
  options = {"distractors": args.distractors, "smpl": args.smpl, "split": args.split}
  wrong = [f"--{k}" for k, v in options.items() if v and k not in {
      "grew": ("distractors",), "gait3d": ("smpl", "split")}.get(args.dataset, ())]
  if wrong:
    raise SystemExit(f"prepare: {', '.join(wrong)} does not apply to {args.dataset}")
  logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
  try:
    summary = lib.prepare(args.dataset, args.input, args.output, workers=args.workers,
                          progress=not args.no_progress, img_size=args.img_size, **options)
  except ValueError as e:  # a wrong layout, path or option: one line
    raise SystemExit(f"prepare: {e}") from None
  print(pretreat.format_summary(summary))
  print(lib.format_partition(summary))
  return 0 if (summary["written"] or summary["skipped"]) and not summary["failed"] else 1


if __name__ == "__main__":
  sys.exit(main())
