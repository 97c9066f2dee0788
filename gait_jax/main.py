"""gait_jax — SPOSGait (GREW NAS baseline) in JAX/Flax.

Usage:
  python -m gait_jax.main --config configs/<experiment>.py --workdir DIR [--config.a.b=value ...]

`--config.mode` selects the stage:
  train     supernet training (config without model.path) or retraining of a fixed path
  search    evolutionary architecture search on a trained supernet
  embed     embed every test sequence -> WORKDIR/embeddings.npz
  evaluate  run evaluate.protocol on evaluate.embeddings -> WORKDIR/metrics.json
  test      embed + evaluate in one go
  flops     MACs / FLOPs / parameter counts of a path -> WORKDIR/flops.json
  enroll    embed the people under identify.gallery -> WORKDIR/gallery.npz
  identify  rank each probe under identify.probes against it -> WORKDIR/identify.json

Any config key can be overridden on the command line; a misspelt key is an error.
A path is written --config.model.path=0,0,4,5,2,0,4,3,4,3 (empty = supernet).
"""
import importlib
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from gait_jax.common import console

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file(
    "config", None, "Experiment config file (configs/<name>.py[:arg]).", lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, TensorBoard logs and results.")
flags.mark_flags_as_required(["config", "workdir"])

# mode -> "module:function" taking (config, workdir); imported only when chosen.
MODES = {
    "train": "gait_jax.modes.train:run",
    "search": "gait_jax.modes.search:run",
    "embed": "gait_jax.modes.inference:run_embed",
    "evaluate": "gait_jax.modes.inference:run_evaluate",
    "test": "gait_jax.modes.inference:run_test",
    "flops": "gait_jax.modes.flops:run",
    "enroll": "gait_jax.identify.mode:run_enroll",
    "identify": "gait_jax.identify.mode:run_identify",
}


def resolve_mode(mode: str):
  """The function that runs a mode, or a SystemExit naming what is wrong."""
  if mode not in MODES:
    raise SystemExit(f"config.mode={mode!r} is not a mode; choose one of {sorted(MODES)}")
  module_name, function = MODES[mode].split(":")
  return getattr(importlib.import_module(module_name), function)


def main(argv):
  console.quiet_libraries()
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  config = FLAGS.config
  run = resolve_mode(config.mode)
  from gait_jax.common import parallel  # pylint: disable=g-import-not-at-top
  parallel.maybe_initialize(config)
  logging.info("mode=%s workdir=%s", config.mode, FLAGS.workdir)
  run(config, FLAGS.workdir)


_HELP_FLAGS = ("--help", "-h", "-?", "--helpshort", "--helpfull")


def entry():
  try:
    app.run(main)
  except SystemExit as e:
    # absl exits 1 after printing --help; asking for help is not a failure.
    if e.code == 1 and any(a in _HELP_FLAGS for a in sys.argv[1:]):
      raise SystemExit(0) from None
    raise


if __name__ == "__main__":
  entry()
