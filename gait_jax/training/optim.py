"""The reference optimizer from optax parts: SGD with momentum and *coupled* weight decay
(torch.optim.SGD), a MultiStep learning-rate schedule (or, `optim.schedule=cosine`, a cosine
decay to 0 at the run's last step), optional gradient clipping, and updates masked to the
candidate ops a supernet step's path selected.

Per selected leaf, with g the (clipped) gradient and p the parameter (torch.optim.SGD,
dampening 0, no Nesterov):
  g' = g + weight_decay * p;  buf = momentum * buf + g';  p = p - lr * buf
which is `optax.add_decayed_weights` → `optax.trace` (the momentum of `optax.sgd`) → a step of
-lr. The first update of a zero buffer gives buf = g', as torch's lazily created buffer does.

A leaf whose mask is False keeps its parameter *and* its momentum bit-for-bit — no decay, no
momentum step: PyTorch >= 2.0 leaves unused parameters without a gradient
(`zero_grad(set_to_none=True)`) and its SGD skips them. optax.masked needs the mask when the
optimizer is built, but here it changes every step (a traced path), hence the `jnp.where`.

The optimizer state is `{"momentum": tree like params}`: the checkpoint layout, independent of
optax's own state classes (older checkpoints keep loading).
"""
from __future__ import annotations

import collections
from typing import Any, Optional, Sequence

import jax
import jax.numpy as jnp
import optax

CLIP_TYPES = ("none", "value", "norm")
SCHEDULES = ("multistep", "cosine")


def multistep_lr(base_lr: float, gamma: float, milestones: Sequence[int]):
  """`count -> lr`: base_lr * gamma ** (number of milestones <= count), where `count` is the
  number of successful steps taken so far (torch MultiStepLR stepped once per step; a
  milestone given twice decays twice, as torch's Counter does)."""
  scales = {int(m): float(gamma) ** n for m, n in collections.Counter(milestones).items()}
  return optax.piecewise_constant_schedule(jnp.float32(base_lr), scales or None)


def learning_rate(optim_cfg, total_steps: Optional[int]):
  """`count -> lr` of `optim.schedule`: multistep (the reference: `optim.milestones`,
  `optim.gamma`) or cosine (optim.lr · ½(1 + cos(π·count/total_steps)), 0 from `total_steps`
  on: the run's length, which a cosine needs)."""
  schedule = optim_cfg.schedule
  if schedule == "multistep":
    return multistep_lr(optim_cfg.lr, optim_cfg.gamma, optim_cfg.milestones)
  if schedule != "cosine":
    raise ValueError(f"optim.schedule={schedule!r}: expected one of {', '.join(SCHEDULES)}")
  if not total_steps or total_steps < 1:
    raise ValueError("optim.schedule='cosine' decays over the run's train.total_steps, "
                     f"got {total_steps!r}")
  return optax.cosine_decay_schedule(jnp.float32(optim_cfg.lr), int(total_steps))


def global_norm(tree: Any, norm_type: float = 2.0) -> jax.Array:
  """The p-norm of all leaves together (inf = largest magnitude), as torch's
  clip_grad_norm_ computes it."""
  leaves = [jnp.ravel(jnp.asarray(x, jnp.float32)) for x in jax.tree.leaves(tree)]
  if not leaves:
    return jnp.zeros((), jnp.float32)
  flat = jnp.concatenate(leaves)  # one reduction, not one per leaf (kernels to compile)
  if norm_type == float("inf"):
    return jnp.max(jnp.abs(flat))
  p = float(norm_type)
  return jnp.sum(jnp.abs(flat) ** p) ** (1.0 / p)


def clip_by_torch_norm(max_norm: float, norm_type: float) -> optax.GradientTransformation:
  """torch's clip_grad_norm_: scale by max_norm / (norm + 1e-6) when that is below 1.

  Hand-written because optax.clip_by_global_norm knows only the 2-norm and scales by
  max_norm / norm (no 1e-6), which differs from the reference at the threshold."""
  def clip(updates, params=None):
    del params
    coef = jnp.minimum(max_norm / (global_norm(updates, norm_type) + 1e-6), 1.0)
    return jax.tree.map(lambda g: (g * coef).astype(g.dtype), updates)
  return optax.stateless(clip)


def check_clip(clip_cfg) -> str:
  kind = clip_cfg.type.lower()
  if kind not in CLIP_TYPES:
    raise ValueError(f"optim.clip.type={clip_cfg.type!r}: expected one of {CLIP_TYPES}")
  if kind == "value" and not clip_cfg.value > 0:
    raise ValueError(f"optim.clip.value={clip_cfg.value}: expected a positive number")
  if kind == "norm" and not clip_cfg.max_norm > 0:
    raise ValueError(f"optim.clip.max_norm={clip_cfg.max_norm}: expected a positive number")
  return kind


def clipping(clip_cfg) -> optax.GradientTransformation:
  """The reference's clip_grad: element-wise by value, or by global norm, or nothing.

  Unselected candidates have zero gradients, so they add nothing to the global norm — the
  same set of gradients torch sees (only parameters with .grad)."""
  kind = check_clip(clip_cfg)
  if kind == "value":
    return optax.clip(clip_cfg.value)
  if kind == "norm":
    return clip_by_torch_norm(clip_cfg.max_norm, clip_cfg.norm_type)
  return optax.identity()


class SGD:
  """SGD + momentum + coupled weight decay + MultiStep (or cosine) lr + clipping, with update
  masks.

  `init(params) -> opt_state`; `update(params, grads, opt_state, count, mask=None) ->
  (params, opt_state, lr)` where `count` is the number of successful steps so far (the train
  state's step, so the schedule needs no state of its own) and `mask` a tree like params of
  bool scalars (None = update everything).
  """

  def __init__(self, optim_cfg, total_steps: Optional[int] = None):
    """total_steps: the run's length (train.total_steps), which optim.schedule=cosine needs."""
    momentum = optim_cfg.momentum  # lr > 0, 0 <= momentum < 1: config_check
    self.schedule = learning_rate(optim_cfg, total_steps)
    self.direction = optax.chain(clipping(optim_cfg.clip),
                                 optax.add_decayed_weights(optim_cfg.weight_decay),
                                 optax.trace(decay=momentum))

  def init(self, params: Any) -> dict:
    return {"momentum": jax.tree.map(jnp.zeros_like, params)}

  def update(self, params: Any, grads: Any, opt_state: dict, count, mask: Optional[Any] = None):
    lr = jnp.asarray(self.schedule(count), jnp.float32)
    grads = jax.tree.map(lambda g, p: g.astype(p.dtype), grads, params)
    *stateless, _ = self.direction.init(params)
    inner = (*stateless, optax.TraceState(trace=opt_state["momentum"]))
    buf, inner = self.direction.update(grads, inner, params)
    new_params = optax.apply_updates(params, jax.tree.map(lambda b: -lr.astype(b.dtype) * b,
                                                          buf))
    momentum = inner[-1].trace
    if mask is not None:
      keep = lambda m, new, old: jnp.where(m, new, old)  # noqa: E731
      new_params = jax.tree.map(keep, mask, new_params, params)
      momentum = jax.tree.map(keep, mask, momentum, opt_state["momentum"])
    return new_params, {"momentum": momentum}, lr
