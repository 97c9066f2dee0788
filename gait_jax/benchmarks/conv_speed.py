"""The convolutions of one path, per layer and formulation: forward, input and kernel gradient.

`tools/benchmark.py conv --models small --path 0,5,0,1 --batch 8 --frames 30`: every
stride-1 convolution the path runs (its candidates' convs and the downsample 1×1×1 convs) at
the shapes a train step gives them, timed after compiling for each formulation of
`gait_jax/models/conv.py` (`xla`, `canonical`, `gemm`, `fold`, and `onednn`, `onednn_bf16`
where built; `--formulations` picks some), with GFLOP/s (2 × MACs / time) and % of the
machine's fp32 peak; the last column names the fastest formulation of each row and
the one `auto` uses here.
"""
from __future__ import annotations

import contextlib
import json
import os
import time

import numpy as np

from gait_jax.benchmarks.train_speed import reference_config

NAME = "conv"  # `python tools/benchmark.py conv`
DIRECTIONS = ("forward", "input grad", "kernel grad")


def add_args(parser) -> None:
  parser.add_argument("--models", default="small", help="one of small, medium, large")
  parser.add_argument("--path", default="0,5,0,1", help="the path whose layers are timed")
  parser.add_argument("--batch", type=int, default=8, help="sequences")
  parser.add_argument("--frames", type=int, default=30)
  parser.add_argument("--channels", default="", help="override model.channels, e.g. 8,16,32")
  parser.add_argument("--formulations", default="",
                      help="comma-separated (default: every one this machine has)")
  parser.add_argument("--repeats", type=int, default=3, help="timed calls (the best is kept)")
  parser.add_argument("--peak-gflops", type=float, default=0.0,
                      help="the machine's fp32 peak (default: worked out from the CPU)")
  parser.add_argument("--json", default="", help="also write the results to this file")


def layer_shapes(model_cfg, path, batch: int, frames: int):
  """[(name, input shape [n, t, h, w, cin], kernel, cout)] of the path's stride-1 convs."""
  from gait_jax.models import space  # pylint: disable=g-import-not-at-top
  from gait_jax.models.candidates import CANDIDATE_KERNELS  # pylint: disable=g-import-not-at-top
  name = space.canonical_model_name(model_cfg.name)
  channels = tuple(int(c) for c in model_cfg.channels)
  t, h, w, cin, pos, out = frames, 64, 44, 1, 0, []
  for stage in space.STAGES[name]:
    stage_in = cin
    for layer, ch, _ in stage.layers:
      cout = channels[ch]
      for i, kernel in enumerate(CANDIDATE_KERNELS[path[pos]]):
        out.append((f"{layer} cand{path[pos]} conv{3 * i}", (batch, t, h, w, cin if i == 0 else cout),
                    kernel, cout))
      cin, pos = cout, pos + 1
    out.append((f"downsample{stage.index}", (batch, t, h, w, stage_in), (1, 1, 1), cin))
    if stage.pool:
      h, w = h // 2, w // 2
    if stage.lta_after:
      t //= 3
  return out


def _time(fn, args, repeats: int) -> float:
  import jax  # pylint: disable=g-import-not-at-top
  jax.block_until_ready(fn(*args))
  best = float("inf")
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    best = min(best, time.perf_counter() - t0)
  return best


def available_formulations():
  """The formulations this machine runs: those conv.py accepts by name here (oneDNN's where
  built, bfloat16 where the CPU has bfloat16 units)."""
  from gait_jax.models import conv as conv_lib  # pylint: disable=g-import-not-at-top
  usable = []
  for form in conv_lib.FORMULATIONS:
    with use_formulation(form):
      try:
        conv_lib.formulation()
      except ValueError:
        continue
    usable.append(form)
  return tuple(usable)


@contextlib.contextmanager
def use_formulation(form: str):
  """Convolutions traced in the block use `form` (conv.py reads its ENV_VAR while tracing);
  the variable is as before afterwards, also when the block fails."""
  from gait_jax.models import conv as conv_lib  # pylint: disable=g-import-not-at-top
  previous = os.environ.get(conv_lib.ENV_VAR)
  os.environ[conv_lib.ENV_VAR] = form
  try:
    yield
  finally:
    os.environ.pop(conv_lib.ENV_VAR, None)
    if previous is not None:
      os.environ[conv_lib.ENV_VAR] = previous


def bench_layer(shape, kernel, cout, repeats: int, formulations):
  """{formulation: {direction: seconds}} for one convolution."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from gait_jax.models import conv as conv_lib  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=shape).astype(np.float32))
  w = jnp.asarray(rng.normal(size=tuple(kernel) + (shape[-1], cout)).astype(np.float32))
  pads = [(k // 2, k // 2) for k in kernel]
  g = jnp.asarray(rng.normal(size=shape[:4] + (cout,)).astype(np.float32))
  out = {}
  for form in formulations:
    conv = lambda a, b: conv_lib.conv_general_dilated(  # noqa: E731
        a, b, (1, 1, 1), pads, dimension_numbers=("NDHWC", "DHWIO", "NDHWC"))
    fns = {"forward": jax.jit(conv),
           "input grad": jax.jit(lambda a, b, c: jax.vjp(conv, a, b)[1](c)[0]),
           "kernel grad": jax.jit(lambda a, b, c: jax.vjp(conv, a, b)[1](c)[1])}
    with use_formulation(form):  # traced (and compiled) in _time's first call
      out[form] = {d: _time(f, (x, w) if d == "forward" else (x, w, g), repeats)
                   for d, f in fns.items()}
  return out


def run(args) -> None:
  from gait_jax import config as config_lib  # pylint: disable=g-import-not-at-top
  from gait_jax.benchmarks import _machine  # pylint: disable=g-import-not-at-top
  from gait_jax.models import conv as conv_lib  # pylint: disable=g-import-not-at-top
  c = reference_config(args.models, remat="off")
  if args.channels:
    c.model.channels = tuple(int(v) for v in args.channels.split(","))
  path = config_lib.parse_path(args.path)
  config_lib.check_path(path, c.model.choice_max_num, key="--path", model_name=c.model.name)
  peak = args.peak_gflops or _machine.cpu_peak_gflops()["gflops"]
  auto = conv_lib.formulation()
  forms = tuple(args.formulations.split(",")) if args.formulations else available_formulations()
  for form in forms:
    if form not in conv_lib.FORMULATIONS:
      raise ValueError(f"--formulations: {form!r} is not one of {conv_lib.FORMULATIONS}")
  rows = []
  print(f"{'layer':28} {'input':22} {'kernel':9} {'cout':>4} {'direction':11} "
        + " ".join(f"{f:>17}" for f in forms) + "  fastest (auto here: "
        f"{auto})")
  for name, shape, kernel, cout in layer_shapes(c.model, path, args.batch, args.frames):
    times = bench_layer(shape, kernel, cout, args.repeats, forms)
    macs = int(np.prod(shape)) * int(np.prod(kernel)) * cout
    for d in DIRECTIONS:
      cells, row = [], {"layer": name, "input": list(shape), "kernel": list(kernel),
                        "cout": cout, "direction": d, "macs": macs}
      for form in forms:
        s = times[form][d]
        gf = 2 * macs / s / 1e9
        row[form] = {"ms": round(1e3 * s, 2), "gflops": round(gf, 1),
                     "peak_percent": round(100 * gf / peak, 1) if peak else None}
        cells.append(f"{1e3 * s:7.1f} ms {gf:5.1f} GF")
      row["fastest"] = min(forms, key=lambda f: times[f][d])
      rows.append(row)
      print(f"{name:28} {str(tuple(shape)):22} {str(tuple(kernel)):9} {cout:4} {d:11} "
            + " ".join(cells) + f"  {row['fastest']}", flush=True)
  total = {f: sum(times_row[f]["ms"] for times_row in rows) for f in forms}
  print("total (all rows): " + ", ".join(f"{f} {ms:.0f} ms" for f, ms in total.items())
        + (f"; peak {peak:.0f} GFLOP/s" if peak else ""))
  if args.json:
    with open(args.json, "w") as f:
      json.dump({"machine": _machine.describe(), "model": args.models, "path": args.path,
                 "batch": args.batch, "frames": args.frames, "peak_gflops": peak,
                 "auto": auto, "rows": rows, "total_ms": total}, f, indent=1)
