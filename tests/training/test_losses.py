"""Losses against hand-worked cases and independent brute-force oracles."""
import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from gait_jax.training import losses
from helpers import assert_close


def numpy_triplet(emb, labels, margin):
  """Brute force over every (anchor, positive, negative) triple with Python loops."""
  emb = np.asarray(emb, np.float64)
  n, _, p = emb.shape
  parts = {"loss": [], "hard_loss": [], "loss_num": [], "mean_dist": []}
  for q in range(p):
    x = emb[:, :, q]
    d = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1))
    ls = []
    for i in range(n):
      for j in range(n):
        if labels[j] != labels[i]:
          continue
        for k in range(n):
          if labels[k] == labels[i]:
            continue
          ls.append(max(0.0, d[i, j] - d[i, k] + margin))
    ls = np.array(ls) if ls else np.zeros(1)
    num = float((ls > 0).sum())
    parts["loss"].append(ls.sum() / (num + 1e-9) if num else 0.0)
    parts["hard_loss"].append(ls.max())
    parts["loss_num"].append(num)
    parts["mean_dist"].append(d.mean())
  return {k: float(np.mean(v)) for k, v in parts.items()}


def jax_brute_triplet(emb, labels, margin):
  """Differentiable brute force on the full [p, n, n, n] tensor, direct differences."""
  x = jnp.transpose(emb, (2, 0, 1))
  diff = x[:, :, None, :] - x[:, None, :, :]
  d2 = jnp.sum(diff * diff, -1)
  d = jnp.where(d2 > 0, jnp.sqrt(jnp.where(d2 > 0, d2, 1.0)), 0.0)
  same = labels[:, None] == labels[None, :]
  valid = same[:, :, None] & ~same[:, None, :]  # [i, j, k]
  l = jnp.where(valid[None], jax.nn.relu(d[:, :, :, None] - d[:, :, None, :] + margin), 0.0)
  num = jnp.sum(l > 0, axis=(1, 2, 3)).astype(jnp.float32)
  per_part = jnp.where(num > 0, jnp.sum(l, axis=(1, 2, 3)) / (num + 1e-9), 0.0)
  return jnp.mean(per_part)


def test_triplet_hand_worked_line():
  # One-part embeddings on a line: 0, 0.3 (id 0) and 0.4, 2.0 (id 1), margin 0.2.
  # Distances: d01=.3 d02=.4 d03=2 d12=.1 d13=1.7 d23=1.6. Active hinges by anchor:
  #   0: (j=1,k=2) .3-.4+.2=.1
  #   1: (j=0,k=2) .3-.1+.2=.4, (j=1,k=2) 0-.1+.2=.1
  #   2: (j=2,k=1) 0-.1+.2=.1, (j=3,k=0) 1.6-.4+.2=1.4, (j=3,k=1) 1.6-.1+.2=1.7
  #   3: (j=2,k=1) 1.6-1.7+.2=.1
  emb = jnp.array([0.0, 0.3, 0.4, 2.0]).reshape(4, 1, 1)
  loss, info = losses.triplet_loss(emb, jnp.array([0, 0, 1, 1]), 0.2)
  assert loss == pytest.approx(3.9 / 7, rel=1e-5)
  assert info["loss"] == pytest.approx(3.9 / 7, rel=1e-5)
  assert info["loss_num"] == 7
  assert info["hard_loss"] == pytest.approx(1.7, rel=1e-5)
  assert info["mean_dist"] == pytest.approx(2 * 6.1 / 16, rel=1e-5)


def test_triplet_no_active_triplet_is_zero():
  # Classes far apart: every hinge is 0, so L_p = 0 (not 0/0).
  emb = jnp.array([0.0, 0.1, 10.0, 10.1]).reshape(4, 1, 1)
  loss, info = losses.triplet_loss(emb, jnp.array([3, 3, 7, 7]), 0.2)
  assert float(loss) == 0.0 and float(info["loss_num"]) == 0.0 and float(info["hard_loss"]) == 0.0
  # A single class has no negatives at all.
  loss, info = losses.triplet_loss(emb, jnp.zeros(4, jnp.int32), 0.2)
  assert float(loss) == 0.0 and float(info["loss_num"]) == 0.0


@pytest.mark.parametrize("labels", [
    [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2],  # P x K
    [5, 1, 5, 5, 2, 1, 9, 5, 5, 2, 2, 9],  # uneven multiset (with-replacement sampling)
    [4, 4, 4, 4, 4, 4, 4, 4, 1, 1, 0, 3],  # one id appears 2K times
])
def test_triplet_matches_numpy_brute_force(labels):
  rng = np.random.default_rng(len(set(labels)))
  emb = rng.normal(size=(len(labels), 5, 3)).astype(np.float32) * 0.3
  emb[3] = emb[0]  # duplicate embedding: zero off-diagonal distance
  want = numpy_triplet(emb, labels, 0.2)
  loss, info = losses.triplet_loss(jnp.asarray(emb), jnp.asarray(labels), 0.2)
  assert float(loss) == pytest.approx(want["loss"], rel=1e-4)
  for k in want:
    assert float(info[k]) == pytest.approx(want[k], rel=1e-4, abs=1e-6), k


def test_triplet_gradient_matches_brute_force():
  rng = np.random.default_rng(1)
  labels = jnp.array([0, 1, 0, 2, 1, 1, 0, 2, 2, 0])
  emb = jnp.asarray(rng.normal(size=(10, 4, 2)).astype(np.float32))
  # Jitted, as training runs them (op by op, each small op compiles on its own).
  got = jax.jit(jax.grad(lambda e: losses.triplet_loss(e, labels, 0.2)[0]))(emb)
  want = jax.jit(jax.grad(lambda e: jax_brute_triplet(e, labels, 0.2)))(emb)
  assert np.all(np.isfinite(got))
  assert_close(got, want, rtol=1e-4)
  assert float(jnp.abs(got).max()) > 0


def test_triplet_gradient_finite_with_duplicates():
  labels = jnp.array([0, 0, 1, 1])
  emb = jnp.array([[1.0, 2.0], [1.0, 2.0], [1.1, 2.0], [3.0, 0.0]]).reshape(4, 2, 1)
  g = jax.jit(jax.grad(lambda e: losses.triplet_loss(e, labels, 0.2)[0]))(emb)
  assert np.all(np.isfinite(g))


def test_triplet_sharded_equals_single_device():
  devices = np.array(jax.devices())
  assert devices.size == 8, "run with XLA_FLAGS=--xla_force_host_platform_device_count=8"
  mesh = Mesh(devices, ("data",))
  rng = np.random.default_rng(2)
  labels = np.repeat(np.arange(4), 4)
  outputs = {"embeddings": rng.normal(size=(16, 8, 3)).astype(np.float32),
             "logits": np.tanh(rng.normal(size=(16, 5, 3))).astype(np.float32)}
  fn = jax.jit(lambda o, l: losses.compute_losses(o, l, _loss_cfg(0.1, 1.0)))
  single = fn(jax.tree.map(jnp.asarray, outputs), jnp.asarray(labels))
  shard = NamedSharding(mesh, P("data"))
  sharded = fn(jax.device_put(outputs, shard), jax.device_put(labels, shard))
  assert set(single[1]) == set(sharded[1])
  for a, b in zip(jax.tree.leaves(single), jax.tree.leaves(sharded)):
    assert_close(a, b, rtol=1e-5)
  assert float(single[1]["triplet/loss_num"]) > 0


def test_triplet_memory_is_sane_at_reference_batch():
  # OUMVLP global batch (256 sequences, 31-part heads for the worst case): the batch-all
  # tensor [31, 256, 256, 256] alone would be 2 GB in float32. Forward + backward must
  # stay far below that; [p, n, n] buffers are ~8 MB each.
  n, c, p = 256, 512, 31
  emb = jax.ShapeDtypeStruct((n, c, p), jnp.float32)
  lab = jax.ShapeDtypeStruct((n,), jnp.int32)
  grad_fn = jax.jit(jax.value_and_grad(lambda e, l: losses.triplet_loss(e, l, 0.2)[0]))
  mem = grad_fn.lower(emb, lab).compile().memory_analysis()
  if mem is None:
    pytest.skip("backend reports no memory analysis")
  assert mem.temp_size_in_bytes < 300 * 2**20, mem.temp_size_in_bytes


def numpy_ce(logits, labels, scale, eps):
  logits = np.asarray(logits, np.float64)
  n, k, p = logits.shape
  per_part = []
  for q in range(p):
    total = 0.0
    for i in range(n):
      z = scale * logits[i, :, q]
      lse = math.log(sum(math.exp(v - z.max()) for v in z)) + z.max()
      logp = z - lse
      total += (1 - eps) * -logp[labels[i]] + eps * -logp.mean()
    per_part.append(total / n)
  return float(np.mean(per_part))


@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_cross_entropy_matches_numpy(eps):
  rng = np.random.default_rng(3)
  logits = np.tanh(rng.normal(size=(6, 7, 3))).astype(np.float32)  # cosine-like range
  labels = np.array([0, 6, 2, 2, 5, 1])
  loss, info = losses.cross_entropy_loss(jnp.asarray(logits), jnp.asarray(labels), 16.0, eps)
  want = numpy_ce(logits, labels, 16.0, eps)
  assert float(loss) == pytest.approx(want, rel=1e-5)
  assert float(info["loss"]) == pytest.approx(want, rel=1e-5)


def test_cross_entropy_uniform_logits():
  # All-equal logits: -log p = log K for every class, smoothing or not.
  loss, _ = losses.cross_entropy_loss(jnp.zeros((2, 5, 4)), jnp.array([1, 3]), 16.0, 0.1)
  assert float(loss) == pytest.approx(math.log(5), rel=1e-6)


def test_cross_entropy_accuracy_hand_worked():
  # 2 samples x 2 parts, 3 classes. Sample 0 (label 2): part 0 argmax 2 (hit), part 1 argmax 0.
  # Sample 1 (label 0): part 0 argmax 0 (hit), part 1 argmax 0 (hit). Accuracy 3/4.
  logits = np.zeros((2, 3, 2), np.float32)
  logits[0, 2, 0] = 0.9
  logits[0, 0, 1] = 0.9
  logits[1, 0, 0] = 0.5
  logits[1, 0, 1] = 0.2
  _, info = losses.cross_entropy_loss(jnp.asarray(logits), jnp.array([2, 0]), 16.0, 0.1)
  assert float(info["accuracy"]) == pytest.approx(0.75)


def _loss_cfg(triplet_weight, ce_weight):
  c = ml_collections.ConfigDict()
  c.triplet_weight, c.ce_weight = triplet_weight, ce_weight
  c.margin, c.ce_scale, c.label_smooth = 0.2, 16.0, 0.1
  return c


def test_compute_losses_weights_and_keys():
  rng = np.random.default_rng(4)
  labels = jnp.array([0, 0, 1, 1, 2, 2])
  outputs = {"embeddings": jnp.asarray(rng.normal(size=(6, 4, 2)).astype(np.float32)),
             "logits": jnp.asarray(np.tanh(rng.normal(size=(6, 3, 2))).astype(np.float32))}
  tri, _ = losses.triplet_loss(outputs["embeddings"], labels, 0.2)
  ce, _ = losses.cross_entropy_loss(outputs["logits"], labels, 16.0, 0.1)
  total, metrics = jax.jit(lambda o, l: losses.compute_losses(o, l, _loss_cfg(0.1, 1.0)))(outputs, labels)
  assert float(total) == pytest.approx(0.1 * float(tri) + 1.0 * float(ce), rel=1e-5)
  assert set(metrics) == {"triplet/loss", "triplet/hard_loss", "triplet/loss_num", "triplet/mean_dist",
                          "softmax/loss", "softmax/accuracy", "loss"}
  assert all(v.dtype == jnp.float32 and v.shape == () for v in metrics.values())
  assert float(metrics["loss"]) == pytest.approx(float(total), rel=1e-6)
  assert float(metrics["softmax/loss"]) == pytest.approx(float(ce), rel=1e-5)

  # Triplet only: CE skipped even when logits are present, no softmax keys.
  total, metrics = losses.compute_losses(outputs, labels, _loss_cfg(2.0, 0.0))
  assert float(total) == pytest.approx(2.0 * float(tri), rel=1e-5)
  assert not any(k.startswith("softmax/") for k in metrics)

  with pytest.raises(KeyError, match="logits"):
    losses.compute_losses({"embeddings": outputs["embeddings"]}, labels, _loss_cfg(1.0, 1.0))


def test_compute_losses_gradient_flows_to_both_heads():
  labels = jnp.array([0, 0, 1, 1])
  rng = np.random.default_rng(5)
  outputs = {"embeddings": jnp.asarray(rng.normal(size=(4, 3, 2)).astype(np.float32) * 0.1),
             "logits": jnp.asarray(np.tanh(rng.normal(size=(4, 2, 2))).astype(np.float32))}
  grads = jax.jit(jax.grad(
      lambda o: losses.compute_losses(o, labels, _loss_cfg(1.0, 1.0))[0]))(outputs)
  assert float(jnp.abs(grads["embeddings"]).sum()) > 0
  assert float(jnp.abs(grads["logits"]).sum()) > 0
