"""Hand-worked checks of the model building blocks (gait_jax/models/layers.py, frames.py,
candidates.py)."""
import math

import jax
import flax.linen as nn
import jax.numpy as jnp
import numpy as np
import pytest

from gait_jax.models import batch_norm, frames, layers
from gait_jax.models.candidates import Candidate
from gait_jax.training import step as step_lib
from helpers import assert_close


def _bn_vars(c, scale=None, bias=None, mean=None, var=None):
  return {"params": {"scale": jnp.ones(c) if scale is None else jnp.asarray(scale),
                     "bias": jnp.zeros(c) if bias is None else jnp.asarray(bias)},
          "batch_stats": {"mean": jnp.zeros(c) if mean is None else jnp.asarray(mean),
                          "var": jnp.ones(c) if var is None else jnp.asarray(var)}}


def test_batchnorm_train_biased_normalise_unbiased_running_var():
  x = jnp.array([[1.0], [2.0], [3.0], [4.0]])  # one channel; mean 2.5, biased var 1.25
  y, upd = batch_norm.BatchNorm().apply(_bn_vars(1), x, train=True, mutable=["batch_stats"])
  np.testing.assert_allclose(y[:, 0], (np.array([1, 2, 3, 4]) - 2.5) / math.sqrt(1.25 + 1e-5),
                             rtol=1e-6)
  np.testing.assert_allclose(upd["batch_stats"]["mean"], [0.25], rtol=1e-6)
  np.testing.assert_allclose(upd["batch_stats"]["var"], [0.9 + 0.1 * 5.0 / 3.0], rtol=1e-6)


def test_batchnorm_eval_uses_running_stats_and_affine():
  x = jnp.array([[3.0, -1.0]])
  v = _bn_vars(2, scale=[2.0, 1.0], bias=[0.5, 0.0], mean=[1.0, 0.0], var=[4.0, 1.0])
  y = batch_norm.BatchNorm().apply(v, x)
  np.testing.assert_allclose(y[0], [2.0 * 2.0 / math.sqrt(4 + 1e-5) + 0.5,
                                    -1.0 / math.sqrt(1 + 1e-5)], rtol=1e-6)


def test_batchnorm_mask_excludes_padded_frames():
  # [n=2, t=2, h=1, w=2, c=1]; frame (1, 1) is padding and holds a huge value.
  x = np.array([1.0, 3.0, 5.0, 7.0, 2.0, 4.0, 1e6, 1e6]).reshape(2, 2, 1, 2, 1)
  mask = jnp.array([[1.0, 1.0], [1.0, 0.0]])
  _, upd = batch_norm.BatchNorm().apply(_bn_vars(1), jnp.asarray(x), mask, train=True,
                                        mutable=["batch_stats"])
  valid = np.array([1.0, 3.0, 5.0, 7.0, 2.0, 4.0])
  np.testing.assert_allclose(upd["batch_stats"]["mean"], [0.1 * valid.mean()], rtol=1e-6)
  np.testing.assert_allclose(upd["batch_stats"]["var"], [0.9 + 0.1 * valid.var(ddof=1)],
                             rtol=1e-6)


def test_batchnorm_stats_float32_with_half_input():
  x = jnp.arange(8, dtype=jnp.bfloat16).reshape(8, 1)
  y, upd = batch_norm.BatchNorm().apply(_bn_vars(1), x, train=True, mutable=["batch_stats"])
  assert y.dtype == jnp.bfloat16
  assert upd["batch_stats"]["var"].dtype == jnp.float32
  np.testing.assert_allclose(upd["batch_stats"]["var"], [0.9 + 0.1 * 6.0], rtol=1e-6)


@pytest.mark.parametrize("masked", [False, True])
def test_one_channel_conv_bn_is_the_convolution_then_bn(masked):
  """The first stage's downsample on the one-channel input: BN from the input's statistics
  (`gain`) against the Conv + BN it replaces (kept by the ONNX export form) — the same
  parameters at init, outputs, running statistics and gradients, padded frames included."""
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.uniform(0, 1, (3, 4, 6, 5, 1)) ** 2, jnp.float32)
  mask = jnp.asarray([[1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 1, 0]], jnp.float32) if masked else None
  cot = jnp.asarray(rng.standard_normal((3, 4, 6, 5, 16)), jnp.float32)
  module = layers.ConvBN(16)
  variables = module.init(jax.random.key(0), x, mask)
  with layers.export_form():
    assert jax.tree.all(jax.tree.map(
        jnp.array_equal, variables, module.init(jax.random.key(0), x, mask)))
  variables = {"params": variables["params"], "batch_stats": jax.tree.map(
      lambda v: v + 0.5, variables["batch_stats"])}

  def run(params, train):
    y, upd = module.apply({"params": params, "batch_stats": variables["batch_stats"]}, x, mask,
                          train=train, mutable=["batch_stats"])
    return jnp.sum(y * cot), (y, upd)

  for train in (True, False):
    # One program each (op by op, every op compiled alone was most of the time); the export
    # form is read while tracing, so each side has its own jitted function.
    got = jax.jit(jax.grad(run, has_aux=True), static_argnums=1)(variables["params"], train)
    with layers.export_form():
      want = jax.jit(jax.grad(run, has_aux=True), static_argnums=1)(variables["params"], train)
    assert jax.tree.structure(got) == jax.tree.structure(want)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
      assert_close(g, w, rtol=1e-5)
    if masked:
      assert not np.any(np.asarray(got[1][0])[1, 2:])  # padded frames stay zero


def test_gem_hpp_part_order_clamp_and_power():
  # h=4 rows with constant values 1..4; bins (4, 2, 1).
  rows = np.array([1.0, 2.0, 3.0, 4.0])
  x = np.broadcast_to(rows[None, :, None, None], (1, 4, 3, 2)).copy()
  x[0, 0, 0, 1] = -5.0  # channel 1: a negative value is clamped to 1e-6 before the power
  out = layers.GeMHPP((4, 2, 1)).apply({"params": {"p": jnp.array([6.5])}}, jnp.asarray(x))
  assert out.shape == (1, 2, 7) and out.dtype == jnp.float32

  def gem(vals):
    return np.mean(np.maximum(np.asarray(vals), 1e-6) ** 6.5) ** (1 / 6.5)

  expected0 = [1, 2, 3, 4, gem([1, 2]), gem([3, 4]), gem([1, 2, 3, 4])]
  np.testing.assert_allclose(out[0, 0], expected0, rtol=1e-5)
  row0_c1 = [-5.0, 1.0, 1.0]
  np.testing.assert_allclose(out[0, 1, 0], gem(row0_c1), rtol=1e-5)
  np.testing.assert_allclose(out[0, 1, 6], gem(row0_c1 + [2.0] * 3 + [3.0] * 3 + [4.0] * 3),
                             rtol=1e-5)


def test_gem_export_form_equals_the_plain_power():
  # The ONNX export traces GeM as exp(p·log x); it must compute what jnp.power does.
  rng = np.random.default_rng(4)
  x = jnp.asarray(np.maximum(rng.normal(size=(3, 16, 11, 8)), 0).astype(np.float32))
  x = x.at[0, :4].set(0.0)  # a strip with no positive activation (all clamped to eps)
  params = {"params": {"p": jnp.array([6.5])}}
  def gem():  # a new function per trace: jax caches traces by function, not by context
    return lambda v: layers.GeMHPP((16, 8, 4, 2, 1)).apply(params, v)
  plain, plain_ops = gem()(x), str(jax.make_jaxpr(gem())(x))
  with layers.export_form():
    exported, export_ops = gem()(x), str(jax.make_jaxpr(gem())(x))
  assert " pow " in plain_ops and " pow " not in export_ops and " log " in export_ops
  assert_close(exported, plain, rtol=1e-5)


def test_separate_fcs_per_part_matmul():
  rng = np.random.default_rng(0)
  x, w = rng.standard_normal((2, 3, 4)), rng.standard_normal((4, 3, 5))
  out = layers.SeparateFCs(4, 5).apply({"params": {"fc_bin": w}}, jnp.asarray(x))
  for p in range(4):
    assert_close(out[:, :, p], x[:, :, p] @ w[p], rtol=1e-5)


def test_separate_bnnecks_flat_index_and_cosine_logits():
  n, c, p, k = 2, 3, 4, 5
  rng = np.random.default_rng(1)
  x, w = rng.standard_normal((n, c, p)), rng.standard_normal((p, c, k))
  scale = np.arange(1, c * p + 1, dtype=np.float64)  # distinct per flat index
  v = {"params": {"fc_bin": w, "bn1d": {"scale": scale, "bias": np.zeros(c * p)}},
       "batch_stats": {"bn1d": {"mean": np.zeros(c * p), "var": np.ones(c * p)}}}
  feat, logits = layers.SeparateBNNecks(p, k).apply(v, jnp.asarray(x))
  for ci in range(c):
    for pi in range(p):
      np.testing.assert_allclose(feat[:, ci, pi], x[:, ci, pi] * scale[ci * p + pi]
                                 / math.sqrt(1 + 1e-5), rtol=1e-5)
  f = np.asarray(feat)
  for pi in range(p):
    fn = f[:, :, pi] / np.linalg.norm(f[:, :, pi], axis=1, keepdims=True)
    wn = w[pi] / np.linalg.norm(w[pi], axis=0, keepdims=True)
    assert_close(logits[:, :, pi], fn @ wn, rtol=1e-5)


def test_tile_short_sequences_per_row():
  x = jnp.array([[10, 11, 12, 13, 14], [20, 21, 22, 23, 24], [30, 31, 32, 33, 34]])
  tiled, new_len = frames.tile_short_sequences(x, jnp.array([1, 2, 5]))
  np.testing.assert_array_equal(new_len, [3, 4, 5])
  np.testing.assert_array_equal(tiled[0, :3], [10, 10, 10])
  np.testing.assert_array_equal(tiled[1, :4], [20, 21, 20, 21])
  np.testing.assert_array_equal(tiled[2], [30, 31, 32, 33, 34])


def test_masked_temporal_max_ignores_padding():
  x = jnp.array([[-3.0, -1.0, 9.0], [-2.0, 5.0, 7.0]]).reshape(2, 3, 1, 1, 1)
  out = frames.masked_temporal_max(x, jnp.array([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]]))
  np.testing.assert_allclose(out.reshape(-1), [-1.0, 7.0])


def test_temporal_max_gradient_goes_to_the_first_maximal_valid_frame():
  # Small integers after a ReLU: ties in time, where PyTorch's max(dim) gives the gradient to
  # the first maximal frame alone; padded frames never get any.
  rng = np.random.default_rng(3)
  x = jnp.asarray(np.maximum(rng.integers(-2, 3, size=(2, 5, 3, 2, 4)), 0).astype(np.float32))
  mask = jnp.array([[1.0, 1.0, 1.0, 0.0, 0.0], [1.0] * 5])
  g = jnp.asarray(rng.normal(size=(2, 3, 2, 4)).astype(np.float32))
  y, vjp = jax.vjp(lambda v: frames.masked_temporal_max(v, mask), x)
  valid = np.asarray(mask)[:, :, None, None, None] > 0
  masked = np.where(valid, np.asarray(x), -np.inf)
  np.testing.assert_array_equal(y, masked.max(axis=1))
  first = masked.argmax(axis=1)  # NumPy's argmax: the first maximum
  want = np.zeros(x.shape, np.float32)
  np.put_along_axis(want, first[:, None], np.asarray(g)[:, None], axis=1)
  np.testing.assert_array_equal(vjp(g)[0], want)


def test_temporal_max_gradient_survives_recomputation_with_other_rounding():
  """Masked BN statistics feeding the temporal max, compiled as the CLI smoke tests compile
  (`FAST_COMPILE`: unoptimised): XLA:CPU recomputes
  the BN output for the backward pass with other rounding, and a gradient that compares the
  maximum with its input again found no frame there (infinite BN gradients)."""
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(3, 9, 8, 6, 8)), jnp.float32)
  mask = frames.frame_mask(jnp.array([9, 6, 8]), 9)
  w = mask.reshape(mask.shape + (1, 1, 1))
  params = (jnp.asarray(rng.uniform(0.5, 2, 8), jnp.float32),
            jnp.asarray(rng.normal(size=8), jnp.float32))

  def f(params):
    mean, var, _ = batch_norm.statistics(x, w)
    y = (x - mean) * (params[0] * jax.lax.rsqrt(var + 1e-5)) + params[1]
    return jnp.sum(jnp.sin(frames.masked_temporal_max(y, mask)))
  grad = jax.jit(jax.grad(f)).lower(params)
  optimised = grad.compile()(params)
  unoptimised = grad.compile(compiler_options=step_lib.FAST_COMPILE)(params)
  for a, b in zip(unoptimised, optimised):
    assert np.all(np.isfinite(np.asarray(a)))
    assert_close(a, b, rtol=1e-5)


def test_lta_floor_third_lengths_and_mask():
  lta = layers.LTA(1)
  kernel = jnp.ones((3, 1, 1, 1, 1))
  x = jnp.arange(1.0, 8.0).reshape(1, 7, 1, 1, 1)  # 7 frames, first 5 valid
  x = frames.apply_mask(x, frames.frame_mask(jnp.array([5]), 7))
  y, lengths, mask = lta.apply({"params": {"conv0": {"kernel": kernel}}}, x, jnp.array([5]))
  assert y.shape == (1, 2, 1, 1, 1)  # floor(7/3)
  np.testing.assert_array_equal(lengths, [1])  # floor(5/3)
  np.testing.assert_allclose(y.reshape(-1), [1 + 2 + 3, 0.0])
  y2, _, _ = lta.apply({"params": {"conv0": {"kernel": -kernel}}}, x[:, :3])
  np.testing.assert_allclose(y2.reshape(-1), [-0.06])  # LeakyReLU slope 0.01


def test_segment_temporal_max_per_packed_sequence():
  x = jnp.array([[4.0, -1.0, 0.0, -5.0, -2.0, 0.0, 3.0]]).reshape(1, 7, 1, 1, 1)
  segments = jnp.array([[0, 0, -1, 1, 1, -1, 2]])
  out = frames.segment_temporal_max(x, segments, 4)
  assert out.shape == (1, 4, 1, 1, 1)
  # The gaps (-1, here 0.0) never win; a segment id no frame carries gives -inf.
  np.testing.assert_array_equal(out.reshape(-1), [4.0, -2.0, 3.0, -np.inf])


def test_lta_keeps_packed_sequences_apart():
  lta = layers.LTA(1)
  kernel = jnp.ones((3, 1, 1, 1, 1))
  # Two sequences of 4 and 3 frames at offsets 0 and 6 (slots of 6), then blank frames.
  segments = jnp.array([[0, 0, 0, 0, -1, -1, 1, 1, 1, -1, -1, -1]])
  x = jnp.arange(1.0, 13.0).reshape(1, 12, 1, 1, 1) * frames.segment_mask(
      segments).reshape(1, 12, 1, 1, 1)
  y, seg, mask = lta.apply({"params": {"conv0": {"kernel": kernel}}}, x, segments=segments)
  np.testing.assert_array_equal(seg, [[0, -1, 1, -1]])  # floor(4/3) = 1 and floor(3/3) = 1
  np.testing.assert_array_equal(mask, [[1.0, 0.0, 1.0, 0.0]])
  np.testing.assert_allclose(y.reshape(-1), [1 + 2 + 3, 0.0, 7 + 8 + 9, 0.0])


def test_tiled_length_is_the_tiling_rule():
  np.testing.assert_array_equal(frames.tiled_length(np.array([1, 2, 3, 9])), [3, 4, 3, 9])
  _, new_len = frames.tile_short_sequences(jnp.zeros((4, 9)), jnp.array([1, 2, 3, 9]))
  np.testing.assert_array_equal(new_len, frames.tiled_length(np.array([1, 2, 3, 9])))


def test_max_pool_floor_mode():
  x = jnp.arange(5 * 3, dtype=jnp.float32).reshape(1, 1, 5, 3, 1)
  y = layers.max_pool_hw(x)
  assert y.shape == (1, 1, 2, 1, 1)
  np.testing.assert_allclose(y.reshape(-1), [4.0, 10.0])


def test_max_pool_values_and_first_maximum_gradient_match_reduce_window():
  # Small integers after a ReLU: many tied maxima, where the gradient's owner matters.
  rng = np.random.default_rng(2)
  x = jnp.asarray(np.maximum(rng.integers(-2, 3, size=(2, 3, 7, 5, 4)), 0).astype(np.float32))
  g = jnp.asarray(rng.normal(size=(2, 3, 3, 2, 4)).astype(np.float32))
  ref = lambda v: nn.max_pool(v, window_shape=(1, 2, 2), strides=(1, 2, 2))  # noqa: E731
  np.testing.assert_array_equal(layers.max_pool_hw(x), ref(x))
  got = jax.vjp(layers.max_pool_hw, x)[1](g)[0]
  want = jax.vjp(ref, x)[1](g)[0]
  np.testing.assert_array_equal(got, want)
  assert np.count_nonzero(np.asarray(got)) == np.count_nonzero(np.asarray(g))  # one owner each


@pytest.mark.parametrize("op,extent", [(1, (3, 1, 3)), (2, (3, 3, 1)), (5, (3, 3, 3))])
def test_candidate_kernel_axes_and_padding(op, extent):
  """A unit impulse through all-ones kernels spreads over exactly the op's (t, h, w) extent."""
  cand = Candidate(op, 1, flg_relu=True)
  x = jnp.zeros((1, 5, 5, 5, 1)).at[0, 2, 2, 2, 0].set(1.0)
  shapes = jax.eval_shape(lambda: cand.init(jax.random.key(0), x))
  v = jax.tree.map(lambda s: jnp.ones(s.shape), shapes)
  v["batch_stats"] = jax.tree.map(lambda s: jnp.ones(s.shape) - 1e-5, shapes["batch_stats"])
  v["params"] = jax.tree_util.tree_map_with_path(
      lambda p, a: jnp.zeros_like(a) if p[-1].key == "bias" else a, v["params"])
  v["batch_stats"] = jax.tree_util.tree_map_with_path(
      lambda p, a: jnp.zeros_like(a) if p[-1].key == "mean" else a, v["batch_stats"])
  y = cand.apply(v, x)
  assert y.shape == x.shape
  support = np.argwhere(np.asarray(y[0, ..., 0]) > 0.5)
  np.testing.assert_array_equal(support.min(0), [2 - e // 2 for e in extent])
  np.testing.assert_array_equal(support.max(0), [2 + e // 2 for e in extent])


def test_initialisers_match_reference_bounds():
  k = layers.conv_kernel_init()(jax.random.key(0), (3, 1, 3, 16, 32))
  bound = math.sqrt(6 / (16 * 9 + 32 * 9))  # Xavier with fans in·k, out·k
  assert float(jnp.max(jnp.abs(k))) <= bound and float(jnp.max(jnp.abs(k))) > 0.95 * bound
  w = layers.separate_fc_init(jax.random.key(1), (31, 512, 64))
  bound = math.sqrt(6 / (512 * 64 + 31 * 64))
  assert float(jnp.max(jnp.abs(w))) <= bound and float(jnp.max(jnp.abs(w))) > 0.99 * bound
  assert layers.separate_fc_bound((31, 512, 512)) == pytest.approx(0.004646, abs=1e-6)
  assert layers.separate_fc_bound((16, 256, 74)) == pytest.approx(0.017265, abs=1e-6)
  s = batch_norm.bn_scale_init(jax.random.key(2), (4096,))
  assert abs(float(jnp.mean(s)) - 1.0) < 0.002 and abs(float(jnp.std(s)) - 0.02) < 0.002


def test_flax_init_uses_reference_initialisers():
  """`model.init` (not only init_variables) follows the reference initialisation module by module."""
  conv = layers.conv3d(32, (3, 1, 3), name="c", dtype=jnp.float32)
  assert conv.use_bias is False and conv.padding == [(1, 1), (0, 0), (1, 1)]
  k = conv.kernel_init(jax.random.key(3), (3, 1, 3, 16, 32))
  bound = math.sqrt(6 / (16 * 9 + 32 * 9))
  assert 0.95 * bound < float(jnp.max(jnp.abs(k))) <= bound
  bn = batch_norm.BatchNorm().init(jax.random.key(4), jnp.zeros((2, 4096)))
  assert abs(float(jnp.std(bn["params"]["scale"])) - 0.02) < 0.002
  np.testing.assert_array_equal(bn["params"]["bias"], 0.0)
  np.testing.assert_array_equal(bn["batch_stats"]["mean"], 0.0)
  np.testing.assert_array_equal(bn["batch_stats"]["var"], 1.0)
  fc = layers.SeparateFCs(16, 74).init(jax.random.key(5), jnp.zeros((1, 256, 16)))
  assert 0.99 * 0.017265 < float(jnp.max(jnp.abs(fc["params"]["fc_bin"]))) <= 0.017266
  gem = layers.GeMHPP((1,)).init(jax.random.key(6), jnp.ones((1, 2, 2, 3)))
  np.testing.assert_array_equal(gem["params"]["p"], [6.5])


def test_gem_gradient_is_finite_when_a_strip_is_all_below_eps():
  """A strip whose activations are all <= eps pools to eps; the reference formula's
  gradient would be inf·0 there (eps^6.5 underflows float32)."""
  import jax
  import jax.numpy as jnp
  import numpy as np
  from gait_jax.models.layers import GeMHPP
  x = np.full((1, 4, 2, 3), -1.0, np.float32)
  x[:, :2] = np.random.default_rng(0).random((1, 2, 2, 3)).astype(np.float32) + 0.1
  gem = GeMHPP((2, 1))
  variables = gem.init(jax.random.PRNGKey(0), x)
  out = gem.apply(variables, x)
  assert np.allclose(np.asarray(out)[0, :, 1], 1e-6, rtol=1e-4)  # the all-negative strip
  def loss(v, inp):
    return jnp.sum(gem.apply(v, inp))
  gv, gx = jax.grad(loss, argnums=(0, 1))(variables, x)
  assert np.isfinite(np.asarray(gx)).all() and np.isfinite(np.asarray(gv["params"]["p"])).all()
  # Where the strip has positive values the gradient is the reference formula's.
  top = x[:, :2].astype(np.float64)
  p = 6.5
  ref = lambda t: (np.mean(np.maximum(t, 1e-6) ** p, axis=(1, 2))) ** (1 / p)
  assert np.allclose(np.asarray(out)[0, :, 0], ref(top)[0], rtol=1e-5)
