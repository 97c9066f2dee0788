"""Train-step throughput: sequences/s, time per step, compile time and data-wait fraction.

For each supernet (small / medium / large with the reference GREW widths) it builds the real
jitted train step on all local devices and feeds it batches from a TrainLoader over a
generated walkers set, sampling a fresh path every step as supernet training does. The
data-wait fraction is the share of wall time spent in `next(loader)`; memory is XLA's own
figure for the compiled step (per device). `--static` times the same network with one path
compiled statically (what retraining runs) for comparison.

Defaults: P×K = 8×4 = 32 sequences, 30 frames. `--quick`: the small supernet with its
channels divided by 8, P×K = 2×2, 6 frames, 3 timed steps — a minute or two on a 2-core CPU.
"""
from __future__ import annotations

import importlib.util
import json
import os
import tempfile
import time

import numpy as np

NAME = "train"  # `python tools/benchmark.py train`
MODELS = ("small", "medium", "large")


def add_args(parser) -> None:
  parser.add_argument("--quick", action="store_true", help="tiny shapes (a minute or two)")
  parser.add_argument("--models", default="", help="comma-separated of small,medium,large "
                      "(default all; quick: small)")
  parser.add_argument("--batch-p", type=int, default=0, help="P (default 8; quick 2)")
  parser.add_argument("--batch-k", type=int, default=0, help="K (default 4; quick 2)")
  parser.add_argument("--frames", type=int, default=0, help="frames (default 30; quick 6)")
  parser.add_argument("--steps", type=int, default=0, help="timed steps (default 10; quick 3)")
  parser.add_argument("--dtype", default="float32", help="float32 | bfloat16 | float16")
  parser.add_argument("--bf16", action="store_true",
                      help="train.bf16: the convolutions multiply in bfloat16 (where the CPU "
                      "has bfloat16 units and oneDNN runs them)")
  parser.add_argument("--channels", default="", help="override model.channels, e.g. 8,16,32")
  parser.add_argument("--workers", type=int, default=2, help="loader threads")
  parser.add_argument("--static", action="store_true",
                      help="time one fixed path compiled statically (a retrain step) instead "
                      "of a freshly sampled traced path every step (a supernet step)")
  parser.add_argument("--remat", default="config", choices=("config", "on", "off"),
                      help="model.remat: recompute the searchable layers in the backward pass "
                      "(less memory, a little more compute); default: as the config (on for "
                      "the reference supernet configs)")
  parser.add_argument("--path", default="",
                      help="the same path every step (e.g. 0,5,0,1), traced unless --static; "
                      "default: a fresh random path per step (supernet training), or a random "
                      "fixed path with --static")
  parser.add_argument("--peak-gflops", type=float, default=0.0,
                      help="the machine's fp32 peak for the %% of peak (default: worked out "
                      "from the CPU's vector width, FMA units and clock)")
  parser.add_argument("--json", default="", help="also write the results to this file")


def reference_config(size: str, *, quick: bool = False, batch_p: int = 0, batch_k: int = 0,
                     frames: int = 0, workers: int = 2, dtype: str = "float32",
                     remat: str = "config", channels: str = "", bf16: bool = False):
  """The reference GREW supernet config of `size` at benchmark shapes (0 = the default:
  P×K 8×4, 30 frames; `quick`: channels / 8, P×K 2×2, 6 frames)."""
  here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  path = os.path.join(here, "configs", f"sposgait_{size}_GREW_supertraining_triplet.py")
  spec = importlib.util.spec_from_file_location(f"bench_{size}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  c = module.get_config().unlock()
  if quick:
    c.model.channels = tuple(max(4, ch // 8) for ch in c.model.channels)
    c.model.out_channels = max(8, c.model.out_channels // 8)
  if channels:
    c.model.channels = tuple(int(v) for v in channels.split(","))
  c.data.batch_p = batch_p or (2 if quick else 8)
  c.data.batch_k = batch_k or (2 if quick else 4)
  c.data.frames = frames or (6 if quick else 30)
  c.data.workers = workers
  c.train.dtype = dtype
  c.train.bf16 = bf16
  if remat != "config":
    c.model.remat = remat == "on"
  return c


def _time_steps(step, state, loader, mesh, path_of, static_path, steps: int) -> dict:
  """Compiles the step ahead of time (the executable reports XLA's own memory figures, and the
  timed steps reuse exactly what was measured), runs one warm-up step, then times `steps`."""
  import jax  # pylint: disable=g-import-not-at-top
  from gait_jax.training import step as step_lib  # pylint: disable=g-import-not-at-top
  it = iter(loader)
  wait = 0.0
  times, used = [], []
  skipped = 0
  try:
    s, batch = next(it)
    args0 = (state, *step_lib.device_inputs(batch, path_of(s), mesh))
    t0 = time.perf_counter()
    compiled = step.lower(*args0).compile()
    compile_s = time.perf_counter() - t0
    state, info = compiled(*args0)  # warm-up, not timed
    jax.block_until_ready(info["ok"])
    for _ in range(steps):
      t_wait = time.perf_counter()
      s, batch = next(it)
      wait += time.perf_counter() - t_wait
      used.append(path_of(s) if static_path is None else static_path)
      state, info = compiled(state, *step_lib.device_inputs(batch, used[-1], mesh))
      jax.block_until_ready(info["ok"])
      times.append(time.perf_counter() - t_wait)
      skipped += not bool(info["ok"])  # a non-finite loss or gradient: the update was skipped
  finally:
    loader.close()
  return {"compile_s": compile_s, "memory": compiled.memory_analysis(), "times": times,
          "used": used, "wait": wait, "skipped": skipped}


def _build(size: str, args, data):
  """The config, the compiled-to-be train step and its fresh state, the loader and the paths:
  what `bench_one` times and `prepare` hands out."""
  import jax  # pylint: disable=g-import-not-at-top
  from gait_jax.training import setup  # pylint: disable=g-import-not-at-top
  from gait_jax import config as config_lib  # pylint: disable=g-import-not-at-top
  from gait_jax.training import optim  # pylint: disable=g-import-not-at-top
  from gait_jax.common import parallel  # pylint: disable=g-import-not-at-top
  from gait_jax.data.dataset import GaitDataset  # pylint: disable=g-import-not-at-top
  from gait_jax.data.loader import TrainLoader  # pylint: disable=g-import-not-at-top
  from gait_jax.models import sample_path  # pylint: disable=g-import-not-at-top

  c = reference_config(size, quick=args.quick, batch_p=args.batch_p, batch_k=args.batch_k,
                       frames=args.frames, workers=args.workers, dtype=args.dtype,
                       remat=args.remat, channels=getattr(args, "channels", ""), bf16=args.bf16)
  c.data.root, c.data.partition = data["root"], data["partition"]
  cmn = c.model.choice_max_num
  fixed = config_lib.parse_path(args.path) if args.path else None
  if fixed is not None:
    config_lib.check_path(fixed, cmn, key="--path", model_name=c.model.name)
  static_path = (fixed or sample_path(cmn, 0, 0)) if args.static else None
  if static_path is not None:  # what retraining runs: only the path's ops, compiled statically
    c.model.path = config_lib.format_path(static_path)
  path_of = (lambda s: fixed) if fixed is not None else (lambda s: sample_path(cmn, 0, s))
  mesh = parallel.make_mesh()
  net = setup.build_network(c)
  opt = optim.SGD(c.optim, c.train.total_steps)
  t0 = time.perf_counter()
  state, sharding = setup.init_state(c, net, opt, mesh)
  jax.block_until_ready(state)
  init_s = time.perf_counter() - t0
  step = setup.train_step(c, net, opt, mesh, sharding)
  loader = TrainLoader(GaitDataset(c.data.root, c.data.partition, split="train"), c.data, seed=0)
  return dict(c=c, net=net, fixed=fixed, static_path=static_path, path_of=path_of, mesh=mesh,
              state=state, step=step, loader=loader, init_s=init_s)


def prepare(size: str, args, data, batches: int = 4):
  """One train step compiled and warmed up on `batches` batches drawn ahead, then run on them
  in turn: a function that runs the next step and returns {"seconds", "ok"} (ok: the loss and
  gradients were finite). For a side-by-side run one step at a time: no loader threads left
  working while the other side is timed (the reference times one fixed batch)."""
  import jax  # pylint: disable=g-import-not-at-top
  from gait_jax.training import step as step_lib  # pylint: disable=g-import-not-at-top
  b = _build(size, args, data)
  it = iter(b["loader"])
  try:
    drawn = [next(it) for _ in range(batches)]
  finally:
    b["loader"].close()
  inputs = [step_lib.device_inputs(batch, b["static_path"] or b["path_of"](s), b["mesh"])
            for s, batch in drawn]
  compiled = b["step"].lower(b["state"], *inputs[0]).compile()
  box = {"state": b["state"], "n": 0}

  def run_one() -> dict:
    t0 = time.perf_counter()
    box["state"], info = compiled(box["state"], *inputs[box["n"] % batches])
    jax.block_until_ready(info["ok"])
    box["n"] += 1
    return {"seconds": time.perf_counter() - t0, "ok": bool(info["ok"])}

  run_one()  # warm-up, as the reference's side warms up
  return run_one


def bench_one(size: str, args, data) -> dict:
  import jax  # pylint: disable=g-import-not-at-top
  from gait_jax.models import conv as conv_lib  # pylint: disable=g-import-not-at-top
  from gait_jax.models import cost  # pylint: disable=g-import-not-at-top
  from gait_jax.benchmarks import _machine  # pylint: disable=g-import-not-at-top
  from gait_jax.common import block_cache  # pylint: disable=g-import-not-at-top

  b = _build(size, args, data)
  c, net, fixed, static_path, path_of, mesh, state, step, loader, init_s = (
      b[k] for k in ("c", "net", "fixed", "static_path", "path_of", "mesh", "state", "step",
                     "loader", "init_s"))
  timing = _time_steps(step, state, loader, mesh, path_of, static_path,
                      args.steps or (3 if args.quick else 10))
  compile_s, memory, times, used, wait = (timing[k] for k in ("compile_s", "memory", "times",
                                                              "used", "wait"))
  step_s = float(np.mean(times))
  global_batch = c.data.batch_p * c.data.batch_k
  # A train step is ~3 forward passes (forward, and a backward twice its cost); the analytic
  # counter gives the forward FLOPs of each step's path.
  fwd = np.mean([cost.count(c.model, p, c.data.frames, bnneck=False)["flops"]
                 for p in used])
  gflops = 3 * fwd * global_batch / step_s / 1e9
  peak = args.peak_gflops or _machine.cpu_peak_gflops()["gflops"]
  return {
      "model": f"sposgait_{size}", "channels": list(c.model.channels),
      "path": (("static " + ",".join(map(str, static_path))) if args.static else
               "traced" + (" " + args.path if fixed else " (random per step)")),
      "conv_formulation": conv_lib.formulation(), "remat": c.model.remat,
      "bf16": net.bf16,
      "batch": global_batch, "frames": c.data.frames, "dtype": args.dtype,
      "devices": jax.device_count(), "init_s": round(init_s, 2),
      "compile_s": round(compile_s, 2), "step_s": round(step_s, 4),
      # What the side-by-side benchmark compares: the reference's script reports its median.
      "step_median_s": round(float(np.median(times)), 4),
      "seq_per_s": round(global_batch / step_s, 2),
      "gflop_per_step": round(3 * fwd * global_batch / 1e9, 2),
      "gflops": round(gflops, 2), "peak_gflops": peak,
      "pct_of_peak": round(100 * gflops / peak, 2) if peak else None,
      "data_wait_fraction": round(wait / float(np.sum(times)), 4),
      "skipped_steps": timing["skipped"],
      # Per device, from the compiled executable: activations/workspace, and inputs.
      "temp_gib": round(memory.temp_size_in_bytes / 2**30, 3) if memory else None,
      "argument_gib": round(memory.argument_size_in_bytes / 2**30, 3) if memory else None,
      "block_cache": block_cache.stats(),  # None where not preloaded
  }


def run(args) -> None:
  from gait_jax.synthetic import walkers  # pylint: disable=g-import-not-at-top
  sizes = [s.strip() for s in (args.models or ("small" if args.quick else ",".join(MODELS))).split(",")]
  for s in sizes:
    if s not in MODELS:
      raise SystemExit(f"--models: {s!r} is not one of {MODELS}")
  results = []
  with tempfile.TemporaryDirectory() as tmp:
    frames = max(args.frames or (6 if args.quick else 30), 12)
    ids = 2 * max(args.batch_p or (2 if args.quick else 8), 2)
    data = walkers.generate(os.path.join(tmp, "walk"), ids=ids, seqs_per_id=4,
                            views=("000", "090"), frames=frames, seed=0)
    for size in sizes:
      r = bench_one(size, args, data)
      results.append(r)
      print(f"{r['model']:16s} {r['path']} path, batch {r['batch']:3d} x {r['frames']:2d} frames "
            f"{r['dtype']:8s} " + ("(bfloat16 products) " if r["bf16"] else "") +
            f"on {r['devices']} device(s): compile {r['compile_s']:.1f} s, "
            f"{r['step_s'] * 1000:.0f} ms/step, {r['seq_per_s']:.1f} seq/s, "
            f"{r['gflops']:.1f} GFLOP/s"
            + (f" ({r['pct_of_peak']:.1f}% of {r['peak_gflops']:.0f} peak), " if r["pct_of_peak"]
               else ", ") +
            f"data wait {100 * r['data_wait_fraction']:.1f}%, "
            f"XLA temp memory {r['temp_gib']} GiB/device"
            + (" (remat)" if r["remat"] else "")
            + (f"; {r['skipped_steps']} steps NON-FINITE (skipped)" if r["skipped_steps"] else ""),
            flush=True)
  if args.json:
    with open(args.json, "w") as f:
      json.dump(results, f, indent=2)
