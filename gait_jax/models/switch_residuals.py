"""Uninitialised rather than zero-filled residual slots in a traced choice layer's switch.

Differentiating `lax.switch` makes its forward return the residuals of *every* branch in one
common format: the chosen branch fills its own slots and JAX fills the slots only other
branches use with zeros (`ad_util.empty_like_aval`: "contents unspecified", a broadcast of 0 on
CPU). Only the chosen branch's backward runs, so nothing ever reads them; on XLA:CPU writing them
cost 7 % of a supernet train step at the tiny widths and 6 % at the GREW widths (huge pages on;
docs/benchmarks.md). While `uninitialized()` is active (ChoiceLayer around its `nn.switch`;
the swap is process-wide for that moment, and gait_jax traces from one thread), JAX's empty
array is a custom call that leaves XLA's fresh buffer unwritten (`uninitialized.cc`, built
with the oneDNN convolutions): the same values and gradients (bit for bit in the steps
measured), with fewer bytes written.

`GAIT_JAX_SWITCH_RESIDUALS` (read while tracing) chooses the fill:
  auto           (default) unwritten where it is safe and pays: the CPU backend with one device
                 (XLA's SPMD partitioner would replicate an operand-less custom call: a full-size
                 buffer on every device), the library built (`tools/build_onednn.sh`; one log
                 line where it is not); JAX's zeros elsewhere
  uninitialized  unwritten on any number of CPU devices
  poison         NaN bytes (all ones), on any number of CPU devices: the tests' proof that
                 nothing reads those slots (a fresh page reads as zeros and would hide a reader)
  zeros          JAX's own fill (A/B runs)
Only numeric and bool residuals outside shard_map get the custom call; others keep JAX's fill.
"""
from __future__ import annotations

import contextlib
import os

import jax
import numpy as np

from gait_jax.models import onednn_conv

ENV_VAR = "GAIT_JAX_SWITCH_RESIDUALS"
MODES = ("auto", "uninitialized", "poison", "zeros")
# fill -> (custom-call name, the library's FFI handler symbol in uninitialized.cc)
_TARGETS = {"uninitialized": ("gait_uninitialized", "GaitUninitialized"),
            "poison": ("gait_poisoned", "GaitPoisoned")}


def _hook():
  """JAX's table of "empty array" makers, or None where this JAX has none. Private API: JAX
  offers no public way to choose how cond's unused residual slots are filled."""
  try:
    from jax._src import ad_util, core  # pylint: disable=g-import-not-at-top
    return ad_util.aval_empty_likers, core.ShapedArray
  except (ImportError, AttributeError):
    return None


def _registered() -> bool:
  return onednn_conv.registered(tuple(_TARGETS.values()), "switch residuals zero-filled")


def fill() -> str:
  """How a switch traced now fills its unused residual slots: "uninitialized", "poison" or
  "zeros" (see the module's docstring)."""
  mode = os.environ.get(ENV_VAR, "auto").strip().lower()
  if mode not in MODES:
    raise ValueError(f"{ENV_VAR}={mode!r}: expected one of {', '.join(MODES)}")
  if mode == "auto":
    usable = (jax.default_backend() == "cpu" and jax.device_count() == 1
              and _hook() is not None and _registered())
    return "uninitialized" if usable else "zeros"
  if mode != "zeros":
    why = ("it is an XLA:CPU custom call" if jax.default_backend() != "cpu" else
           "this JAX has no hook for it" if _hook() is None else
           f"{onednn_conv.library_path()} is not built (`bash tools/build_onednn.sh` builds it)"
           if not _registered() else "")
    if why:
      raise ValueError(f"{ENV_VAR}={mode}: unavailable: {why}")
  return mode


def _plain(aval) -> bool:
  """A residual the custom call can stand for: a numeric or bool array outside shard_map."""
  numeric = jax.dtypes.issubdtype(aval.dtype, np.number) or aval.dtype == np.bool_
  return numeric and not getattr(getattr(aval, "mat", None), "varying", ())


@contextlib.contextmanager
def uninitialized():
  """Within: JAX's empty arrays of plain dtypes are filled as `fill()` says; JAX's own zeros
  again on exit."""
  how = fill()
  if how == "zeros":
    yield
    return
  target = _TARGETS[how][0]
  likers, shaped_array = _hook()
  zeros = likers[shaped_array]

  def unwritten(aval):
    if not _plain(aval):
      return zeros(aval)
    return jax.ffi.ffi_call(target, jax.ShapeDtypeStruct(aval.shape, aval.dtype),
                            vmap_method="broadcast_all")()

  likers[shaped_array] = unwritten
  try:
    yield
  finally:
    likers[shaped_array] = zeros
