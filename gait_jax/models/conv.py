"""3-D convolutions in the formulation that is fastest where they run.

`conv_general_dilated` is a drop-in for `lax.conv_general_dilated` (flax's
`nn.Conv(conv_general_dilated=...)`) that picks how a stride-1, undilated, ungrouped
channels-last 3-D convolution is computed (`formulation()`; on CPU also a strided one whose
windows tile the input: products per tap, or oneDNN's for the LTA's runs of frames,
`strided_conv.py`; others are always XLA's):

  xla        `lax.conv_general_dilated` and XLA's own backward. GPU/TPU: their compilers call
             cuDNN / their own kernels for both directions.
  canonical  XLA's forward; both gradients as canonical convolutions behind
             `optimization_barrier` (see `_canonical_grads`).
  gemm       convolutions as matrix products, which XLA:CPU runs near its GEMM peak: a layer
             with few input values per output (`cin·kt·kh·kw <= SMALL_K`, e.g. the 1-channel
             stem) as one im2col GEMM `[N·T·H·W, kt·kh·kw·cin] × [.., cout]`, forward and
             backward (a 1-channel input's forward as one fused elementwise sum over the taps);
             wider layers keep XLA's forward convolution, take their input gradient from the
             tap-wise form `y = Σ_taps shift(x) @ w[tap]` (one `[N·T·H·W, cin] × [cin, cout]`
             product per tap, no im2col copy) and their kernel gradient as the canonical
             convolution.
  onednn     (CPU default on one CPU device where tools/build_onednn.sh built it) oneDNN's own
             convolutions through XLA custom calls (`onednn_conv.py`): wider layers in all three
             directions, every kernel gradient, and the forward of a 1-channel stem with
             ≤ ONEDNN_STEM_MAX_OUT outputs; gemm's small-input forward (the wider stems' fused
             tap sum) and the 1×1×1's GEMMs, which XLA runs faster. float32; other dtypes: fold.
  onednn_bf16  onednn, with the wider layers' products in bfloat16 (float32 sums and results;
             AMX or AVX-512-BF16: refused on a CPU without them, where the AVX2 machines'
             oneDNN has none): `onednn` inside `bf16_products()` (`embed.bf16`, `train.bf16`).
  fold       (CPU default otherwise) gemm's small layers; the wider layers' forward and input
             gradient as 2-D convolutions, which XLA:CPU runs through Eigen's spatial
             convolution two to three times faster than its 3-D one: a kernel axis of one
             tap is folded into the batch ((1,3,3), (3,1,3), (3,3,1); (3,1,1) folds h·w into
             one axis), and (3,3,3) is one 2-D convolution per temporal tap, summed (see
             `_fold_2d`); kernel gradient canonical (its 2-D folds and GEMM forms ran slower).

Why: XLA:CPU runs a convolution fast (Eigen) only with the canonical `b012f × 012io → b012f` layout
and enough input channels, and a 2-D one (`b01f × 01io`) faster than a 3-D one. Its 1-channel stem
ran at 2 GFLOP/s (forward + gradients of `1 → 64` at 64×44, 30 frames: 2.35 s; as a GEMM 0.17 s),
and its backward convolutions — inside a `lax.switch`/`lax.cond` branch, where every searchable
layer of a supernet with a traced path runs — fell back to a naive loop (8× slower input gradient,
20× slower kernel gradient) unless written canonically. Products of matrices have no such cliffs.
All formulations compute the same sums in other orders: values and gradients agree to float
rounding (tests/models/test_conv.py). `tools/benchmark.py conv` measures them per layer shape.
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
import logging
import os

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from gait_jax.common import cpu
from gait_jax.models import onednn_conv, strided_conv

# "auto" (onednn or fold on CPU, xla elsewhere) or one of FORMULATIONS: benchmarks, tests.
ENV_VAR = "GAIT_JAX_CONV"
FORMULATIONS = ("xla", "canonical", "gemm", "fold", "onednn", "onednn_bf16")
# Up to this many input values per output (cin·kt·kh·kw) a whole im2col GEMM beats XLA:CPU's
# convolution in both directions (measured: 27 for the stem, ~16x faster); beyond it the copy
# costs more than it saves and the tap-wise gradients win.
SMALL_K = 64
# A 1-channel stem with up to this many outputs takes oneDNN's forward: XLA fuses its tap sum
# into BN/ReLU/pooling: 1.3× slower embedding at 8 outputs, faster from 16 (docs/benchmarks.md).
ONEDNN_STEM_MAX_OUT = 8

_CHANNELS_LAST = ("NDHWC", "DHWIO", "NDHWC")
_BF16_PRODUCTS = contextvars.ContextVar("gait_jax_bf16_products", default=False)
_NO_BF16_UNITS = "the CPU lists neither amx_bf16 nor avx512_bf16"


def bf16_available() -> str:
  """Empty where `bf16_products()` makes oneDNN multiply in bfloat16 here, else why not."""
  if not cpu.has_bf16_units():
    return _NO_BF16_UNITS
  form = formulation()
  if form not in _ONEDNN:
    return f"the convolutions here are {form!r}, not oneDNN's"
  return ""


def bf16_usable(key: str, wanted: bool) -> bool:
  """Whether config `key` asking for bfloat16 products gets them here (else one log line)."""
  reason = bf16_available() if wanted else ""
  if reason:
    logging.warning("%s: bfloat16 products not used (%s); float32 instead", key, reason)
  return bool(wanted) and not reason


@contextlib.contextmanager
def bf16_products(enabled: bool = True):
  """Convolutions traced inside use `onednn_bf16` for `onednn` (see `bf16_usable`)."""
  token = _BF16_PRODUCTS.set(bool(enabled))
  try:
    yield
  finally:
    _BF16_PRODUCTS.reset(token)


def formulation() -> str:
  """The formulation convolutions traced now use (read from ENV_VAR at trace time)."""
  form = _formulation()
  return "onednn_bf16" if form == "onednn" and _BF16_PRODUCTS.get() else form


def _formulation() -> str:
  mode = os.environ.get(ENV_VAR, "auto").strip().lower()
  if mode == "auto":
    if jax.default_backend() != "cpu":
      return "xla"
    # Several CPU devices: XLA's partitioner would gather a custom call's operands onto every
    # device; its own convolutions shard with the batch.
    return "onednn" if jax.device_count() == 1 and onednn_conv.available() else "fold"
  if mode not in FORMULATIONS:
    raise ValueError(f"{ENV_VAR}={mode!r}: expected auto or one of {', '.join(FORMULATIONS)}")
  if mode.startswith("onednn") and not onednn_conv.available():
    raise ValueError(f"{ENV_VAR}={mode}: the oneDNN library is not built "
                     f"({onednn_conv.library_path()}; `bash tools/build_onednn.sh` builds it)")
  if mode == "onednn_bf16" and not cpu.has_bf16_units():
    raise ValueError(f"{ENV_VAR}={mode}: {_NO_BF16_UNITS}; use onednn")
  return mode


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None,
                         rhs_dilation=None, dimension_numbers=None, feature_group_count=1,
                         precision=None, preferred_element_type=None):
  """`lax.conv_general_dilated` in the form `formulation()` names, where one applies."""
  plain = functools.partial(
      lax.conv_general_dilated, lhs, rhs, window_strides, padding, lhs_dilation=lhs_dilation,
      rhs_dilation=rhs_dilation, dimension_numbers=dimension_numbers, precision=precision,
      feature_group_count=feature_group_count, preferred_element_type=preferred_element_type)
  ones, form = (1,) * (lhs.ndim - 2), formulation()
  if (form == "xla" or lhs.ndim != 5 or feature_group_count != 1
      or preferred_element_type is not None or tuple(lhs_dilation or ones) != ones
      or tuple(rhs_dilation or ones) != ones
      or not _is_channels_last(lhs.shape, rhs.shape, dimension_numbers)):
    return plain()
  if tuple(window_strides) != ones:
    if not strided_conv.tiles(rhs.shape[:3], window_strides, padding):
      return plain()
    onednn = form in _ONEDNN and lhs.dtype == rhs.dtype == jnp.float32
    return strided_conv.conv(lhs, rhs, precision, functools.partial(
        _route_onednn, form, pads=((0, 0),) * 3, precision=precision) if onednn else None)
  if isinstance(padding, str):
    padding = lax.padtype_to_pads(lhs.shape[1:4], rhs.shape[:3], ones, padding)
  pads = tuple((int(lo), int(hi)) for lo, hi in padding)
  if form == "canonical" or any(lo < 0 or hi < 0 for lo, hi in pads):
    return _canonical(lhs, rhs, pads, precision)
  if form in _ONEDNN:
    if lhs.dtype == rhs.dtype == jnp.float32:
      return _route_onednn(form, lhs, rhs, pads, precision)
    form = "fold"
  if _few_inputs(rhs):
    return _im2col(lhs, rhs, pads, precision)
  if form == "fold" and not _one_tap(rhs):  # a 1×1×1 is one GEMM as it is
    return _folded(lhs, rhs, pads, precision)
  return _gemm_backward(lhs, rhs, pads, precision)


def _few_inputs(w) -> bool:
  """Few input values per output (cin·kt·kh·kw <= SMALL_K): the im2col GEMM's layers."""
  return w.shape[3] * int(np.prod(w.shape[:3])) <= SMALL_K


def _one_tap(w) -> bool:
  """A 1×1×1 kernel: the convolution is one GEMM as it is."""
  return tuple(w.shape[:3]) == (1, 1, 1)


def _is_channels_last(lhs_shape, rhs_shape, dimension_numbers) -> bool:
  return (lax.conv_dimension_numbers(lhs_shape, rhs_shape, dimension_numbers)
          == lax.conv_dimension_numbers(lhs_shape, rhs_shape, _CHANNELS_LAST))


def _plain(x, w, pads, precision):
  return lax.conv_general_dilated(x, w, (1, 1, 1), pads, dimension_numbers=_CHANNELS_LAST,
                                  precision=precision)


def _windows(x, w, pads):
  """[((a, b, c), window)]: per tap, the slice of the zero-padded input that it multiplies."""
  kt, kh, kw = w.shape[:3]
  xp = jnp.pad(x, ((0, 0),) + tuple(pads) + ((0, 0),))
  t, h, wd = (xp.shape[1 + i] - k + 1 for i, k in enumerate((kt, kh, kw)))
  return [((a, b, c), xp[:, a:a + t, b:b + h, c:c + wd])
          for a in range(kt) for b in range(kh) for c in range(kw)]


def _taps(x, w, pads, precision):
  """y = Σ_taps window(x) @ w[tap]: one [N·T·H·W, cin] × [cin, cout] product per tap."""
  y = None
  for (a, b, c), window in _windows(x, w, pads):
    term = jnp.einsum("nthwc,co->nthwo", window, w[a, b, c], precision=precision)
    y = term if y is None else y + term
  return y


def _columns(x, w, pads):
  """Every tap's window side by side: [N, T, H, W, taps·cin], channel-minor as w's row-major
  (kt, kh, kw, cin) flattening. Built one axis at a time (w, then h, then t shifts of the
  growing block): XLA:CPU copies a few wide pieces three times faster than 27 one-channel
  ones (the stem's columns: 104 vs 294 ms at 8 × 64 frames)."""
  kt, kh, kw = w.shape[:3]
  xp = jnp.pad(x, ((0, 0),) + tuple(pads) + ((0, 0),))
  t, h, wd = (xp.shape[1 + i] - k + 1 for i, k in enumerate((kt, kh, kw)))
  cols = jnp.concatenate([xp[:, :, :, c:c + wd] for c in range(kw)], axis=-1)
  cols = jnp.concatenate([cols[:, :, b:b + h] for b in range(kh)], axis=-1)
  return jnp.concatenate([cols[:, a:a + t] for a in range(kt)], axis=-1)


def _columns_t(x, w, pads):
  """The same columns transposed, [taps·cin, N·T·H·W], materialised: the kernel gradient's
  product then reads both operands as laid out. Else XLA:CPU transposes the (larger) output
  gradient, fused into the BN backward: a third of a small supernet step."""
  cin = x.shape[-1]
  stacked = jnp.stack([window for _, window in _windows(x, w, pads)], axis=0)
  stacked = jnp.moveaxis(stacked, -1, 1) if cin > 1 else stacked[..., 0][:, None]
  return lax.optimization_barrier(stacked.reshape(stacked.shape[0] * cin, -1))


def _im2col_plain(x, w, pads, precision):
  if x.shape[-1] == 1:
    # One input channel (the stem): y = Σ_taps window · w[tap], one fused elementwise loop
    # that writes only the output (the columns: 27 values per pixel against its 8-64; 5x faster
    # than the GEMM at 8 outputs, as fast at 64), accumulated in float32 as a GEMM accumulates.
    y = sum(window.astype(jnp.float32) * w[a, b, c, 0].astype(jnp.float32)
            for (a, b, c), window in _windows(x, w, pads))
    # Materialised: fused into each of its consumers (the BN statistics of a train step) it
    # would be recomputed per consumer, which made a train step 15 % slower.
    return lax.optimization_barrier(y.astype(jnp.result_type(x, w)))
  k = int(np.prod(w.shape[:4]))
  return jnp.einsum("nthwk,ko->nthwo", _columns(x, w, pads), w.reshape(k, w.shape[4]),
                    precision=precision)


def _custom_backward(forward, backward):
  """A convolution `(x, w, pads, precision)` computed by `forward` and differentiated by
  `backward(pads, precision, x, w, g) -> (gx, gw)`; gradients come back in x's and w's dtypes."""
  @functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
  def conv(x, w, pads, precision):
    return forward(x, w, pads, precision)

  def conv_fwd(x, w, pads, precision):
    return forward(x, w, pads, precision), (x, w)

  def conv_bwd(pads, precision, residuals, g):
    x, w = residuals
    gx, gw = backward(pads, precision, x, w, g.astype(jnp.result_type(x, w)))
    return gx.astype(x.dtype), gw.astype(w.dtype)

  conv.defvjp(conv_fwd, conv_bwd)
  return conv


def _im2col_grads(pads, precision, x, w, g):
  return (_im2col_input_grad(precision, x, w, g, pads),
          _im2col_kernel_grad(precision, x, w, g, pads))


def _im2col_kernel_grad(precision, x, w, g, pads):
  k, cout = int(np.prod(w.shape[:4])), w.shape[4]
  # The kernel gradient sums N·T·H·W products (675 K for the stem of 8 × 30 frames); one float32
  # dot lost ~4e-2 of this small remainder of large terms (a BN follows). Per image row, then
  # rows, then frames: below XLA's and PyTorch's error, as fast (tools/benchmark.py gradients).
  n, t, h, wd = g.shape[:4]
  per_row = jnp.einsum("krp,rpo->rko", _columns_t(x, w, pads).reshape(k, n * t * h, wd),
                       g.reshape(n * t * h, wd, cout), precision=precision)
  return jnp.sum(jnp.sum(per_row.reshape(n * t, h, k, cout), axis=1), axis=0).reshape(w.shape)


def _im2col_input_grad(precision, x, w, g, pads):
  # The columns are linear in x: their VJP scatters each tap's share of g @ w^T back.
  k, cout = int(np.prod(w.shape[:4])), w.shape[4]
  gcols = jnp.dot(g.reshape(-1, cout), w.reshape(k, cout).T, precision=precision)
  _, vjp = jax.vjp(lambda a: _columns(a, w, pads), x)
  gx, = vjp(gcols.reshape(g.shape[:4] + (k,)))
  return gx


def _tapwise_grads(pads, precision, x, w, g):
  """Input gradient tap-wise, gx = Σ_taps shift⁻¹(g @ w[tap]ᵀ); kernel gradient canonical (the
  tap-wise one's strided copy of x per tap lost on every wide layer: tools/benchmark.py conv)."""
  # Linear in x: its VJP is products of g with w only (XLA removes the unused forward ones).
  _, vjp = jax.vjp(lambda a: _taps(a, w, pads, precision), x)
  gx, = vjp(g)
  return gx, _canonical_kernel_grad(x, g, pads, precision)


def _canonical_grads(pads, precision, x, w, g):
  """Both gradients as canonical convolutions (autodiff's backward ones), operands transposed
  behind `optimization_barrier` so the simplifier cannot fold them into the dimension numbers."""
  w_t, pads_x = _input_grad_kernel(w, pads)
  gx = _plain(g, lax.optimization_barrier(w_t), pads_x, precision)
  return gx, _canonical_kernel_grad(x, g, pads, precision)


def _input_grad_kernel(w, pads):
  """(kernel, padding) of the input gradient as g's convolution: w flipped, in/out swapped."""
  w_t = jnp.swapaxes(jnp.flip(w, (0, 1, 2)), 3, 4)
  pads_x = tuple((k - 1 - lo, k - 1 - hi) for k, (lo, hi) in zip(w.shape[:3], pads))
  return w_t, pads_x


def _canonical_kernel_grad(x, g, pads, precision):
  """The kernel gradient as a canonical convolution over the batch, with x's channels as its
  batch ([cin, t, h, w, n]) and g as a [t, h, w, n, cout] kernel → [kt, kh, kw, cin, cout]."""
  x_t = lax.optimization_barrier(jnp.moveaxis(x, (0, 4), (4, 0)))
  g_t = lax.optimization_barrier(jnp.moveaxis(g, 0, 3))
  return jnp.moveaxis(_plain(x_t, g_t, pads, precision), 0, 3)


def _fold_2d(x, w, pads, precision):
  """The 3-D convolution as 2-D ones, which XLA:CPU's Eigen runs at 2–3× its 3-D speed
  (tools/benchmark.py conv): an axis the kernel spans with one tap (unpadded) is folded into
  the batch ((1,3,3), (3,1,3), (3,3,1)); (3,1,1) folds h·w into one axis; (3,3,3)
  and a padded unit axis sum 2-D convolutions of shifted frames per temporal tap. Negative
  padding (cropping): XLA's own."""
  n, t, h, wd, cin = x.shape
  kt, kh, kw, _, cout = w.shape
  unit = [i for i, k in enumerate((kt, kh, kw)) if k == 1 and pads[i] == (0, 0)]
  if any(lo < 0 or hi < 0 for lo, hi in pads):
    return _plain(x, w, pads, precision)
  if 1 in unit and 2 in unit:  # (kt, 1, 1): a 2-D conv over (t, h·w)
    y = _conv2d(x.reshape(n, t, h * wd, cin), w[:, :, 0], (pads[0], (0, 0)), precision)
    return y.reshape(n, -1, h, wd, cout)
  if unit:
    axis = unit[0]
    kernel = jnp.squeeze(w, axis)
    moved = jnp.moveaxis(x, 1 + axis, 1)  # the unit axis next to the batch
    rest = moved.shape[2:4]
    y = _conv2d(moved.reshape((-1,) + rest + (cin,)), kernel,
                tuple(p for i, p in enumerate(pads) if i != axis), precision)
    y = y.reshape((n, moved.shape[1]) + y.shape[1:])
    return jnp.moveaxis(y, 1, 1 + axis)
  xp = jnp.pad(x, ((0, 0), pads[0], (0, 0), (0, 0), (0, 0)))
  t_out = xp.shape[1] - kt + 1
  y = None
  for a in range(kt):
    frames = xp[:, a:a + t_out].reshape((-1, h, wd, cin))
    term = _conv2d(frames, w[a], pads[1:], precision)
    y = term if y is None else y + term
  return y.reshape((n, t_out) + y.shape[1:])


def _conv2d(x, w, pads, precision):
  return lax.conv_general_dilated(x, w, (1, 1), pads, dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                  precision=precision)


def _fold_grads(pads, precision, x, w, g):
  """Input gradient: the correlation of g with the flipped, in/out-swapped kernel, folded to
  2-D as the forward; kernel gradient: the canonical convolution (its 2-D folds ran slower)."""
  w_t, pads_x = _input_grad_kernel(w, pads)
  gx = _fold_2d(g, w_t, pads_x, precision)
  return gx, _canonical_kernel_grad(x, g, pads, precision)


_im2col = _custom_backward(_im2col_plain, _im2col_grads)  # one GEMM over all taps' windows
_gemm_backward = _custom_backward(_plain, _tapwise_grads)
_canonical = _custom_backward(_plain, _canonical_grads)
_folded = _custom_backward(_fold_2d, _fold_grads)  # 2-D convolutions, canonical kernel grad
_WIDE_ONEDNN = {bf16: _custom_backward(functools.partial(onednn_conv.forward, bf16=bf16),
                                       functools.partial(onednn_conv.grads, bf16=bf16))
                for bf16 in (False, True)}


def _onednn_convs():
  """The onednn formulation's four routes (`_route_onednn`), strict float32; `onednn_bf16`'s
  differ only in the wide layers: the 1-channel stem's and 1×1×1's kernel gradients ran 1.8×
  and 5.5× slower in bfloat16 (`tools/benchmark.py conv`), the wider 1×1×1s' no faster."""
  def gemm_grads(pads, precision, x, w, g):
    # 1×1×1: the input gradient is one GEMM, g @ wᵀ (XLA's ran 1.5–2× oneDNN's); the kernel
    # gradient oneDNN's (2× XLA's canonical convolution).
    gx = jnp.einsum("nthwo,io->nthwi", g, w[0, 0, 0], precision=precision)
    return gx, onednn_conv.kernel_grad(x, g, w.shape, pads)

  def im2col_grads(pads, precision, x, w, g):
    # Few input values per output (the stem): the input gradient as im2col's (the network's
    # input needs none: XLA drops it), the kernel gradient oneDNN's (2× im2col's).
    return (_im2col_input_grad(precision, x, w, g, pads),
            onednn_conv.kernel_grad(x, g, w.shape, pads))

  return {"wide": _WIDE_ONEDNN[False], "1x1x1": _custom_backward(_plain, gemm_grads),
          "small": _custom_backward(_im2col_plain, im2col_grads),
          "stem": _custom_backward(onednn_conv.forward, im2col_grads)}


_ONEDNN = {"onednn": _onednn_convs()}
_ONEDNN["onednn_bf16"] = dict(_ONEDNN["onednn"], wide=_WIDE_ONEDNN[True])


def _route_onednn(form, x, w, pads, precision):
  stem = w.shape[3] == 1 and w.shape[4] <= ONEDNN_STEM_MAX_OUT and not _one_tap(w)
  kind = ("stem" if stem else "small") if _few_inputs(w) else "1x1x1" if _one_tap(w) else "wide"
  return _ONEDNN[form][kind](x, w, pads, precision)
