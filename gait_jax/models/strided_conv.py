"""A convolution whose windows tile the input (stride = kernel on every axis, no padding, no
dilation; the LTA's (3,1,1) kernel at stride (3,1,1)) as products: the input read as
[N, T', kt, H', kh, W', kw, cin] (a reshape, since the windows do not overlap), each tap's
strided slice times its [cin, cout] kernel, summed over the taps. Its gradients are products
too (autodiff). Under oneDNN a (kt, 1, 1) kernel's windows, runs of whole frames, go to the
library instead (`by_frame_runs`).

Why: XLA:CPU runs a strided convolution and its two gradients (one with a dilated input, one
with a dilated kernel spanning the whole output) through Eigen's generic volume-patch loops:
forward and gradients of the LTA took 467 ms at the GREW widths (64 channels, 8 × 30 frames
of 32×22) and 66 ms at 8 channels, against 72 ms and 2 ms as products — about a fifth of a
train step. Per tap rather than one product over all taps: that one needs the taps next to
the channels, a transposed copy of the input that XLA fused into the stem that makes it,
whose loop then ran the embedding 1.6× slower than XLA's convolution did. The same sums in
another order: values and gradients agree to float rounding (tests/models/test_conv.py).
"""
from __future__ import annotations

import itertools

import jax.numpy as jnp
from jax import lax


def tiles(kernel, window_strides, padding) -> bool:
  """Whether a convolution with this kernel shape (kt, kh, kw), stride and padding tiles its
  input: stride = kernel (not all ones), no padding (the caller has checked the rest)."""
  if isinstance(padding, str):
    unpadded = padding.upper() == "VALID"
  else:
    unpadded = all(int(lo) == 0 and int(hi) == 0 for lo, hi in padding)
  return tuple(window_strides) == tuple(kernel) != (1, 1, 1) and unpadded


def conv(x, w, precision=None, unstrided=None):
  """y[n, t, h, w] = Σ over the window at (t·kt, h·kh, w·kw) of x · kernel; trailing frames,
  rows and columns that do not fill a window are dropped, as the convolution drops them.
  `unstrided(x, w)`, a stride-1 unpadded convolution, computes a (kt, 1, 1) kernel's instead
  where it is given (`by_frame_runs`)."""
  n, t, h, wd, cin = x.shape
  kt, kh, kw = w.shape[:3]
  if unstrided is not None and (kh, kw) == (1, 1) and t >= kt:
    return by_frame_runs(unstrided, x, w)
  t_out, h_out, w_out = t // kt, h // kh, wd // kw
  x = lax.slice(x, (0,) * 5, (n, t_out * kt, h_out * kh, w_out * kw, cin))
  windows = x.reshape(n, t_out, kt, h_out, kh, w_out, kw, cin)
  y = None
  for a, b, c in itertools.product(range(kt), range(kh), range(kw)):
    term = jnp.einsum("nthwi,io->nthwo", windows[:, :, a, :, b, :, c], w[a, b, c],
                      precision=precision)
    y = term if y is None else y + term
  return y


def by_frame_runs(unstrided, x, w):
  """`conv(x, w)` for a (kt, 1, 1) kernel at stride (kt, 1, 1), as `unstrided(runs, w)`: each
  run of kt frames read as a sequence of its own ([N·T', kt, H, W, C], a reshape), whose one
  output frame is that window's.

  Why: a convolution library then computes the LTA in one call per direction; oneDNN's, at
  64 channels, the forward and both gradients in 44 ms against the products' 122 ms, whose
  kernel gradient XLA fed a transposed copy of the output gradient."""
  n, t, h, wd, cin = x.shape
  kt, runs = w.shape[0], t // w.shape[0]
  x = lax.slice_in_dim(x, 0, runs * kt, axis=1).reshape(n * runs, kt, h, wd, cin)
  return unstrided(x, w).reshape(n, runs, h, wd, w.shape[-1])
