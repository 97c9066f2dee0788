"""The small network's first stage at inference as one native pass (`first_stage.cc`).

At the widths the quickstart, the recipes and the shipped walkers model use (8/16/32) an
embedding spends about 40 % of its time in stage 0 at full resolution: the stem convolution
writes a `[T, 64, 44, C]` tensor that XLA then reads and writes again for BN, the mask, ReLU,
the downsample's BN, the sum, ReLU and the 2×2 max pool — memory traffic, not arithmetic
(docs/benchmarks.md). The custom call computes each pooling window's four stem outputs in
registers and writes only the pooled result. Same sums (the taps in another order), so the
embeddings agree with XLA's route to float rounding (tests/models/test_first_stage.py).

It runs where all of these hold, and XLA's modules run otherwise: inference (`train=False`;
training needs BN's batch statistics between the convolution and its normalisation); stage 0's
candidate known at trace time (a static path, or a fixed-path model's own: embed, test,
enroll, identify) and one convolution (ops 0–2); a one-channel float32 input; a one-layer
stage 0 with ReLU and pooling (the small network); the library built with this kernel
(tools/build_onednn.sh) on a CPU with AVX2 and FMA (its instructions); oneDNN's convolutions
in use (`conv.formulation`: CPU, one device); no ONNX export being traced.
`GAIT_JAX_FIRST_STAGE=xla` turns it off (comparisons, benchmarks).
"""
from __future__ import annotations

import os

import jax
import jax.numpy as jnp

from gait_jax.common import cpu
from gait_jax.models import conv as conv_lib
from gait_jax.models import onednn_conv
from gait_jax.models.batch_norm import inference_scale
from gait_jax.models.candidates import CANDIDATE_KERNELS
from gait_jax.models.layers import in_export_form, max_pool_hw

ENV_VAR = "GAIT_JAX_FIRST_STAGE"
MODES = ("auto", "xla")
_TARGETS = (("gait_first_stage_forward", "GaitFirstStageForward"),)


def enabled() -> bool:
  """Whether first stages traced now may take the native pass (`ENV_VAR`, the library)."""
  mode = os.environ.get(ENV_VAR, "auto").strip().lower()
  if mode not in MODES:
    raise ValueError(f"{ENV_VAR}={mode!r}: expected one of {', '.join(MODES)}")
  return (mode == "auto" and conv_lib.formulation() in ("onednn", "onednn_bf16")
          and {"avx2", "fma"} <= cpu.flags()
          and onednn_conv.registered(_TARGETS, "first stage by XLA's ops"))


def applies(stage, path, x: jax.Array, train: bool) -> bool:
  """Whether stage `stage` of a network on `x [n, t, h, w, c]` (in the network's compute dtype)
  runs as the native pass."""
  if (train or in_export_form() or stage.index != 0 or len(stage.layers) != 1
      or not stage.layers[0][2] or not (stage.relu and stage.pool) or x.shape[-1] != 1
      or x.dtype != jnp.float32 or min(x.shape[2:4]) < 2):
    return False
  op = path[0]
  return isinstance(op, int) and len(CANDIDATE_KERNELS[op]) == 1 and enabled()


def apply(variables, stage, op: int, x: jax.Array, mask) -> jax.Array:
  """Stage 0's output (pooled, `[n, t, h/2, w/2, C]`) from the module variables of a network
  whose stage 0 runs candidate `op` (`applies` said yes)."""
  name = stage.layers[0][0]
  params, stats = variables["params"], variables["batch_stats"]
  stem_p = params[name][f"cand{op}"]
  stem_s = stats[name][f"cand{op}"]["bn1"]
  down_p, down_s = params[f"downsample{stage.index}"], stats[f"downsample{stage.index}"]["bn1"]
  stem = jnp.stack([stem_s["mean"], inference_scale(stem_p["bn1"]["scale"], stem_s["var"]),
                    stem_p["bn1"]["bias"]])
  down = jnp.stack([down_p["conv0"]["kernel"].reshape(-1), down_s["mean"],
                    inference_scale(down_p["bn1"]["scale"], down_s["var"]),
                    down_p["bn1"]["bias"]])
  if mask is None:
    mask = jnp.ones(x.shape[:2], jnp.float32)
  return _native(x[..., 0], mask.astype(jnp.float32), stem_p["conv0"]["kernel"], stem, down)


def reference(x, mask, kernel, stem, down):
  """What the native pass computes, in XLA's ops (its gradient; tests): x [n, t, h, w], mask
  [n, t], kernel [kt, kh, kw, 1, C], stem [3, C] and down [4, C] as `apply` stacks them."""
  m = mask[:, :, None, None, None]
  pads = [(k // 2, k // 2) for k in kernel.shape[:3]]
  y = conv_lib.conv_general_dilated(x[..., None], kernel, (1, 1, 1), pads,
                                    dimension_numbers=("NDHWC", "DHWIO", "NDHWC"))
  y = jnp.maximum((y - stem[0]) * stem[1] + stem[2], 0.0) * m
  y = y + ((x[..., None] * down[0] - down[1]) * down[2] + down[3]) * m
  return max_pool_hw(jnp.maximum(y, 0.0))


# Differentiable (an eval-mode forward may be): the gradient is the XLA route's.
@jax.custom_vjp
def _native(x, mask, kernel, stem, down):
  n, t, h, w = x.shape
  shape = jax.ShapeDtypeStruct((n, t, h // 2, w // 2, kernel.shape[-1]), jnp.float32)
  return jax.ffi.ffi_call(_TARGETS[0][0], shape, vmap_method="sequential")(
      x, mask, kernel, stem, down)


def _native_fwd(*args):
  return _native(*args), args


def _native_bwd(args, g):
  return jax.vjp(reference, *args)[1](g)


_native.defvjp(_native_fwd, _native_bwd)
