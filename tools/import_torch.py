#!/usr/bin/env python
"""Imports a reference (OpenGait/SPOSGait PyTorch) checkpoint into a gait_jax workdir.

  python tools/import_torch.py CKPT.pt --config configs/<experiment>.py --workdir DIR \
      [--config.model.path=0,5,0,1] [--config.a.b=value ...]

CKPT.pt is what the reference's training saves (`{"model", "optimizer", "scheduler",
"iteration"}`) or a bare state dict; it is read without PyTorch. The config says which network
the checkpoint is (model.* and loss.ce_weight > 0 for a BN-neck): every key and shape must
match, and the error lists the first mismatches. Without model.path the whole supernet is
imported; with it only that path's candidates (a reference retrain checkpoint holds all six of
every layer).

Writes DIR/checkpoints/<iteration> and DIR/config.json, exactly as `train` does, so that
  --config.mode=embed|test|search --workdir DIR            reads it as its own,
  --config.mode=train --workdir DIR                         continues it (momentum included),
  --config.train.init_from=DIR [--config.train.resume_optimizer=True]   starts from it.
SGD momentum buffers are imported when the file has an optimizer state; otherwise the
momentum starts at zero (weights only).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

config_flags.DEFINE_config_file("config", None, "Config of the checkpoint's network.",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "New workdir to write the checkpoint into.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) != 2:
    raise app.UsageError("expected one checkpoint file: import_torch.py CKPT.pt --config ... "
                         "--workdir DIR")
  from gait_jax import config_check  # noqa: E402 (after flag parsing: a fast --help)
  from gait_jax.common import console  # noqa: E402
  from gait_jax.interop import reference_checkpoint  # noqa: E402
  console.quiet_libraries()
  try:
    config = config_check.check(flags.FLAGS.config)
    step_dir, meta = reference_checkpoint.import_reference(argv[1], config, flags.FLAGS.workdir)
  except (ValueError, FileNotFoundError, FileExistsError) as e:
    raise SystemExit(f"import_torch: {e}") from None
  what = "weights + SGD momentum" if meta["optimizer"] == "momentum" else "weights only"
  print(f"imported {argv[1]} (iteration {meta['step']}, {what}, "
        f"{'path ' + meta['model_path'] if meta['model_path'] else 'supernet'}) -> {step_dir}",
        flush=True)


if __name__ == "__main__":
  app.run(main)
