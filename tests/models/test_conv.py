"""The conv formulations (gait_jax/models/conv.py): the same values and gradients as XLA's own
convolution, and no non-canonical convolution left in a traced-path supernet step on CPU."""
import functools
import os
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from gait_jax.models import conv as conv_lib
from gait_jax.models import onednn_conv
from gait_jax.models.candidates import CANDIDATE_KERNELS, ChoiceLayer
from gait_jax.training import step as step_lib
from conftest import REPO, fast_cli_env
from helpers import assert_close

_DN = ("NDHWC", "DHWIO", "NDHWC")


def _normal(seed, shape):
  """Standard-normal float32 data from NumPy: jax.random compiles a program for every new
  shape (~0.7 s each, most of a small case's time)."""
  return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


def _conv(conv_fn, pads, strides):
  return lambda x, w: conv_fn(x, w, strides, pads, dimension_numbers=_DN)


def _sin_loss(conv_fn, pads, strides):
  conv = _conv(conv_fn, pads, strides)
  return lambda x, w: jnp.sum(jnp.sin(conv(x, w)))  # a non-trivial cotangent


def _grads(conv_fn, x, w, pads, strides=(1, 1, 1)):
  # Jitted, as training runs it (op by op, every small op compiles on its own: seconds a case).
  return jax.jit(jax.grad(_sin_loss(conv_fn, pads, strides), argnums=(0, 1)))(x, w)


def _value_and_grads_fn(conv_fn, pads):
  """(x, w) -> (the convolution, the gradients of `_sin_loss`), not yet jitted."""
  conv = _conv(conv_fn, pads, (1, 1, 1))
  grad = jax.grad(_sin_loss(conv_fn, pads, (1, 1, 1)), argnums=(0, 1))
  return lambda x, w: (conv(x, w), grad(x, w))


def _values_and_grads(conv_fn, x, w, pads):
  """`_values` and `_grads` in one program: one compile a case instead of two."""
  return jax.jit(_value_and_grads_fn(conv_fn, pads))(x, w)


_KERNELS = sorted({k for ks in CANDIDATE_KERNELS for k in ks} | {(1, 1, 1)})


# gemm and fold: cin 1 → im2col for every kernel, 12 → tap-wise (gemm) or 2-D folds (fold)
# but 1×1×1; canonical at the model's own padding.
# onednn: every kernel and padding, 1 and 12 channels (skipped where the set-up could not build
# the library: tools/build_onednn.sh says why).
_NO_ONEDNN = pytest.mark.skipif(not onednn_conv.available(),
                                reason="oneDNN convolutions not built here (tools/build_onednn.sh)")
_CASES = ([(form, p, cin) for form in ("gemm", "fold") for p in ("same", "VALID", "asym")
           for cin in (1, 12)] + [("canonical", "same", 3)]
          + [pytest.param("onednn", p, cin, marks=_NO_ONEDNN) for p in ("same", "VALID", "asym")
             for cin in (1, 12)])


def _values(conv_fn, x, w, pads, strides=(1, 1, 1)):
  return jax.jit(_conv(conv_fn, pads, strides))(x, w)


def _case(kernel, padding, cin):
  x = _normal(sum(kernel) + cin, (2, 5, 6, 4, cin))
  w = _normal(100 + sum(kernel) + cin, tuple(kernel) + (cin, 4))
  pads = {"same": [(k // 2, k // 2) for k in kernel], "VALID": "VALID",
          "asym": [(k - 1, 0) for k in kernel]}[padding]
  return x, w, pads


def _every_kernel(conv_fn, padding, cin):
  """`_values_and_grads` of every kernel's case in one program: a compile per formulation,
  padding and width instead of one per kernel (compiling was most of these tests' time)."""
  cases = [_case(kernel, padding, cin) for kernel in _KERNELS]
  fns = [_value_and_grads_fn(conv_fn, pads) for _, _, pads in cases]
  return jax.jit(lambda xs, ws: [f(x, w) for f, x, w in zip(fns, xs, ws)])(
      [x for x, _, _ in cases], [w for _, w, _ in cases])


@functools.lru_cache(maxsize=None)
def _xla_side(padding, cin):
  """XLA's values and gradients of every kernel, computed once for every formulation compared."""
  return _every_kernel(lax.conv_general_dilated, padding, cin)


@pytest.mark.parametrize("form,padding,cin", _CASES)
def test_formulation_matches_xla(monkeypatch, form, padding, cin):
  monkeypatch.setenv(conv_lib.ENV_VAR, form)
  got = _every_kernel(conv_lib.conv_general_dilated, padding, cin)
  for kernel, (got_values, got_grads), (want_values, want_grads) in zip(
      _KERNELS, got, _xla_side(padding, cin)):
    assert_close(got_values, want_values, rtol=1e-5, err_msg=f"kernel {kernel}: values")
    for name, g, r in zip(("input", "kernel"), got_grads, want_grads):
      assert g.shape == r.shape, (kernel, name)
      assert_close(g, r, rtol=1e-5, err_msg=f"kernel {kernel}: {name} gradient")


@pytest.mark.parametrize("kernel", [(1, 3, 3), (3, 1, 3), (1, 1, 3)])
def test_fold_with_a_padded_unit_axis_matches_xla(monkeypatch, kernel):
  """A one-tap axis that is padded cannot be folded into the batch: the per-temporal-tap sum
  computes it (the padded frames/rows are real zero outputs)."""
  monkeypatch.setenv(conv_lib.ENV_VAR, "fold")
  x = _normal(7, (2, 4, 5, 3, 24))  # 24 channels: wide enough for fold
  w = _normal(8, kernel + (24, 5))
  pads = [(1, 1)] * 3
  got, got_grads = _values_and_grads(conv_lib.conv_general_dilated, x, w, pads)
  want, want_grads = _values_and_grads(lax.conv_general_dilated, x, w, pads)
  assert got.shape == want.shape
  assert_close(got, want, rtol=1e-5)
  for g, r in zip(got_grads, want_grads):
    assert_close(g, r, rtol=1e-5)


def test_gemm_picks_im2col_for_small_inputs_and_taps_otherwise(monkeypatch):
  monkeypatch.setenv(conv_lib.ENV_VAR, "gemm")
  def ops(cin):
    def loss(x, w):
      return jnp.sum(conv_lib.conv_general_dilated(x, w, (1, 1, 1), [(1, 1)] * 3,
                                                   dimension_numbers=_DN))
    grad = jax.grad(loss, argnums=(0, 1))
    return str(jax.make_jaxpr(grad)(jnp.ones((1, 4, 4, 4, cin)), jnp.ones((3, 3, 3, cin, 2))))
  assert "conv_general_dilated" not in ops(2) and "concatenate" in ops(2)  # 54 <= SMALL_K
  wide = ops(8)  # 216 values per output: forward and kernel gradient as convolutions, the
  assert wide.count("conv_general_dilated[") == 2 and "dot_general" in wide  # input's GEMMs


def _hlo_convolutions(fn, *args) -> int:
  return jax.jit(fn).lower(*args).as_text(dialect="hlo").count(" convolution(")


# The shapes on one formulation (the product does not depend on it), the LTA's on the others.
_TILING = ([("gemm", k, t) for k, t in [((3, 1, 1), 8), ((1, 2, 2), 4), ((2, 3, 2), 5)]]
           + [("canonical", (3, 1, 1), 6), ("fold", (3, 1, 1), 6),
              pytest.param("onednn", (3, 1, 1), 2, marks=_NO_ONEDNN),  # no whole run of 3
              pytest.param("onednn", (1, 2, 2), 4, marks=_NO_ONEDNN)])


@pytest.mark.parametrize("form,kernel,t", _TILING)
def test_tiling_strided_conv_is_products(monkeypatch, form, kernel, t):
  """Stride = kernel, unpadded (the LTA): products of the windows, with no convolution left in
  the backward either; frames/rows that fill no window are dropped, as XLA's does."""
  monkeypatch.setenv(conv_lib.ENV_VAR, form)
  x = _normal(0, (2, t, 5, 7, 3))
  w = _normal(1, kernel + (3, 4))
  got = _grads(conv_lib.conv_general_dilated, x, w, "VALID", strides=kernel)
  want = _grads(lax.conv_general_dilated, x, w, "VALID", strides=kernel)
  for g, r in zip(got, want):
    assert g.shape == r.shape
    assert_close(g, r, rtol=1e-5)
  pads = [(0, 0)] * 3
  assert_close(_values(conv_lib.conv_general_dilated, x, w, pads, kernel),
               _values(lax.conv_general_dilated, x, w, pads, kernel), rtol=1e-5)
  grad = jax.grad(lambda x, w: jnp.sum(jnp.sin(conv_lib.conv_general_dilated(
      x, w, kernel, pads, dimension_numbers=_DN))), argnums=(0, 1))
  assert _hlo_convolutions(grad, x, w) == 0


@_NO_ONEDNN
@pytest.mark.parametrize("form", ["onednn", "onednn_bf16"])
@pytest.mark.parametrize("t,cin", [(6, 3), (7, 24)])  # im2col's and the wide layers' route
def test_onednn_takes_the_lta_as_runs_of_frames(monkeypatch, form, t, cin):
  """The LTA's (3,1,1) kernel at stride 3 under oneDNN: each run of 3 frames a sequence of its
  own, one custom call per direction; the frame that fills no window dropped, as XLA drops it.
  bfloat16 products (the wide layers' only) within their rounding, as the test below."""
  if form == "onednn_bf16" and not conv_lib.cpu.has_bf16_units():
    pytest.skip("the CPU has no bfloat16 units")
  monkeypatch.setenv(conv_lib.ENV_VAR, form)
  x, w, pads = _normal(0, (2, t, 5, 7, cin)), _normal(1, (3, 1, 1, cin, 4)), [(0, 0)] * 3
  cot = _normal(2, (2, t // 3, 5, 7, 4))  # fixed: sin(y) would turn rounding into noise
  def vjp(fn):
    y, back = jax.vjp(lambda a, b: fn(a, b, (3, 1, 1), pads, dimension_numbers=_DN), x, w)
    return (y,) + back(cot)
  rtol = 2e-2 if form == "onednn_bf16" and cin > 3 else 1e-5
  for g, r in zip(vjp(conv_lib.conv_general_dilated), vjp(lax.conv_general_dilated)):
    assert g.shape == r.shape
    assert_close(g, r, rtol=rtol)
  grad = jax.grad(lambda x, w: jnp.sum(jnp.sin(conv_lib.conv_general_dilated(
      x, w, (3, 1, 1), pads, dimension_numbers=_DN))), argnums=(0, 1))
  hlo = jax.jit(grad).lower(x, w).as_text(dialect="hlo")
  assert " convolution(" not in hlo and "gait_onednn_conv3d_kernel_grad" in hlo


@pytest.mark.parametrize("form", ["xla", "gemm"])
def test_other_strided_convs_are_xla_s(monkeypatch, form):
  """Overlapping or padded strided windows, and every conv of the `xla` formulation (GPU),
  stay XLA's own convolution."""
  monkeypatch.setenv(conv_lib.ENV_VAR, form)
  x = _normal(0, (2, 7, 3, 3, 2))
  w = _normal(1, (3, 1, 1, 2, 2))
  for strides, pads in [((2, 1, 1), "VALID"), ((3, 1, 1), [(1, 1), (0, 0), (0, 0)])]:
    got = _grads(conv_lib.conv_general_dilated, x, w, pads, strides=strides)
    want = _grads(lax.conv_general_dilated, x, w, pads, strides=strides)
    for g, r in zip(got, want):
      assert_close(g, r, rtol=1e-6)
    fwd = lambda x, w: conv_lib.conv_general_dilated(  # noqa: E731
        x, w, strides, pads, dimension_numbers=_DN)
    assert _hlo_convolutions(fwd, x, w) == 1
  fwd = lambda x, w: conv_lib.conv_general_dilated(  # noqa: E731
      x, w, (3, 1, 1), "VALID", dimension_numbers=_DN)
  assert _hlo_convolutions(fwd, x, w) == (1 if form == "xla" else 0)


@_NO_ONEDNN
def test_onednn_takes_float32_and_leaves_other_dtypes_to_fold(monkeypatch):
  monkeypatch.setenv(conv_lib.ENV_VAR, "onednn")
  def ops(dtype):
    x, w = jnp.ones((1, 4, 4, 4, 8), dtype), jnp.ones((3, 3, 3, 8, 2), dtype)
    grad = jax.grad(lambda x, w: jnp.sum(conv_lib.conv_general_dilated(
        x, w, (1, 1, 1), [(1, 1)] * 3, dimension_numbers=_DN)), argnums=(0, 1))
    return str(jax.make_jaxpr(grad)(x, w))
  f32 = ops(jnp.float32)
  assert "conv_general_dilated" not in f32
  for target in ("forward", "input_grad", "kernel_grad"):
    assert f"gait_onednn_conv3d_{target}" in f32
  bf16 = ops(jnp.bfloat16)
  assert "gait_onednn" not in bf16 and "conv_general_dilated" in bf16


@_NO_ONEDNN
@pytest.mark.parametrize("cin,cout,kernel,want_forward", [
    (1, conv_lib.ONEDNN_STEM_MAX_OUT, (3, 3, 3), True),  # a narrow stem: oneDNN's forward
    (1, conv_lib.ONEDNN_STEM_MAX_OUT + 8, (3, 3, 3), False),  # a wider one: XLA's tap sum
    (1, 4, (1, 1, 1), False),  # the stem's 1×1×1 downsample: one product per output
    (2, 4, (3, 3, 3), False)])  # few inputs, but more than one channel: im2col
def test_onednn_stem_forward_only_for_narrow_one_channel_stems(monkeypatch, cin, cout, kernel,
                                                               want_forward):
  monkeypatch.setenv(conv_lib.ENV_VAR, "onednn")
  x, w = _normal(1, (1, 4, 5, 3, cin)), _normal(2, kernel + (cin, cout))
  pads = [(k // 2, k // 2) for k in kernel]
  fwd = lambda x, w: conv_lib.conv_general_dilated(  # noqa: E731
      x, w, (1, 1, 1), pads, dimension_numbers=_DN)
  assert ("gait_onednn_conv3d_forward" in str(jax.make_jaxpr(fwd)(x, w))) == want_forward
  assert_close(_values(conv_lib.conv_general_dilated, x, w, pads),
               _values(lax.conv_general_dilated, x, w, pads), rtol=1e-5)


@_NO_ONEDNN
def test_onednn_bf16_is_refused_by_name_on_a_cpu_without_bf16_units(monkeypatch):
  """AVX2's oneDNN cannot create a bfloat16 convolution (AMD Zen 3): asked for by name there,
  the formulation is a one-line error naming why, not oneDNN's failure at the first call."""
  monkeypatch.setattr(conv_lib.cpu, "has_bf16_units", lambda: False)
  monkeypatch.setenv(conv_lib.ENV_VAR, "onednn_bf16")
  with pytest.raises(ValueError, match="GAIT_JAX_CONV=onednn_bf16: the CPU lists neither "
                                       "amx_bf16 nor avx512_bf16; use onednn"):
    conv_lib.formulation()
  monkeypatch.setenv(conv_lib.ENV_VAR, "onednn")
  assert conv_lib.formulation() == "onednn"
  assert not conv_lib.bf16_usable("train.bf16", True)  # the config keys: float32, one log line


@_NO_ONEDNN
@pytest.mark.skipif(not conv_lib.cpu.has_bf16_units(),
                    reason="bfloat16 convolutions need AMX-BF16 or AVX-512-BF16 (not listed in "
                           "/proc/cpuinfo here); the refusal is tested above")
def test_onednn_bf16_is_the_same_convolution_to_bfloat16_rounding(monkeypatch):
  """bfloat16 products (8 significant bits), float32 sums: within a few 1e-3 of float32 at
  this scale (27·16 products per output); never another convolution. The forward is exactly
  the float32 convolution of x and w rounded to bfloat16 (a product of two bfloat16 values is
  exact in float32), up to the order of its sums."""
  monkeypatch.setenv(conv_lib.ENV_VAR, "onednn_bf16")
  x = _normal(3, (2, 5, 6, 4, 16))
  w = _normal(4, (3, 3, 3, 16, 8))
  pads = [(1, 1)] * 3
  got = conv_lib.conv_general_dilated(x, w, (1, 1, 1), pads, dimension_numbers=_DN)
  want = lax.conv_general_dilated(x, w, (1, 1, 1), pads, dimension_numbers=_DN,
                                  precision="highest")
  assert_close(got, want, rtol=2e-2)
  rounded = [a.astype(jnp.bfloat16).astype(jnp.float32) for a in (x, w)]
  assert_close(got, lax.conv_general_dilated(*rounded, (1, 1, 1), pads, dimension_numbers=_DN,
                                             precision="highest"), rtol=1e-5)
  # A fixed cotangent: _grads' sin(y) would turn y's rounding into cotangent noise.
  cot = _normal(5, want.shape)
  def vjp(fn):
    return jax.vjp(lambda a, b: fn(a, b, (1, 1, 1), pads, dimension_numbers=_DN), x, w)[1](cot)
  got_grads = vjp(conv_lib.conv_general_dilated)
  for g, r in zip(got_grads, vjp(lax.conv_general_dilated)):
    assert_close(g, r, rtol=2e-2)
  # Each gradient is exactly the float32 one of its bfloat16-rounded operands (the input
  # gradient: cotangent and w; the kernel gradient: x and cotangent), up to summation order.
  def rounded(a):
    return a.astype(jnp.bfloat16).astype(jnp.float32)
  def plain(a, b):
    return lax.conv_general_dilated(a, b, (1, 1, 1), pads, dimension_numbers=_DN,
                                    precision="highest")
  gx = jax.vjp(lambda a: plain(a, rounded(w)), x)[1](rounded(cot))[0]
  gw = jax.vjp(lambda b: plain(rounded(x), b), w)[1](rounded(cot))[0]
  assert_close(got_grads[0], gx, rtol=1e-5)
  assert_close(got_grads[1], gw, rtol=1e-5)


def test_onednn_missing_library_falls_back_with_one_line(monkeypatch, tmp_path, caplog):
  monkeypatch.setenv(onednn_conv.LIB_ENV_VAR, str(tmp_path / "missing.so"))
  onednn_conv.version.cache_clear()
  try:
    with caplog.at_level("INFO"):
      assert not onednn_conv.available()
    lines = [r.getMessage() for r in caplog.records if "oneDNN" in r.getMessage()]
    assert len(lines) == 1 and "missing.so" in lines[0] and "build_onednn.sh" in lines[0]
    monkeypatch.setenv(conv_lib.ENV_VAR, "auto")
    assert conv_lib.formulation() == "fold"
    monkeypatch.setenv(conv_lib.ENV_VAR, "onednn")  # asked for by name: an error, not a fallback
    with pytest.raises(ValueError, match="GAIT_JAX_CONV=onednn.*build_onednn.sh"):
      conv_lib.formulation()
    with pytest.raises(RuntimeError, match="build_onednn.sh"):  # called directly
      onednn_conv.forward(jnp.ones((1, 2, 2, 2, 1)), jnp.ones((1, 1, 1, 1, 1)), [(0, 0)] * 3)
  finally:
    monkeypatch.delenv(onednn_conv.LIB_ENV_VAR)
    onednn_conv.version.cache_clear()


@_NO_ONEDNN
@pytest.mark.parametrize("devices,want", [(1, "onednn"), (8, "fold")])
def test_auto_is_onednn_on_one_cpu_device(devices, want):
  """One CPU device: oneDNN; several (a CPU mesh): fold, whose XLA convolutions shard with the
  batch (a custom call's operands would be gathered onto every device)."""
  env = {k: v for k, v in os.environ.items() if k not in (conv_lib.ENV_VAR, "XLA_FLAGS")}
  env.update(JAX_PLATFORMS="cpu", XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
  out = subprocess.run([sys.executable, "-c", "from gait_jax.models import conv; "
                        "print(conv.formulation())"], env=env, capture_output=True, text=True,
                       check=True).stdout
  assert out.strip() == want


@_NO_ONEDNN
def test_onednn_train_steps_run_with_concurrent_custom_calls():
  """A whole train step (tiny widths, 6 frames), where XLA runs independent custom calls on
  several threads at once: with oneDNN's shared library scratchpad this crashed (SIGSEGV)."""
  # One device (oneDNN's default), compiled fast: the crash did not depend on LLVM's passes.
  # The path's static step: with the library's scratchpad mode put back, it crashed in 3 runs
  # of 3 as the supernet's traced step did, in 9 s against 23 s (side by side, 2026-12-08).
  env = fast_cli_env(**{conv_lib.ENV_VAR: "onednn"})
  proc = subprocess.run([sys.executable, os.path.join(REPO, "tools", "benchmark.py"), "train",
                         "--quick", "--models", "small", "--channels", "4,8,8", "--path",
                         "0,5,0,1", "--static", "--steps", "3"], env=env, capture_output=True,
                        text=True)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert "ms/step" in proc.stdout and "NON-FINITE" not in proc.stdout


def test_bad_env_value_is_named(monkeypatch):
  monkeypatch.setenv(conv_lib.ENV_VAR, "yes")
  with pytest.raises(ValueError, match=conv_lib.ENV_VAR):
    conv_lib.formulation()


@functools.cache
def _choice_variables(features: int):
  """A ChoiceLayer's variables: the same whatever convolution formulation runs (initialising
  all six candidates op by op took 6 s on the suite's 8 devices; once per width, as one
  program compiled unoptimised here: optimised, its random initialisers took 8 s to compile)."""
  layer = ChoiceLayer(features=features, flg_relu=True)
  return step_lib.run_fast_compiled(lambda key, x: layer.init(key, x, 0, train=True),
                                    jax.random.PRNGKey(0), jnp.ones((2, 4, 6, 4, 3)))


def _switch_step_hlo(monkeypatch, mode: str, features: int = 4) -> str:
  """Optimised CPU HLO of d(loss)/d(params) through a ChoiceLayer with a traced index."""
  monkeypatch.setenv(conv_lib.ENV_VAR, mode)
  layer = ChoiceLayer(features=features, flg_relu=True)
  x = jnp.ones((2, 4, 6, 4, 3))
  variables = _choice_variables(features)

  def loss(params, choice):
    y, _ = layer.apply({"params": params, "batch_stats": variables["batch_stats"]}, x,
                       choice, train=True, mutable=["batch_stats"])
    return jnp.sum(y * y)

  fn = jax.jit(jax.grad(loss))
  # Fast-compiled: the convolutions' layouts are the HLO passes' choice, which LLVM's
  # optimisation level does not change (the same labels either way, in half the time).
  return fn.lower(variables["params"], jnp.int32(3)).compile(
      compiler_options=step_lib.FAST_COMPILE).as_text()


def _conv_labels(hlo: str):
  return re.findall(r"convolution\(.*?dim_labels=(\S+?),", hlo)


def test_traced_choice_backward_has_only_canonical_convs(monkeypatch):
  # With the canonical backward every convolution in the switch (forward and both
  # gradients of all six candidates) is one XLA:CPU runs on its fast path...
  labels = _conv_labels(_switch_step_hlo(monkeypatch, "canonical"))
  # 9 convs in the six candidates: forward + kernel gradient each, plus the input gradient
  # of the 3 second convs (the layer input itself needs no gradient here).
  assert len(labels) == 9 + 9 + 3, labels
  assert set(labels) == {"b012f_012io->b012f"}, labels
  # With gemm every conv but candidate 0's (3 channels × 27 taps = 81 values per output >
  # SMALL_K) is an im2col GEMM; that one keeps its forward and kernel-gradient convolutions,
  # both canonical (its input gradient is tap-wise GEMMs).
  assert _conv_labels(_switch_step_hlo(monkeypatch, "gemm")) == ["b012f_012io->b012f"] * 2
  # fold: candidate 0's forward is three 2-D convolutions (one per temporal tap), its kernel
  # gradient the canonical 3-D one. With 24 features every second conv (72 or more values per
  # output) is folded too, forward and input gradient: still only canonical layouts.
  assert _conv_labels(_switch_step_hlo(monkeypatch, "fold")) == (
      ["b01f_01io->b01f"] * 3 + ["b012f_012io->b012f"])
  wide = _conv_labels(_switch_step_hlo(monkeypatch, "fold", features=24))
  assert set(wide) == {"b01f_01io->b01f", "b012f_012io->b012f"}, wide
  # ...while XLA's own backward leaves non-canonical ones inside the branches (the slow
  # path this module exists for; if XLA ever fixes that, this fails and conv.py can go).
  plain = _conv_labels(_switch_step_hlo(monkeypatch, "xla"))
  assert set(plain) - {"b012f_012io->b012f"}, plain
