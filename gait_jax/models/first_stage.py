"""The small network's first stage as one native pass: at inference (`first_stage.cc`) and in
training, with its gradient (`first_stage_train.cc`).

At the widths the quickstart, the recipes and the shipped walkers model use (8/16/32) an
embedding spends about 40 % of its time in stage 0 at full resolution: the stem convolution
writes a `[T, 64, 44, C]` tensor that XLA then reads and writes again for BN, the mask, ReLU,
the downsample's BN, the sum, ReLU and the 2×2 max pool — memory traffic, not arithmetic
(docs/benchmarks.md). The custom call computes each pooling window's four stem outputs in
registers and writes only the pooled result. Same sums (the taps in another order), so the
embeddings agree with XLA's route to float rounding (tests/models/test_first_stage.py).

Training (`train=True`) runs the pass twice over the frames, once for the stem BN's batch
statistics and once for the output, and its gradient once more: the stem convolution, both BNs,
the mask, both ReLUs and the pool at full resolution, which XLA's modules write and read back
several times (more than half of a tiny training step, docs/benchmarks.md), never leave a
frame-sized buffer. The gradient reaches the stem's kernel and both BNs' parameters as XLA's
route does (tests/models/test_first_stage.py; against float64: test_gradient_accuracy.py); the
running statistics get BN's own update. A gradient with respect to the silhouettes themselves
(which training never asks for) is XLA's route's.

It runs where all of these hold, and XLA's modules run otherwise: stage 0's candidate known at
trace time (a static path; a fixed-path model's own: embed, test, enroll, identify, retraining;
or the only one the search space allows there: a supernet's traced path in the reference's
space) and one convolution (ops 0–2); a one-channel float32 input; a one-layer
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
from gait_jax.models import batch_norm
from gait_jax.models import conv as conv_lib
from gait_jax.models import onednn_conv
from gait_jax.models.candidates import CANDIDATE_KERNELS
from gait_jax.models.layers import in_export_form, max_pool_hw

ENV_VAR = "GAIT_JAX_FIRST_STAGE"
MODES = ("auto", "xla")
_TARGETS = (("gait_first_stage_forward", "GaitFirstStageForward"),)
_TRAIN_TARGETS = (("gait_first_stage_train_forward", "GaitFirstStageTrainForward"),
                  ("gait_first_stage_train_backward", "GaitFirstStageTrainBackward"))


def enabled(train: bool = False) -> bool:
  """Whether first stages traced now may take the native pass (`ENV_VAR`, the library), at
  inference or in training."""
  mode = os.environ.get(ENV_VAR, "auto").strip().lower()
  if mode not in MODES:
    raise ValueError(f"{ENV_VAR}={mode!r}: expected one of {', '.join(MODES)}")
  targets, what = ((_TRAIN_TARGETS, "first stage in training by XLA's ops") if train
                   else (_TARGETS, "first stage by XLA's ops"))
  return (mode == "auto" and conv_lib.formulation() in ("onednn", "onednn_bf16")
          and {"avx2", "fma"} <= cpu.flags() and onednn_conv.registered(targets, what))


def applies(stage, path, x: jax.Array, train: bool) -> bool:
  """Whether stage `stage` of a network on `x [n, t, h, w, c]` (in the network's compute dtype)
  runs as the native pass."""
  if (in_export_form() or stage.index != 0 or len(stage.layers) != 1
      or not stage.layers[0][2] or not (stage.relu and stage.pool) or x.shape[-1] != 1
      or x.dtype != jnp.float32 or min(x.shape[2:4]) < 2):
    return False
  op = path[0]
  return isinstance(op, int) and len(CANDIDATE_KERNELS[op]) == 1 and enabled(train)


def apply(variables, stage, op: int, x: jax.Array, mask) -> jax.Array:
  """Stage 0's output (pooled, `[n, t, h/2, w/2, C]`) from the module variables of a network
  whose stage 0 runs candidate `op` (`applies` said yes)."""
  name = stage.layers[0][0]
  params, stats = variables["params"], variables["batch_stats"]
  stem_p = params[name][f"cand{op}"]
  stem_s = stats[name][f"cand{op}"]["bn1"]
  down_p, down_s = params[f"downsample{stage.index}"], stats[f"downsample{stage.index}"]["bn1"]
  stem = jnp.stack([stem_s["mean"],
                    batch_norm.inference_scale(stem_p["bn1"]["scale"], stem_s["var"]),
                    stem_p["bn1"]["bias"]])
  down = jnp.stack([down_p["conv0"]["kernel"].reshape(-1), down_s["mean"],
                    batch_norm.inference_scale(down_p["bn1"]["scale"], down_s["var"]),
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


def apply_train(module, stage, op: int, x: jax.Array, mask) -> jax.Array:
  """Stage 0's output in training (pooled, `[n, t, h/2, w/2, C]`) for the network `module`
  whose stage 0 runs candidate `op` (`applies` said yes); both BNs' running statistics updated
  in `module`'s `batch_stats` as BatchNorm updates them."""
  name, down_name = stage.layers[0][0], f"downsample{stage.index}"
  params, stats = module.variables["params"], module.variables["batch_stats"]
  stem_p, down_p = params[name][f"cand{op}"], params[down_name]
  if mask is None:
    mask = jnp.ones(x.shape[:2], jnp.float32)
  mask = mask.astype(jnp.float32)
  # The downsample's BN of x · gain, from x's own statistics (BatchNorm with `gain`).
  x_mean, x_var, count = batch_norm.statistics(x, mask[:, :, None, None, None])
  gain = down_p["conv0"]["kernel"].reshape(-1)
  a = batch_norm.scaled_factor(gain, down_p["bn1"]["scale"], x_var)
  out, stem_stats = _native_train(
      x[..., 0], mask, stem_p["conv0"]["kernel"],
      jnp.stack([stem_p["bn1"]["scale"], stem_p["bn1"]["bias"]]),
      jnp.stack([a, down_p["bn1"]["bias"]]), x_mean.reshape(1))
  mean, var = jax.lax.stop_gradient((stem_stats[0], stem_stats[1]))
  stem_s = stats[name][f"cand{op}"]
  module.put_variable("batch_stats", name, {**stats[name], f"cand{op}": {
      **stem_s, "bn1": _running(stem_s["bn1"], mean, var, count)}})
  mean, var = jax.lax.stop_gradient((gain * x_mean, jnp.square(gain) * x_var))
  module.put_variable("batch_stats", down_name, {
      **stats[down_name], "bn1": _running(stats[down_name]["bn1"], mean, var, count)})
  return out


def _running(bn, mean, var, count):
  """A BN's running statistics `bn` after a batch's (mean, biased var, count)."""
  return dict(zip(("mean", "var"), batch_norm.running_averages(bn["mean"], bn["var"], mean,
                                                               var, count)))


def reference_train(x, mask, kernel, stem, down, x_mean):
  """What the training pass computes, in XLA's ops (BatchNorm's own functions): (out, [mean,
  biased var] of the stem convolution) from x [n, t, h, w], mask [n, t], kernel [kt, kh, kw, 1,
  C], stem [2, C] (the stem BN's scale, bias), down [2, C] (the downsample's factor and bias)
  and x_mean [1] (x's batch mean)."""
  m = mask[:, :, None, None, None]
  pads = [(k // 2, k // 2) for k in kernel.shape[:3]]
  z = conv_lib.conv_general_dilated(x[..., None], kernel, (1, 1, 1), pads,
                                    dimension_numbers=("NDHWC", "DHWIO", "NDHWC"))
  y, mean, var, _ = batch_norm.normalise_train(z, m, stem[0], stem[1], batch_norm.BN_EPS)
  y = jnp.maximum(y * m, 0.0) + ((x[..., None] - x_mean) * down[0] + down[1]) * m
  return max_pool_hw(jnp.maximum(y, 0.0)), jnp.stack([mean, var])


def _train_call(x, mask, kernel, stem, down, x_mean):
  """The training pass: (out, the winners' codes for the gradient, the stem's [mean, var])."""
  n, t, h, w = x.shape
  pooled = (n, t, h // 2, w // 2, kernel.shape[-1])
  return jax.ffi.ffi_call(
      _TRAIN_TARGETS[0][0],
      (jax.ShapeDtypeStruct(pooled, jnp.float32), jax.ShapeDtypeStruct(pooled, jnp.int8),
       jax.ShapeDtypeStruct((2, kernel.shape[-1]), jnp.float32)),
      vmap_method="sequential")(x, mask, kernel, stem, down, x_mean)


# The pass's own gradient (`first_stage_train.cc`), but for the silhouettes: where they are
# differentiated (`perturbed`, never in training), their share is XLA's route's.
@jax.custom_vjp
def _native_train(x, mask, kernel, stem, down, x_mean):
  out, _, stats = _train_call(x, mask, kernel, stem, down, x_mean)
  return out, stats


def _native_train_fwd(*primals):
  inputs = tuple(p.value for p in primals)
  out, code, stats = _train_call(*inputs)
  x_wanted = (inputs[0],) if primals[0].perturbed else ()
  return (out, stats), (inputs, stats, code, x_wanted)


def _native_train_bwd(residuals, cotangents):
  inputs, stats, code, x_wanted = residuals
  g = cotangents[0]
  if isinstance(g, jax.custom_derivatives.SymbolicZero):
    g = jnp.zeros(g.shape, g.dtype)
  kernel, down = inputs[2], inputs[4]
  dw, dparams = jax.ffi.ffi_call(
      _TRAIN_TARGETS[1][0],
      (jax.ShapeDtypeStruct(kernel.shape, jnp.float32),
       jax.ShapeDtypeStruct((4, kernel.shape[-1]), jnp.float32)),
      vmap_method="sequential")(*inputs, stats, code, g)
  dx = None
  if x_wanted:
    dx = jax.vjp(lambda v: reference_train(v, *inputs[1:])[0], x_wanted[0])[1](g)[0]
  # x_mean enters every output as −A·x_mean.
  return dx, None, dw, dparams[:2], dparams[2:], -jnp.sum(down[0] * dparams[3]).reshape(1)


_native_train.defvjp(_native_train_fwd, _native_train_bwd, symbolic_zeros=True)
