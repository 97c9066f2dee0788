"""oneDNN's 3-D convolutions inside XLA:CPU, as custom calls (`onednn_conv3d.cc`).

`tools/build_onednn.sh` (run by the set-up) compiles the library next to this file from the
onednn-cpu-gomp wheels; `available()` loads it once and registers its six handlers with XLA.
Where it was not built (another OS or CPU architecture, no compiler, a failed build) or does not
load, `available()` is False and says why in one log line; conv.py then uses its XLA
formulations. Float32 tensors in and out; the arithmetic is strict float32 unless a call passes
`bf16=True` (conv.py's `onednn_bf16`), which hands oneDNN bfloat16 copies of the operands
(the forward's x and w, the input gradient's output gradient and w, the kernel gradient's x and
output gradient): bfloat16 products, float32 accumulation and results.
"""
from __future__ import annotations

import ctypes
import functools
import logging
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

# Another build of the library (tests, benchmarks); default: the one the set-up builds here.
LIB_ENV_VAR = "GAIT_JAX_ONEDNN_LIB"
LIB_PATH = Path(__file__).with_name("_onednn_conv3d.so")
_TARGETS = {  # XLA custom-call name -> the library's FFI handler symbol
    "gait_onednn_conv3d_forward": "GaitOnednnConv3dForward",
    "gait_onednn_conv3d_input_grad": "GaitOnednnConv3dInputGrad",
    "gait_onednn_conv3d_kernel_grad": "GaitOnednnConv3dKernelGrad",
    "gait_onednn_conv3d_forward_bf16": "GaitOnednnConv3dForwardBf16",
    "gait_onednn_conv3d_input_grad_bf16": "GaitOnednnConv3dInputGradBf16",
    "gait_onednn_conv3d_kernel_grad_bf16": "GaitOnednnConv3dKernelGradBf16",
}


def library_path() -> Path:
  return Path(os.environ.get(LIB_ENV_VAR) or LIB_PATH)


def register_targets(targets) -> ctypes.CDLL:
  """Loads the library and registers `targets` (custom-call name -> its FFI handler symbol)
  with XLA:CPU; OSError / AttributeError where it does not load or lacks a symbol."""
  lib = ctypes.CDLL(str(library_path()))
  for target, symbol in targets.items():
    jax.ffi.register_ffi_target(target, jax.ffi.pycapsule(getattr(lib, symbol)), platform="cpu")
  return lib


@functools.cache
def registered(targets: tuple, instead: str) -> bool:
  """Whether `targets` ((custom-call name, FFI handler symbol), ...) are registered with XLA:CPU
  from the library; where it is not built or lacks them, False and one log line saying what
  runs `instead`. Once per process and set of targets."""
  path = library_path()
  if not path.is_file():
    logging.info("%s (%s not built; `bash tools/build_onednn.sh` builds it)", instead, path)
    return False
  try:
    register_targets(dict(targets))
  except (OSError, AttributeError) as e:
    logging.warning("%s (%s: %s)", instead, path, e)
    return False
  return True


@functools.cache
def version() -> str | None:
  """The loaded oneDNN's version ("3.2.0"), or None where the library is unavailable (logged
  once, with the reason)."""
  path = library_path()
  if not path.is_file():
    logging.info("oneDNN convolutions not built (%s missing; `bash tools/build_onednn.sh` "
                  "builds them): XLA's convolutions are used", path)
    return None
  try:
    code = int(register_targets(_TARGETS).GaitOnednnVersion())
  except (OSError, AttributeError) as e:
    logging.warning("oneDNN convolutions unavailable (%s: %s): XLA's convolutions are used",
                    path, e)
    return None
  return f"{code // 10000}.{code // 100 % 100}.{code % 100}"


def available() -> bool:
  return version() is not None


def _call(target: str, shape, a, b, pads, bf16: bool):
  """Runs `target` (its bfloat16 handler when `bf16`, on bfloat16 copies of a and b)."""
  if not available():  # also registers the handlers on first use
    raise RuntimeError(f"oneDNN convolutions unavailable ({library_path()}; "
                       "`bash tools/build_onednn.sh` builds them)")
  if bf16:
    # Rounded to bfloat16 here, where XLA fuses the rounding into the op that makes the
    # operand: oneDNN's AMX kernels then read half the bytes and convert nothing.
    target, a, b = target + "_bf16", a.astype(jnp.bfloat16), b.astype(jnp.bfloat16)
  flat = np.asarray(pads, np.int64).reshape(-1)
  return jax.ffi.ffi_call(target, jax.ShapeDtypeStruct(shape, jnp.float32),
                          vmap_method="sequential")(a, b, pads=flat, bf16=np.int32(bf16))


def forward(x, w, pads, precision=None, *, bf16: bool = False):
  """y = conv(x, w): x [N, T, H, W, Cin], w [kt, kh, kw, Cin, Cout], stride 1, `pads` per
  spatial axis (lo, hi) ≥ 0, float32 (`precision` is moot: oneDNN's float32 is exact float32).
  `bf16`: x and w rounded to bfloat16 (8 significant bits) and multiplied so, float32
  accumulation and output: AMX or AVX-512-BF16 kernels, which the CPU must have (AVX2's oneDNN
  cannot create the primitive: conv.py refuses `onednn_bf16` there)."""
  del precision
  out = tuple(s + lo + hi - k + 1 for s, k, (lo, hi) in zip(x.shape[1:4], w.shape[:3], pads))
  shape = (x.shape[0],) + out + (w.shape[4],)
  return _call("gait_onednn_conv3d_forward", shape, x, w, pads, bf16)


def input_grad(g, w, x_shape, pads, *, bf16: bool = False):
  """The input gradient of `forward` for the output gradient g (`bf16`: g and w rounded)."""
  return _call("gait_onednn_conv3d_input_grad", x_shape, g, w, pads, bf16)


def kernel_grad(x, g, w_shape, pads, *, bf16: bool = False):
  """The kernel gradient of `forward` for the output gradient g (`bf16`: x and g rounded)."""
  return _call("gait_onednn_conv3d_kernel_grad", w_shape, x, g, pads, bf16)


def grads(pads, precision, x, w, g, *, bf16: bool = False):
  """(input gradient, kernel gradient) of `forward` for the output gradient g."""
  del precision
  return (input_grad(g, w, x.shape, pads, bf16=bf16),
          kernel_grad(x, g, w.shape, pads, bf16=bf16))
