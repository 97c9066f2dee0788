"""Training losses of SPOSGait: batch-all triplet and label-smoothed cosine CE.

Both run inside `jax.jit` on the *global* batch (the batch axis may be sharded over a
device mesh; XLA inserts the collectives). That reproduces the reference, whose triplet
loss all-gathers embeddings across GPUs and whose CE is averaged by DDP.

Triplet memory: the reference materialises every (anchor, positive, negative) triple,
`[p, n, n, n]` per step (n = 256, p = 31 gives 520 M floats). Here, for each anchor, the
negative distances are sorted once; for a positive distance `a` the active negatives are
those with `b < a + margin` (a binary search) and their hinge sum is
`count * (a + margin) - prefix_sum(b)[count]`. Values and gradients equal the
brute-force sum (tested), with `O(p n^2 log n)` work and `[p, n, n]` memory.
"""
from __future__ import annotations

from typing import Any, Dict, Mapping, Tuple

import jax
import jax.numpy as jnp

# Stands in for "not a negative" in the sorted negative distances: larger than any
# distance + margin, and finite so prefix sums stay finite.
_NOT_NEGATIVE = 1e30
# AvgNonZeroReducer's epsilon (reference triplet.py).
_EPS = 1e-9


def pairwise_distances(x: jax.Array) -> jax.Array:
  """Euclidean distances per part: x [p, n, c] -> D [p, n, n], float32.

  Uses the reference formula sqrt(max(0, |x|^2 + |y|^2 - 2 x.y)). The diagonal is set to
  exactly 0 (the formula leaves float cancellation noise there) and the square root gets a
  zero gradient where its argument is ~0, so an anchor used as its own positive (and
  duplicate embeddings) cannot produce inf/NaN gradients.
  """
  x = x.astype(jnp.float32)
  sq = jnp.sum(x * x, axis=-1)  # [p, n]
  # HIGHEST: GPUs/TPUs would otherwise run this f32 matmul in TF32/bf16, and the
  # cancellation in |x|^2 + |y|^2 - 2x.y would swamp small distances.
  inner = jnp.einsum("pic,pjc->pij", x, x, precision=jax.lax.Precision.HIGHEST)
  d2 = sq[:, :, None] + sq[:, None, :] - 2.0 * inner
  positive = d2 > 1e-12
  dist = jnp.where(positive, jnp.sqrt(jnp.where(positive, d2, 1.0)), 0.0)
  n = x.shape[1]
  return jnp.where(jnp.eye(n, dtype=bool)[None], 0.0, dist)


def triplet_loss(embeddings: jax.Array, labels: jax.Array,
                 margin: float) -> Tuple[jax.Array, Dict[str, jax.Array]]:
  """Batch-all triplet loss averaged over active triplets.

  Args:
    embeddings: [n, c, p] (any float dtype; computed in float32).
    labels: [n] integer labels; any multiset (P x K structure is not required).
    margin: the hinge margin (0.2 in every reference config).

  Returns:
    (loss, info): loss = mean over parts of L_p, where L_p = sum(l) / (count(l > 0) + 1e-9)
    over l = relu(D[i,j] - D[i,k] + margin) for all anchors i, positives j (same label,
    j = i included) and negatives k. info (no gradient): `loss`, `hard_loss` (max l per
    part), `loss_num` (active triplets per part), `mean_dist` (mean of D per part), each
    averaged over parts.
  """
  if embeddings.ndim != 3:
    raise ValueError(f"triplet_loss: embeddings must be [n, c, p], got shape {embeddings.shape}")
  if labels.shape != embeddings.shape[:1]:
    raise ValueError(f"triplet_loss: labels must be [n]={embeddings.shape[:1]}, got {labels.shape}")
  x = jnp.transpose(embeddings, (2, 0, 1))  # [p, n, c]
  dist = pairwise_distances(x)  # [p, n, n]
  same = labels[:, None] == labels[None, :]  # [n, n]; the diagonal is a positive

  # Per anchor, negatives' distances in ascending order; non-negatives pushed to the end.
  neg_sorted = jnp.sort(jnp.where(same[None], _NOT_NEGATIVE, dist), axis=-1)  # [p, n, n]
  # prefix[..., r] = sum of the r smallest negative distances.
  prefix = jnp.concatenate(
      [jnp.zeros(neg_sorted.shape[:-1] + (1,), jnp.float32), jnp.cumsum(neg_sorted, axis=-1)],
      axis=-1)
  threshold = dist + margin  # [p, anchor, j]: a negative is active iff its distance < this
  # Batched binary search: for every (part, anchor) row, where each threshold falls.
  search = jax.vmap(lambda row, v: jnp.searchsorted(row, v, side="left", method="scan"))
  flat = neg_sorted.shape[0] * neg_sorted.shape[1]
  count = search(neg_sorted.reshape(flat, -1),
                 jax.lax.stop_gradient(threshold).reshape(flat, -1)).reshape(dist.shape)
  count = jnp.where(same[None], count, 0)  # only positives j are triplet middles
  hinge_sum = count.astype(jnp.float32) * threshold - jnp.take_along_axis(prefix, count, axis=-1)
  hinge_sum = jnp.where(same[None], hinge_sum, 0.0)

  part_sum = jnp.sum(hinge_sum, axis=(1, 2))  # [p]
  part_num = jnp.sum(count, axis=(1, 2)).astype(jnp.float32)  # [p]
  part_loss = jnp.where(part_num > 0, part_sum / (part_num + _EPS), 0.0)
  loss = jnp.mean(part_loss)

  # Hardest triplet per anchor: farthest positive vs nearest negative.
  hardest_pos = jnp.max(jnp.where(same[None], dist, 0.0), axis=-1)  # [p, n]
  hard = jax.nn.relu(hardest_pos - neg_sorted[..., 0] + margin)  # 0 when no negative exists
  info = {
      "loss": loss,
      "hard_loss": jnp.mean(jnp.max(hard, axis=-1)),
      "loss_num": jnp.mean(part_num),
      "mean_dist": jnp.mean(dist),
  }
  return loss, jax.tree.map(jax.lax.stop_gradient, info)


def cross_entropy_loss(logits: jax.Array, labels: jax.Array, scale: float,
                       label_smooth: float) -> Tuple[jax.Array, Dict[str, jax.Array]]:
  """Label-smoothed softmax CE on scaled cosine logits, per part.

  Args:
    logits: [n, K, p] cosine logits from the BN-neck.
    labels: [n] integer class indices in [0, K).
    scale: logits are multiplied by this before the softmax (16 in every config).
    label_smooth: eps spread uniformly over all K classes (PyTorch `label_smoothing`);
      0 disables smoothing.

  Returns:
    (loss, info): loss = mean over parts of the per-part mean over n; info has `loss`
    and `accuracy` (mean over n and p of argmax_k logits == label).
  """
  if logits.ndim != 3:
    raise ValueError(f"cross_entropy_loss: logits must be [n, K, p], got shape {logits.shape}")
  if labels.shape != logits.shape[:1]:
    raise ValueError(f"cross_entropy_loss: labels must be [n]={logits.shape[:1]}, got {labels.shape}")
  logits = logits.astype(jnp.float32)
  logp = jax.nn.log_softmax(scale * logits, axis=1)  # [n, K, p]
  target = jnp.take_along_axis(logp, labels[:, None, None].astype(jnp.int32), axis=1)[:, 0]  # [n, p]
  per_sample = -(1.0 - label_smooth) * target - label_smooth * jnp.mean(logp, axis=1)
  loss = jnp.mean(jnp.mean(per_sample, axis=0))
  accuracy = jnp.mean((jnp.argmax(logits, axis=1) == labels[:, None]).astype(jnp.float32))
  info = {"loss": loss, "accuracy": accuracy}
  return loss, jax.tree.map(jax.lax.stop_gradient, info)


def compute_losses(outputs: Mapping[str, jax.Array], labels: jax.Array,
                   loss_cfg: Any) -> Tuple[jax.Array, Dict[str, jax.Array]]:
  """The weighted training objective and its logged scalars.

  Args:
    outputs: the model's dict: `embeddings` [n, c, p], and `logits` [n, K, p] with a BN-neck.
    labels: [n] integer labels of the global batch.
    loss_cfg: `config.loss` (triplet_weight, margin, ce_weight, ce_scale, label_smooth).

  Returns:
    (total, metrics): total = triplet_weight * triplet + ce_weight * CE, with the CE term
    only when ce_weight > 0 and the model returned logits. metrics (float32 scalars):
    `triplet/{loss,hard_loss,loss_num,mean_dist}`, `softmax/{loss,accuracy}` (with CE)
    and `loss` (the total).
  """
  if "embeddings" not in outputs:
    raise KeyError(f"compute_losses: outputs need 'embeddings'; got keys {sorted(outputs)}")
  triplet, tri_info = triplet_loss(outputs["embeddings"], labels, loss_cfg.margin)
  total = loss_cfg.triplet_weight * triplet
  metrics = {f"triplet/{k}": v for k, v in tri_info.items()}
  ce_weight = loss_cfg.ce_weight
  if ce_weight > 0:
    if "logits" not in outputs:
      raise KeyError("compute_losses: loss.ce_weight > 0 but the model returned no 'logits' "
                     "(was it built with bnneck=True?)")
    ce, ce_info = cross_entropy_loss(outputs["logits"], labels, loss_cfg.ce_scale,
                                     loss_cfg.label_smooth)
    total = total + ce_weight * ce
    metrics.update({f"softmax/{k}": v for k, v in ce_info.items()})
  metrics["loss"] = jax.lax.stop_gradient(total)
  metrics = {k: jnp.asarray(v, jnp.float32) for k, v in metrics.items()}
  return total.astype(jnp.float32), metrics
