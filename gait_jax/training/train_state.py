"""The train state: everything needed to continue a run, and its checkpoint form.

The data order and the path sequence are pure functions of (seed, attempt), where
attempt = step + skipped is the number of batches consumed, so the state needs no RNG.
"""
from __future__ import annotations

from typing import Any

import flax
import jax
import jax.numpy as jnp

# torch.cuda.amp.GradScaler defaults, used for float16 compute only.
FP16_INIT_SCALE = 2.0**16
FP16_GROWTH_INTERVAL = 2000


@flax.struct.dataclass
class TrainState:
  step: jax.Array  # int32: successful (applied) steps — the schedule and stop counter
  params: Any
  batch_stats: Any
  opt_state: Any
  skipped: jax.Array  # int32: non-finite steps skipped so far (they consume a batch)
  bad_run: jax.Array  # int32: consecutive non-finite steps ending at the latest one
  loss_scale: jax.Array  # float32: dynamic loss scale (1 unless float16 compute)
  good_run: jax.Array  # int32: finite steps since the loss scale last changed

  @property
  def variables(self) -> dict:
    return {"params": self.params, "batch_stats": self.batch_stats}


def create(params, batch_stats, opt_state, *, float16: bool = False) -> TrainState:
  return TrainState(
      step=jnp.zeros((), jnp.int32), params=params, batch_stats=batch_stats,
      opt_state=opt_state, skipped=jnp.zeros((), jnp.int32), bad_run=jnp.zeros((), jnp.int32),
      loss_scale=jnp.asarray(FP16_INIT_SCALE if float16 else 1.0, jnp.float32),
      good_run=jnp.zeros((), jnp.int32))


def to_tree(state: TrainState) -> dict:
  """The nested dict that is checkpointed (restorable without the class)."""
  return flax.serialization.to_state_dict(state)


def from_tree(template: TrainState, tree: dict) -> TrainState:
  return flax.serialization.from_state_dict(template, tree)


def select(ok, new: TrainState, old: TrainState) -> TrainState:
  """`new` where `ok` (a traced bool scalar) else `old`, leaf by leaf."""
  return jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, old)
