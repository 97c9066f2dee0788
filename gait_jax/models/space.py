"""The SPOSGait search space: which layers are searchable, in path order, and how many
candidates each may take; and the checks every path must pass before it is used.

A path is one candidate index per searchable layer. Every searchable layer of the network owns
all six candidate ops, but the reference restricts some positions to candidate 0 (the first
layers of large/medium, the first layer of small): supernet training never updates the other
candidates there, so their weights stay at initialisation. A path using one of them would run
untrained weights without any visible sign; `check_path` refuses it.
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

NUM_CANDIDATES = 6

# Searchable layers in path order. Sorted order equals path order.
LAYER_NAMES: Dict[str, Tuple[str, ...]] = {
    "sposgait_large": ("conv3d_00", "conv3d_01", "conv3d_10", "conv3d_11", "conv3d_20",
                       "conv3d_21", "conv3d_30", "conv3d_31", "conv3d_40", "conv3d_41"),
    "sposgait_medium": ("conv3d_00", "conv3d_01", "conv3d_10", "conv3d_11", "conv3d_20",
                        "conv3d_30", "conv3d_40"),
    "sposgait_small": ("conv3d_00", "conv3d_20", "conv3d_30", "conv3d_40"),
}

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
