"""Loader throughput: sequences/s through TrainLoader from the pkl tree (cache off/on) and
from its TFDS form (tools/to_tfds.py), 1 and 2 workers, and the bytes on disk of each form.

Without --root it writes a small temporary walkers-like set of random ellipse blobs; the TFDS
form is written to a temporary folder either way. The default transforms are the GREW retrain
configs' (random_rotate_flip). The consumer does nothing but take batches, so the figure is
the loader's ceiling; the training step never waits while this exceeds its consumption rate.
"""
from __future__ import annotations

import json
import os
import pickle
import tempfile
import time

import cv2
import numpy as np

from gait_jax import config as config_lib
from gait_jax.data import tfds_format
from gait_jax.data.dataset import GaitDataset
from gait_jax.data.loader import TrainLoader

NAME = "loader"  # `python tools/benchmark.py loader`


def add_args(parser) -> None:
  parser.add_argument("--root", default="", help="OpenGait pkl root (default: generated blobs)")
  parser.add_argument("--partition", default="", help="partition JSON (with --root)")
  parser.add_argument("--quick", action="store_true", help="tiny run (seconds)")
  parser.add_argument("--steps", type=int, default=0, help="timed batches (default 20; quick 4)")
  parser.add_argument("--batch-p", type=int, default=0, help="P (default 32; quick 8)")
  parser.add_argument("--batch-k", type=int, default=4, help="K (default 4)")
  parser.add_argument("--frames", type=int, default=30, help="frames per sequence (default 30)")
  parser.add_argument("--transforms", default="random_rotate_flip",
                      help="data.transforms (default: the GREW retrain configs')")
  parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
  parser.add_argument("--prefetch", type=int, default=2)


def write_blobs(out: str, ids: int, seqs_per_id: int, seed: int = 0) -> tuple:
  """A walkers-like OpenGait tree of moving ellipse blobs (uint8 0/255, 40–90 frames)."""
  rng = np.random.default_rng(seed)
  root = os.path.join(out, "blobs")
  names = [f"{i:03d}" for i in range(ids)]
  for pid in names:
    for s in range(seqs_per_id):
      t = int(rng.integers(40, 91))
      seq = np.zeros((t, 64, 64), np.uint8)
      axes = (int(rng.integers(6, 12)), int(rng.integers(22, 30)))
      for f in range(t):
        cx = 32 + int(6 * np.sin(f / 4))
        cv2.ellipse(seq[f], (cx, 32), axes, 0, 0, 360, 255, -1)
      d = os.path.join(root, pid, f"nm-{s + 1:02d}", "090")
      os.makedirs(d)
      with open(os.path.join(d, "090.pkl"), "wb") as fh:
        pickle.dump(seq, fh)
  partition = os.path.join(out, "blobs.json")
  with open(partition, "w") as fh:
    json.dump({"TRAIN_SET": names, "TEST_SET": []}, fh)
  return root, partition


def measure(dataset, cfg, steps: int) -> tuple:
  with TrainLoader(dataset, cfg, seed=0) as loader:
    next(loader)  # thread start-up and the first prefetch are not throughput
    t0 = time.perf_counter()
    for _ in range(steps):
      next(loader)
    elapsed = time.perf_counter() - t0
    return steps * loader.global_batch / elapsed, elapsed / steps


def disk_bytes(folder: str, suffix: str = "") -> int:
  return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(folder)
             for f in files if f.endswith(suffix))


def run(args) -> None:
  p = args.batch_p or (8 if args.quick else 32)
  steps = args.steps or (4 if args.quick else 20)
  workers = [int(w) for w in str(args.workers).split(",") if w.strip()]
  with tempfile.TemporaryDirectory() as tmp:
    if args.root:
      if not args.partition:
        raise SystemExit("--root needs --partition")
      root, partition = args.root, args.partition
    else:
      ids = 8 if args.quick else 32
      root, partition = write_blobs(tmp, ids, 4 if args.quick else 6)
    print(f"data: {root}")
    tfds_dir = os.path.join(tmp, "tfds")
    tfds_format.write(root, partition, tfds_dir, progress=False)
    sizes = {"pkl": disk_bytes(root, ".pkl"), "tfds": disk_bytes(tfds_dir)}
    sources = {"pkl": lambda: GaitDataset(root, partition, "train"),
               "pkl, data.cache": lambda: GaitDataset(root, partition, "train", cache=True),
               "tfds": lambda: tfds_format.TfdsDataset(tfds_dir, "train")}
    rows = []
    for name, make in sources.items():
      dataset = make()
      if dataset.cache:
        dataset.lengths()  # fill the cache: measure the steady state
      for w in workers:
        cfg = config_lib.base_config().data
        cfg.update(dict(batch_p=p, batch_k=args.batch_k, batch_shuffle=True,
                        sample_type="fixed_ordered", frames=args.frames, frames_skip=0,
                        transforms=args.transforms, workers=w, prefetch=args.prefetch))
        seq_s, per_batch = measure(dataset, cfg, steps)
        rows.append((name, w, seq_s, per_batch))
    print(f"{len(dataset)} sequences, batch {p}x{args.batch_k}, {args.frames} frames, "
          f"transforms={args.transforms}, {steps} batches")
    print("on disk (whole tree): " + ", ".join(f"{k} {v / 2**20:.1f} MiB"
                                               for k, v in sizes.items()))
    print(f"{'source':>16} {'workers':>8} {'seq/s':>9} {'ms/batch':>9}")
    for name, w, seq_s, per_batch in rows:
      print(f"{name:>16} {w:>8} {seq_s:>9.0f} {per_batch * 1e3:>9.1f}")
