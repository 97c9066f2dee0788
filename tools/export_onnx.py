#!/usr/bin/env python
"""Exports a fixed-path gait_jax model (inference mode) as ONNX.

  python tools/export_onnx.py DIR --out model.onnx [--frames 30] [--path 0,5,0,1] [--step N]

Input `sils`: float32 [batch, frames, 64, 44], silhouettes pretreated to 64x64, cut to the
middle 44 columns and scaled to [0, 1] (what `--config.mode=embed` feeds the network). Output
`embeddings`: float32 [batch, out_channels, parts], the network's test embedding.
The batch axis is always dynamic; the frame axis is dynamic (any count >= 3) unless --frames
fixes it. Rows of one batch share their frame count: embed clips of different lengths one
call each (or pad nothing: the network has no masking in the graph). Clips of 1 or 2 frames:
tile them to 3 or 4 first, as the network does.

DIR is a workdir of a retrained network (its model.path), or a supernet workdir with --path.
Needs the optional dependencies: pip install --no-deps -r requirements-export.txt.
The export is checked at once: ONNX Runtime's embeddings of a random clip against JAX's.
A model trained with `embed.flip` (the KTH configs) exports the mean of the clip's and its
mirror's embeddings, as embed/enroll compute them; `--flip on|off` overrides the config.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("workdir", help="gait_jax workdir, checkpoints dir or step dir")
  parser.add_argument("--out", required=True, help="the .onnx file to write")
  parser.add_argument("--frames", type=int, default=None,
                      help="fix the frame count (default: a dynamic frame axis)")
  parser.add_argument("--path", default="", help="architecture for a supernet workdir")
  parser.add_argument("--step", type=int, default=None, help="checkpoint step (default newest)")
  parser.add_argument("--flip", default="config", choices=("config", "on", "off"),
                      help="mirror-averaged embeddings (default: the workdir's embed.flip)")
  args = parser.parse_args(argv)
  from gait_jax.common import console  # noqa: E402 (after parsing: a fast --help)
  from gait_jax.interop import onnx_export  # noqa: E402
  from gait_jax.models import space  # noqa: E402
  console.quiet_libraries()
  try:
    model, variables, path, step, flip = onnx_export.load_fixed_model(
        args.workdir, space.parse_path(args.path), args.step)
    flip = flip if args.flip == "config" else args.flip == "on"
    info = onnx_export.export(model, variables, args.out, args.frames, flip)
  except (ValueError, OSError) as e:
    raise SystemExit(f"export_onnx: {e}") from None
  sils = (np.random.default_rng(0).random((2, args.frames or 12, 64, 44)) > 0.5).astype(
      np.float32)
  want = np.asarray(onnx_export.inference_fn(model, variables, flip)(sils))
  got = onnx_export.run_onnx(args.out, sils)
  err = float(np.max(np.abs(got - want)) / max(float(np.max(np.abs(want))), 1e-12))
  if not err <= 1e-4:
    raise SystemExit(f"export_onnx: ONNX Runtime disagrees with JAX (relative error {err:.2e})")
  print(f"exported path {space.format_path(path)} (step {step}) -> {os.path.abspath(args.out)}\n"
        f"  input  {info['input']}\n  output {info['output']}"
        f"{' (mean with the mirrored clip: embed.flip)' if flip else ''}\n  opset {info['opset']}; "
        f"ONNX Runtime vs JAX max relative error {err:.1e}", flush=True)


if __name__ == "__main__":
  main()
