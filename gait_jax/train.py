"""`--config.mode=train`: supernet training (no `model.path`) and retraining (fixed path).

One loop for both; only the path differs. Supernet training samples one path per step on
the host (`sample_path(choice_max_num, seed, attempt)`) and feeds it to one compiled step as
a traced int32 array; retraining builds only the fixed path's ops (`fixed_path=`).

Sections: the step function / state set-up / checkpoints / logging / the loop.

Counting: `state.step` counts *successful* steps (schedule, saves, stop), as the reference's
iteration counter. A step with a non-finite loss or gradient is skipped (state unchanged) but
consumes its batch; `attempt = step + skipped` indexes batches and paths, so both are pure
functions of (seed, attempt) and a resumed run replays exactly what an uninterrupted one does.
"""
from __future__ import annotations

import functools
import math
import os
import time
from typing import Any, Callable, Dict, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from clu import metrics as clu_metrics

from gait_jax import checkpoint as ckpt_lib
from gait_jax import configuration
from gait_jax import mesh as mesh_lib
from gait_jax import metric_writer
from gait_jax import optim
from gait_jax import train_state as ts
from gait_jax import workdir_lock

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}
INPUT_HW = (64, 44)  # silhouettes after base_sil_cutting
DEVICE_KEYS = ("sils", "labels", "lengths")
_STEP_CACHE = {}
FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def compute_dtype(config):
  name = str(config.train.dtype)
  if name not in DTYPES:
    raise ValueError(f"train.dtype={name!r}: expected one of {sorted(DTYPES)}")
  return DTYPES[name]


# -- The step function ---------------------------------------------------------------------

def _all_finite(tree) -> jax.Array:
  leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]
  return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


def _masked(mask_fn, new, old, path):
  """`new` on the leaves the path used, `old` elsewhere."""
  if mask_fn is None:
    return new
  mask = mask_fn(new, path)
  return jax.tree.map(lambda m, a, b: jnp.where(m, a, b), mask, new, old)


def make_train_step(model, optimizer: optim.SGD, loss_fn: Callable, *,
                    fixed_path: Optional[Sequence[int]] = None,
                    mask_fn: Optional[Callable] = None, use_lengths: bool = False,
                    float16: bool = False):
  """A pure `step(state, batch, path) -> (state, info)`.

  model: a Flax module `apply(variables, sils, path, lengths=, train=, mutable=)`.
  loss_fn: `(outputs, labels) -> (total, {name: scalar})`.
  fixed_path: retraining — the model's static path (`path` argument ignored); None = supernet,
    `path` is a traced int32 [L].
  mask_fn: `path_mask(tree, path)`; with a supernet it limits updates (parameters, momentum,
    BN statistics) to the ops the path selected.
  float16: dynamic loss scaling as torch's GradScaler.

  A non-finite loss, gradient or updated state (parameters, optimizer state, BN statistics)
  leaves the state unchanged except the counters (`skipped`, `bad_run`, and the loss scale
  backs off). `info` holds clu metrics (masked by success) and
  the scalars the host loop needs.
  """
  supernet = fixed_path is None
  if not supernet:
    fixed_path = tuple(int(v) for v in fixed_path)
    mask_fn = None

  def step(state: ts.TrainState, batch: Dict[str, jax.Array], path: jax.Array):
    model_path = path if supernet else fixed_path
    sils = batch["sils"]
    if sils.dtype == jnp.uint8:  # the loader may ship cut uint8 frames to save bandwidth
      sils = sils.astype(jnp.float32) / 255.0
    lengths = batch["lengths"] if use_lengths else None

    def objective(params):
      out, updated = model.apply({"params": params, "batch_stats": state.batch_stats}, sils,
                                 model_path, lengths=lengths, train=True,
                                 mutable=["batch_stats"])
      total, terms = loss_fn(out, batch["labels"])
      total = total.astype(jnp.float32)
      return total * state.loss_scale, (total, terms, updated.get("batch_stats", {}))

    grads, (loss, terms, batch_stats) = jax.grad(objective, has_aux=True)(state.params)
    grads = jax.tree.map(lambda g: g / state.loss_scale, grads)

    mask = None if mask_fn is None else mask_fn(state.params, path)
    params, opt_state, lr = optimizer.update(state.params, grads, state.opt_state, state.step,
                                             mask)
    batch_stats = _masked(mask_fn, batch_stats, state.batch_stats, path)
    # A finite loss and gradient can still overflow the update (a huge learning rate): the
    # new parameters, momentum and BN statistics must be finite too, or the step is skipped.
    finite = (jnp.isfinite(loss) & _all_finite(grads) & _all_finite(params)
              & _all_finite(opt_state) & _all_finite(batch_stats))
    updated = state.replace(params=params, batch_stats=batch_stats, opt_state=opt_state,
                            step=state.step + 1)
    new_state = ts.select(finite, updated, state)

    one = jnp.ones((), jnp.int32)
    if float16:
      grow = finite & (state.good_run + 1 >= ts.FP16_GROWTH_INTERVAL)
      scale = jnp.where(finite, jnp.where(grow, state.loss_scale * 2, state.loss_scale),
                        state.loss_scale * 0.5)
      good_run = jnp.where(finite & ~grow, state.good_run + 1, 0)
    else:
      scale, good_run = state.loss_scale, state.good_run
    new_state = new_state.replace(
        skipped=state.skipped + jnp.where(finite, 0, one),
        bad_run=jnp.where(finite, 0, state.bad_run + 1),
        loss_scale=scale, good_run=good_run)

    scalars = dict(terms)
    scalars["lr"] = lr
    scalars["grad_norm"] = optim.global_norm(grads)
    scalars["param_norm"] = optim.global_norm(new_state.params)
    ok = finite.reshape(1)
    info = {
        "metrics": {k: clu_metrics.Average.from_model_output(
            jnp.asarray(v, jnp.float32).reshape(1), mask=ok) for k, v in scalars.items()},
        "ok": finite, "loss": loss, "step": new_state.step, "skipped": new_state.skipped,
        "bad_run": new_state.bad_run, "loss_scale": new_state.loss_scale,
    }
    return new_state, info

  return step


def jit_train_step(step_fn, mesh, state_sharding, batch_keys=DEVICE_KEYS):
  """The step jitted over the mesh: state replicated (and donated), batch sharded on "data"."""
  data = mesh_lib.data_sharding(mesh)
  rep = mesh_lib.replicated(mesh)
  return jax.jit(step_fn, in_shardings=(state_sharding, {k: data for k in batch_keys}, rep),
                 out_shardings=(state_sharding, rep), donate_argnums=0)


# -- State set-up ---------------------------------------------------------------------------

def init_state(model, optimizer: optim.SGD, mesh, *, seed: int, frames: int,
               fixed_path: Optional[Sequence[int]], path_len: int, float16: bool = False):
  """A fresh replicated TrainState (identical on every process: same seed)."""
  rep = mesh_lib.replicated(mesh)

  def make(rng):
    sils = jnp.zeros((2, frames) + INPUT_HW, jnp.float32)
    path = tuple(fixed_path) if fixed_path is not None else jnp.zeros((path_len,), jnp.int32)
    variables = model.init(rng, sils, path, train=False)
    params = variables["params"]
    batch_stats = variables.get("batch_stats", {})
    return ts.create(params, batch_stats, optimizer.init(params), float16=float16)

  key = jax.random.key(seed)
  abstract = jax.eval_shape(make, key)
  sharding = jax.tree.map(lambda _: rep, abstract)
  # Initialisation runs once, and the inlined RNG makes a huge elementwise graph that
  # XLA:CPU's optimising backend takes minutes over: compile it unoptimised (~7x faster).
  init = jax.jit(make, out_shardings=sharding).lower(key).compile(compiler_options=(
      FAST_COMPILE if jax.default_backend() == "cpu" else None))
  return init(key), sharding


def load_weights(state: ts.TrainState, source: str) -> ts.TrainState:
  """`train.init_from`: params + batch_stats from another run, by name. Extra entries in the
  source (e.g. a supernet's other candidates when retraining one path) are ignored; a missing
  or mis-shaped entry is an error naming it."""
  variables, step = ckpt_lib.restore_variables(source)
  target = state.variables
  errors = []

  def take(key_path, leaf):
    node = variables
    for k in key_path:
      name = getattr(k, "key", getattr(k, "name", k))
      if not isinstance(node, dict) or name not in node:
        errors.append(f"missing {jax.tree_util.keystr(key_path)}")
        return leaf
      node = node[name]
    if np.shape(node) != leaf.shape:
      errors.append(f"{jax.tree_util.keystr(key_path)}: shape {np.shape(node)} in the source, "
                    f"{leaf.shape} in this model")
      return leaf
    return jax.device_put(np.asarray(node, leaf.dtype), leaf.sharding)

  loaded = jax.tree_util.tree_map_with_path(take, target)
  if errors:
    raise ValueError(f"train.init_from={source}: weights do not fit this model "
                     f"({len(errors)} problems): " + "; ".join(errors[:8]))
  logging.info("initialised params + batch_stats from %s (step %d)", source, step)
  return state.replace(params=loaded["params"], batch_stats=loaded["batch_stats"])


def check_workdir(workdir: str, config, has_checkpoint: bool) -> None:
  """Refuses a workdir whose checkpoints belong to a differently shaped model.

  Only a finished checkpoint makes a workdir someone's: a run that failed before its first save
  (a config error, say) left a config.json but nothing to protect, so the corrected command may
  reuse the workdir."""
  saved = ckpt_lib.read_config(workdir)
  if saved is None or not has_checkpoint:
    return
  diff = ckpt_lib.architecture_differences(saved, config)
  if diff:
    lines = ", ".join(f"{k}: saved {a!r} vs now {b!r}" for k, (a, b) in diff.items())
    raise ValueError(
        f"workdir {workdir} holds a run with another model architecture ({lines}). "
        "Refusing to resume or overwrite its checkpoints: use a new --workdir "
        "(or train.init_from to start from its weights).")


# -- Logging helpers ---------------------------------------------------------------------

class Progress:
  """Steps/s, sequences/s and ETA between reports (clu's ReportProgress needs TensorFlow)."""

  def __init__(self, total_steps: int, global_batch: int, start_step: int):
    self.total = total_steps
    self.global_batch = global_batch
    self.last_step, self.last_time = start_step, None
    self.rates = []

  def start(self, step: int):
    self.last_step, self.last_time = step, time.monotonic()

  def report(self, step: int) -> Dict[str, float]:
    now = time.monotonic()
    out = {}
    if self.last_time is not None and step > self.last_step:
      dt = now - self.last_time
      steps = step - self.last_step
      out = {"steps_per_s": steps / dt, "seq_per_s": steps * self.global_batch / dt,
             "step_time": dt / steps}
      out["eta_s"] = (self.total - step) * out["step_time"]
    self.last_step, self.last_time = step, now
    return out


def format_eta(seconds: float) -> str:
  if not math.isfinite(seconds):
    return "?"
  seconds = int(seconds)
  h, rem = divmod(seconds, 3600)
  m, s = divmod(rem, 60)
  return f"{h}:{m:02d}:{s:02d}"


def silhouette_grid(sils: np.ndarray, rows: int = 4, cols: int = 8) -> np.ndarray:
  """[1, rows*H, cols*W, 1] float in [0, 1]: the first frames of the first sequences."""
  sils = np.asarray(sils, np.float32)
  if sils.max(initial=0.0) > 1.0:
    sils = sils / 255.0
  n, t, h, w = sils.shape
  rows, cols = min(rows, n), min(cols, t)
  grid = sils[:rows, :cols].transpose(0, 2, 1, 3).reshape(rows * h, cols * w)
  return grid[None, :, :, None]


# -- The loop --------------------------------------------------------------------------------

class _Boundaries:
  """Step counts at which the loop must look at the exact state (log/save/eval/end)."""

  def __init__(self, total: int, every: Sequence[int]):
    self.total = total
    self.every = [int(e) for e in every if e and e > 0]

  def is_boundary(self, step: int) -> bool:
    return step >= self.total or any(step % e == 0 for e in self.every)

  def next_after(self, step: int) -> int:
    cands = [self.total] + [(step // e + 1) * e for e in self.every]
    return min(c for c in cands if c > step) if step < self.total else step


def _build_model_and_loss(config, dtype):
  from gait_jax.losses import compute_losses  # pylint: disable=g-import-not-at-top
  from gait_jax.models import build_model, path_mask  # pylint: disable=g-import-not-at-top
  fixed = configuration.model_path(config)
  model = build_model(config.model, bnneck=configuration.use_bnneck(config), fixed_path=fixed,
                      dtype=dtype)
  loss_fn = functools.partial(_loss, compute_losses, config.loss)
  return model, loss_fn, path_mask, fixed


def _loss(compute_losses, loss_cfg, outputs, labels):
  return compute_losses(outputs, labels, loss_cfg)


def _open_data(config, start_attempt: int, workdir: str, resumed: bool):
  from gait_jax.data.dataset import GaitDataset  # pylint: disable=g-import-not-at-top
  from gait_jax.data.loader import TrainLoader  # pylint: disable=g-import-not-at-top
  if not config.data.root or not config.data.partition:
    raise ValueError("config.data.root and config.data.partition must name the silhouette "
                     f"root and partition file (got root={config.data.root!r}, "
                     f"partition={config.data.partition!r})")
  dataset = GaitDataset(config.data.root, config.data.partition, split="train",
                        num_train=int(config.data.num_train), cache=bool(config.data.cache))
  if configuration.model_path(config) is None:
    # A supernet never sees the ids its search scores paths on (search.val_ids); the split is
    # recorded in the workdir, where search reads it and a resumed run keeps it.
    from gait_jax import validation_split  # pylint: disable=g-import-not-at-top
    train_ids, val_ids = validation_split.supernet_split(config, dataset.label_set, workdir,
                                                         resumed)
    logging.info("supernet training on %d ids; %d held out for the search fitness",
                 len(train_ids), len(val_ids))
    dataset = GaitDataset(config.data.root, config.data.partition, split="train",
                          num_train=int(config.data.num_train), cache=bool(config.data.cache),
                          ids=train_ids)
  if configuration.use_bnneck(config) and len(dataset.label_set) > int(config.model.class_num):
    raise ValueError(f"model.class_num={config.model.class_num} but the training set has "
                     f"{len(dataset.label_set)} ids (set model.class_num or data.num_train)")
  loader = TrainLoader(dataset, config.data, seed=int(config.seed), start_step=start_attempt,
                       process_index=jax.process_index(), process_count=jax.process_count())
  return dataset, loader


class Evaluator:
  """`train.eval_every` (reference with_test): embeds the test split with the current path
  (`embed.embed_dataset`) and runs `evaluate.protocol` (`protocols.run_protocol`); scalars go
  to TensorBoard under eval/. The dataset and the jitted embed function are built once."""

  def __init__(self, config, model, mesh):
    self.config, self.model, self.mesh = config, model, mesh
    self._ready = None

  def _setup(self):
    try:
      from gait_jax import embed as embed_lib  # pylint: disable=g-import-not-at-top
      from gait_jax.data.dataset import GaitDataset  # pylint: disable=g-import-not-at-top
      from gait_jax.evaluation import protocols  # pylint: disable=g-import-not-at-top
    except ImportError as e:
      logging.warning("train.eval_every is set but evaluation is unavailable (%s)", e)
      return False
    c = self.config
    root = c.embed.root or c.data.root
    partition = c.embed.partition or c.data.partition
    self.dataset = GaitDataset(root, partition, split=c.embed.split, cache=False)
    self.embed_lib, self.protocols = embed_lib, protocols
    self.embed_fn = embed_lib.make_embed_fn(self.model, self.mesh)
    self.limit = int(c.embed.frames_all_limit or c.data.test_frames_all_limit or 0)
    return True

  def __call__(self, state, path, step, writer) -> dict:
    if self._ready is None:
      self._ready = self._setup()
    if not self._ready:
      return {}
    c = self.config
    t0 = time.monotonic()
    out = self.embed_lib.embed_dataset(
        self.model, state.variables, self.dataset, tuple(int(v) for v in path),
        batch_per_device=int(c.embed.batch), frames_all_limit=self.limit, mesh=self.mesh,
        embed_fn=self.embed_fn, workers=max(1, int(c.data.workers)), progress=False)
    metrics, table = self.protocols.run_protocol(
        c.evaluate.protocol, out["embeddings"], out["labels"], out["types"], out["views"],
        c.evaluate)
    logging.info("evaluation at step %d with path %s (%.1f s):\n%s", step,
                 configuration.format_path(path), time.monotonic() - t0, table)
    scalars = {f"eval/{k}": float(v) for k, v in metrics.items()
               if isinstance(v, (int, float, np.floating, np.integer))}
    writer.write_scalars(step, scalars)
    return metrics


def run(config, workdir: str) -> None:
  """Trains until `train.total_steps` successful steps, resuming from WORKDIR/checkpoints."""
  workdir = os.path.abspath(workdir)
  dtype = compute_dtype(config)
  total = int(config.train.total_steps)
  if total < 1:
    raise ValueError(f"train.total_steps={total}: expected a positive number of steps")
  global_batch = int(config.data.batch_p) * int(config.data.batch_k)

  # Mesh and model.
  mesh = mesh_lib.make_mesh()
  mesh_lib.check_batch_size(global_batch, mesh)
  model, loss_fn, path_mask, fixed = _build_model_and_loss(config, dtype)
  optimizer = optim.SGD(config.optim)
  from gait_jax.models import sample_path  # pylint: disable=g-import-not-at-top
  frames = int(config.data.frames) if str(config.data.sample_type).startswith("fixed") else (
      int(config.data.frames_max))

  with workdir_lock.hold(workdir, "train"):
    _run_locked(config, workdir, mesh, model, loss_fn, path_mask, fixed, optimizer, sample_path,
                frames, dtype)


def resume_or_init(ckpt, state, config, workdir: str):
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
    if not bool(jax.device_get(_state_is_finite(state))):
      raise FloatingPointError(f"checkpoint {ckpt.directory}/{step} holds non-finite values; "
                               "resume from an earlier step or use a new --workdir")
    logging.info("resumed from %s/%d (attempt %s)", ckpt.directory, step, meta.get("attempts"))
    return state, step
  if config.train.init_from:
    state = load_weights(state, str(config.train.init_from))
  return state, None


@jax.jit
def _state_is_finite(state) -> jax.Array:
  return _all_finite((state.params, state.batch_stats, state.opt_state))


def _run_locked(config, workdir, mesh, model, loss_fn, path_mask, fixed, optimizer, sample_path,
                frames, dtype):
  is_main = jax.process_index() == 0
  float16 = dtype == jnp.float16
  total = int(config.train.total_steps)
  max_bad = int(config.train.max_bad_steps)
  global_batch = int(config.data.batch_p) * int(config.data.batch_k)
  seed = int(config.seed)
  choice_max_num = tuple(int(m) for m in config.model.choice_max_num)

  # Workdir ownership, then state: resumed, init_from, or fresh.
  ckpt = ckpt_lib.Checkpointer(ckpt_lib.checkpoint_dir(workdir),
                               keep=int(config.train.keep_checkpoints))
  check_workdir(workdir, config, has_checkpoint=ckpt.latest_step() is not None)
  state, sharding = init_state(model, optimizer, mesh, seed=seed, frames=frames,
                               fixed_path=fixed, path_len=len(choice_max_num), float16=float16)
  state, resumed = resume_or_init(ckpt, state, config, workdir)
  if is_main:
    ckpt_lib.write_config(workdir, config)

  step_host, skipped_host = (int(v) for v in jax.device_get((state.step, state.skipped)))
  attempt = step_host + skipped_host
  if step_host >= total:
    logging.info("already trained: step %d >= train.total_steps=%d", step_host, total)
    ckpt.close()
    return

  use_lengths = not str(config.data.sample_type).startswith("fixed")
  # Repeated run() calls in one process (tests, notebooks) reuse the compiled step.
  cache_key = (repr(model), config.optim.to_json(), config.loss.to_json(), fixed, use_lengths,
               float16, tuple(d.id for d in mesh.devices.flat), repr(sharding))
  if cache_key not in _STEP_CACHE:
    step_fn = make_train_step(model, optimizer, loss_fn, fixed_path=fixed,
                              mask_fn=path_mask if fixed is None else None,
                              use_lengths=use_lengths, float16=float16)
    _STEP_CACHE.clear()  # one at a time: executables hold memory
    _STEP_CACHE[cache_key] = jit_train_step(step_fn, mesh, sharding)
  train_step = _STEP_CACHE[cache_key]
  rep = mesh_lib.replicated(mesh)

  writer = metric_writer.create_writer(os.path.join(workdir, "tb"), just_logging=not is_main)
  if is_main and step_host == 0:
    writer.write_hparams(config.to_dict())
  log_every = int(config.train.log_every)
  image_every = int(config.train.image_every) or max(log_every, 1) * 10
  save_every = int(config.train.save_every)
  eval_every = int(config.train.eval_every)
  bounds = _Boundaries(total, (log_every, save_every, eval_every))
  progress = Progress(total, global_batch, step_host)

  evaluator = Evaluator(config, model, mesh)
  _, loader = _open_data(config, attempt, workdir, resumed is not None)
  data_iter = iter(loader)
  accum = None
  pending = []  # info of dispatched steps not yet read back, oldest first
  acted_at = step_host  # the step count whose periodic actions already ran
  last_path = None
  last_batch = None
  compiled = False
  mode = "supernet" if fixed is None else f"retrain path {configuration.format_path(fixed)}"
  logging.info("training %s (%s) on %d devices / %d processes, global batch %d, dtype %s, "
               "from step %d (attempt %d) to %d", config.model.name, mode, mesh.devices.size,
               jax.process_count(), global_batch, config.train.dtype, step_host, attempt, total)

  def resolve(info):
    """Reads back one finished step: counters, bad-step check, metric accumulation."""
    nonlocal step_host, skipped_host, accum
    host = jax.device_get(info)
    step_host, skipped_host = int(host["step"]), int(host["skipped"])
    if not bool(host["ok"]):
      logging.warning("non-finite loss, gradients or update (loss=%s): step skipped (%d in a "
                      "row, %d in total) at step %d", host["loss"], int(host["bad_run"]), skipped_host,
                      step_host)
      if int(host["bad_run"]) >= max_bad:
        raise FloatingPointError(
            f"training stopped at step {step_host} (batch {step_host + skipped_host - 1}): "
            f"{int(host['bad_run'])} consecutive steps had a non-finite loss, gradients "
            f"or updated parameters (train.max_bad_steps={max_bad}; last loss "
            f"{host['loss']}). Lower optim.lr or set optim.clip.type"
            + ("." if dtype == jnp.float32 else ", or use train.dtype=float32."))
    m = host["metrics"]
    accum = m if accum is None else {k: accum[k].merge(v) for k, v in m.items()}

  def periodic(step):
    """Log / image / save / eval at an exact step count (state not yet donated)."""
    nonlocal accum
    if log_every and (step % log_every == 0 or step == total):
      rates = progress.report(step)
      values = {k: float(v.compute()) for k, v in (accum or {}).items()
                if int(np.asarray(v.count)) > 0}
      accum = None
      scalars = {f"train/{k}": v for k, v in values.items()}
      scalars["train/skipped_steps"] = skipped_host
      scalars["train/data_wait_fraction"] = float(getattr(loader, "wait_fraction", 0.0))
      if "seq_per_s" in rates:
        scalars["train/seq_per_s"] = rates["seq_per_s"]
        scalars["train/step_time_s"] = rates["step_time"]
      writer.write_scalars(step, scalars)
      logging.info(
          "step %d/%d | loss %.4f | lr %.3g | %s seq/s | data wait %.0f%% | skipped %d | ETA %s",
          step, total, values.get("loss", float("nan")), values.get("lr", float("nan")),
          f"{rates['seq_per_s']:.1f}" if rates else "-",
          100 * scalars["train/data_wait_fraction"], skipped_host,
          format_eta(rates.get("eta_s", float("nan"))) if rates else "?")
      if is_main and last_batch is not None and image_every and (
          step % image_every == 0 or step == log_every):
        writer.write_images(step, {"train/silhouettes": silhouette_grid(last_batch["sils"])})
        if last_path is not None:
          writer.write_texts(step, {"train/path": configuration.format_path(last_path)})
    if (save_every and step % save_every == 0) or step == total:
      # The step refuses non-finite updates, so this only trips on weights that came in
      # broken (train.init_from); a poisoned state is never written.
      if not bool(jax.device_get(_state_is_finite(state))):
        raise FloatingPointError(f"refusing to save step {step}: the train state holds "
                                 "non-finite values (check train.init_from's weights)")
      ckpt.save(step, ts.to_tree(state), {
          "step": step, "attempts": step + skipped_host, "skipped": skipped_host,
          "model_path": configuration.format_path(fixed) if fixed else "",
          "experiment": str(config.experiment)})
    if eval_every and step % eval_every == 0 and last_path is not None:
      evaluator(state, last_path, step, writer)
    writer.flush()

  try:
    while True:
      # Sync only when the steps in flight could reach a boundary: then the exact count is
      # needed before the next dispatch donates the state.
      if pending and step_host + len(pending) >= bounds.next_after(acted_at):
        for info in pending:
          resolve(info)
        pending = []
      if not pending and step_host != acted_at and bounds.is_boundary(step_host):
        acted_at = step_host
        periodic(step_host)
      if not pending and step_host >= total:
        break
      while len(pending) >= 2:  # keep at most two steps in flight
        resolve(pending.pop(0))

      got_attempt, batch = next(data_iter)
      if got_attempt != attempt:
        raise RuntimeError(f"loader yielded batch {got_attempt}, expected {attempt}")
      path = fixed if fixed is not None else sample_path(choice_max_num, seed, attempt)
      device_batch = mesh_lib.global_batch(batch, mesh, DEVICE_KEYS)
      path_arr = mesh_lib.global_array(np.asarray(path, np.int32), rep)
      if not compiled:
        logging.info("compiling the train step, this may take a minute...")
        t0 = time.monotonic()
      state, info = train_step(state, device_batch, path_arr)
      last_path, last_batch = path, batch
      attempt += 1
      if not compiled:
        resolve(info)  # waits for the compile; throughput is measured from here on
        compiled = True
        logging.info("train step compiled and ran in %.1f s", time.monotonic() - t0)
        if is_main:
          writer.write_scalars(step_host, {"train/compile_time_s": time.monotonic() - t0})
        progress.start(step_host)
      else:
        pending.append(info)
  finally:
    loader.close()
    ckpt.wait()
    ckpt.close()
    writer.flush()
    writer.close()
  logging.info("training finished at step %d (%d skipped steps)", step_host, skipped_host)
