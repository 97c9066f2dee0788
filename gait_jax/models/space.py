"""The SPOSGait search space: which layers are searchable, in path order, and how many
candidates each may take; and the checks every path must pass before it is used.

The network's stages are described here once (STAGES); layer names, path length, channel
count and the FLOPs plan are derived from that table. A path is one candidate index per
searchable layer, in the order of `LAYER_NAMES`. Every searchable layer of the network owns
all six candidate ops, but the reference restricts some positions to candidate 0 (the first
layers of large/medium, the first layer of small): supernet training never updates the other
candidates there, so their weights stay at initialisation. A path using one of them would run
untrained weights without any visible sign; `check_path` refuses it.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Dict, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np

NUM_CANDIDATES = 6


@dataclasses.dataclass(frozen=True)
class Stage:
  """One residual stage: `out = layers(x) + downsample<index>(x)`, then optionally ReLU,
  a (1, 2, 2) max-pool, and LTA (temporal aggregation by 3).

  `layers` = ((name, channel index, flg_relu), ...): the searchable layers in path order; a
  layer's output width is `model.channels[channel index]`.
  """
  index: int
  layers: Tuple[Tuple[str, int, bool], ...]
  relu: bool = False
  pool: bool = False
  lta_after: bool = False


# The three reference networks, stage by stage. Everything else that knows the architecture
# (layer names, path length, channel count, FLOPs, PyTorch key names) is derived from this.
STAGES: Dict[str, Tuple[Stage, ...]] = {
    "sposgait_large": (
        Stage(0, (("conv3d_00", 0, True), ("conv3d_01", 0, False)), relu=True, pool=True),
        Stage(1, (("conv3d_10", 1, True), ("conv3d_11", 1, False)), relu=True, lta_after=True),
        Stage(2, (("conv3d_20", 2, True), ("conv3d_21", 2, False)), pool=True),
        Stage(3, (("conv3d_30", 3, True), ("conv3d_31", 3, False))),
        Stage(4, (("conv3d_40", 3, True), ("conv3d_41", 3, False))),
    ),
    "sposgait_medium": (
        Stage(0, (("conv3d_00", 0, True), ("conv3d_01", 0, False)), relu=True, pool=True),
        Stage(1, (("conv3d_10", 1, True), ("conv3d_11", 1, False)), relu=True, lta_after=True),
        Stage(2, (("conv3d_20", 2, True),), pool=True),
        Stage(3, (("conv3d_30", 3, True),)),
        Stage(4, (("conv3d_40", 3, True),)),
    ),
    "sposgait_small": (
        Stage(0, (("conv3d_00", 0, True),), relu=True, pool=True, lta_after=True),
        Stage(2, (("conv3d_20", 1, True),), pool=True),
        Stage(3, (("conv3d_30", 2, True),)),
        Stage(4, (("conv3d_40", 2, True),)),
    ),
}

# Searchable layers in path order.
LAYER_NAMES: Dict[str, Tuple[str, ...]] = {
    name: tuple(layer[0] for stage in stages for layer in stage.layers)
    for name, stages in STAGES.items()}

# How many widths `model.channels` holds.
NUM_CHANNELS: Dict[str, int] = {
    name: 1 + max(layer[1] for stage in stages for layer in stage.layers)
    for name, stages in STAGES.items()}

# The reference search space: how many candidates each path position may take.
CHOICE_MAX_NUM: Dict[str, Tuple[int, ...]] = {
    "sposgait_large": (1, 1, 6, 6, 6, 6, 6, 6, 6, 6),
    "sposgait_medium": (1, 1, 6, 6, 6, 6, 6),
    "sposgait_small": (1, 6, 6, 6),
}


def canonical_model_name(model_name: str) -> str:
  """'large' or 'sposgait_large' (any case) → 'sposgait_large'; clear error otherwise."""
  name = str(model_name).lower()
  if not name.startswith("sposgait_"):
    name = "sposgait_" + name
  if name not in LAYER_NAMES:
    raise ValueError(f"model.name={model_name!r}: expected one of {sorted(LAYER_NAMES)}")
  return name


def parse_path(value) -> Optional[Tuple[int, ...]]:
  """`model.path` as a tuple of ints, or None for the supernet.

  Accepts "0,0,4,5", "[0, 0, 4, 5]", a tuple/list of ints, or "" / None.
  """
  if value is None:
    return None
  if isinstance(value, str):
    text = value.strip().strip("[]()").strip()
    if not text:
      return None
    try:
      return tuple(int(v) for v in text.replace(" ", "").split(",") if v != "")
    except ValueError:
      raise ValueError(
          f"model.path={value!r}: expected comma-separated integers such as "
          "'0,0,4,5,2,0,4,3,4,3'") from None
  return tuple(int(v) for v in value)


def format_path(path: Sequence[int]) -> str:
  return ",".join(str(int(v)) for v in path)


def check_space(model_name: str, choice_max_num: Sequence[int],
                key: str = "model.choice_max_num") -> Tuple[int, ...]:
  """`choice_max_num` as a tuple, after checking it fits the model: one entry per searchable
  layer, each between 1 and the six candidates every layer owns."""
  names = LAYER_NAMES[canonical_model_name(model_name)]
  try:
    space = tuple(int(m) for m in choice_max_num)
  except (TypeError, ValueError):
    raise ValueError(f"{key}={choice_max_num!r}: expected {len(names)} integers") from None
  if len(space) != len(names):
    raise ValueError(f"{key}={format_path(space)}: {model_name} has {len(names)} searchable "
                     f"layers ({', '.join(names)}), so {len(names)} entries are expected")
  for i, m in enumerate(space):
    if not 1 <= m <= NUM_CANDIDATES:
      raise ValueError(f"{key}: position {i} ({names[i]}) is {m}; each layer has between 1 "
                       f"and {NUM_CANDIDATES} candidates")
  return space


def check_path(path: Sequence[int], choice_max_num: Sequence[int], key: str = "model.path",
               model_name: Optional[str] = None) -> Tuple[int, ...]:
  """`path` as a tuple of ints, or a ValueError naming `key`, the position, the value and the
  allowed range when it leaves the search space `choice_max_num`."""
  path = tuple(int(v) for v in path)
  space = tuple(int(m) for m in choice_max_num)
  names = LAYER_NAMES[canonical_model_name(model_name)] if model_name else None
  if len(path) != len(space):
    raise ValueError(f"{key}={format_path(path)}: expected {len(space)} entries "
                     f"(one per searchable layer), got {len(path)}")
  for i, (v, m) in enumerate(zip(path, space)):
    if not 0 <= v < m:
      where = f"position {i}" + (f" ({names[i]})" if names else "")
      allowed = "only 0" if m == 1 else f"0..{m - 1}"
      raise ValueError(f"{key}={format_path(path)}: {where} is {v}; the search space allows "
                       f"{allowed} there (choice_max_num={format_path(space)})")
  return path


def layer_names(model_name: str) -> Tuple[str, ...]:
  """Names of the searchable layers of a model, in path order."""
  return LAYER_NAMES[canonical_model_name(model_name)]


def sample_path(choice_max_num: Sequence[int], seed: int, step: int) -> Tuple[int, ...]:
  """A uniformly random path, a pure function of (seed, step).

  Position i takes a value in [0, choice_max_num[i]); positions with one choice give 0.
  Uses a NumPy generator seeded by (seed, step) so a resumed run repeats the sequence
  (the reference seeds CPython's `random` with the step: same distribution, other draws).
  """
  if seed < 0 or step < 0:
    raise ValueError(f"sample_path: seed and step must be >= 0, got seed={seed}, step={step}")
  rng = np.random.default_rng([int(seed), int(step)])
  return tuple(int(rng.integers(0, int(m))) for m in choice_max_num)


_FAIR_TAG = 0xFA1B  # separates the fair sampler's streams from sample_path's


def fair_path(choice_max_num: Sequence[int], seed: int, step: int) -> Tuple[int, ...]:
  """Strict fairness (FairNAS, Chu et al. 2021): steps come in groups of m = lcm of the choice
  counts; within a group each layer walks through m/m_i random permutations of its m_i
  candidates, so every candidate of every layer is trained exactly m/m_i times (once with
  equal counts) per group. A pure function of (seed, step), like `sample_path`: a resumed run
  and every process draw the same paths."""
  if seed < 0 or step < 0:
    raise ValueError(f"fair_path: seed and step must be >= 0, got seed={seed}, step={step}")
  counts = [int(m) for m in choice_max_num]
  group = math.lcm(*counts)
  g, r = divmod(int(step), group)
  path = []
  for i, m in enumerate(counts):
    rng = np.random.default_rng([int(seed), g, _FAIR_TAG, i])
    order = np.concatenate([rng.permutation(m) for _ in range(group // m)])
    path.append(int(order[r]))
  return tuple(path)


PATH_SAMPLERS = {"uniform": sample_path, "fair": fair_path}


def _key_name(k) -> str:
  for attr in ("key", "name", "idx"):
    if hasattr(k, attr):
      return str(getattr(k, attr))
  return str(k)


def path_mask(tree: Any, path: Any, model_name: str) -> Any:
  """A tree like `tree` with a bool per leaf: does `path` use this leaf?

  Leaves under `<layer>/cand<J>/`, `<layer>` the searchable layer at path position i, are used
  iff path[i] == J; every other leaf (downsample branches, LTA, heads, ...) always is. Works on
  params, batch_stats or any tree that contains them. A static path (tuple/list/NumPy) gives
  Python bools; a jax array (e.g. traced) gives jnp bool scalars.
  """
  positions = {name: i for i, name in enumerate(layer_names(model_name))}
  traced = isinstance(path, jax.Array)
  if not traced:
    path = tuple(int(v) for v in np.asarray(path).reshape(-1))
  if len(path) != len(positions):
    raise ValueError(f"path_mask: a {model_name} path has {len(positions)} entries, got "
                     f"{len(path)}")

  def leaf_mask(key_path, _):
    names = [_key_name(k) for k in key_path]
    for layer, cand in zip(names[:-1], names[1:]):
      if layer in positions and cand.startswith("cand"):
        used = path[positions[layer]] == int(cand[len("cand"):])
        return jnp.asarray(used) if traced else used
    return jnp.asarray(True) if traced else True

  return jax.tree_util.tree_map_with_path(leaf_mask, tree)
