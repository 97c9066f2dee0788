"""What tools/to_tfds.py needs: wall time, peak memory (RSS of the writer process) and bytes
on disk, for pkl trees of growing size.

The writer streams sequences into ArrayRecord shards, so its memory should not grow with the
split: a GREW-sized split (about 103,000 training sequences) then needs what the measured
sizes need. Trees are moving ellipse blobs with ragged edges (GREW-like 64x64 frames).
"""
from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import tempfile
import time

import cv2
import numpy as np

from gait_jax.benchmarks.loader_speed import disk_bytes

NAME = "tfds_write"  # `python tools/benchmark.py tfds_write`
TOOL = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__)))), "tools", "to_tfds.py")


def add_args(parser) -> None:
  parser.add_argument("--sequences", default="", help="comma-separated tree sizes "
                      "(default 1000,4000; quick 40,160)")
  parser.add_argument("--frames", type=int, default=80, help="frames per sequence (default 80)")
  parser.add_argument("--per-id", type=int, default=5, help="sequences per id (default 5)")
  parser.add_argument("--quick", action="store_true", help="tiny run (seconds)")


def write_tree(root: str, sequences: int, frames: int, per_id: int, seed: int = 0) -> str:
  """A GREW-like pkl tree (ids `<n>train`, type 00) and its partition; returns the partition."""
  rng = np.random.default_rng(seed)
  ids = []
  for s in range(sequences):
    pid = f"{s // per_id + 1:05d}train"
    if not ids or ids[-1] != pid:
      ids.append(pid)
    seq = np.zeros((frames, 64, 64), np.uint8)
    axes = (int(rng.integers(6, 12)), int(rng.integers(22, 30)))
    for f in range(frames):
      cv2.ellipse(seq[f], (32 + int(6 * np.sin(f / 4)), 32), axes, 0, 0, 360, 255, -1)
    edge = cv2.morphologyEx(seq, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
    seq[edge & (rng.random(seq.shape) < 0.5)] = 0  # ragged edges, as real masks have
    d = os.path.join(root, pid, "00", f"s{s:06d}")
    os.makedirs(d)
    with open(os.path.join(d, f"s{s:06d}.pkl"), "wb") as fh:
      pickle.dump(seq, fh)
  partition = root + ".json"
  with open(partition, "w") as fh:
    json.dump({"TRAIN_SET": ids, "TEST_SET": []}, fh)
  return partition


def measure(root: str, partition: str, out: str) -> tuple:
  """(seconds, peak RSS bytes) of tools/to_tfds.py in its own process."""
  t0 = time.perf_counter()
  proc = subprocess.Popen([sys.executable, TOOL, "--root", root, "--partition", partition,
                           "--out", out, "--no-progress"], stdout=subprocess.DEVNULL)
  _, status, usage = os.wait4(proc.pid, 0)
  proc.returncode = os.waitstatus_to_exitcode(status)
  if proc.returncode:
    raise SystemExit(f"tfds_write: to_tfds.py exited with {proc.returncode}")
  return time.perf_counter() - t0, usage.ru_maxrss * 1024  # Linux reports KiB


def run(args) -> None:
  sizes = [int(s) for s in (args.sequences or ("40,160" if args.quick else "1000,4000")).split(",")]
  print(f"{'sequences':>10} {'frames':>8} {'pkl MiB':>9} {'tfds MiB':>9} {'write s':>8} "
        f"{'seq/s':>7} {'peak RSS MiB':>13}")
  for n in sizes:
    with tempfile.TemporaryDirectory() as tmp:
      root = os.path.join(tmp, "tree")
      partition = write_tree(root, n, args.frames, args.per_id)
      seconds, rss = measure(root, partition, os.path.join(tmp, "tfds"))
      print(f"{n:>10} {n * args.frames:>8} {disk_bytes(root) / 2**20:>9.1f} "
            f"{disk_bytes(os.path.join(tmp, 'tfds')) / 2**20:>9.1f} {seconds:>8.1f} "
            f"{n / seconds:>7.0f} {rss / 2**20:>13.0f}")
