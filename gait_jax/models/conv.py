"""A 3-D convolution whose backward pass is written as canonical channels-last convolutions.

Why: XLA:CPU runs a convolution fast (Eigen) only when its operands have the canonical
`b012f × 012io → b012f` layout. Outside control flow, layout assignment turns autodiff's
backward convolutions (a flipped, in/out-swapped kernel for the input gradient; batch and
feature swapped for the kernel gradient) into that form with explicit transposes. Inside a
`lax.switch`/`lax.cond` branch — where every searchable layer of a supernet trained with a
traced path runs — it does not, and both backward convolutions fall back to a naive loop:
measured on the project's CPU, 8× slower for the input gradient and 20× for the kernel
gradient, which made a supernet step several times slower than a fixed-path step.

`conv_general_dilated` below is a drop-in for `lax.conv_general_dilated` (flax's
`nn.Conv(conv_general_dilated=...)`). Its forward is the plain convolution; its custom VJP
materialises the transposed operands (behind `optimization_barrier`, so the algebraic
simplifier cannot fold them back into the dimension numbers) and computes both gradients as
canonical convolutions — the same arithmetic as XLA's own backward (gradients agree to
float rounding; tests/test_model_conv.py).

Only stride-1, undilated, ungrouped channels-last convolutions take this route, and only when
`canonical_backward()` says so (on CPU by default). On GPU/TPU the native backward is kept:
their compilers recognise the backward-filter pattern and call cuDNN/their own kernels, which
explicit transposes would only slow down.
"""
from __future__ import annotations

import functools
import os
from typing import Optional, Tuple

import jax
import jax.numpy as jnp
from jax import lax

# "auto" (canonical backward on CPU only), "on" or "off": override for benchmarks and tests.
ENV_VAR = "GAIT_JAX_CANONICAL_CONV_BACKWARD"

_CHANNELS_LAST = ("NDHWC", "DHWIO", "NDHWC")


def canonical_backward() -> bool:
  """Whether convolutions built now use the canonical custom backward."""
  mode = os.environ.get(ENV_VAR, "auto").strip().lower()
  if mode not in ("auto", "on", "off"):
    raise ValueError(f"{ENV_VAR}={mode!r}: expected auto, on or off")
  if mode == "auto":
    return jax.default_backend() == "cpu"
  return mode == "on"


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None,
                         rhs_dilation=None, dimension_numbers=None, feature_group_count=1,
                         precision=None, preferred_element_type=None):
  """`lax.conv_general_dilated` with the canonical backward where it applies (see module doc)."""
  plain = functools.partial(
      lax.conv_general_dilated, lhs, rhs, window_strides, padding, lhs_dilation=lhs_dilation,
      rhs_dilation=rhs_dilation, dimension_numbers=dimension_numbers,
      feature_group_count=feature_group_count, precision=precision,
      preferred_element_type=preferred_element_type)
  ones = (1,) * (lhs.ndim - 2)
  if (lhs.ndim != 5 or not canonical_backward() or tuple(window_strides) != ones
      or tuple(lhs_dilation or ones) != ones or tuple(rhs_dilation or ones) != ones
      or feature_group_count != 1 or preferred_element_type is not None
      or not _is_channels_last(lhs.shape, rhs.shape, dimension_numbers)):
    return plain()
  if isinstance(padding, str):
    padding = lax.padtype_to_pads(lhs.shape[1:4], rhs.shape[:3], ones, padding)
  pads = tuple((int(lo), int(hi)) for lo, hi in padding)
  return _conv3d(lhs, rhs, pads, precision)


def _is_channels_last(lhs_shape, rhs_shape, dimension_numbers) -> bool:
  want = lax.conv_dimension_numbers(lhs_shape, rhs_shape, _CHANNELS_LAST)
  got = lax.conv_dimension_numbers(lhs_shape, rhs_shape, dimension_numbers)
  return got == want


def _plain(x, w, pads, precision):
  return lax.conv_general_dilated(x, w, (1, 1, 1), pads, dimension_numbers=_CHANNELS_LAST,
                                  precision=precision)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _conv3d(x, w, pads: Tuple[Tuple[int, int], ...], precision: Optional[object]):
  return _plain(x, w, pads, precision)


def _conv3d_fwd(x, w, pads, precision):
  return _plain(x, w, pads, precision), (x, w)


def _conv3d_bwd(pads, precision, residuals, g):
  x, w = residuals
  kernel = w.shape[:3]
  # Input gradient: correlate g with the spatially flipped kernel, in/out swapped.
  w_t = lax.optimization_barrier(jnp.swapaxes(jnp.flip(w, (0, 1, 2)), 3, 4))
  pads_x = tuple((k - 1 - lo, k - 1 - hi) for k, (lo, hi) in zip(kernel, pads))
  gx = _plain(g, w_t, pads_x, precision)
  # Kernel gradient: a convolution over the batch, with x's channels as its batch
  # ([cin, t, h, w, n]) and g as a [t, h, w, n, cout] kernel → [cin, kt, kh, kw, cout].
  x_t = lax.optimization_barrier(jnp.moveaxis(x, (0, 4), (4, 0)))
  g_t = lax.optimization_barrier(jnp.moveaxis(g, 0, 3))
  gw = jnp.moveaxis(_plain(x_t, g_t, pads, precision), 0, 3)
  return gx.astype(x.dtype), gw.astype(w.dtype)


_conv3d.defvjp(_conv3d_fwd, _conv3d_bwd)

