"""optim.py: torch.optim.SGD semantics, MultiStepLR, clipping and masked updates."""
import jax
import optax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from gait_jax.training import optim
from helpers import assert_close


def _cfg(**kw):
  c = ml_collections.ConfigDict(dict(lr=0.1, momentum=0.9, weight_decay=5e-4, gamma=0.1,
                                     milestones=(2, 4), schedule="multistep"))
  c.clip = ml_collections.ConfigDict(dict(type="none", value=0.1, max_norm=35.0, norm_type=2.0))
  for k, v in kw.items():
    if k.startswith("clip_"):
      c.clip[k[5:]] = v
    else:
      c[k] = v
  return c


def test_multistep_schedule_counts_milestones_reached():
  sched = optim.multistep_lr(0.1, 0.1, (2, 4))
  got = [float(sched(c)) for c in range(6)]
  # torch MultiStepLR after `c` scheduler steps: decays once c reaches each milestone.
  np.testing.assert_allclose(got, [0.1, 0.1, 0.01, 0.01, 0.001, 0.001], rtol=1e-6)
  assert float(optim.multistep_lr(0.05, 0.1, ())(10**6)) == pytest.approx(0.05)


def test_cosine_schedule_decays_to_zero_at_the_runs_end():
  cosine = optim.SGD(_cfg(schedule="cosine"), total_steps=8)
  got = [float(cosine.schedule(c)) for c in (0, 2, 4, 6, 8, 20)]
  expected = [0.1 * 0.5 * (1 + np.cos(np.pi * c / 8)) for c in (0, 2, 4, 6, 8, 8)]
  np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-9)  # milestones unused
  assert float(optim.SGD(_cfg(), total_steps=8).schedule(4)) == pytest.approx(0.001)
  with pytest.raises(ValueError, match="optim.schedule='cosine' decays over the run's"):
    optim.SGD(_cfg(schedule="cosine"))
  with pytest.raises(ValueError, match="optim.schedule='linear': expected one of multistep"):
    optim.SGD(_cfg(schedule="linear"), total_steps=8)


def _numpy_sgd(p, g, buf, lr, mom=0.9, wd=5e-4):
  g = g + wd * p
  buf = mom * buf + g
  return p - lr * buf, buf


def test_sgd_matches_coupled_weight_decay_reference_over_steps():
  rng = np.random.default_rng(0)
  params = {"w": rng.normal(size=(3, 2)).astype(np.float32), "b": rng.normal(size=4).astype(np.float32)}
  opt = optim.SGD(_cfg())
  state = opt.init(jax.tree.map(jnp.asarray, params))
  jp = jax.tree.map(jnp.asarray, params)
  ref_p = {k: v.astype(np.float64) for k, v in params.items()}
  ref_buf = {k: np.zeros_like(v) for k, v in ref_p.items()}
  for count in range(5):
    grads = {k: rng.normal(size=v.shape).astype(np.float32) for k, v in params.items()}
    jp, state, lr = opt.update(jp, jax.tree.map(jnp.asarray, grads), state, count)
    lr_ref = 0.1 * 0.1 ** sum(count >= m for m in (2, 4))
    assert float(lr) == pytest.approx(lr_ref, rel=1e-6)
    for k in ref_p:
      ref_p[k], ref_buf[k] = _numpy_sgd(ref_p[k], grads[k], ref_buf[k], lr_ref)
  for k in ref_p:
    assert_close(jp[k], ref_p[k], rtol=1e-5)
    assert_close(state["momentum"][k], ref_buf[k], rtol=1e-5)


def test_masked_leaves_are_bit_identical_even_with_weight_decay_and_momentum():
  params = {"used": jnp.ones(3), "unused": jnp.full((2,), 2.0)}
  opt = optim.SGD(_cfg())
  state = {"momentum": {"used": jnp.full(3, 0.5), "unused": jnp.full(2, 0.25)}}
  grads = {"used": jnp.ones(3), "unused": jnp.zeros(2)}
  for mask in ({"used": True, "unused": False},
               {"used": jnp.asarray(True), "unused": jnp.asarray(False)}):
    new_p, new_s, _ = jax.jit(opt.update)(params, grads, state, 0, mask)
    assert np.array_equal(np.asarray(new_p["unused"]), np.asarray(params["unused"]))
    assert np.array_equal(np.asarray(new_s["momentum"]["unused"]), np.full(2, 0.25, np.float32))
    assert not np.array_equal(np.asarray(new_p["used"]), np.asarray(params["used"]))
  # Without the mask the unused leaf does move (decay + momentum), as PyTorch < 2.0 did.
  new_p, _, _ = opt.update(params, grads, state, 0)
  assert not np.array_equal(np.asarray(new_p["unused"]), np.asarray(params["unused"]))


def _clip(grads, clip_cfg):
  return optim.clipping(clip_cfg).update(grads, optax.EmptyState())[0]


def test_clip_by_value_and_by_norm():
  grads = {"a": jnp.asarray([3.0, -4.0]), "b": jnp.asarray([0.05])}
  v = _clip(grads, _cfg(clip_type="value", clip_value=0.1).clip)
  np.testing.assert_allclose(v["a"], [0.1, -0.1])
  np.testing.assert_allclose(v["b"], [0.05])
  total = np.sqrt(9 + 16 + 0.0025)
  n = _clip(grads, _cfg(clip_type="norm", clip_max_norm=1.0).clip)
  np.testing.assert_allclose(n["a"], np.array([3.0, -4.0]) / (total + 1e-6), rtol=1e-6)
  # Below max_norm nothing changes.
  same = _clip(grads, _cfg(clip_type="norm", clip_max_norm=100.0).clip)
  np.testing.assert_allclose(same["a"], [3.0, -4.0])
  # norm_type 1 and inf.
  assert float(optim.global_norm(grads, 1.0)) == pytest.approx(7.05)
  assert float(optim.global_norm(grads, float("inf"))) == pytest.approx(4.0)


def test_bad_clip_type_is_a_clear_error():
  with pytest.raises(ValueError, match="optim.clip.type"):
    optim.SGD(_cfg(clip_type="max"))
  # (optim.lr and optim.momentum are checked with the whole config: tests/test_config_check.py)
