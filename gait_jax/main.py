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

A user error (a bad value, file or key) prints one line `gait_jax: <what is wrong>` and exits
2; `--verbose` shows the traceback too.
"""
import difflib
import importlib
import importlib.util
import os
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from gait_jax.common import console
from gait_jax.common import huge_pages

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file(
    "config", None, "Experiment config file (configs/<name>.py[:arg]).", lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, TensorBoard logs and results.")
flags.DEFINE_bool("verbose", False, "Show the traceback of a user error too.")
flags.mark_flags_as_required(["config", "workdir"])

# What a user's config, files or machine cause (bad values, missing or damaged files, a full
# disk, a non-finite run): one line, not a traceback. Anything else is a bug: the traceback.
USER_ERRORS = (ValueError, OSError, FloatingPointError)
USER_ERROR_EXIT = 2

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


def user_error(message: str):
  """Prints `gait_jax: message` on stderr and exits with USER_ERROR_EXIT."""
  print(f"gait_jax: {message}", file=sys.stderr, flush=True)
  raise SystemExit(USER_ERROR_EXIT)


def resolve_mode(mode: str):
  """The function that runs a mode, or a SystemExit naming what is wrong."""
  if mode not in MODES:
    close = difflib.get_close_matches(str(mode), list(MODES), n=1)
    user_error(f"config.mode={mode!r} is not a mode; choose one of {sorted(MODES)}"
               + (f" (did you mean {close[0]!r}?)" if close else ""))
  module_name, function = MODES[mode].split(":")
  return getattr(importlib.import_module(module_name), function)


def main(argv):
  console.quiet_libraries()
  if len(argv) > 1:
    user_error(f"unexpected arguments: {' '.join(argv[1:])} (config keys are written "
               "--config.section.key=value)")
  config = FLAGS.config
  run = resolve_mode(config.mode)
  from gait_jax import config_check  # pylint: disable=g-import-not-at-top
  from gait_jax.common import parallel  # pylint: disable=g-import-not-at-top
  try:
    config_check.check(config)
    parallel.maybe_initialize(config)
    logging.info("mode=%s workdir=%s", config.mode, FLAGS.workdir)
    run(config, FLAGS.workdir)
  except USER_ERRORS as e:
    if FLAGS.verbose:
      raise
    user_error(" ".join(str(e).split("\n")) or type(e).__name__)
  except SystemExit as e:  # the modes' refusals (a workdir in use, a search without data...)
    if isinstance(e.code, str):
      user_error(e.code)
    raise


def _config_spec(argv):
  for i, a in enumerate(argv):
    if a.startswith("--config="):
      return a.split("=", 1)[1]
    if a == "--config" and i + 1 < len(argv):
      return argv[i + 1]
  return None


def _unknown_key(argv) -> str:
  """The first `--config.a.b=` override whose key the config file lacks, with the closest
  valid keys; "" when every key exists (or the config cannot be loaded to tell)."""
  spec = _config_spec(argv)
  if not spec:
    return ""
  path, _, arg = spec.partition(":")
  try:
    module_spec = importlib.util.spec_from_file_location("_gait_jax_user_config", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    config = module.get_config(arg) if arg else module.get_config()
  except Exception:  # pylint: disable=broad-except
    return ""
  for a in argv:
    if not a.startswith("--config."):
      continue
    key = a[len("--config."):].split("=", 1)[0]
    node, done = config, []
    for part in key.split("."):
      keys = list(node.keys()) if hasattr(node, "keys") else []
      if part not in keys:
        where = ".".join(done) or "the config"
        close = difflib.get_close_matches(part, keys, n=3, cutoff=0.5)
        hint = (f"; did you mean {', '.join(repr('.'.join(done + [c])) for c in close)}?"
                if close else f"; {where} has: {', '.join(sorted(keys))}" if keys else "")
        return f"{a.split('=', 1)[0]}: {where} has no key {part!r}{hint}"
      node, done = node[part], done + [part]
  return ""


def _parse_flags(argv):
  """absl's parsing, with the config's errors (an unknown key, a value of the wrong type, a
  missing config file) as one line."""
  spec = _config_spec(argv)
  if spec and not os.path.isfile(spec.partition(":")[0]):
    user_error(f"--config={spec}: no such config file (e.g. configs/quickstart.py)")
  try:
    return FLAGS(argv)
  except flags.Error as e:
    if "--verbose" in argv:
      raise
    user_error(_unknown_key(argv) or " ".join(str(e).split()))
  except (KeyError, AttributeError, TypeError, ValueError, OSError) as e:
    if "--verbose" in argv:
      raise
    user_error(_unknown_key(argv) or " ".join(str(e).strip("'\"").split()))


_HELP_FLAGS = ("--help", "-h", "-?", "--helpshort", "--helpfull")


def entry():
  huge_pages.ensure()
  try:
    app.run(main, flags_parser=_parse_flags)
  except SystemExit as e:
    # absl exits 1 after printing --help; asking for help is not a failure.
    if e.code == 1 and any(a in _HELP_FLAGS for a in sys.argv[1:]):
      raise SystemExit(0) from None
    raise


if __name__ == "__main__":
  entry()
