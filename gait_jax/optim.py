"""The reference optimizer (spec §4.3, §4.5): SGD with momentum and *coupled* weight decay,
a MultiStep learning-rate schedule, optional gradient clipping, and masked updates.

Written out rather than chained from optax so the masking is explicit: a leaf whose mask is
False (a candidate op the step's path did not select) keeps its parameter *and* its momentum
buffer bit-for-bit — no weight decay, no momentum step. That is PyTorch >= 2.0 behaviour,
where `zero_grad(set_to_none=True)` leaves unused parameters without a gradient and
`torch.optim.SGD` skips them (spec §4.6, §10.11).

Per selected leaf, with g the (clipped) gradient and p the parameter (torch.optim.SGD,
dampening 0, no Nesterov):
  g' = g + weight_decay * p;  buf = momentum * buf + g';  p = p - lr * buf
The first update of a zero-initialised buffer gives buf = g', as torch's lazy buffer does.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import jax
import jax.numpy as jnp

CLIP_TYPES = ("none", "value", "norm")


def multistep_lr(base_lr: float, gamma: float, milestones: Sequence[int]):
  """`count -> lr`: base_lr * gamma ** (number of milestones <= count), where `count` is the
  number of successful steps taken so far (torch MultiStepLR stepped once per step)."""
  bounds = jnp.asarray(sorted(int(m) for m in milestones) or [2**31 - 1], jnp.int32)
  has_milestones = bool(milestones)

  def schedule(count):
    passed = jnp.sum(jnp.asarray(count, jnp.int32) >= bounds) if has_milestones else 0
    return jnp.asarray(base_lr, jnp.float32) * jnp.asarray(gamma, jnp.float32) ** passed
  return schedule


def global_norm(tree: Any, norm_type: float = 2.0) -> jax.Array:
  """The p-norm of all leaves together (inf = largest magnitude), as torch's
  clip_grad_norm_ computes it."""
  leaves = [jnp.asarray(x, jnp.float32) for x in jax.tree.leaves(tree)]
  if not leaves:
    return jnp.zeros((), jnp.float32)
  if norm_type == float("inf"):
    return jnp.max(jnp.stack([jnp.max(jnp.abs(x)) for x in leaves]))
  p = float(norm_type)
  total = sum(jnp.sum(jnp.abs(x) ** p) for x in leaves)
  return total ** (1.0 / p)


def check_clip(clip_cfg) -> str:
  kind = str(clip_cfg.type).lower()
  if kind not in CLIP_TYPES:
    raise ValueError(f"optim.clip.type={clip_cfg.type!r}: expected one of {CLIP_TYPES}")
  if kind == "value" and not float(clip_cfg.value) > 0:
    raise ValueError(f"optim.clip.value={clip_cfg.value}: expected a positive number")
  if kind == "norm" and not float(clip_cfg.max_norm) > 0:
    raise ValueError(f"optim.clip.max_norm={clip_cfg.max_norm}: expected a positive number")
  return kind


def clip_gradients(grads: Any, clip_cfg) -> Any:
  """Clips like opengait's clip_grad (spec §4.5): element-wise by value, or by global norm.

  Unselected candidates have zero gradients, so they add nothing to the global norm — the
  same set of gradients torch sees (only parameters with .grad)."""
  kind = check_clip(clip_cfg)
  if kind == "value":
    v = float(clip_cfg.value)
    return jax.tree.map(lambda g: jnp.clip(g, -v, v), grads)
  if kind == "norm":
    total = global_norm(grads, float(clip_cfg.norm_type))
    # torch: clip_coef = max_norm / (total + 1e-6), applied only when below 1.
    coef = jnp.minimum(float(clip_cfg.max_norm) / (total + 1e-6), 1.0)
    return jax.tree.map(lambda g: (g * coef).astype(g.dtype), grads)
  return grads


class SGD:
  """SGD + momentum + coupled weight decay + MultiStep lr + clipping, with update masks.

  `init(params) -> opt_state`; `update(params, grads, opt_state, count, mask=None) ->
  (params, opt_state, lr)` where `count` is the number of successful steps so far and
  `mask` a tree like params of bool scalars (None = update everything).
  """

  def __init__(self, optim_cfg):
    self.momentum = float(optim_cfg.momentum)
    self.weight_decay = float(optim_cfg.weight_decay)
    if not float(optim_cfg.lr) > 0:
      raise ValueError(f"optim.lr={optim_cfg.lr}: expected a positive learning rate")
    if not 0 <= self.momentum < 1:
      raise ValueError(f"optim.momentum={optim_cfg.momentum}: expected 0 <= momentum < 1")
    self.schedule = multistep_lr(float(optim_cfg.lr), float(optim_cfg.gamma),
                                 tuple(optim_cfg.milestones))
    self.clip_cfg = optim_cfg.clip
    check_clip(self.clip_cfg)

  def init(self, params: Any) -> dict:
    return {"momentum": jax.tree.map(jnp.zeros_like, params)}

  def update(self, params: Any, grads: Any, opt_state: dict, count, mask: Optional[Any] = None):
    lr = self.schedule(count)
    grads = clip_gradients(grads, self.clip_cfg)
    if mask is None:
      mask = jax.tree.map(lambda _: True, params)

    def leaf(p, g, buf, m):
      g = g.astype(p.dtype) + self.weight_decay * p
      new_buf = self.momentum * buf + g
      new_p = p - lr.astype(p.dtype) * new_buf
      return jnp.where(m, new_p, p), jnp.where(m, new_buf, buf)

    pairs = jax.tree.map(leaf, params, grads, opt_state["momentum"], mask)
    is_pair = lambda x: isinstance(x, tuple)  # noqa: E731
    new_params = jax.tree.map(lambda t: t[0], pairs, is_leaf=is_pair)
    new_momentum = jax.tree.map(lambda t: t[1], pairs, is_leaf=is_pair)
    return new_params, {"momentum": new_momentum}, lr
