"""Architecture paths: sampling, which parameters a path uses, positions → layer names.

A path is one candidate index (0..5) per searchable layer, in the order of
`layer_names(model_name)` (spec §1.2).
"""
from __future__ import annotations

import re
from typing import Any, Dict, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from gait_jax.models.space import LAYER_NAMES, canonical_model_name

_LAYER_RE = re.compile(r"^conv3d_\d\d$")
_CAND_RE = re.compile(r"^cand(\d)$")


def layer_names(model_name: str) -> Tuple[str, ...]:
  """Names of the searchable layers of a model, in path order."""
  return LAYER_NAMES[canonical_model_name(model_name)]


def sample_path(choice_max_num: Sequence[int], seed: int, step: int) -> Tuple[int, ...]:
  """A uniformly random path, a pure function of (seed, step).

  Position i takes a value in [0, choice_max_num[i]); positions with one choice give 0.
  Uses a NumPy generator seeded by (seed, step) so a resumed run repeats the sequence.
  (Not CPython's `random.seed(step)` stream of the reference: same distribution, other draws.)
  """
  if seed < 0 or step < 0:
    raise ValueError(f"sample_path: seed and step must be >= 0, got seed={seed}, step={step}")
  rng = np.random.default_rng([int(seed), int(step)])
  return tuple(int(rng.integers(0, int(m))) for m in choice_max_num)


def _positions_for(path_len: int) -> Dict[str, int]:
  for names in LAYER_NAMES.values():
    if len(names) == path_len:
      return {name: i for i, name in enumerate(names)}
  raise ValueError(f"path of length {path_len}: expected "
                   f"{sorted({len(v) for v in LAYER_NAMES.values()})} entries")


def _key_name(k) -> str:
  for attr in ("key", "name", "idx"):
    if hasattr(k, attr):
      return str(getattr(k, attr))
  return str(k)


def path_mask(tree: Any, path: Any) -> Any:
  """A tree like `tree` with a bool per leaf: does `path` use this leaf?

  Leaves under `conv3d_XY/candJ/` are used iff path[pos(XY)] == J; every other leaf (stem
  downsample, LTA, heads, …) is always used. Works on params, batch_stats or any tree that
  contains them (e.g. {"params": ..., "batch_stats": ...}). A static path (tuple/list/NumPy)
  gives Python bools; a jax array (e.g. traced) gives jnp bool scalars.
  """
  traced = isinstance(path, jax.Array)
  if not traced:
    path = tuple(int(v) for v in np.asarray(path).reshape(-1))
  positions = _positions_for(len(path))

  def leaf_mask(key_path, _):
    names = [_key_name(k) for k in key_path]
    for i, name in enumerate(names[:-1]):
      if _LAYER_RE.match(name):
        m = _CAND_RE.match(names[i + 1])
        if m is None:
          break
        if name not in positions:
          raise ValueError(f"path_mask: layer {name} has no position in a path of "
                           f"length {len(path)}")
        pos, cand = positions[name], int(m.group(1))
        if traced:
          return jnp.asarray(path[pos] == cand)
        return path[pos] == cand
    return jnp.asarray(True) if traced else True

  return jax.tree_util.tree_map_with_path(leaf_mask, tree)
