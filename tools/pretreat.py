#!/usr/bin/env python
"""Raw silhouette PNGs → OpenGait pkls (the reference datasets/pretreatment.py).

  python tools/pretreat.py --input RAW --output OUT [--workers 4] [--dataset CASIAB] [--img-size 64]

RAW holds `<id>/<type>/<view>/*.png`; OUT receives `<id>/<type>/<view>/<view>.pkl` (uint8
[T, 64, 64]). `--dataset GREW` keeps the (already aligned) frames unchanged. A rerun keeps
the pkls already written. For a dataset's release layout use tools/prepare.py.
"""
import argparse
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gait_jax.data import pretreat as lib  # noqa: E402


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("-i", "--input", required=True, help="raw root <id>/<type>/<view>/*.png")
  parser.add_argument("-o", "--output", required=True, help="output root for the pkls")
  parser.add_argument("-n", "--workers", type=int, default=4, help="processes (default 4)")
  parser.add_argument("-d", "--dataset", default="CASIAB",
                      help="dataset name; GREW keeps frames unchanged (default CASIAB)")
  parser.add_argument("-r", "--img-size", type=int, default=64, help="output size (default 64)")
  parser.add_argument("--no-progress", action="store_true", help="no progress bar")
  args = parser.parse_args(argv)
  logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
  try:
    summary = lib.pretreat(args.input, args.output, workers=args.workers, dataset=args.dataset,
                           img_size=args.img_size, progress=not args.no_progress)
  except ValueError as e:
    parser.error(str(e))
  print(lib.format_summary(summary))
  # Non-zero when anything could not be converted, so scripts notice the gap.
  return 0 if (summary["written"] or summary["skipped"]) and not summary["failed"] else 1


if __name__ == "__main__":
  sys.exit(main())
