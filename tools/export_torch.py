#!/usr/bin/env python
"""Exports a gait_jax checkpoint as a reference (OpenGait/SPOSGait PyTorch) `.pt` file.

  python tools/export_torch.py DIR --out model.pt [--step N]

DIR is a workdir (its newest checkpoint unless --step), its checkpoints/ folder or one step
folder; its config.json says which network it is. The file holds `{"model": state_dict,
"iteration": step}` with every key of the reference network, written without PyTorch in
PyTorch's own format: the reference loads it with `model.load_state_dict(ckpt["model"],
strict=True)` (its `restore_hint`), and `tools/import_torch.py` reads it back bit-exactly.
A retrained (fixed-path) checkpoint has no weights for the other candidates; they are written
as zero convolutions and identity BNs (weight 1, bias 0, mean 0, var 1), which the chosen path
never touches. The optimizer state is not exported (the reference warns and starts a fresh one).
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("workdir", help="gait_jax workdir, checkpoints dir or step dir")
  parser.add_argument("--out", required=True, help="the .pt file to write")
  parser.add_argument("--step", type=int, default=None, help="checkpoint step (default newest)")
  args = parser.parse_args(argv)
  from gait_jax.common import console  # noqa: E402 (after parsing: a fast --help)
  from gait_jax.interop import reference_checkpoint  # noqa: E402
  console.quiet_libraries()
  try:
    info = reference_checkpoint.export_reference(args.workdir, args.out, args.step)
  except (ValueError, FileNotFoundError) as e:
    raise SystemExit(f"export_torch: {e}") from None
  print(f"exported step {info['step']} ({info['keys']} state-dict keys"
        f"{', path ' + info['path'] if info['path'] else ', supernet'}) -> "
        f"{os.path.abspath(args.out)}", flush=True)


if __name__ == "__main__":
  main()
