"""Building blocks of the SPOSGait networks, with PyTorch's numerics.

Layout is NDHWC: video features are `[n, t, h, w, c]`. Temporal validity travels as a
float mask `[n, t]` (1 = real frame, 0 = padding) or `None` when every frame is real; the
masking helpers (`frames`) keep padded frames at exactly zero so a padded batch computes, per
sequence, what that sequence alone would (temporal convs see zeros where PyTorch pads).
"""
from __future__ import annotations

import contextlib
import contextvars
import math
from typing import Any, Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from gait_jax.models import conv as conv_lib
from gait_jax.models.batch_norm import BatchNorm, at_least_float32
from gait_jax.models.frames import apply_mask, frame_mask, segment_mask

Dtype = Any


def conv_kernel_init():
  """Xavier-uniform on a `(kt, kh, kw, in, out)` kernel: fans in·k / out·k, as PyTorch's."""
  return nn.initializers.variance_scaling(1.0, "fan_avg", "uniform")


def separate_fc_init(key, shape, dtype=jnp.float32):
  """PyTorch's Xavier-uniform on a 3-D `[p, in, out]` tensor.

  torch's fan rule for >2-D tensors reads dim 1 as input maps, dim 0 as output maps and
  the rest as the receptive field, so fan_in = in·out and fan_out = p·out:
  much smaller weights than a per-part 2-D Xavier.
  """
  bound = separate_fc_bound(shape)
  return jax.random.uniform(key, shape, dtype, -bound, bound)


def separate_fc_bound(shape) -> float:
  """Xavier bound sqrt(6 / (in·out + p·out)) of a `[p, in, out]` weight."""
  if len(shape) != 3:
    raise ValueError(f"separate_fc_init: expected a [p, in, out] shape, got {tuple(shape)}")
  p, cin, cout = shape
  return math.sqrt(6.0 / (cin * cout + p * cout))


# ----------------------------------------------------------------------------- modules


def conv3d(features: int, kernel: Sequence[int], *, name: str, dtype: Dtype,
           strides: Sequence[int] = (1, 1, 1), same: bool = True) -> nn.Conv:
  """Bias-free 3-D conv; `same` pads k//2 on both sides of every axis (PyTorch's padding)."""
  padding = [(k // 2, k // 2) for k in kernel] if same else "VALID"
  return nn.Conv(features, tuple(kernel), strides=tuple(strides), padding=padding,
                 use_bias=False, dtype=dtype, param_dtype=jnp.float32,
                 kernel_init=conv_kernel_init(), name=name,
                 conv_general_dilated=conv_lib.conv_general_dilated)


class ConvBN(nn.Module):
  """conv1x1x1 + BN: the residual `downsampleK` branch (torch `downsampleK.0`, `.1`). On the
  network's one-channel input the BN takes the kernel as its `gain` (see `BatchNorm`), except
  in an ONNX export, which keeps the reference's Conv."""
  features: int
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x, mask=None, *, train=False):
    x = apply_mask(x, mask)
    if x.shape[-1] == 1 and not _EXPORT_FORM.get():
      kernel = _Kernel((1, 1, 1, 1, self.features), name="conv0")()
      x = BatchNorm(name="bn1")(x, mask, train=train, gain=kernel.reshape(-1))
      return apply_mask(x.astype(self.dtype), mask)
    x = conv3d(self.features, (1, 1, 1), name="conv0", dtype=self.dtype)(x)
    x = BatchNorm(name="bn1")(x, mask, train=train)
    return apply_mask(x, mask)


class _Kernel(nn.Module):
  """`conv3d`'s kernel parameter alone: its name, shape, dtype and initialisation."""
  shape: Tuple[int, ...]

  @nn.compact
  def __call__(self) -> jax.Array:
    return self.param("kernel", conv_kernel_init(), self.shape, jnp.float32)


LTA_STRIDE = 3  # the LTA's temporal kernel and stride (packed rows align sequences to it)


class LTA(nn.Module):
  """Local temporal aggregation: conv (3,1,1) stride (3,1,1), no padding, LeakyReLU 0.01.

  Output frames = floor(t/3); a sequence of L valid frames keeps floor(L/3) valid outputs
  (each output reads only its own 3 frames, so padding never leaks in).
  """
  features: int
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x, lengths=None, segments=None):
    """Returns (x, lengths, mask), or with packed `segments` (x, segments, mask)."""
    s = LTA_STRIDE
    x = conv3d(self.features, (s, 1, 1), strides=(s, 1, 1), same=False, name="conv0",
               dtype=self.dtype)(x)
    x = nn.leaky_relu(x, negative_slope=0.01)
    if segments is not None:
      # Packed sequences start at multiples of the stride, so an output frame is valid
      # exactly when its first and last input frames belong to the same sequence.
      t = x.shape[1]
      first, last = segments[:, 0::s][:, :t], segments[:, s - 1::s][:, :t]
      segments = jnp.where(first == last, first, -1)
      mask = segment_mask(segments)
      return apply_mask(x, mask), segments, mask
    if lengths is None:
      return x, None, None
    lengths = lengths // s
    mask = frame_mask(lengths, x.shape[1])
    return apply_mask(x, mask), lengths, mask


# Inside `export_form()` a few ops are traced in an equivalent form that ONNX converters take:
# jax2onnx cannot broadcast `jnp.power` against a symbolic (dynamic) batch axis.
_EXPORT_FORM = contextvars.ContextVar("gait_jax_export_form", default=False)


@contextlib.contextmanager
def export_form():
  """Traces the model for an ONNX export: same values up to float rounding."""
  token = _EXPORT_FORM.set(True)
  try:
    yield
  finally:
    _EXPORT_FORM.reset(token)


def in_export_form() -> bool:
  """Whether the model is being traced for an ONNX export (`export_form`)."""
  return _EXPORT_FORM.get()


def _exp_log_power(x: jax.Array, p: jax.Array) -> jax.Array:
  """x ** p for x > 0 (GeM's inputs are clamped to eps and divided by their maximum)."""
  return jnp.exp(p * jnp.log(x))


def max_pool_hw(x: jax.Array) -> jax.Array:
  """MaxPool3d kernel (1,2,2) stride (1,2,2), floor mode (odd rows/columns dropped).

  As the maximum of the four strided quarter-grids, with the gradient going to the first
  maximum of each window (row-major, as PyTorch and XLA's select-and-scatter pick it).
  Why not `nn.max_pool`: XLA:CPU's reduce_window forward and select-and-scatter backward ran
  2.7x slower than these elementwise ops on a stem-sized input. (ONNX export keeps
  `nn.max_pool`, which the converter maps to MaxPool.)
  """
  if _EXPORT_FORM.get():
    return nn.max_pool(x, window_shape=(1, 2, 2), strides=(1, 2, 2), padding="VALID")
  return _window_max(x)


def _quarters(x):
  h, w = x.shape[2] // 2 * 2, x.shape[3] // 2 * 2
  return (x[:, :, 0:h:2, 0:w:2], x[:, :, 0:h:2, 1:w:2], x[:, :, 1:h:2, 0:w:2],
          x[:, :, 1:h:2, 1:w:2])


def _window_argmax(x):
  """(the window maxima, which quarter holds each: 0..3 in row-major order, the first maximum
  winning ties), from one set of comparisons."""
  a, b, c, d = _quarters(x)
  top, bottom = jnp.maximum(a, b), jnp.maximum(c, d)
  lower = bottom > top  # ties: the top row, then the left column, win
  index = jnp.where(lower, 2 + (d > c).astype(jnp.int8), (b > a).astype(jnp.int8))
  return jnp.maximum(top, bottom), index


@jax.custom_vjp
def _window_max(x):
  return _window_argmax(x)[0]


def _window_max_fwd(x):
  # The winner is decided here, once, and kept: comparing the output with the input again in
  # the backward pass let XLA recompute the input there (its producers fused into the
  # comparison, with other rounding), so some windows matched no quarter and lost their
  # gradient — BN gradients nearby were then mostly noise.
  y, index = _window_argmax(x)
  # Residuals must be arrays: the odd row / column the floor mode drops and the input dtype
  # travel as the shape and dtype of an empty array.
  return y, (index, jnp.zeros((x.shape[2] % 2, x.shape[3] % 2), x.dtype))


def _window_max_bwd(residuals, g):
  index, odd = residuals
  zero = jnp.zeros_like(g)
  parts = [jnp.where(index == k, g, zero) for k in range(4)]
  n, t, h2, w2, ch = g.shape
  top = jnp.stack(parts[:2], axis=4).reshape(n, t, h2, 2 * w2, ch)
  bottom = jnp.stack(parts[2:], axis=4).reshape(n, t, h2, 2 * w2, ch)
  full = jnp.stack([top, bottom], axis=3).reshape(n, t, 2 * h2, 2 * w2, ch)
  pad = ((0, 0), (0, 0), (0, odd.shape[0]), (0, odd.shape[1]), (0, 0))
  return (jnp.pad(full, pad).astype(odd.dtype),)


_window_max.defvjp(_window_max_fwd, _window_max_bwd)


class GeMHPP(nn.Module):
  """Generalised-mean horizontal pyramid pooling: `[n, h, w, c]` → float32 `[n, c, Σbins]`.

  Parts are ordered bin by bin in config order, strips top→bottom. Computed in float32:
  x^6.5 overflows half precision. The clamp to eps precedes the power as in the reference.
  """
  bins: Tuple[int, ...]
  p_init: float = 6.5
  eps: float = 1e-6

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    p = self.param("p", lambda k, s: jnp.full(s, self.p_init, jnp.float32), (1,))
    n, h, w, c = x.shape
    x = jnp.maximum(at_least_float32(x), self.eps)
    parts = []
    for b in self.bins:
      if h % b:
        raise ValueError(f"GeMHPP: feature height {h} is not divisible by bin {b}")
      strips = x.reshape(n, b, (h // b) * w, c)
      # (mean x^p)^(1/p) = m·(mean (x/m)^p)^(1/p) for any m > 0. With m the strip maximum
      # (a constant for autodiff: the identity makes the gradient exact) the mean is ≥ 1/size,
      # whereas eps^6.5 = 1e-39 is a float32 denormal that CPUs/GPUs flush to 0, turning the
      # gradient of the outer power into inf·0 = NaN for strips with no positive activation.
      m = jax.lax.stop_gradient(jnp.max(strips, axis=2, keepdims=True))
      power = _exp_log_power if _EXPORT_FORM.get() else jnp.power
      mean = jnp.mean(power(strips / m, p[0]), axis=2)  # [n, b, c]
      parts.append(m[:, :, 0] * power(mean, 1.0 / p[0]))
    return jnp.transpose(jnp.concatenate(parts, axis=1), (0, 2, 1))


class SeparateFCs(nn.Module):
  """One bias-free linear map per part: `[n, in, p]` → `[n, out, p]`, weight `[p, in, out]`."""
  parts: int
  out_features: int
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    fc_bin = self.param("fc_bin", separate_fc_init, (self.parts, x.shape[1], self.out_features))
    if x.shape[2] != self.parts:
      raise ValueError(f"SeparateFCs: expected {self.parts} parts, got input {x.shape}")
    return jnp.einsum("ncp,pco->nop", x.astype(self.dtype), fc_bin.astype(self.dtype))


def l2_normalize(x: jax.Array, axis: int, eps: float = 1e-12) -> jax.Array:
  """torch.nn.functional.normalize: x / max(‖x‖, eps)."""
  norm = jnp.sqrt(jnp.sum(jnp.square(x), axis=axis, keepdims=True))
  return x / jnp.maximum(norm, eps)


class SeparateBNNecks(nn.Module):
  """BN-neck + cosine classifier per part (reference parallel_BN1d=True, norm=True).

  `x [n, c, p]` → BatchNorm1d over the flat `c·p` vector (flat index ci·p + pi), then
  logits[n, k, p] = cos(feature[:, :, p], fc_bin[p, :, k]). Returns `(feature, logits)`
  in float32.
  """
  parts: int
  class_num: int
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool = False):
    n, c, p = x.shape
    if p != self.parts:
      raise ValueError(f"SeparateBNNecks: expected {self.parts} parts, got input {x.shape}")
    fc_bin = self.param("fc_bin", separate_fc_init, (self.parts, c, self.class_num))
    flat = BatchNorm(name="bn1d")(at_least_float32(x).reshape(n, c * p), train=train)
    feature = flat.reshape(n, c, p)
    f = l2_normalize(feature, axis=1).astype(self.dtype)
    w = l2_normalize(fc_bin, axis=1).astype(self.dtype)
    logits = jnp.einsum("ncp,pck->nkp", f, w)
    return feature, at_least_float32(logits)
