"""Where a run's train state comes from: its own newest intact checkpoint, else
`train.init_from`'s weights (and, with `train.resume_optimizer`, its optimizer), else a fresh
initialisation."""
from __future__ import annotations

import jax
import jax.numpy as jnp
from absl import logging

from gait_jax import config as config_lib
from gait_jax.common import checkpoint as ckpt_lib
from gait_jax.training import step as step_lib
from gait_jax.training import train_state as ts


# The BN-neck classifies the *training ids*: fine-tuning on other people (walkers -> KTH) needs
# a classifier of another size, or one where the source had none (a triplet-only source).
FRESH_ON_INIT = ("BNNecks",)


def load_weights(state: ts.TrainState, source: str, with_optimizer: bool = False
                 ) -> ts.TrainState:
  """`train.init_from`: params + batch_stats from another run, by name (a supernet's other
  candidates are ignored when retraining one of its paths); `with_optimizer`
  (`train.resume_optimizer`) also its momentum and step counter. The BN-neck's variables that
  the source lacks or holds at another shape keep their fresh initialisation (logged); every
  other mismatch is an error."""
  variables, step = ckpt_lib.restore_variables(source)
  where = f"train.init_from={source} (step {step})"
  place = lambda h, x: jax.device_put(h, x.sharding)  # noqa: E731
  fresh = []
  host = ckpt_lib.select_by_name(variables, state.variables, where, keep_fresh=FRESH_ON_INIT,
                                 kept=fresh)
  if fresh and with_optimizer:
    raise ValueError(f"{where}: train.resume_optimizer=True continues a run, but the BN-neck "
                     f"does not match it ({fresh[0]}): a fine-tuning on other ids starts its "
                     "own optimizer (train.resume_optimizer=False)")
  loaded = jax.tree.map(place, host, state.variables)
  if fresh:
    logging.warning("%s: kept the fresh initialisation of %d BN-neck variables the source "
                    "lacks or holds at another size (%s): its classifier is for other ids",
                    where, len(fresh), ", ".join(fresh))
  logging.info("initialised params + batch_stats from %s (step %d)", source, step)
  state = state.replace(params=loaded["params"], batch_stats=loaded["batch_stats"])
  if with_optimizer:
    momentum, step = ckpt_lib.restore_optimizer(source, step)
    current = state.opt_state["momentum"]
    host = ckpt_lib.select_by_name(
        momentum, jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), current),
        f"{where}, its momentum")
    state = state.replace(opt_state={"momentum": jax.tree.map(place, host, current)},
                          step=jax.device_put(jnp.asarray(step, state.step.dtype),
                                              state.step.sharding))
    logging.info("continuing its optimizer: SGD momentum and step %d", step)
  return state


def resume_or_init(ckpt, state, config, create=None):
  """(state, resumed step or None): the newest intact checkpoint, else `train.init_from`'s
  weights, else the fresh state — `state` itself, or `create()` where `state` is only its
  abstract form (a resumed run then never compiles the initialiser). Newer steps that do not
  restore are moved aside (never deleted) with a warning, so the resumed run can write those
  steps again."""
  step, tree, meta, broken = ckpt.restore_newest_intact(ts.to_tree(state))
  for bad_step, error in broken:
    where = (ckpt_lib.set_aside(ckpt.directory, bad_step) if jax.process_index() == 0
             else "(process 0 moves it)")
    logging.warning("checkpoint %s/%d is unreadable (%s); moved to %s and %s", ckpt.directory,
                    bad_step, error, where, f"resuming from step {step}" if step is not None
                    else "starting afresh (no intact step is left)")
  if broken:
    ckpt.reload()
  if step is not None:
    state = ts.from_tree(state, tree)
    if not bool(jax.device_get(step_lib.state_is_finite(state))):
      raise FloatingPointError(f"checkpoint {ckpt.directory}/{step} holds non-finite values; "
                               "resume from an earlier step or use a new --workdir")
    logging.info("resumed from %s/%d (attempt %s)", ckpt.directory, step, meta.get("attempts"))
    if config.train.init_from:
      logging.warning("train.init_from=%s is not used: this workdir already has checkpoints "
                      "and resumes from step %d; to start from %s, use a new --workdir",
                      config.train.init_from, step, config.train.init_from)
    return state, step
  if config.train.resume_optimizer and not config.train.init_from:
    raise ValueError("train.resume_optimizer=True needs train.init_from (the run to continue); "
                     "a run in its own workdir always resumes its optimizer")
  if create is not None:
    state = create()
  if config.train.init_from:
    state = load_weights(state, config.train.init_from,
                         with_optimizer=config.train.resume_optimizer)
  return state, None


def check_owner(workdir: str, config) -> None:
  """Refuses a workdir whose checkpoints belong to a differently shaped model.

  Only a finished checkpoint makes a workdir someone's: a run that failed before its first save
  (a config error, say) left a config.json but nothing to protect, so the corrected command may
  reuse the workdir."""
  saved = ckpt_lib.read_config(workdir)
  diff = {} if saved is None else config_lib.architecture_differences(saved, config)
  if diff:
    lines = ", ".join(f"{k}: saved {a!r} vs now {b!r}" for k, (a, b) in diff.items())
    raise ValueError(
        f"workdir {workdir} holds a run with another model architecture ({lines}). "
        "Refusing to resume or overwrite its checkpoints: use a new --workdir "
        "(or train.init_from to start from its weights).")


def open_checkpoints(config, workdir: str) -> ckpt_lib.Checkpointer:
  """WORKDIR's checkpoints, claimed for this config: a workdir of another architecture or
  experiment is refused before anything is built."""
  ckpt = ckpt_lib.Checkpointer(ckpt_lib.checkpoint_dir(workdir),
                               keep=config.train.keep_checkpoints)
  try:
    if ckpt.latest_step() is not None:
      check_owner(workdir, config)
  except BaseException:
    ckpt.close()
    raise
  return ckpt
