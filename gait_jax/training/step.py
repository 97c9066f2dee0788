"""The pure train step `step(state, batch, path) -> (state, info)`, jitted over the mesh, and
the fresh train state it starts from.

One step serves supernet training and retraining: a supernet gets the path as a traced int32
array (one compiled step for every path, updates masked to the ops the path selected); a
retrain model has only its path's ops and ignores the argument.

A step whose loss, gradients or updated state is not finite leaves the state unchanged except
the counters (`skipped`, `bad_run`; the float16 loss scale backs off): the caller decides when
too many in a row stop the run.
"""
from __future__ import annotations

from typing import Callable, Dict, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from clu import metrics as clu_metrics

from gait_jax.common import parallel
from gait_jax.models import INPUT_HW, conv
from gait_jax.training import optim
from gait_jax.training import train_state as ts

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}
DEVICE_KEYS = ("sils", "labels", "lengths")
FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}
# The same options as XLA_FLAGS, for whole processes that only compile tiny programs (the CLI
# smoke tests, the GPU check's CPU rehearsal).
FAST_COMPILE_FLAGS = " ".join(f"--{k}={str(v).lower()}" for k, v in FAST_COMPILE.items())


def fast_compile_options():
  """FAST_COMPILE on the CPU (whose optimising backend takes far longer over what runs once
  than the run itself), the backend's own options elsewhere."""
  return FAST_COMPILE if jax.default_backend() == "cpu" else None


def run_fast_compiled(fn, *args):
  """fn(*args) as one program compiled with `fast_compile_options()`: for what runs once (an
  initialiser), where running op by op compiles every op on its own (~170 programs for a
  supernet's init)."""
  return jax.jit(fn).lower(*args).compile(compiler_options=fast_compile_options())(*args)


def compute_dtype(config):
  return DTYPES[config.train.dtype]  # one of DTYPES: config_check


def all_finite(tree) -> jax.Array:
  """Whether every element of every leaf is finite: one reduction per dtype over all its
  leaves (one per leaf made hundreds of small kernels of a step to compile and launch)."""
  by_dtype = {}
  for x in jax.tree.leaves(tree):
    by_dtype.setdefault(jnp.result_type(x), []).append(jnp.ravel(x))
  ok = [jnp.all(jnp.isfinite(jnp.concatenate(xs))) for xs in by_dtype.values()]
  return jnp.all(jnp.stack(ok)) if ok else jnp.asarray(True)


@jax.jit
def state_is_finite(state: ts.TrainState) -> jax.Array:
  """One device-side check of everything a checkpoint would hold."""
  return all_finite((state.params, state.batch_stats, state.opt_state))


def _counters(state: ts.TrainState, finite, float16: bool) -> dict:
  """Skip counters and (float16 only) the dynamic loss scale, as torch's GradScaler."""
  if float16:
    grow = finite & (state.good_run + 1 >= ts.FP16_GROWTH_INTERVAL)
    scale = jnp.where(finite, jnp.where(grow, state.loss_scale * 2, state.loss_scale),
                      state.loss_scale * 0.5)
    good_run = jnp.where(finite & ~grow, state.good_run + 1, 0)
  else:
    scale, good_run = state.loss_scale, state.good_run
  return dict(skipped=state.skipped + jnp.where(finite, 0, 1).astype(jnp.int32),
              bad_run=jnp.where(finite, 0, state.bad_run + 1).astype(jnp.int32),
              loss_scale=scale, good_run=good_run)


def _info(new_state: ts.TrainState, finite, loss, terms, lr, grads) -> dict:
  """clu metrics (masked by success) and the scalars the host loop reads back."""
  scalars = dict(terms, lr=lr, grad_norm=optim.global_norm(grads),
                 param_norm=optim.global_norm(new_state.params))
  ok = finite.reshape(1)
  return {
      "metrics": {k: clu_metrics.Average.from_model_output(
          jnp.asarray(v, jnp.float32).reshape(1), mask=ok) for k, v in scalars.items()},
      "ok": finite, "loss": loss, "step": new_state.step, "skipped": new_state.skipped,
      "bad_run": new_state.bad_run, "loss_scale": new_state.loss_scale,
  }


def make_train_step(model, optimizer: optim.SGD, loss_fn: Callable, *,
                    fixed_path: Optional[Sequence[int]] = None,
                    mask_fn: Optional[Callable] = None, use_lengths: bool = False,
                    float16: bool = False, bf16: bool = False):
  """A pure `step(state, batch, path) -> (state, info)`.

  model: a Flax module `apply(variables, sils, path, lengths=, train=, mutable=)`.
  loss_fn: `(outputs, labels) -> (total, {name: scalar})`.
  fixed_path: retraining — the model's static path (`path` argument ignored); None = supernet,
    `path` is a traced int32 [L].
  mask_fn: `(tree, path) -> tree of bools` (models.space.path_mask for the model); with a
    supernet it limits updates (parameters, momentum, BN statistics) to the ops the path
    selected.
  float16: dynamic loss scaling as torch's GradScaler.
  bf16: the convolutions multiply in bfloat16, forward and gradients (`conv.bf16_products`;
    the caller checks `conv.bf16_usable`).

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
      with conv.bf16_products(bf16):  # traced here: the convolutions pick their route
        out, updated = model.apply({"params": params, "batch_stats": state.batch_stats}, sils,
                                   model_path, lengths=lengths, train=True,
                                   mutable=["batch_stats"])
      total, terms = loss_fn(out, batch["labels"])
      total = total.astype(jnp.float32)
      scaled = total * state.loss_scale if float16 else total
      return scaled, (total, terms, updated.get("batch_stats", {}))

    grads, (loss, terms, batch_stats) = jax.grad(objective, has_aux=True)(state.params)
    if float16:  # elsewhere the scale is 1: no division per leaf
      grads = jax.tree.map(lambda g: g / state.loss_scale, grads)

    mask = None if mask_fn is None else mask_fn(state.params, path)
    params, opt_state, lr = optimizer.update(state.params, grads, state.opt_state, state.step,
                                             mask)
    if mask_fn is not None:
      used = mask_fn(batch_stats, path)
      batch_stats = jax.tree.map(jnp.where, used, batch_stats, state.batch_stats)
    # A finite loss and gradient can still overflow the update (a huge learning rate): the
    # new parameters, momentum and BN statistics must be finite too, or the step is skipped.
    finite = jnp.isfinite(loss) & all_finite((grads, params, opt_state, batch_stats))
    updated = state.replace(params=params, batch_stats=batch_stats, opt_state=opt_state,
                            step=state.step + 1)
    new_state = ts.select(finite, updated, state).replace(**_counters(state, finite, float16))
    return new_state, _info(new_state, finite, loss, terms, lr, grads)

  return step


def jit_train_step(step_fn, mesh, state_sharding, batch_keys=DEVICE_KEYS):
  """The step jitted over the mesh: state replicated (and donated), batch sharded on "data"."""
  data = parallel.data_sharding(mesh)
  rep = parallel.replicated(mesh)
  return jax.jit(step_fn, in_shardings=(state_sharding, {k: data for k in batch_keys}, rep),
                 out_shardings=(state_sharding, rep), donate_argnums=0)


def device_inputs(batch, path, mesh):
  """A host batch and its path as the jitted step takes them: (the batch's DEVICE_KEYS sharded
  on "data", the path as an int32 array replicated)."""
  return (parallel.global_batch(batch, mesh, DEVICE_KEYS),
          parallel.global_array(np.asarray(path, np.int32), parallel.replicated(mesh)))


class FreshState(NamedTuple):
  """A fresh train state before it exists: its shapes (ShapeDtypeStructs with their
  shardings: what a checkpoint restores into) and `create()`, which compiles and runs the
  initialiser — a resumed run never calls it."""
  abstract: ts.TrainState
  sharding: object
  create: Callable[[], ts.TrainState]


def fresh_state(model, optimizer: optim.SGD, mesh, *, seed: int, frames: int,
                fixed_path: Optional[Sequence[int]], path_len: int, float16: bool = False
                ) -> FreshState:
  """The replicated fresh TrainState of `model` (identical on every process: same seed),
  traced once."""
  rep = parallel.replicated(mesh)

  def make(rng):
    sils = jnp.zeros((2, frames) + INPUT_HW, jnp.float32)
    path = tuple(fixed_path) if fixed_path is not None else jnp.zeros((path_len,), jnp.int32)
    variables = model.init(rng, sils, path, train=False)
    params = variables["params"]
    batch_stats = variables.get("batch_stats", {})
    return ts.create(params, batch_stats, optimizer.init(params), float16=float16)

  key = jax.random.key(seed)
  traced = jax.jit(make, out_shardings=rep).trace(key)
  abstract = traced.out_info
  sharding = jax.tree.map(lambda _: rep, abstract)

  def create():
    # Initialisation runs once, and the inlined RNG makes a huge elementwise graph that
    # XLA:CPU's optimising backend takes minutes over: compile it unoptimised (~7x faster).
    return traced.lower().compile(compiler_options=fast_compile_options())(key)

  return FreshState(abstract, sharding, create)


def init_state(model, optimizer: optim.SGD, mesh, **kwargs):
  """(a fresh replicated TrainState, its sharding): `fresh_state`'s, created."""
  fresh = fresh_state(model, optimizer, mesh, **kwargs)
  return fresh.create(), fresh.sharding
