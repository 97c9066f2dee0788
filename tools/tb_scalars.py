#!/usr/bin/env python
"""Prints scalars from TensorBoard event files without TensorBoard/TensorFlow installed.

  python tools/tb_scalars.py runs/quickstart/supernet/tb --tag train/loss [--every 10]
"""
import argparse
import glob
import os
import struct

from tensorboardX.proto import event_pb2


def read_scalars(logdir: str):
  """{tag: [(step, value), ...]} from every event file under `logdir`, in step order."""
  out = {}
  files = sorted(glob.glob(os.path.join(logdir, "**", "events.out.tfevents.*"), recursive=True))
  if not files:
    raise SystemExit(f"no event files under {logdir}")
  for path in files:
    with open(path, "rb") as f:
      data = f.read()
    i = 0
    while i + 12 <= len(data):
      (n,) = struct.unpack("<Q", data[i:i + 8])
      event = event_pb2.Event()
      event.ParseFromString(data[i + 12:i + 12 + n])
      i += 12 + n + 4  # length, its crc, payload, payload crc
      for v in event.summary.value:
        if v.HasField("simple_value"):
          out.setdefault(v.tag, []).append((event.step, v.simple_value))
  return {k: sorted(v) for k, v in out.items()}


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("logdir")
  parser.add_argument("--tag", action="append", help="tags to print (default: list them)")
  parser.add_argument("--every", type=int, default=1, help="print every N-th logged point")
  args = parser.parse_args(argv)
  scalars = read_scalars(args.logdir)
  if not args.tag:
    print("\n".join(sorted(scalars)))
    return
  for tag in args.tag:
    if tag not in scalars:
      raise SystemExit(f"tag {tag!r} not in {args.logdir} (have: {', '.join(sorted(scalars))})")
    for k, (step, value) in enumerate(scalars[tag]):
      if k % args.every == 0 or k == len(scalars[tag]) - 1:
        print(f"{tag}\t{step}\t{value:.5f}")


if __name__ == "__main__":
  main()
