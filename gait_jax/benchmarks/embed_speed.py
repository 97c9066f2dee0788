"""Embedding throughput: whole sequences per second through `embed_dataset` after compiling.

`tools/benchmark.py embed --models small --path 0,5,0,1 --lengths 40-90 --sequences 24`: a
fixed-path model at the reference GREW widths (`--channels` overrides them), reference-initialised
weights, random 0/255 silhouettes with lengths drawn uniformly from `--lengths`, written as an
OpenGait tree and embedded as the embed mode does (sequences packed into one row per device,
sharded over the devices). The first pass compiles every row length; the reported figure is
the mean of the timed passes after it. `--bf16`: `embed.bf16` (bfloat16 products where the CPU
has bfloat16 units).
"""
from __future__ import annotations

import json
import os
import pickle
import tempfile
import time

import numpy as np

from gait_jax.benchmarks.train_speed import MODELS, reference_config

NAME = "embed"  # `python tools/benchmark.py embed`


def add_args(parser) -> None:
  parser.add_argument("--models", default="small", help="comma-separated of small,medium,large")
  parser.add_argument("--path", default="", help="the fixed path (default: all zeros)")
  parser.add_argument("--lengths", default="40-90", help="frame counts MIN-MAX (uniform)")
  parser.add_argument("--sequences", type=int, default=24, help="sequences to embed")
  parser.add_argument("--batch", type=int, default=8, help="embed.batch: sequences per device")
  parser.add_argument("--channels", default="", help="override model.channels, e.g. 8,16,32")
  parser.add_argument("--repeats", type=int, default=2, help="timed passes after the compile")
  parser.add_argument("--bf16", action="store_true",
                      help="embed.bf16: bfloat16 products (CPUs with AMX or AVX-512-BF16)")
  parser.add_argument("--json", default="", help="also write the results to this file")


def _write_tree(root: str, lengths, seed: int = 0) -> str:
  rng = np.random.default_rng(seed)
  for i, t in enumerate(lengths):
    seq = ((rng.random((int(t), 64, 64)) < 0.25) * 255).astype(np.uint8)
    d = os.path.join(root, f"{i:05d}", "nm-01", "000")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "000.pkl"), "wb") as f:
      pickle.dump(seq, f)
  partition = root + ".json"
  with open(partition, "w") as f:
    json.dump({"TRAIN_SET": [], "TEST_SET": [f"{i:05d}" for i in range(len(lengths))]}, f)
  return partition


def _build(size: str, args, root: str, partition: str):
  """(config, path, dataset, a function that embeds the whole dataset once)."""
  from gait_jax import config as config_lib  # pylint: disable=g-import-not-at-top
  from gait_jax.common import parallel  # pylint: disable=g-import-not-at-top
  from gait_jax.data.dataset import GaitDataset  # pylint: disable=g-import-not-at-top
  from gait_jax.evaluation import embed as embed_lib  # pylint: disable=g-import-not-at-top
  from gait_jax.models import build_model, init_variables  # pylint: disable=g-import-not-at-top

  c = reference_config(size, remat="off", channels=args.channels)  # inference: no remat
  path = config_lib.parse_path(args.path) or (0,) * len(c.model.choice_max_num)
  config_lib.check_path(path, c.model.choice_max_num, key="--path", model_name=c.model.name)
  model = build_model(c.model, bnneck=False, fixed_path=path)
  variables = init_variables(model, 0)
  dataset = GaitDataset(root, partition, split="test")
  fn = embed_lib.make_embed_fn(model, parallel.make_mesh(), bool(args.bf16))
  kw = dict(batch_per_device=args.batch, embed_fn=fn, progress=False)
  return c, path, dataset, lambda: embed_lib.embed_dataset(model, variables, dataset, path, **kw)


def prepare(size: str, args, root: str, partition: str):
  """(a function that embeds the dataset once more and returns {"seconds"}, the embeddings
  [n, c, p]) after a first pass that compiled every row length."""
  _, _, _, embed_all = _build(size, args, root, partition)
  embeddings = embed_all()["embeddings"]

  def run_one() -> dict:
    t0 = time.perf_counter()
    embed_all()
    return {"seconds": time.perf_counter() - t0}

  return run_one, embeddings


def bench_one(size: str, args, root: str, partition: str, with_embeddings: bool = False):
  """The throughput record; with `with_embeddings`, (record, the embeddings [n, c, p])."""
  import jax  # pylint: disable=g-import-not-at-top
  from gait_jax import config as config_lib  # pylint: disable=g-import-not-at-top

  c, path, dataset, embed_all = _build(size, args, root, partition)
  t0 = time.perf_counter()
  embed_all()
  first_s = time.perf_counter() - t0
  times = []
  for _ in range(max(1, args.repeats)):
    t0 = time.perf_counter()
    out = embed_all()
    times.append(time.perf_counter() - t0)
  seconds = float(np.mean(times))
  record = {"model": f"sposgait_{size}", "channels": list(c.model.channels),
            "bf16": bool(args.bf16),
            "path": config_lib.format_path(path), "sequences": len(dataset),
            "frames": int(dataset.lengths().sum()), "batch_per_device": args.batch,
            "devices": jax.device_count(), "first_pass_s": round(first_s, 2),
            "seconds": round(seconds, 3), "seq_per_s": round(len(dataset) / seconds, 2),
            "frames_per_s": round(float(dataset.lengths().sum()) / seconds, 1)}
  return (record, out["embeddings"]) if with_embeddings else record


def relative_deviation(a: np.ndarray, b: np.ndarray) -> float:
  """The largest per-sequence ‖a − b‖ / ‖a‖ of two embeddings [n, c, p] of the same sequences."""
  a, b = a.reshape(len(a), -1).astype(np.float64), b.reshape(len(b), -1).astype(np.float64)
  return float(np.max(np.linalg.norm(a - b, axis=1) / np.linalg.norm(a, axis=1)))


def run(args) -> None:
  lo, hi = (int(v) for v in args.lengths.split("-"))
  if not 1 <= lo <= hi:
    raise SystemExit(f"--lengths {args.lengths!r}: expected MIN-MAX with 1 <= MIN <= MAX")
  lengths = np.random.default_rng(1).integers(lo, hi + 1, args.sequences)
  results = []
  with tempfile.TemporaryDirectory() as tmp:
    root = os.path.join(tmp, "random")
    partition = _write_tree(root, lengths)
    for size in [s.strip() for s in args.models.split(",") if s.strip()]:
      if size not in MODELS:
        raise SystemExit(f"--models: {size!r} is not one of {MODELS}")
      r = bench_one(size, args, root, partition)
      results.append(r)
      print(f"{r['model']:16s} path {r['path']} widths {r['channels']}"
            f"{' (bf16 products)' if r['bf16'] else ''}: {r['sequences']} "
            f"sequences of {lo}-{hi} frames on {r['devices']} device(s): first pass (compile) "
            f"{r['first_pass_s']:.1f} s, then {r['seconds']:.2f} s = {r['seq_per_s']:.1f} seq/s "
            f"({r['frames_per_s']:.0f} frames/s)", flush=True)
  if args.json:
    with open(args.json, "w") as f:
      json.dump(results, f, indent=2)
