"""The one train loop, for supernet training (no `model.path`) and retraining (a fixed path).

Only the path differs. Supernet training samples one path per step on the host
(`sample_path(choice_max_num, seed, attempt)`) and feeds it to one compiled step as a traced
int32 array; retraining builds only the fixed path's ops.

Counting: `state.step` counts *successful* steps (schedule, saves, stop), as the reference's
iteration counter. A step with a non-finite loss, gradient or update is skipped (state
unchanged) but consumes its batch; `attempt = step + skipped` indexes batches and paths, so both
are pure functions of (seed, attempt) and a resumed run replays exactly what an uninterrupted
one does.

Dispatch: up to two steps are in flight; the loop reads a step's results back only when it must
act on the exact state (log / save / evaluate / stop) or to keep that bound.
"""
from __future__ import annotations

import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from gait_jax import config as config_lib
from gait_jax.common import checkpoint as ckpt_lib
from gait_jax.common import metric_writer
from gait_jax.common import parallel
from gait_jax.models import space
from gait_jax.training import reporting
from gait_jax.training import setup
from gait_jax.training import state as ts
from gait_jax.training import step as step_lib
from gait_jax.training.evaluator import Evaluator

_STEP_CACHE = {}  # repeated runs in one process (tests, notebooks) reuse the compiled step


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


def resume_or_init(ckpt, state, config):
  """(state, resumed step or None): the newest intact checkpoint, else `train.init_from`'s
  weights, else `state` as it is. Newer steps that do not restore are moved aside (never
  deleted) with a warning, so the resumed run can write those steps again."""
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
  if config.train.init_from:
    state = load_weights(state, str(config.train.init_from),
                         with_optimizer=bool(config.train.resume_optimizer))
  elif config.train.resume_optimizer:
    raise ValueError("train.resume_optimizer=True needs train.init_from (the run to continue); "
                     "a run in its own workdir always resumes its optimizer")
  return state, None


class Trainer:
  """Trains `net` until `train.total_steps` successful steps, resuming from WORKDIR."""

  def __init__(self, config, workdir: str, net: setup.Network, optimizer, mesh, dtype):
    self.config, self.workdir, self.net = config, workdir, net
    self.optimizer, self.mesh, self.dtype = optimizer, mesh, dtype
    self.is_main = jax.process_index() == 0
    self.total = int(config.train.total_steps)
    self.global_batch = int(config.data.batch_p) * int(config.data.batch_k)
    self.space = tuple(int(m) for m in config.model.choice_max_num)
    t = config.train
    self.log_every, self.save_every = int(t.log_every), int(t.save_every)
    self.eval_every = int(t.eval_every)
    self.image_every = int(t.image_every) or max(self.log_every, 1) * 10
    self.accum, self.last_path, self.last_batch = None, None, None

  # -- state ------------------------------------------------------------------------------

  def _restore(self) -> bool:
    """Workdir ownership, then the state (resumed, init_from or fresh); False when done."""
    c = self.config
    self.ckpt = ckpt_lib.Checkpointer(ckpt_lib.checkpoint_dir(self.workdir),
                                      keep=int(c.train.keep_checkpoints))
    ckpt_lib.check_owner(self.workdir, c, has_checkpoint=self.ckpt.latest_step() is not None)
    frames = int(c.data.frames) if str(c.data.sample_type).startswith("fixed") else (
        int(c.data.frames_max))
    state, self.sharding = step_lib.init_state(
        self.net.model, self.optimizer, self.mesh, seed=int(c.seed), frames=frames,
        fixed_path=self.net.fixed, path_len=len(self.space),
        float16=self.dtype == jnp.float16)
    self.state, self.resumed = resume_or_init(self.ckpt, state, c)
    if self.is_main:
      ckpt_lib.write_config(self.workdir, c)
    self.step, self.skipped = (int(v) for v in jax.device_get((self.state.step,
                                                               self.state.skipped)))
    if self.step >= self.total:
      logging.info("already trained: step %d >= train.total_steps=%d", self.step, self.total)
      return False
    return True

  def _compiled_step(self):
    c, net = self.config, self.net
    use_lengths = not str(c.data.sample_type).startswith("fixed")
    float16 = self.dtype == jnp.float16
    key = (repr(net.model), c.optim.to_json(), c.loss.to_json(), net.fixed, use_lengths,
           float16, tuple(d.id for d in self.mesh.devices.flat), repr(self.sharding))
    if key not in _STEP_CACHE:
      fn = step_lib.make_train_step(net.model, self.optimizer, net.loss_fn, fixed_path=net.fixed,
                                    mask_fn=net.mask_fn, use_lengths=use_lengths,
                                    float16=float16)
      _STEP_CACHE.clear()  # one at a time: executables hold memory
      _STEP_CACHE[key] = step_lib.jit_train_step(fn, self.mesh, self.sharding)
    return _STEP_CACHE[key]

  # -- reading back and acting ----------------------------------------------------------

  def _resolve(self, info) -> None:
    """Reads back one finished step: counters, bad-step check, metric accumulation."""
    host = jax.device_get(info)
    self.step, self.skipped = int(host["step"]), int(host["skipped"])
    if not bool(host["ok"]):
      bad, limit = int(host["bad_run"]), int(self.config.train.max_bad_steps)
      logging.warning("non-finite loss, gradients or update (loss=%s): step skipped (%d in a "
                      "row, %d in total) at step %d", host["loss"], bad, self.skipped, self.step)
      if bad >= limit:
        raise FloatingPointError(
            f"training stopped at step {self.step} (batch {self.step + self.skipped - 1}): "
            f"{bad} consecutive steps had a non-finite loss, gradients or updated parameters "
            f"(train.max_bad_steps={limit}; last loss {host['loss']}). Lower optim.lr or set "
            "optim.clip.type" + ("." if self.dtype == jnp.float32
                                 else ", or use train.dtype=float32."))
    m = host["metrics"]
    self.accum = m if self.accum is None else {k: self.accum[k].merge(v) for k, v in m.items()}

  def _log(self, step: int) -> None:
    rates = self.progress.report(step)
    values = {k: float(v.compute()) for k, v in (self.accum or {}).items()
              if int(np.asarray(v.count)) > 0}
    self.accum = None
    scalars = {f"train/{k}": v for k, v in values.items()}
    scalars["train/skipped_steps"] = self.skipped
    scalars["train/data_wait_fraction"] = self.loader.wait_fraction  # since the last log
    self.loader.reset_wait_stats()
    if rates:
      scalars["train/seq_per_s"] = rates["seq_per_s"]
      scalars["train/step_time_s"] = rates["step_time"]
    self.writer.write_scalars(step, scalars)
    logging.info(
        "step %d/%d | loss %.4f | lr %.3g | %s seq/s | data wait %.0f%% | skipped %d | ETA %s",
        step, self.total, values.get("loss", float("nan")), values.get("lr", float("nan")),
        f"{rates['seq_per_s']:.1f}" if rates else "-",
        100 * scalars["train/data_wait_fraction"], self.skipped,
        reporting.format_eta(rates["eta_s"]) if rates else "?")
    if self.is_main and self.last_batch is not None and self.image_every and (
        step % self.image_every == 0 or step == self.log_every):
      grid = reporting.silhouette_grid(self.last_batch["sils"])
      self.writer.write_images(step, {"train/silhouettes": grid})
      if self.last_path is not None:
        self.writer.write_texts(step, {"train/path": config_lib.format_path(self.last_path)})

  def _save(self, step: int) -> None:
    # The step refuses non-finite updates, so this only trips on weights that came in broken
    # (train.init_from); a poisoned state is never written.
    if not bool(jax.device_get(step_lib.state_is_finite(self.state))):
      raise FloatingPointError(f"refusing to save step {step}: the train state holds "
                               "non-finite values (check train.init_from's weights)")
    fixed = self.net.fixed
    self.ckpt.save(step, ts.to_tree(self.state), {
        "step": step, "attempts": step + self.skipped, "skipped": self.skipped,
        "model_path": config_lib.format_path(fixed) if fixed else "",
        "experiment": str(self.config.experiment)})

  def _periodic(self, step: int) -> None:
    """Log / save / evaluate at an exact step count (the state is not yet donated)."""
    if self.log_every and (step % self.log_every == 0 or step == self.total):
      self._log(step)
    if (self.save_every and step % self.save_every == 0) or step == self.total:
      self._save(step)
    if self.eval_every and step % self.eval_every == 0 and self.last_path is not None:
      self.evaluator(self.state, self.last_path, step, self.writer)
    self.writer.flush()

  # -- the loop ---------------------------------------------------------------------------

  def _dispatch(self, train_step, attempt: int):
    got, batch = next(self.batches)
    if got != attempt:
      raise RuntimeError(f"loader yielded batch {got}, expected {attempt}")
    fixed = self.net.fixed
    path = fixed if fixed is not None else space.sample_path(self.space, int(self.config.seed),
                                                             attempt)
    device_batch = parallel.global_batch(batch, self.mesh, step_lib.DEVICE_KEYS)
    path_arr = parallel.global_array(np.asarray(path, np.int32), parallel.replicated(self.mesh))
    self.state, info = train_step(self.state, device_batch, path_arr)
    self.last_path, self.last_batch = path, batch
    return info

  def _compile_and_run_first(self, train_step, attempt: int) -> None:
    logging.info("compiling the train step, this may take a minute...")
    t0 = time.monotonic()
    self._resolve(self._dispatch(train_step, attempt))  # waits for the compile
    logging.info("train step compiled and ran in %.1f s", time.monotonic() - t0)
    if self.is_main:
      self.writer.write_scalars(self.step, {"train/compile_time_s": time.monotonic() - t0})
    self.progress.start(self.step)  # throughput is measured from here on

  def _loop(self, train_step) -> None:
    bounds = reporting.Boundaries(self.total, (self.log_every, self.save_every,
                                               self.eval_every))
    attempt = self.step + self.skipped
    pending = []  # info of dispatched steps not yet read back, oldest first
    acted_at = self.step  # the step count whose periodic actions already ran
    compiled = False
    while True:
      # Sync only when the steps in flight could reach a boundary: then the exact count is
      # needed before the next dispatch donates the state.
      if pending and self.step + len(pending) >= bounds.next_after(acted_at):
        for info in pending:
          self._resolve(info)
        pending = []
      if not pending and self.step != acted_at and bounds.is_boundary(self.step):
        acted_at = self.step
        self._periodic(self.step)
      if not pending and self.step >= self.total:
        return
      while len(pending) >= 2:  # keep at most two steps in flight
        self._resolve(pending.pop(0))
      if not compiled:
        self._compile_and_run_first(train_step, attempt)
        compiled = True
      else:
        pending.append(self._dispatch(train_step, attempt))
      attempt += 1

  def run(self) -> None:
    if not self._restore():
      self.ckpt.close()
      return
    train_step = self._compiled_step()
    c, net = self.config, self.net
    self.writer = metric_writer.create_writer(os.path.join(self.workdir, "tb"),
                                              just_logging=not self.is_main)
    if self.is_main and self.step == 0:
      self.writer.write_hparams(c.to_dict())
    self.progress = reporting.Progress(self.total, self.global_batch, self.step)
    self.evaluator = Evaluator(c, net.model, self.mesh, self.workdir)
    _, self.loader = setup.open_data(c, self.step + self.skipped, self.workdir,
                                     self.resumed is not None)
    self.batches = iter(self.loader)
    mode = "supernet" if net.fixed is None else (
        f"retrain path {config_lib.format_path(net.fixed)}")
    logging.info("training %s (%s) on %d devices / %d processes, global batch %d, dtype %s, "
                 "from step %d (attempt %d) to %d", c.model.name, mode, self.mesh.devices.size,
                 jax.process_count(), self.global_batch, c.train.dtype, self.step,
                 self.step + self.skipped, self.total)
    try:
      if self.eval_every and self.step == 0 and net.fixed is not None and c.train.init_from:
        # Where fine-tuning starts from: the curve's first point is the loaded weights.
        self.evaluator(self.state, net.fixed, 0, self.writer)
      self._loop(train_step)
    finally:
      self.loader.close()
      self.ckpt.wait()
      self.ckpt.close()
      self.writer.flush()
      self.writer.close()
    logging.info("training finished at step %d (%d skipped steps)", self.step, self.skipped)
