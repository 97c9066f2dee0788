"""Which frames of a batch are real: padding masks, the reference's short-clip tiling, and the
segments of packed rows (several whole sequences in one row, `evaluation.packing`)."""
from __future__ import annotations

from typing import Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np


def frame_mask(lengths: jax.Array, t: int) -> jax.Array:
  """`[n, t]` float32 mask: 1 for frames < lengths[i]."""
  return (jnp.arange(t)[None, :] < lengths[:, None]).astype(jnp.float32)


def apply_mask(x: jax.Array, mask: Optional[jax.Array]) -> jax.Array:
  """Zeroes padded frames of `x [n, t, ...]`; identity when `mask` is None."""
  if mask is None:
    return x
  return x * mask.reshape(mask.shape + (1,) * (x.ndim - 2)).astype(x.dtype)


def tile_short_sequences(x: jax.Array, lengths: jax.Array) -> Tuple[jax.Array, jax.Array]:
  """The reference's short-clip tiling, per sequence: L=1 → a,a,a (3); L=2 → a,b,a,b (4).

  The reference tiles the whole (single-sequence) clip when it has fewer than 3 frames.
  Here each row gathers frame `t mod L`, so sequences of every length can share a padded
  batch. `x` is `[n, T, ...]` with T >= 4 (the caller pads); frames past
  the new length are garbage and must be masked by the caller.
  """
  t = x.shape[1]
  if t < 4:
    raise ValueError(f"tile_short_sequences: need at least 4 time slots, got {t}")
  safe = jnp.maximum(lengths, 1)
  idx = jnp.arange(t)[None, :] % safe[:, None]  # [n, T]
  idx = idx.reshape(idx.shape + (1,) * (x.ndim - 2))
  tiled = jnp.take_along_axis(x, idx, axis=1)
  return tiled, tiled_length(lengths).astype(jnp.int32)


def tiled_length(lengths):
  """The frame count after the reference's short-clip tiling: 1 → 3, 2 → 4, others kept
  (ints or arrays; packed embedding tiles on the host by the same rule)."""
  # Host values stay NumPy: an eager jnp.where per sequence cost packed embedding ~8 % a pass.
  xp = jnp if isinstance(lengths, jax.Array) else np
  return xp.where(lengths == 1, 3, xp.where(lengths == 2, 4, lengths))


def segment_mask(segments: jax.Array) -> jax.Array:
  """`[n, t]` float32 mask of packed rows: 1 for frames of a sequence (segment id ≥ 0), 0 for
  the gaps between sequences (-1)."""
  return (segments >= 0).astype(jnp.float32)


def segment_temporal_max(x: jax.Array, segments: jax.Array, num_segments: int) -> jax.Array:
  """Max over time per packed sequence: `[n, t, h, w, c]` with segment ids `[n, t]` (-1 in the
  gaps) → `[n, num_segments, h, w, c]`; a segment id no frame carries gives -inf."""
  def one_row(xr, sr):
    ids = jnp.where(sr >= 0, sr, num_segments)  # out of range: segment_max drops the gaps
    return jax.ops.segment_max(xr, ids, num_segments=num_segments, indices_are_sorted=False)
  return jax.vmap(one_row)(x, segments)


def masked_temporal_max(x: jax.Array, mask: Optional[jax.Array]) -> jax.Array:
  """Max over time of `[n, t, h, w, c]` ignoring padded frames (reference TP), its gradient
  going to the first maximal frame of each position, as PyTorch's `max(dim)` sends it."""
  if mask is not None:
    valid = mask.reshape(mask.shape + (1,) * (x.ndim - 2)) > 0
    x = jnp.where(valid, x, jnp.asarray(-jnp.inf, x.dtype))
  return _temporal_max(x)


# A custom gradient rather than a gather at the argmax: what is not differentiated (inference,
# ONNX export) stays one plain max.
@jax.custom_vjp
def _temporal_max(x):
  return jnp.max(x, axis=1)


def _temporal_max_fwd(x):
  # The winning frame is chosen here, once, and kept. jnp.max's own gradient compares the
  # output with the input again, and XLA may recompute the input for that comparison with
  # other rounding: positions matching no frame got an infinite or lost gradient (gradients
  # up to 64 % off float64, XLA:CPU at optimisation level 0).
  index = jnp.argmax(x, axis=1)
  y = jnp.take_along_axis(x, index[:, None], axis=1)[:, 0]
  # The frame count and dtype travel as the shape and dtype of an empty array.
  return y, (index, jnp.zeros((x.shape[1], 0), x.dtype))


def _temporal_max_bwd(residuals, g):
  index, frames = residuals
  t = jnp.arange(frames.shape[0]).reshape((1, -1) + (1,) * (g.ndim - 1))
  return (jnp.where(t == index[:, None], g[:, None], jnp.zeros((), g.dtype)).astype(frames.dtype),)


_temporal_max.defvjp(_temporal_max_fwd, _temporal_max_bwd)
