"""BatchNorm with PyTorch's numerics, its batch statistics summed accurately, and the BN of a
one-channel input's 1×1×1 convolution computed from that input's statistics."""
from __future__ import annotations

import functools
from typing import Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

# PyTorch BatchNorm defaults.
BN_EPS = 1e-5
BN_MOMENTUM = 0.1  # PyTorch convention: running = (1 - m) * running + m * batch


def bn_scale_init(key, shape, dtype=jnp.float32):
  """BN weight ~ N(1, 0.02) (OpenGait's BaseModel.init_parameters)."""
  return 1.0 + 0.02 * jax.random.normal(key, shape, dtype)


def at_least_float32(x: jax.Array) -> jax.Array:
  """`x` in float32 (from half precision), or as it is when wider: the statistics, GeM and
  heads compute in float32, and a float64 reference run (the gradient-accuracy check) stays
  float64 throughout."""
  return x.astype(jnp.promote_types(x.dtype, jnp.float32))


class BatchNorm(nn.Module):
  """BatchNorm over the last axis with PyTorch's numerics.

  Normalises with the biased batch variance but updates the running variance with the
  unbiased one (n/(n−1)), which flax's nn.BatchNorm does not. `mask` (`[n, t]`, float)
  removes padded frames of a `[n, t, ...]` input from the statistics. Statistics are
  float32 whatever the input dtype; the output has the input's dtype. Running statistics
  are left untouched during `init`, as flax's BatchNorm does.

  `gain` (`[c]`, with a one-channel `x [..., 1]`): the BN of `x · gain` — a 1×1×1
  convolution of the network's one-channel input — without forming that product: its batch
  mean and variance are gain·m and gain²·v for x's own m and v, so the normalised output is
  the affine map (x − m)·a + bias, a = gain·scale/√(gain²·v + eps), which XLA fuses into its
  consumer. The same function and running statistics; at the GREW widths it saves a full
  resolution pass of 64 channels both ways and the statistics over it.
  """
  eps: float = BN_EPS
  momentum: float = BN_MOMENTUM

  @nn.compact
  def __call__(self, x: jax.Array, mask: Optional[jax.Array] = None, *,
               train: bool = False, gain: Optional[jax.Array] = None) -> jax.Array:
    if gain is not None and x.shape[-1] != 1:
      raise ValueError(f"BatchNorm: `gain` needs a one-channel input, got {x.shape}")
    c = x.shape[-1] if gain is None else gain.shape[-1]
    scale = self.param("scale", bn_scale_init, (c,), jnp.float32)
    bias = self.param("bias", nn.initializers.zeros, (c,), jnp.float32)
    ra_mean = self.variable("batch_stats", "mean", lambda: jnp.zeros((c,), jnp.float32))
    ra_var = self.variable("batch_stats", "var", lambda: jnp.ones((c,), jnp.float32))

    xf = at_least_float32(x)
    if train:
      if mask is None:
        w = jnp.ones(x.shape[:1] + (1,) * (x.ndim - 1), xf.dtype)
      else:
        w = mask.reshape(mask.shape + (1,) * (x.ndim - 2)).astype(xf.dtype)
      if gain is None:
        y, mean, var, count = normalise_train(xf, w, scale, bias, self.eps)
      else:
        y, mean, var, count = _normalise_scaled_train(xf, w, gain, scale, bias, self.eps)
      if not self.is_initializing():
        ra_mean.value, ra_var.value = running_averages(ra_mean.value, ra_var.value, mean, var,
                                                       count, self.momentum)
      return y.astype(x.dtype)
    if gain is not None:
      xf = xf * at_least_float32(gain)
    y = (xf - ra_mean.value) * inference_scale(scale, ra_var.value, self.eps) + bias
    return y.astype(x.dtype)


def running_averages(ra_mean, ra_var, mean, var, count, momentum: float = BN_MOMENTUM):
  """The running (mean, variance) after a training step's batch (mean, biased var, count):
  PyTorch's update, which averages the unbiased variance (also the native first stage's)."""
  unbiased = var * (count / jnp.maximum(count - 1.0, 1.0))
  return ((1.0 - momentum) * ra_mean + momentum * mean,
          (1.0 - momentum) * ra_var + momentum * unbiased)


def scaled_factor(gain, scale, var, eps: float = BN_EPS):
  """The factor `a` of the BN of `x · gain` in train mode, (x − m)·a + bias, from x's batch
  variance (see `BatchNorm`; also the native first stage's)."""
  return _scaled_factor(gain, scale, var, eps)


# The derivative in closed form: ∂a/∂gain = scale·eps/(gain²·var + eps)^1.5 is what remains of
# BN's invariance to the gain, and autodiff's form of it — scale/√d − scale·gain²·var/d^1.5 —
# loses it to float32 cancellation (d ≈ gain²·var ≫ eps: errors of percents, different in every
# fusion of the same program).
@functools.partial(jax.custom_jvp, nondiff_argnums=(3,))
def _scaled_factor(gain, scale, var, eps):
  return gain * scale * jax.lax.rsqrt(jnp.square(gain) * var + eps)


@_scaled_factor.defjvp
def _scaled_factor_jvp(eps, primals, tangents):
  gain, scale, var = primals
  d_gain, d_scale, d_var = tangents
  inv = jax.lax.rsqrt(jnp.square(gain) * var + eps)
  inv3 = inv * inv * inv
  tangent = (d_gain * (scale * eps * inv3) + d_scale * (gain * inv)
             - d_var * (0.5 * gain * jnp.square(gain) * scale * inv3))
  return gain * scale * inv, tangent


def inference_scale(scale: jax.Array, var: jax.Array, eps: float = BN_EPS) -> jax.Array:
  """The factor of inference BN, `(x − running mean) · factor + bias` (also the native first
  stage's, `first_stage.py`)."""
  return scale * jax.lax.rsqrt(var + eps)


def _position_sum(*arrays: jax.Array):
  """The sums over every axis but the last, per image row, then per frame, then over frames:
  BN's statistics and gradients sum up to 10^6 float32 terms, and one long accumulation (what
  XLA:CPU emits once it fuses a reduction with its neighbours) lost up to 2 % of a BN bias's
  gradient, a small remainder of large terms. Short sums of short sums keep the error at
  float64-like levels; the partial sums are materialised, so XLA cannot merge them back.
  Several arrays of one shape are summed side by side (one pass over what they share)."""
  while arrays[0].ndim > 2:
    arrays = jax.lax.optimization_barrier(tuple(jnp.sum(a, axis=a.ndim - 2) for a in arrays))
  sums = tuple(jnp.sum(a, axis=0) for a in arrays)
  return sums if len(sums) > 1 else sums[0]


def statistics(xf, w):
  """(mean, biased variance, count) over the valid positions (`w` 1 on them, 0 on padding)."""
  count = jnp.sum(jnp.broadcast_to(w, xf.shape[:-1] + (1,)))
  mean = _position_sum(xf * w) / count
  var = _position_sum(jnp.square(xf - mean) * w) / count
  return mean, var, count


@jax.custom_vjp
def normalise_train(xf, w, scale, bias, eps):
  """BN in train mode with masked batch statistics: (y, mean, biased var, count). `w` is 1 on
  valid frames and 0 on padding, broadcastable to `xf`. Gradients flow through y only (the
  statistics feed the running averages)."""
  return _normalise_train_fwd(xf, w, scale, bias, eps)[0]


def _normalise_train_fwd(xf, w, scale, bias, eps):
  mean, var, count = statistics(xf, w)
  inv = jax.lax.rsqrt(var + eps)
  y = (xf - mean) * (scale * inv) + bias
  out = (y, jax.lax.stop_gradient(mean), jax.lax.stop_gradient(var), count)
  return out, (xf, w, mean, inv, scale, count)


def _normalise_train_bwd(residuals, cotangents):
  # dx = s·inv·(gy − w·(Σgy + x̂·Σgy·x̂)/N): the batch statistics' share, over valid positions.
  xf, w, mean, inv, scale, count = residuals
  gy = cotangents[0]
  xhat = (xf - mean) * inv
  # Side by side, not concatenated: a concatenation is a copy of both at full resolution.
  dbias, dscale = _position_sum(gy, gy * xhat)
  dx = (scale * inv) * (gy - w * (dbias + xhat * dscale) / count)
  return dx, jnp.zeros_like(w), dscale, dbias, None


normalise_train.defvjp(_normalise_train_fwd, _normalise_train_bwd)


def _normalise_scaled_train(xf, w, gain, scale, bias, eps):
  """`normalise_train` of `xf · gain` (one-channel `xf`, `gain [c]`) from xf's statistics."""
  gain = at_least_float32(gain)
  m, v, count = statistics(xf, w)
  a = scaled_factor(gain, scale, v, eps)
  y = _centred_affine(xf - m, a, bias)
  return y, jax.lax.stop_gradient(gain * m), jax.lax.stop_gradient(jnp.square(gain) * v), count


@jax.custom_vjp
def _centred_affine(xc, a, bias):
  """xc [..., 1] · a [c] + bias [c]. Its own backward so that the sums over every position
  (a's and bias's gradients) are `_position_sum`'s, not one long accumulation."""
  return xc * a + bias


def _centred_affine_fwd(xc, a, bias):
  return _centred_affine(xc, a, bias), (xc, a)


def _centred_affine_bwd(residuals, g):
  xc, a = residuals
  # Behind a barrier: else XLA shares the forward's broadcast of xc to every channel with this
  # product and writes it out for the reduction (the GREW step's temp memory 1.09 → 0.93 GiB).
  da, dbias = _position_sum(g * jax.lax.optimization_barrier(xc), g)
  return jnp.sum(g * a, axis=-1, keepdims=True), da, dbias


_centred_affine.defvjp(_centred_affine_fwd, _centred_affine_bwd)
