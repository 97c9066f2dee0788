#!/usr/bin/env python
"""A prepared pkl tree → a TensorFlow Datasets dataset (ArrayRecord, random access).

  python tools/to_tfds.py --root OUT --partition OUT.json --out TFDS_DIR [--workers N]

Writes TFDS_DIR/gait_sequences/1.0.0 (splits train and test, the partition inside; no
TensorFlow needed). Train or embed from it with
  --config.data.format=tfds --config.data.root=TFDS_DIR
(no partition: the splits are in the dataset); the batches of every step are those of the
pkl tree, so a run can move between the two forms and resume. Read it elsewhere with
  tfds.data_source("gait_sequences", data_dir=TFDS_DIR, split="train")
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gait_jax.data import tfds_format  # noqa: E402


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--root", required=True, help="the OpenGait pkl tree")
  parser.add_argument("--partition", required=True, help="its partition JSON")
  parser.add_argument("--out", required=True, help="the TFDS data_dir to write")
  parser.add_argument("-n", "--workers", type=int, default=4, help="reader threads (default 4)")
  parser.add_argument("--no-progress", action="store_true", help="no progress bar")
  args = parser.parse_args(argv)
  try:
    summary = tfds_format.write(args.root, args.partition, args.out, workers=args.workers,
                                progress=not args.no_progress)
  except ValueError as e:  # a wrong path, partition or sequence: one line
    raise SystemExit(f"to_tfds: {e}") from None
  print(f"wrote {tfds_format.dataset_dir(args.out)}")
  for split, s in summary.items():
    print(f"  {split}: {s['sequences']} sequences, {s['shards']} shard(s), "
          f"{s['bytes'] / 2**20:.1f} MiB")
  return 0


if __name__ == "__main__":
  sys.exit(main())
