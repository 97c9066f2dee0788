"""A traced choice layer's unused switch residuals are left unwritten: its compiled gradient
holds the custom call where GAIT_JAX_SWITCH_RESIDUALS asks for it, nothing reads those slots
(filled with NaN bytes, every output, statistic and gradient is the zero-filled one's), and
`auto` keeps JAX's zeros on several devices and without the library."""
import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax._src import ad_util, core

from gait_jax.models import onednn_conv, switch_residuals
from gait_jax.models.candidates import ChoiceLayer
from gait_jax.training import step as step_lib
from helpers import assert_trees_close

BUILT = onednn_conv.library_path().is_file()
built = pytest.mark.skipif(not BUILT,
                           reason="the library is not built here (tools/build_onednn.sh)")


@pytest.fixture(scope="module")
def layer():
  """One traced choice layer (the unit that switches) on a padded batch, and its variables."""
  mdl = ChoiceLayer(features=4, flg_relu=True)
  x = jnp.asarray(np.random.default_rng(0).normal(size=(3, 5, 8, 6, 2)), jnp.float32)
  mask = jnp.arange(5)[None, :] < jnp.array([5, 3, 1])[:, None]
  variables = step_lib.run_fast_compiled(
      lambda x: mdl.init(jax.random.key(0), x, jnp.int32(0), mask, train=True), x)
  return mdl, variables, x, mask


def _lowered(monkeypatch, mode, layer, choice):
  mdl, variables, x, mask = layer
  monkeypatch.setenv(switch_residuals.ENV_VAR, mode)

  def fn(params, x, choice):
    def loss(params, x):
      y, upd = mdl.apply({"params": params, "batch_stats": variables["batch_stats"]}, x,
                         choice, mask, train=True, mutable=["batch_stats"])
      return jnp.sum(y ** 2) + jnp.sum(y), upd
    return jax.grad(loss, argnums=(0, 1), has_aux=True)(params, x)

  args = (variables["params"], x, jnp.int32(choice))
  return jax.jit(fn).lower(*args), args  # a fresh jit: the fill is chosen while tracing


@built
def test_nothing_reads_the_unused_slots_and_results_are_unchanged(monkeypatch, layer):
  # One-conv candidates (ops 0-2) and two-conv ones (3-5): the slots only the other kind fills
  # are poisoned whichever runs.
  for choice in (0, 4):
    results = {}
    for mode in ("zeros", "poison"):
      lowered, args = _lowered(monkeypatch, mode, layer, choice)
      assert ("gait_poisoned" in lowered.as_text()) == (mode == "poison")
      results[mode] = lowered.compile(compiler_options=step_lib.fast_compile_options())(*args)
    assert all(bool(jnp.all(jnp.isfinite(a))) for a in jax.tree.leaves(results["poison"]))
    assert_trees_close(results["poison"], results["zeros"], rtol=1e-6)


@built
def test_the_gradient_holds_the_custom_call_only_where_asked(monkeypatch, layer):
  texts = {mode: _lowered(monkeypatch, mode, layer, 2)[0].as_text()
           for mode in ("uninitialized", "zeros", "auto")}
  assert "gait_uninitialized" in texts["uninitialized"]
  assert "gait_poisoned" not in texts["uninitialized"]
  assert "gait_uninitialized" not in texts["zeros"]
  # auto: not on the suite's 8 CPU devices (SPMD would replicate the buffer), on one it is.
  assert jax.device_count() > 1 and "gait_uninitialized" not in texts["auto"]
  monkeypatch.setattr(jax, "device_count", lambda: 1)
  assert switch_residuals.fill() == "uninitialized"


def test_the_context_restores_jax_zeros_even_after_an_error(monkeypatch):
  monkeypatch.setenv(switch_residuals.ENV_VAR, "uninitialized" if BUILT else "zeros")
  before = ad_util.aval_empty_likers[core.ShapedArray]
  with pytest.raises(RuntimeError, match="inside"):
    with switch_residuals.uninitialized():
      assert (ad_util.aval_empty_likers[core.ShapedArray] is not before) == BUILT
      raise RuntimeError("inside")
  assert ad_util.aval_empty_likers[core.ShapedArray] is before
  zero = ad_util.empty_like_aval(core.ShapedArray((3,), np.float32))
  assert np.array_equal(np.asarray(zero), np.zeros(3, np.float32))


def test_without_the_library_jax_zeros_stay_and_one_line_says_why(monkeypatch, tmp_path, caplog):
  monkeypatch.setenv(onednn_conv.LIB_ENV_VAR, str(tmp_path / "missing.so"))
  monkeypatch.setattr(jax, "device_count", lambda: 1)
  onednn_conv.registered.cache_clear()
  try:
    with caplog.at_level(logging.INFO):
      assert switch_residuals.fill() == "zeros"
      assert switch_residuals.fill() == "zeros"  # decided once
    lines = [r.getMessage() for r in caplog.records if "switch residuals" in r.getMessage()]
    assert len(lines) == 1 and "missing.so" in lines[0] and "build_onednn.sh" in lines[0]
    for forced in ("uninitialized", "poison"):  # asked for by name: an error, not a fallback
      monkeypatch.setenv(switch_residuals.ENV_VAR, forced)
      with pytest.raises(ValueError, match=f"{forced}: unavailable: .*missing.so.*build_onednn"):
        switch_residuals.fill()
  finally:
    onednn_conv.registered.cache_clear()


def test_a_bad_mode_names_the_variable(monkeypatch):
  monkeypatch.setenv(switch_residuals.ENV_VAR, "fast")
  with pytest.raises(ValueError,
                     match="GAIT_JAX_SWITCH_RESIDUALS='fast'.*auto, uninitialized, poison, zeros"):
    switch_residuals.fill()
