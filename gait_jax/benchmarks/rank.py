"""Ranking speed and memory: top-20 of P probes × G gallery random embeddings [N, c, p].

Default is a GREW-sized test (12,000 × 12,000, c = 512, p = 31); `--quick` ranks 1,000 × 1,000.
Reports wall time (first call includes compilation; a second timed call does not) and the
process's peak resident memory (ru_maxrss), which must stay at a few GB: the ranking keeps
one `[chunk, gallery_chunk]` block, never `[P, G, p]`.
"""
from __future__ import annotations

import resource
import time

import numpy as np


def add_args(parser) -> None:
  parser.add_argument("--quick", action="store_true", help="1,000 × 1,000 instead of 12,000 × 12,000")
  parser.add_argument("--probes", type=int, default=12000)
  parser.add_argument("--gallery", type=int, default=12000)
  parser.add_argument("--channels", type=int, default=512)
  parser.add_argument("--parts", type=int, default=31)
  parser.add_argument("--k", type=int, default=20)
  parser.add_argument("--chunk", type=int, default=1024, help="probes per jitted block")
  parser.add_argument("--gallery-chunk", type=int, default=16384, help="gallery items per block")
  parser.add_argument("--metric", default="euc", choices=("euc", "cos"))


def _peak_mb() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def run(args) -> None:
  from gait_jax.evaluation import distance  # pylint: disable=g-import-not-at-top
  probes, gallery = (1000, 1000) if args.quick else (args.probes, args.gallery)
  rng = np.random.default_rng(0)
  x = rng.standard_normal((probes, args.channels, args.parts), dtype=np.float32)
  y = rng.standard_normal((gallery, args.channels, args.parts), dtype=np.float32)
  data_mb = (x.nbytes + y.nbytes) / 2**20
  print(f"rank: {probes} probes × {gallery} gallery, c={args.channels}, p={args.parts}, "
        f"top-{args.k}, metric={args.metric}, chunk={args.chunk}/{args.gallery_chunk}; "
        f"embeddings {data_mb:.0f} MB; peak RSS before {_peak_mb():.0f} MB")
  times = []
  for _ in range(2):
    t0 = time.perf_counter()
    d, idx = distance.topk(x, y, args.k, args.metric, chunk=args.chunk, gallery_chunk=args.gallery_chunk)
    times.append(time.perf_counter() - t0)
  flops = 3.0 * probes * gallery * args.channels * args.parts  # dot + norms, per run
  print(f"first call (with compile) {times[0]:.2f} s; second {times[1]:.2f} s "
        f"({probes / times[1]:.0f} probes/s, {flops / times[1] / 1e9:.1f} GFLOP/s)")
  print(f"peak RSS {_peak_mb():.0f} MB (embeddings alone {data_mb:.0f} MB); "
        f"result {idx.shape} nearest distance mean {float(d[:, 0].mean()):.3f}")
