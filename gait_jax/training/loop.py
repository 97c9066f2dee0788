"""The one train loop, for supernet training (no `model.path`) and retraining (a fixed path).

Only the path differs. Supernet training samples one path per step on the host
(`train.path_sampler`: `space.sample_path` or `space.fair_path` of (seed, attempt)) and feeds
it to one compiled step as a traced
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

import functools
import os
import time
from typing import Any, NamedTuple, Optional, Tuple

import jax
import numpy as np
from absl import logging

from gait_jax import config as config_lib
from gait_jax.common import checkpoint as ckpt_lib
from gait_jax.common import metric_writer
from gait_jax.models import space
from gait_jax.training import boundaries
from gait_jax.training import reporting
from gait_jax.training import restore
from gait_jax.training import setup
from gait_jax.training import step as step_lib
from gait_jax.training import train_state as ts
from gait_jax.training.evaluator import Evaluator


class Run(NamedTuple):
  """What the loop works with besides the state (all built once, by `train`)."""
  config: Any
  net: setup.Network
  mesh: Any
  ckpt: ckpt_lib.Checkpointer
  writer: Any
  loader: Any
  batches: Any  # iter(loader): (attempt, host batch)
  evaluator: Evaluator
  progress: reporting.Progress


class Last(NamedTuple):
  """The newest dispatched step's path and host batch (for evaluation and TensorBoard)."""
  path: Optional[Tuple[int, ...]]
  batch: Optional[dict]


def train(config, workdir: str, net: setup.Network, optimizer, mesh) -> None:
  """Trains `net` until `train.total_steps` successful steps, resuming from WORKDIR:
  restore → loop (log / save / evaluate at their steps) → final save."""
  ckpt = restore.open_checkpoints(config, workdir)
  try:
    # Opened once, when first needed: a fresh run opens it before its initialiser compiles (a
    # wrong data.root is refused at once), a resumed one after the restore, a finished one never.
    train_split = functools.cache(functools.partial(setup.open_train_split, config))
    fresh = setup.fresh_state(config, net, optimizer, mesh)
    sharding = fresh.sharding

    def create():
      train_split()
      return fresh.create()

    state, resumed = restore.resume_or_init(ckpt, fresh.abstract, config, create)
    if jax.process_index() == 0:
      ckpt_lib.write_config(workdir, config)
    step, skipped = (int(v) for v in jax.device_get((state.step, state.skipped)))
    if step >= config.train.total_steps:
      logging.info("already trained: step %d >= train.total_steps=%d", step,
                   config.train.total_steps)
      return
    train_step = setup.train_step(config, net, optimizer, mesh, sharding)
    _, loader = setup.open_data(config, train_split(), step + skipped, workdir,
                                resumed is not None)
    writer = metric_writer.create_writer(os.path.join(workdir, "tb"),
                                         just_logging=jax.process_index() > 0)
    try:
      if jax.process_index() == 0 and step == 0:
        writer.write_hparams(config.to_dict())
      run = Run(config, net, mesh, ckpt, writer, loader, iter(loader),
                Evaluator(config, net.model, mesh, workdir),
                reporting.Progress(config.train.total_steps, global_batch(config), step))
      _log_start(run, step, skipped)
      if config.train.eval_every and step == 0 and net.fixed and config.train.init_from:
        # Where fine-tuning starts from: the curve's first point is the loaded weights.
        run.evaluator(state, net.fixed, 0, writer)
      step, skipped = loop(run, train_step, state, step, skipped)
    finally:
      loader.close()
      writer.flush()
      writer.close()
  finally:
    ckpt.wait()
    ckpt.close()
  logging.info("training finished at step %d (%d skipped steps)", step, skipped)


def global_batch(config) -> int:
  return config.data.batch_p * config.data.batch_k


def _log_start(run: Run, step: int, skipped: int) -> None:
  c, fixed = run.config, run.net.fixed
  mode = "supernet" if fixed is None else f"retrain path {config_lib.format_path(fixed)}"
  logging.info("training %s (%s) on %d devices / %d processes, global batch %d, dtype %s, "
               "from step %d (attempt %d) to %d", c.model.name, mode, run.mesh.devices.size,
               jax.process_count(), global_batch(c), c.train.dtype, step, step + skipped,
               c.train.total_steps)


def loop(run: Run, train_step, state: ts.TrainState, step: int, skipped: int
         ) -> Tuple[int, int]:
  """Dispatches steps until `train.total_steps`; returns the final (step, skipped).

  Up to two steps are in flight; results are read back only when the loop must act on the
  exact state (log / save / evaluate / stop) or to keep that bound."""
  t = run.config.train
  bounds = boundaries.Boundaries(t.total_steps, (t.log_every, t.save_every, t.eval_every))
  attempt = step + skipped
  pending = []  # info of dispatched steps not yet read back, oldest first
  acted_at = step  # the step count whose periodic actions already ran
  accum, last, compiled = None, Last(None, None), False
  while True:
    # Sync only when the steps in flight could reach a boundary: then the exact count is
    # needed before the next dispatch donates the state.
    if pending and step + len(pending) >= bounds.next_after(acted_at):
      for info in pending:
        step, skipped, accum = read_back(run, info, accum)
      pending = []
    if not pending and step != acted_at and bounds.is_boundary(step):
      acted_at = step
      accum = act(run, state, step, skipped, accum, last)
    if not pending and step >= t.total_steps:
      return step, skipped
    while len(pending) >= 2:  # keep at most two steps in flight
      step, skipped, accum = read_back(run, pending.pop(0), accum)
    t0 = time.monotonic()
    if not compiled:
      logging.info("compiling the train step, this may take a minute...")
    state, info, last = dispatch(run, train_step, state, attempt)
    if compiled:
      pending.append(info)
    else:
      step, skipped, accum = read_back(run, info, accum)  # waits for the compile
      _compiled(run, step, time.monotonic() - t0)
      compiled = True
    attempt += 1


def _compiled(run: Run, step: int, seconds: float) -> None:
  logging.info("train step compiled and ran in %.1f s", seconds)
  if jax.process_index() == 0:
    run.writer.write_scalars(step, {"train/compile_time_s": seconds})
  run.progress.start(step)  # throughput is measured from here on


def dispatch(run: Run, train_step, state: ts.TrainState, attempt: int):
  """Feeds batch `attempt` (and its path) to the step: (new state, info, Last)."""
  got, batch = next(run.batches)
  if got != attempt:
    raise RuntimeError(f"loader yielded batch {got}, expected {attempt}")
  c = run.config
  path = run.net.fixed or space.PATH_SAMPLERS[c.train.path_sampler](c.model.choice_max_num,
                                                                      c.seed, attempt)
  state, info = train_step(state, *step_lib.device_inputs(batch, path, run.mesh))
  return state, info, Last(tuple(path), batch)


def read_back(run: Run, info, accum):
  """One finished step's (step, skipped, metrics merged into `accum`); too many non-finite
  steps in a row stop the run."""
  host = jax.device_get(info)
  step, skipped = int(host["step"]), int(host["skipped"])
  if not bool(host["ok"]):
    bad, limit = int(host["bad_run"]), run.config.train.max_bad_steps
    logging.warning("non-finite loss, gradients or update (loss=%s): step skipped (%d in a "
                    "row, %d in total) at step %d", host["loss"], bad, skipped, step)
    if bad >= limit:
      raise FloatingPointError(
          f"training stopped at step {step} (batch {step + skipped - 1}): {bad} consecutive "
          "steps had a non-finite loss, gradients or updated parameters "
          f"(train.max_bad_steps={limit}; last loss {host['loss']}). Lower optim.lr or set "
          "optim.clip.type" + ("." if run.config.train.dtype == "float32"
                               else ", or use train.dtype=float32."))
  m = host["metrics"]
  return step, skipped, m if accum is None else {k: accum[k].merge(v) for k, v in m.items()}


def act(run: Run, state, step: int, skipped: int, accum, last: Last):
  """Log / save / evaluate at an exact step count (the state is not yet donated); returns the
  metric accumulator (emptied by a log)."""
  t = run.config.train
  if t.log_every and (step % t.log_every == 0 or step == t.total_steps):
    log(run, step, skipped, accum, last)
    accum = None
  if (t.save_every and step % t.save_every == 0) or step == t.total_steps:
    save(run, state, step, skipped)
  if t.eval_every and step % t.eval_every == 0 and last.path is not None:
    run.evaluator(state, last.path, step, run.writer)
  run.writer.flush()
  return accum


def log(run: Run, step: int, skipped: int, accum, last: Last) -> None:
  t = run.config.train
  rates = run.progress.report(step)
  values = {k: float(v.compute()) for k, v in (accum or {}).items()
            if int(np.asarray(v.count)) > 0}
  scalars = {f"train/{k}": v for k, v in values.items()}
  scalars["train/skipped_steps"] = skipped
  scalars["train/data_wait_fraction"] = run.loader.wait_fraction  # since the last log
  run.loader.reset_wait_stats()
  if rates:
    scalars["train/seq_per_s"] = rates["seq_per_s"]
    scalars["train/step_time_s"] = rates["step_time"]
  run.writer.write_scalars(step, scalars)
  logging.info(
      "step %d/%d | loss %.4f | lr %.3g | %s seq/s | data wait %.0f%% | skipped %d | ETA %s",
      step, t.total_steps, values.get("loss", float("nan")), values.get("lr", float("nan")),
      f"{rates['seq_per_s']:.1f}" if rates else "-",
      100 * scalars["train/data_wait_fraction"], skipped,
      reporting.format_eta(rates["eta_s"]) if rates else "?")
  image_every = t.image_every or max(t.log_every, 1) * 10
  if jax.process_index() == 0 and last.batch is not None and (
      step % image_every == 0 or step == t.log_every):
    run.writer.write_images(step, {"train/silhouettes": reporting.silhouette_grid(
        last.batch["sils"])})
    if last.path is not None:
      run.writer.write_texts(step, {"train/path": config_lib.format_path(last.path)})


def save(run: Run, state: ts.TrainState, step: int, skipped: int) -> None:
  # The step refuses non-finite updates, so this only trips on weights that came in broken
  # (train.init_from); a poisoned state is never written.
  if not bool(jax.device_get(step_lib.state_is_finite(state))):
    raise FloatingPointError(f"refusing to save step {step}: the train state holds "
                             "non-finite values (check train.init_from's weights)")
  fixed = run.net.fixed
  run.ckpt.save(step, ts.to_tree(state), {
      "step": step, "attempts": step + skipped, "skipped": skipped,
      "model_path": config_lib.format_path(fixed) if fixed else "",
      "experiment": run.config.experiment})
