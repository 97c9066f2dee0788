"""The SPOSGait network: static vs traced paths, variable lengths, fixed paths, dtypes."""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from gait_jax.models import (abstract_variables, build_model, init_variables, layer_names,
                             path_mask, sample_path)
from gait_jax.training import step as step_lib
from helpers import assert_close, assert_trees_close

H, W = 32, 22  # half-size silhouettes keep XLA:CPU conv3d cheap; h=8 after the two pools


def tiny_cfg(name="sposgait_small"):
  channels = (4, 8, 8) if name == "sposgait_small" else (4, 8, 8, 8)
  return ml_collections.ConfigDict(dict(
      name=name, channels=channels, bins=(4, 2, 1), parts=7, out_channels=8, class_num=5,
      choice_max_num=(6,) * len(layer_names(name))))


def randomise_stats(variables, seed):
  """Non-trivial running statistics, so eval mode tests more than the identity."""
  rng = np.random.default_rng(seed)

  def draw(path, leaf):
    if path[-1].key == "mean":
      return jnp.asarray(rng.normal(0, 0.3, leaf.shape), jnp.float32)
    return jnp.asarray(rng.uniform(0.5, 2.0, leaf.shape), jnp.float32)

  return {"params": variables["params"],
          "batch_stats": jax.tree_util.tree_map_with_path(draw, variables["batch_stats"])}


def sils(n, t, seed=0):
  return jnp.asarray(np.random.default_rng(seed).uniform(0, 1, (n, t, H, W)), jnp.float32)


@pytest.fixture(scope="module")
def small():
  model = build_model(tiny_cfg(), bnneck=True)
  return model, init_variables(model, 0, height=H, width=W)


def test_init_creates_all_six_candidates(small):
  model, variables = small
  shapes = abstract_variables(model, height=H, width=W)
  for name in layer_names("sposgait_small"):
    assert sorted(shapes["params"][name]) == [f"cand{j}" for j in range(6)]
    assert sorted(variables["batch_stats"][name]) == [f"cand{j}" for j in range(6)]
  assert sorted(shapes["params"]["conv3d_20"]["cand5"]) == ["bn1", "bn4", "conv0", "conv3"]
  assert jax.tree.map(lambda s: s.shape, shapes) == jax.tree.map(jnp.shape, variables)
  static_init = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 3, H, W)),
                                                  (0, 1, 2, 3)))
  assert jax.tree.structure(static_init) == jax.tree.structure(shapes)


def test_static_equals_traced_for_20_paths_with_one_compile(small):
  model, variables = small
  traces = []

  @jax.jit
  def step(variables, x, path):
    traces.append(1)  # runs once per trace
    return model.apply(variables, x, path, train=True, mutable=["batch_stats"])

  x = sils(2, 6)
  for s in range(20):
    path = sample_path((6, 6, 6, 6), seed=1, step=s)
    out_t, upd_t = step(variables, x, jnp.array(path, jnp.int32))
    out_s, upd_s = model.apply(variables, x, path, train=True, mutable=["batch_stats"])
    # Jitted vs op-by-op rounding, amplified by train-mode BN over a batch of two.
    assert_trees_close(out_t, out_s, rtol=1e-4)
    assert_trees_close(upd_t, upd_s, rtol=1e-4)
    # Only the chosen candidates' BN statistics moved.
    used = path_mask(variables["batch_stats"], path, "sposgait_small")
    moved = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), variables["batch_stats"],
                         upd_t["batch_stats"])
    assert moved == used
  assert len(traces) == 1
  assert step._cache_size() == 1


def test_traced_gradients_vanish_off_path(small):
  model, variables = small
  path = (2, 5, 0, 3)

  def grads(params, p):
    def loss(params):
      out, _ = model.apply({"params": params, "batch_stats": variables["batch_stats"]},
                           sils(2, 6), p, train=True, mutable=["batch_stats"])
      return jnp.sum(out["embeddings"] ** 2) + jnp.sum(out["logits"])
    return jax.grad(loss)(params)

  # Compiling the supernet's gradient is most of this test: the fast options, same values.
  g = step_lib.run_fast_compiled(grads, variables["params"], jnp.array(path, jnp.int32))
  used = path_mask(g, path, "sposgait_small")
  nonzero = jax.tree.map(lambda a: bool(jnp.any(a != 0)), g)
  assert nonzero == used


def test_remat_same_variables_outputs_stats_and_gradients(small):
  # model.remat only trades memory for recompute: everything observable must be unchanged,
  # for a traced path (the supernet step) and for a padded batch (masks inside the branch).
  model, variables = small
  cfg = tiny_cfg()
  cfg.remat = True
  remat_model = build_model(cfg, bnneck=True)
  assert jax.tree.structure(abstract_variables(remat_model, height=H, width=W)) == \
      jax.tree.structure(variables)
  x, lengths = sils(3, 7, seed=4), jnp.array([7, 5, 2], jnp.int32)

  def run(m):
    def fn(params, p):
      def loss(params):
        out, upd = m.apply({"params": params, "batch_stats": variables["batch_stats"]}, x, p,
                           lengths, train=True, mutable=["batch_stats"])
        return jnp.sum(out["embeddings"] ** 2) + jnp.sum(out["logits"]), (out, upd)
      return jax.grad(loss, has_aux=True)(params)
    args = (variables["params"], jnp.array((4, 0, 5, 3), jnp.int32))
    # Compiling the supernet's gradient is most of this test: both sides compile alike, fast.
    return step_lib.run_fast_compiled(fn, *args)

  (g0, (o0, u0)), (g1, (o1, u1)) = run(model), run(remat_model)
  assert_trees_close(o1, o0, rtol=1e-5)
  assert_trees_close(u1, u0, rtol=1e-5)
  assert_trees_close(g1, g0, rtol=1e-4)  # recompute reorders float sums: rounding-level differences


def test_padded_batch_equals_unpadded_runs_eval(small):
  model, variables = small
  variables = randomise_stats(variables, 1)
  lengths = [1, 2, 4, 5, 7]
  x = sils(len(lengths), 7, seed=2)
  path = (0, 3, 4, 5)
  # Jitted (op by op takes several times longer), unoptimised: one compile per length.
  batch = step_lib.run_fast_compiled(lambda v, x, n: model.apply(v, x, path, n), variables, x,
                                     jnp.array(lengths, jnp.int32))
  for i, length in enumerate(lengths):
    alone = step_lib.run_fast_compiled(lambda v, x: model.apply(v, x, path), variables,
                                       x[i:i + 1, :length])
    assert_close(batch["embeddings"][i], alone["embeddings"][0], rtol=1e-5)
    assert_close(batch["logits"][i], alone["logits"][0], rtol=1e-5)


@pytest.mark.parametrize("name,lengths,split", [
    ("sposgait_small", (3, 6, 1, 9, 2, 4, 5, 7, 11), 4), ("sposgait_medium", (3, 6, 1, 9), 2)])
def test_packed_rows_equal_each_sequence_alone(name, lengths, split):
  """Several whole sequences per row (evaluation.packing's layout), including a tiled short
  clip and lengths that are multiples of the LTA's stride 3 (whose gap is the slot's only
  blank frames; small: every remainder): each embeds as it does alone, whether the LTA
  comes after stage 0 (small) or 1 (medium; large puts it there too)."""
  from gait_jax.evaluation import packing
  model = build_model(tiny_cfg(name), bnneck=True)
  variables = randomise_stats(init_variables(model, 1, height=H, width=W), 3)
  path = sample_path((6,) * len(layer_names(name)), 1, 3)
  seqs = [np.asarray(sils(1, t, seed=10 + i)[0]) for i, t in enumerate(lengths)]
  placed = [[], []]
  for i, seq in enumerate(seqs):  # two rows (split at `split`), slots back to back
    row = placed[int(i >= split)]
    offset = row[-1][2] + packing.slot_length(row[-1][1].shape[0]) if row else 0
    row.append((i, packing.short_clip(seq), offset))
  x, segments = packing.layout(placed, 42)
  num = packing.max_segments(42)
  # As above: one unoptimised compile per length.
  out = step_lib.run_fast_compiled(
      lambda v, x, seg: model.apply(v, x, path, segments=seg, num_segments=num), variables,
      jnp.asarray(x), jnp.asarray(segments))
  assert out["embeddings"].shape == (2, num, 8, 7) and out["logits"].shape == (2, num, 5, 7)
  for r, row in enumerate(placed):
    for k, (i, _, _) in enumerate(row):
      alone = step_lib.run_fast_compiled(lambda v, x: model.apply(v, x, path), variables,
                                         jnp.asarray(seqs[i])[None])
      assert_close(out["embeddings"][r, k], alone["embeddings"][0], rtol=1e-5)
      assert_close(out["logits"][r, k], alone["logits"][0], rtol=1e-5)
  with pytest.raises(ValueError, match="segments: packed rows are for inference"):
    model.apply(variables, jnp.asarray(x), path, segments=jnp.asarray(segments))
  with pytest.raises(ValueError, match=r"segments: expected shape \(2, 42\)"):
    model.apply(variables, jnp.asarray(x), path, segments=jnp.asarray(segments[:, :9]),
                num_segments=num)


def test_short_sequence_tiling_matches_reference_repeat(small):
  """L=1 and L=2 (train mode, batch statistics included) equal the explicitly tiled clip.
  Each apply one program: op by op, every op compiled on its own took most of the time."""
  model, variables = small
  path = (0, 1, 2, 3)
  def train(v, x):
    return model.apply(v, x, path, train=True, mutable=["batch_stats"])

  for frames, tiled in ((1, [0, 0, 0]), (2, [0, 1, 0, 1])):
    x = sils(1, frames, seed=3)
    out, upd = step_lib.run_fast_compiled(train, variables, x)
    ref, ref_upd = step_lib.run_fast_compiled(train, variables, x[:, jnp.array(tiled)])
    assert_trees_close(out, ref, rtol=1e-4)
    assert_trees_close(upd, ref_upd, rtol=1e-4)
    # The same sequence inside a padded batch (train statistics shared, so compare padded
    # content only through the garbage test below); in eval mode it must match exactly.
    padded = jnp.concatenate([x, jnp.ones((1, 6 - frames, H, W))], axis=1)
    ev = step_lib.run_fast_compiled(lambda v, x, n: model.apply(v, x, path, n), variables,
                                    padded, jnp.array([frames], jnp.int32))
    alone = step_lib.run_fast_compiled(lambda v, x: model.apply(v, x, path), variables, x)
    assert_close(ev["embeddings"], alone["embeddings"], rtol=1e-5)


def test_train_padding_content_and_amount_do_not_matter(small):
  model, variables = small
  path = (0, 4, 1, 5)
  lengths = jnp.array([5, 4, 7], jnp.int32)
  x = sils(3, 7, seed=4)
  valid = np.arange(7)[None, :] < np.asarray(lengths)[:, None]
  zeros = jnp.where(valid[..., None, None], x, 0.0)
  garbage = jnp.where(valid[..., None, None], x, 50.0)
  apply = jax.jit(model.apply, static_argnums=2, static_argnames=("train", "mutable"))
  a = apply(variables, zeros, path, lengths, train=True, mutable=("batch_stats",))
  b = apply(variables, garbage, path, lengths, train=True, mutable=("batch_stats",))
  assert_trees_close(a, b, rtol=1e-4)
  # Equal lengths: padding 5 → 9 frames changes nothing, statistics included.
  x5 = sils(2, 5, seed=5)
  padded = jnp.concatenate([x5, jnp.full((2, 4, H, W), 3.0)], axis=1)
  c = apply(variables, padded, path, jnp.array([5, 5], jnp.int32), train=True,
            mutable=("batch_stats",))
  d = apply(variables, x5, path, train=True, mutable=("batch_stats",))
  assert_trees_close(c, d, rtol=1e-4)


def test_fixed_path_is_a_subset_with_the_same_function(small):
  model, variables = small
  path = (0, 5, 0, 1)
  fixed = build_model(tiny_cfg(), bnneck=True, fixed_path=path)
  shapes = abstract_variables(fixed, height=H, width=W)
  for name in layer_names("sposgait_small"):
    assert list(shapes["params"][name]) == [f"cand{path[layer_names('sposgait_small').index(name)]}"]
  subset = jax.tree.map(lambda s, *_: None, shapes)  # structure of the fixed model
  sliced = jax.tree_util.tree_map_with_path(
      lambda kp, _: _lookup(variables, kp), subset, is_leaf=lambda x: x is None)
  x = sils(2, 6, seed=6)
  want = model.apply(variables, x, path, train=True, mutable=["batch_stats"])
  got = fixed.apply(sliced, x, path, train=True, mutable=["batch_stats"])
  assert_trees_close(want[0], got[0], rtol=1e-4)
  got_none = fixed.apply(sliced, x, None, train=True, mutable=["batch_stats"])  # path optional
  assert_trees_close(want[0], got_none[0], rtol=1e-4)
  traced = jax.jit(lambda v, p: fixed.apply(v, x, p))(sliced, jnp.array(path, jnp.int32))
  assert_trees_close(model.apply(variables, x, path), traced, rtol=1e-4)
  with pytest.raises(ValueError, match="fixed_path"):
    fixed.apply(sliced, x, (0, 0, 0, 0))
  with pytest.raises(ValueError, match="fixed_path"):  # a concrete array is checked too
    fixed.apply(sliced, x, jnp.array((0, 0, 0, 0), jnp.int32))


def _lookup(tree, key_path):
  for k in key_path:
    tree = tree[k.key]
  return tree


def test_mixed_precision_float32_outputs(small):
  model, variables = small
  half = build_model(tiny_cfg(), bnneck=True, dtype=jnp.bfloat16)
  x = sils(2, 6, seed=7)
  path = (0, 2, 3, 4)
  out, upd = step_lib.run_fast_compiled(
      lambda v, x: half.apply(v, x, path, train=True, mutable=["batch_stats"]), variables, x)
  ref, _ = step_lib.run_fast_compiled(
      lambda v, x: model.apply(v, x, path, train=True, mutable=["batch_stats"]), variables, x)
  assert out["embeddings"].dtype == jnp.float32 and out["logits"].dtype == jnp.float32
  assert all(v.dtype == jnp.float32 for v in jax.tree.leaves(upd))
  assert np.isfinite(np.asarray(out["embeddings"])).all()
  rel = np.linalg.norm(out["embeddings"] - ref["embeddings"]) / np.linalg.norm(ref["embeddings"])
  assert rel < 0.05


def test_bad_inputs_raise_clear_errors(small):
  model, variables = small
  x = sils(1, 4)
  with pytest.raises(ValueError, match="path is required"):
    model.apply(variables, x, None)
  # (a path's length and candidates are checked where it enters: space.check_path)
  with pytest.raises(ValueError, match=r"\[n, T, h, w\]"):
    model.apply(variables, x[0], (0, 1, 2, 3))
  with pytest.raises(ValueError, match="lengths"):
    model.apply(variables, x, (0, 1, 2, 3), jnp.array([5]))  # more than the 4 frames given
  with pytest.raises(ValueError, match="choice_max_num"):
    cfg = tiny_cfg()
    cfg.choice_max_num = (1, 6)
    build_model(cfg, bnneck=False)
  with pytest.raises(ValueError, match="channels"):
    cfg = tiny_cfg()
    cfg.channels = (4, 8)
    build_model(cfg, bnneck=False)
  with pytest.raises(ValueError, match=r"model.channels=\('abc',\): expected positive integers"):
    cfg = tiny_cfg()
    cfg.channels = ("abc",)  # what --config.model.channels=abc gives
    build_model(cfg, bnneck=False)


def test_triplet_only_model_has_no_neck():
  model = build_model(tiny_cfg(), bnneck=False)
  shapes = abstract_variables(model, height=H, width=W)
  assert "BNNecks" not in shapes["params"]
  out = jax.eval_shape(lambda v: model.apply(v, jnp.zeros((2, 6, H, W)), (0, 0, 0, 0)), shapes)
  assert set(out) == {"embeddings"} and out["embeddings"].shape == (2, 8, 7)


@pytest.mark.parametrize("name", ["sposgait_medium", "sposgait_large"])
def test_medium_large_static_equals_traced(name):
  model = build_model(tiny_cfg(name), bnneck=False)
  variables = randomise_stats(init_variables(model, 1, height=H, width=W), 2)
  x = sils(1, 6, seed=8)
  path = sample_path((6,) * len(layer_names(name)), 0, 3)
  traced = jax.jit(lambda v, p: model.apply(v, x, p))(variables, jnp.array(path))
  static = step_lib.run_fast_compiled(lambda v: model.apply(v, x, path), variables)
  assert_close(traced["embeddings"], static["embeddings"], rtol=1e-5)


def test_init_variables_follow_reference_distributions():
  cfg = tiny_cfg()
  cfg.channels, cfg.out_channels = (32, 64, 64), 64
  model = build_model(cfg, bnneck=True, fixed_path=(0, 0, 0, 0))
  v = init_variables(model, 3, height=H, width=W)
  k = np.asarray(v["params"]["conv3d_30"]["cand0"]["conv0"]["kernel"])  # (3,3,3,64,64)
  bound = np.sqrt(6 / (27 * 64 + 27 * 64))
  assert k.shape == (3, 3, 3, 64, 64) and 0.99 * bound < np.abs(k).max() <= bound
  fc = np.asarray(v["params"]["Head0"]["fc_bin"])  # [7, 64, 64]
  assert 0.99 * np.sqrt(6 / (64 * 64 + 7 * 64)) < np.abs(fc).max() <= np.sqrt(6 / (64 * 64 + 7 * 64))
  scales = np.concatenate([np.asarray(x).ravel() for p, x in
                           jax.tree_util.tree_leaves_with_path(v["params"])
                           if p[-1].key == "scale"])
  assert abs(scales.mean() - 1) < 0.003 and abs(scales.std() - 0.02) < 0.003
  stats = jax.tree_util.tree_leaves_with_path(v["batch_stats"])
  assert all(np.all(np.asarray(x) == (1.0 if p[-1].key == "var" else 0.0)) for p, x in stats)
  np.testing.assert_array_equal(v["params"]["HPP"]["p"], [6.5])
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(v))
  again = init_variables(model, 3, height=H, width=W)
  assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(v), jax.tree.leaves(again)))
