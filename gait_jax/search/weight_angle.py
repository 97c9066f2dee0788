"""The angle fitness (`search.fitness_metric=angle`): how far the supernet's training turned a
path's weights from where they started.

ABS (Hu et al., "Angle-based Search Space Shrinking for Neural Architecture Search", ECCV 2020)
found that in a weight-sharing supernet the angle between a child network's weight vector at
initialisation and after training ranks child networks more stably than their accuracy with the
shared weights: it needs no held-out data and no BN statistics, and no probe quantises it. The
larger the angle, the better the path (ABS's rule). Measured on the ranking study
(docs/results.md), it ordered paths alike on supernets of other seeds and samplers (τ 0.67-0.82
between them) but not as their stand-alone accuracy (τ -0.05 to 0.12): an option, off by
default.

A path's vector is every kernel it uses, concatenated: its candidates' and the shared layers'
convolutions and the head's `fc_bin`. BatchNorm's scale and bias and GeM's p are left out: a
kernel followed by BN acts through its direction only, which is what the angle measures.

The start is the supernet's seeded initialisation, drawn again from its own config.json by the
trainer's own initialiser (same seed, same program); a supernet that started from other
weights (train.init_from) has no such start and is refused.
"""
from __future__ import annotations

from typing import Any

import jax
import numpy as np

from gait_jax import config as config_lib
from gait_jax.common import parallel
from gait_jax.models import space
from gait_jax.training import optim
from gait_jax.training import setup

WEIGHT_NAMES = ("kernel", "fc_bin")


def initial_params(source: str) -> Any:
  """The params the supernet at `source` started its training from (host arrays)."""
  saved = config_lib.saved_config(source)
  if config_lib.model_path(saved) is not None:
    raise ValueError(f"search.fitness_metric=angle: {source} is a fixed network "
                     f"(model.path={saved.model.path}), not a supernet")
  if saved.train.init_from:
    raise ValueError(f"search.fitness_metric=angle: the supernet {source} started from "
                     f"train.init_from={saved.train.init_from}, not from its seeded "
                     "initialisation, so its starting weights are unknown")
  net = setup.build_network(saved)
  optimizer = optim.SGD(saved.optim, saved.train.total_steps)
  fresh = setup.fresh_state(saved, net, optimizer, parallel.make_mesh())
  return jax.device_get(fresh.create().params)


class PathAngle:
  """`degrees(path)`: the angle between the path's initial and trained weight vectors.

  Each kernel's dot product and squared norms are summed once, in float64 (a float32 sum of
  millions of terms would move the angle by more than paths differ); a path's angle is then a
  sum over the kernels it uses."""

  def __init__(self, initial, trained, model_name: str, where: str):
    self.model_name = model_name
    flat0, tree0 = jax.tree_util.tree_flatten_with_path(initial)
    flat1, tree1 = jax.tree_util.tree_flatten_with_path(trained)
    if tree0 != tree1:
      raise ValueError(f"search.fitness_metric=angle: the weights of {where} are not shaped "
                       "like the network its config.json describes")

    def terms(key_path, w0, w1) -> np.ndarray:
      if str(getattr(key_path[-1], "key", key_path[-1])) not in WEIGHT_NAMES:
        return np.zeros(3)
      w0 = np.asarray(w0, np.float64).ravel()
      w1 = np.asarray(w1, np.float64).ravel()
      if not np.isfinite(w1).all():
        raise ValueError(f"search.fitness_metric=angle: {where} "
                         f"{jax.tree_util.keystr(key_path)} holds non-finite weights")
      return np.array([w0 @ w1, w0 @ w0, w1 @ w1])

    self.terms = jax.tree_util.tree_unflatten(
        tree0, [terms(k, a, b) for (k, a), (_, b) in zip(flat0, flat1)])

  def degrees(self, path) -> float:
    used = jax.tree.leaves(space.path_mask(self.terms, path, self.model_name))
    dot, norm0, norm1 = sum(t for t, u in zip(jax.tree.leaves(self.terms), used) if u)
    if norm0 <= 0 or norm1 <= 0:
      raise ValueError(f"search.fitness_metric=angle: path {config_lib.format_path(path)} "
                       "has all-zero kernels (no direction to measure)")
    cosine = np.clip(dot / np.sqrt(norm0 * norm1), -1.0, 1.0)
    return float(np.degrees(np.arccos(cosine)))
