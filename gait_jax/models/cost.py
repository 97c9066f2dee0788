"""Analytic MACs / FLOPs / parameter counts of a SPOSGait path.

Definitions (also in the README):
  macs_conv  the convolutions' multiply-accumulates alone (candidates, downsample, LTA): the
          figure the reference publishes per model.
  macs    multiply-accumulates for one sequence of `frames` frames at height x width:
          every 3-D convolution on the path (output elements x in-channels x kernel volume:
          candidate convs, the 1x1x1 downsample convs, LTA), SeparateFCs (p x in x out) and,
          with a BN-neck, its cosine classifier (p x in x class_num). Pooling, GeM, BatchNorm,
          activations and residual adds do no multiply-accumulate and count 0, as in thop.
  flops   2 x macs (one multiply + one add each). Elementwise work (BN, activations,
          pooling, GeM, residual adds; ~0.1 % of the total) is not included.
  params_backbone  conv weights + BN affine (scale, bias) of the chosen candidates, the
          downsample branches and LTA. BN running statistics are not parameters.
  params_path      params_backbone + GeM p + SeparateFCs.
  params_total     params_path + BN-neck (classifier + BatchNorm1d affine) when configured.
  params_supernet  the whole model as the config builds it: all 6 candidates of every
          searchable layer, downsample branches, LTA, heads and the BN-neck when configured
          (the reference's `params_count(model)`).

Time axis: clips shorter than 3 frames are tiled to 3 (1 frame) or 4 (2 frames) frames, as
the reference forward does; LTA keeps floor(t / 3) frames; max-pools halve height and width
(floor).

Everything is table lookups once the per-layer tables of a (model config, frames, size) are
cached, so `count` costs microseconds (search calls it for every candidate).
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Dict, List, Sequence, Tuple

from gait_jax.models import space
from gait_jax.models.sposgait import INPUT_HW
# The candidate ops' conv kernels: one table for the network and this counter.
from gait_jax.models.candidates import CANDIDATE_KERNELS, NUM_CANDIDATES

@dataclasses.dataclass(frozen=True)
class Conv:
  """One fixed (non-searchable) convolution: a downsample branch or LTA."""
  name: str
  cin: int  # channel index into (1,) + channels (0 = the 1-channel silhouette)
  cout: int
  grid: int  # index into the feature-map grids of `_grids`
  kernel: Tuple[int, int, int]
  bn: bool


@dataclasses.dataclass(frozen=True)
class Searchable:
  name: str
  cin: int
  cout: int
  grid: int


@functools.lru_cache(maxsize=None)
def _plan(name: str):
  """(searchable layers, fixed convs, names in forward order, grid events) of a model, walked
  from `space.STAGES` as the network runs: each stage's layers, its downsample branch, then the
  optional max-pool ("pool": h, w halve) and LTA ("lta": t / 3, counted at its output grid)."""
  searchable, fixed, order, events = [], [], [], []
  ch = grid = 0
  for stage in space.STAGES[name]:
    stage_in = ch
    for layer, width, _ in stage.layers:
      searchable.append(Searchable(layer, ch, width + 1, grid))
      order.append(layer)
      ch = width + 1
    fixed.append(Conv(f"downsample{stage.index}", stage_in, ch, grid, (1, 1, 1), True))
    order.append(f"downsample{stage.index}")
    if stage.pool:
      events.append("pool")
      grid += 1
    if stage.lta_after:
      events.append("lta")
      grid += 1
      fixed.append(Conv("LTA", ch, ch, grid, (3, 1, 1), False))
      order.append("LTA")
  return tuple(searchable), tuple(fixed), tuple(order), tuple(events)


def tiled_frames(frames: int) -> int:
  """Frames the backbone sees: the reference tiles 1 -> 3 and 2 -> 4 frames."""
  if frames < 1:
    raise ValueError(f"flops: frames must be >= 1, got {frames}")
  return {1: 3, 2: 4}.get(frames, frames)


def _grids(events, frames: int, height: int, width: int) -> Tuple[Tuple[int, int, int], ...]:
  """(t, h, w) of the feature maps: the input, then after each pool (floor) / LTA (t // 3)."""
  grids = [(tiled_frames(frames), height, width)]
  for event in events:
    t, h, w = grids[-1]
    grids.append((t, h // 2, w // 2) if event == "pool" else (t // 3, h, w))
  return tuple(grids)


def _volume(k: Sequence[int]) -> int:
  return k[0] * k[1] * k[2]


def candidate_cost(index: int, cin: int, cout: int, positions: int) -> Tuple[int, int]:
  """(MACs, params) of candidate `index` mapping cin -> cout at `positions` output voxels.

  'Same' padding and stride 1 keep the grid, so each conv has `positions * cout` outputs.
  Every conv has a BN with a learnable scale and bias (2 * cout parameters).
  """
  macs = params = 0
  c_in = cin
  for kernel in CANDIDATE_KERNELS[index]:
    macs += positions * cout * c_in * _volume(kernel)
    params += cout * c_in * _volume(kernel) + 2 * cout
    c_in = cout
  return macs, params


@dataclasses.dataclass(frozen=True)
class _Tables:
  """Per-model-config costs; `count` only indexes and sums these."""
  layer_names: Tuple[str, ...]
  searchable: Tuple[Tuple[Tuple[int, int], ...], ...]  # [position][candidate] -> (macs, params)
  fixed: Tuple[Tuple[str, int, int], ...]  # (name, macs, params)
  head_macs: int
  head_params: int  # GeM p + SeparateFCs
  neck_macs: int
  neck_params: int  # 0 without a BN-neck
  supernet_params: int
  grids: Tuple[Tuple[int, int, int], ...]


def _model_key(model_cfg) -> Tuple[Any, ...]:
  """A hashable summary of the fields that determine the counts (for the cache)."""
  try:
    return (model_cfg.name, tuple(int(c) for c in model_cfg.channels),
            tuple(int(b) for b in model_cfg.bins), model_cfg.out_channels,
            model_cfg.class_num, tuple(int(m) for m in model_cfg.choice_max_num))
  except AttributeError as e:
    raise ValueError(f"flops: model config lacks a key ({e}); expected config.model with "
                     "name, channels, bins, out_channels, class_num, choice_max_num") from None


@functools.lru_cache(maxsize=256)
def _tables(key: Tuple[Any, ...], bnneck: bool, frames: int, height: int, width: int) -> _Tables:
  name, channels, bins, out_channels, class_num, _ = key
  if name not in space.STAGES:
    raise ValueError(f"flops: model.name={name!r} is not one of {sorted(space.STAGES)}")
  if len(channels) != space.NUM_CHANNELS[name]:
    raise ValueError(f"flops: model.channels={channels} must have "
                     f"{space.NUM_CHANNELS[name]} entries for {name}")
  searchable_plan, fixed_plan, _, events = _plan(name)
  width_of = (1,) + channels
  grids = _grids(events, frames, height, width)
  volumes = [_volume(g) for g in grids]

  searchable = tuple(
      tuple(candidate_cost(i, width_of[layer.cin], width_of[layer.cout], volumes[layer.grid])
            for i in range(NUM_CANDIDATES))
      for layer in searchable_plan)
  fixed = []
  for conv in fixed_plan:
    cin, cout = width_of[conv.cin], width_of[conv.cout]
    weights = cin * cout * _volume(conv.kernel)
    fixed.append((conv.name, volumes[conv.grid] * weights, weights + (2 * cout if conv.bn else 0)))

  parts = sum(bins)
  feat = channels[-1]
  head_params = 1 + parts * feat * out_channels  # GeM p + SeparateFCs
  head_macs = parts * feat * out_channels
  neck_macs = neck_params = 0
  if bnneck:
    neck_macs = parts * out_channels * class_num
    neck_params = parts * out_channels * class_num + 2 * out_channels * parts  # fc_bin + BN1d affine
  supernet = (sum(p for layer in searchable for _, p in layer) + sum(p for _, _, p in fixed)
              + head_params + neck_params)
  return _Tables(tuple(l.name for l in searchable_plan), searchable, tuple(fixed), head_macs,
                 head_params, neck_macs, neck_params, supernet, grids)


def _checked_path(model_cfg, path) -> Tuple[int, ...]:
  if isinstance(path, str):
    path = space.parse_path(path)
  if path is None:
    raise ValueError("flops: a path is required (the supernet has no single path)")
  return space.check_path(tuple(int(v) for v in path), model_cfg.choice_max_num, key="path")


def count(model_cfg, path, frames: int, *, bnneck: bool, height: int = INPUT_HW[0],
          width: int = INPUT_HW[1]) -> Dict[str, Any]:
  """MACs, FLOPs and parameter counts of `path`; the keys of `flops.json` (module docstring).

  Args:
    model_cfg: `config.model` (name, channels, bins, out_channels, class_num, choice_max_num).
    path: one candidate index per searchable layer (tuple, list or "0,0,4,...").
    frames: frames of the one input sequence (1 and 2 are tiled as the reference does).
    bnneck: whether the model has the BN-neck (`config.use_bnneck(config)`).
    height, width: silhouette size (64 x 44 in every reference config).
  """
  path = _checked_path(model_cfg, path)
  t = _tables(_model_key(model_cfg), bool(bnneck), int(frames), int(height), int(width))
  conv_macs = sum(t.searchable[i][c][0] for i, c in enumerate(path)) + sum(m for _, m, _ in t.fixed)
  backbone = sum(t.searchable[i][c][1] for i, c in enumerate(path)) + sum(p for _, _, p in t.fixed)
  macs = conv_macs + t.head_macs + t.neck_macs
  params_path = backbone + t.head_params
  return {
      "path": list(path),
      "macs_conv": int(conv_macs),
      "macs": int(macs),
      "flops": int(2 * macs),
      "params_path": int(params_path),
      "params_backbone": int(backbone),
      "params_total": int(params_path + t.neck_params),
      "params_supernet": int(t.supernet_params),
  }


def breakdown(model_cfg, path, frames: int, *, bnneck: bool, height: int = INPUT_HW[0],
              width: int = INPUT_HW[1]) -> List[Dict[str, Any]]:
  """Per-op rows `{name, op, shape (t, h, w, c), macs, params}` in forward order, for tables.

  The rows' macs/params sum to `count(...)["macs"]` / `["params_total"]`.
  """
  path = _checked_path(model_cfg, path)
  key = _model_key(model_cfg)
  t = _tables(key, bool(bnneck), int(frames), int(height), int(width))
  searchable_plan, fixed_plan, forward_order, _ = _plan(key[0])
  width_of = (1,) + key[1]
  rows = []
  for i, layer in enumerate(searchable_plan):
    macs, params = t.searchable[i][path[i]]
    kernels = "+".join("x".join(map(str, k)) for k in CANDIDATE_KERNELS[path[i]])
    rows.append(dict(name=layer.name, op=f"cand {path[i]} ({kernels})",
                     shape=t.grids[layer.grid] + (width_of[layer.cout],), macs=macs, params=params))
  for conv, (name, macs, params) in zip(fixed_plan, t.fixed):
    rows.append(dict(name=name, op="conv " + "x".join(map(str, conv.kernel)),
                     shape=t.grids[conv.grid] + (width_of[conv.cout],), macs=macs, params=params))
  rows.sort(key=lambda r: forward_order.index(r["name"]))
  parts, out = sum(key[2]), key[3]
  rows.append(dict(name="HPP+Head0", op=f"GeM + SeparateFCs {parts}x{key[1][-1]}x{out}",
                   shape=(1, 1, parts, out), macs=t.head_macs, params=t.head_params))
  if bnneck:
    rows.append(dict(name="BNNecks", op=f"BN1d + cosine {parts}x{out}x{key[4]}",
                     shape=(1, 1, parts, key[4]), macs=t.neck_macs, params=t.neck_params))
  return rows
