"""Walker generation speed: frames/s and the time for a full set (quick mode extrapolates).

  python tools/benchmark.py walkers --quick        # a few ids, extrapolated to --ids
  python tools/benchmark.py walkers --ids 1000     # generates the whole set (long)
"""
import os
import shutil
import tempfile
import time

from gait_jax.synthetic import walkers

NAME = "walkers"  # `python tools/benchmark.py walkers`


def add_args(parser):
  parser.add_argument("--quick", action="store_true",
                      help="generate only --sample-ids ids and extrapolate to --ids")
  parser.add_argument("--ids", type=int, default=1000, help="size of the set to time")
  parser.add_argument("--sample-ids", type=int, default=6, help="ids generated in quick mode")
  parser.add_argument("--seqs-per-id", type=int, default=10)
  parser.add_argument("--frames", type=int, default=60)
  parser.add_argument("--views", default=",".join(walkers.DEFAULT_VIEWS))
  parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
  parser.add_argument("--out", default="", help="where to write (default: a temporary folder, "
                                                "removed afterwards)")


def measure(ids: int, seqs_per_id: int, frames: int, views, workers: int, out: str = ""):
  """Generates `ids` walkers; returns (seconds wall, seconds CPU of this process tree, summary)."""
  tmp = None
  if not out:
    tmp = tempfile.mkdtemp(prefix="walkers_bench_")
    out = os.path.join(tmp, "walkers")
  try:
    t0, c0 = time.perf_counter(), _cpu()
    summary = walkers.generate(out, ids=ids, seqs_per_id=seqs_per_id, views=views, frames=frames,
                               seed=0, workers=workers)
    return time.perf_counter() - t0, _cpu() - c0, summary
  finally:
    if tmp:
      shutil.rmtree(tmp, ignore_errors=True)


def _cpu() -> float:
  t = os.times()
  return t.user + t.system + t.children_user + t.children_system


def run(args):
  n = min(args.sample_ids, args.ids) if args.quick else args.ids
  if n < 1:
    raise SystemExit("walkers benchmark: --ids and --sample-ids must be at least 1")
  views = walkers.parse_views(args.views)
  wall, cpu, summary = measure(n, args.seqs_per_id, args.frames, views, args.workers, args.out)
  frames = summary["frames"]
  print(f"generated {n} ids x {args.seqs_per_id} seqs x {len(views)} views "
        f"({','.join(views)}), ~{args.frames} frames: {summary['sequences']} sequences, "
        f"{frames} frames in {wall:.1f} s wall / {cpu:.1f} s CPU with {args.workers} workers")
  print(f"  {frames / wall:.0f} frames/s wall, {1000 * cpu / max(frames, 1):.2f} ms CPU per frame")
  if args.quick and n < args.ids:
    # Work is per id and independent, so time scales with the id count (a few-id sample
    # with several workers overstates the per-id wall time a little: the last id is alone).
    est = wall * args.ids / n
    print(f"  extrapolated to {args.ids} ids: {est / 60:.1f} min wall "
          f"({cpu * args.ids / n / 60:.1f} CPU-min)")
  return {"ids": n, "frames": frames, "wall_s": wall, "cpu_s": cpu}
