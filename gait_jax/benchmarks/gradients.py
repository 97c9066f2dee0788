"""Gradient accuracy: every parameter's float32 gradient against float64 (same weights, batch).

    python tools/benchmark.py gradients [--channels 64,128,256] [--path 0,5,0,1] [--batch 8]
        [--frames 30] [--formulation fold|xla|...]

A train-mode forward (BN batch statistics) of the small network with its BN-neck, and a fixed
random linear function of its embeddings and logits, differentiated in float32 under the
chosen convolution formulation and in float64 with XLA's own convolutions. Per parameter the
error is ‖g32 − g64‖ / (‖g64‖ + 1e-2 · RMS(g64) · √size): relative to its own gradient, and to
the gradient scale of the whole network where a parameter's true gradient is a near-zero
remainder (a 1-channel convolution followed by BN is scale-invariant: its exact gradient is
~0, and any rounding is "100 %" of it).
"""
from __future__ import annotations

import json
from typing import Dict, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from gait_jax.benchmarks import conv_speed
from gait_jax.models import build_model
from gait_jax.models import conv as conv_lib
from gait_jax.models import space
from gait_jax.training import step as step_lib

# PyTorch's own float32 gradients of this network are within 1.1e-2 of float64 at the worst
# parameter (small CASIA-B widths); ours must be as good.
TOLERANCE = 1.1e-2
FLOOR = 1e-2


def _config(channels: Sequence[int]):
  return ml_collections.ConfigDict(dict(name="sposgait_small", channels=tuple(channels),
                                        bins=(16,), parts=16, out_channels=channels[-1],
                                        class_num=16))


def _grads(cfg, path, variables, sils, dtype, formulation: str):
  with conv_speed.use_formulation(formulation):
    model = build_model(cfg, bnneck=True, fixed_path=path, dtype=dtype)
    out_shapes = jax.eval_shape(
        lambda v: model.apply(v, sils, path, train=True, mutable=["batch_stats"])[0], variables)
    rng = np.random.default_rng(1)
    weights = {k: jnp.asarray(rng.standard_normal(s.shape), dtype)
               for k, s in sorted(out_shapes.items())}

    def objective(params, batch_stats, x, w):  # arguments, not constants XLA would fold
      out, _ = model.apply({"params": params, "batch_stats": batch_stats}, x, path,
                           train=True, mutable=["batch_stats"])
      return sum(jnp.sum(out[k] * w[k]) for k in w)
    grads = jax.jit(jax.grad(objective))(variables["params"], variables["batch_stats"], sils,
                                         weights)
    return jax.tree.map(np.asarray, grads)


def accuracy(channels: Sequence[int], path=(0, 5, 0, 1), batch: int = 8, frames: int = 30,
             seed: int = 0, formulation: str = "auto") -> Dict:
  """{"leaves": [{"name", "error", "size"}], ...}: each parameter's float32 gradient error."""
  cfg = _config(channels)
  path = tuple(int(v) for v in path)
  rng = np.random.default_rng(seed)
  sils = (rng.random((batch, frames, 64, 44)) > 0.6).astype(np.float32)
  model = build_model(cfg, bnneck=True, fixed_path=path)
  variables = jax.tree.map(np.asarray, step_lib.run_fast_compiled(
      lambda key, x: model.init(key, x, path), jax.random.PRNGKey(seed), sils[:1]))
  g32 = _grads(cfg, path, variables, jnp.asarray(sils), jnp.float32, formulation)
  with jax.enable_x64(True):
    v64 = jax.tree.map(lambda a: np.asarray(a, np.float64), variables)
    g64 = _grads(cfg, path, v64, jnp.asarray(sils, jnp.float64), jnp.float64, "xla")
  leaves64 = jax.tree.leaves(g64)
  rms = float(np.sqrt(np.mean(np.concatenate([np.ravel(g) ** 2 for g in leaves64]))))
  rows = []
  for (key, a), b in zip(jax.tree_util.tree_leaves_with_path(g32), leaves64):
    scale = float(np.linalg.norm(b)) + FLOOR * rms * np.sqrt(b.size)
    rows.append({"name": jax.tree_util.keystr(key), "size": int(b.size),
                 "error": float(np.linalg.norm(a.astype(np.float64) - b) / scale)})
  rows.sort(key=lambda r: -r["error"])
  return {"channels": list(channels), "path": space.format_path(path), "batch": batch,
          "frames": frames, "formulation": conv_lib.formulation() if formulation == "auto"
          else formulation, "leaves": rows}


def add_args(parser) -> None:
  parser.add_argument("--channels", default="64,128,256", help="model.channels (small model)")
  parser.add_argument("--path", default="0,5,0,1")
  parser.add_argument("--batch", type=int, default=8)
  parser.add_argument("--frames", type=int, default=30)
  parser.add_argument("--formulation", default="auto",
                      help=f"float32 convolutions: auto or one of {conv_lib.FORMULATIONS}")
  parser.add_argument("--json", default="", help="also write the report to this file")


def run(args) -> None:
  channels = [int(c) for c in args.channels.split(",")]
  report = accuracy(channels, space.parse_path(args.path), args.batch, args.frames,
                    formulation=args.formulation)
  print(f"small model {args.channels}, path {report['path']}, {args.batch} x {args.frames} "
        f"frames, float32 convolutions: {report['formulation']}")
  print(f"{'error':>9}  parameter (worst first; tolerance {TOLERANCE:g})")
  for r in report["leaves"][:10]:
    print(f"{r['error']:>9.2e}  {r['name']}")
  worst = report["leaves"][0]["error"]
  print(f"worst {worst:.2e}: {'within' if worst <= TOLERANCE else 'ABOVE'} PyTorch's float32 "
        f"error ({TOLERANCE:g})")
  if args.json:
    with open(args.json, "w") as f:
      json.dump(report, f, indent=1)
