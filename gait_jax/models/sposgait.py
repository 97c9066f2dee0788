"""SPOSGait small / medium / large supernets and `build_model`.

Every stage is `out = blocks(x) + downsampleK(x)`, followed by ReLU only in stages 0 and
1 and by a (1,2,2) max-pool after stages 0 and 2; LTA follows stage 1 (large, medium) or
stage 0 (small). Then temporal max, GeM pyramid pooling, SeparateFCs (the embedding) and,
for two-loss configs, the BN-neck (the logits).
"""
from __future__ import annotations

from typing import Any, Optional, Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gait_jax.models import first_stage
from gait_jax.models import space as space_lib
from gait_jax.models.space import NUM_CHANNELS, STAGES
from gait_jax.models.candidates import ChoiceLayer, NUM_CANDIDATES
from gait_jax.models.frames import (apply_mask, frame_mask, masked_temporal_max, segment_mask,
                                    segment_temporal_max, tile_short_sequences)
from gait_jax.models.batch_norm import at_least_float32
from gait_jax.models.layers import (LTA, ConvBN, GeMHPP, SeparateBNNecks, SeparateFCs,
                                    max_pool_hw, separate_fc_bound)

INPUT_HW = (64, 44)  # every network input: silhouettes aligned to 64x64, cut to 44 wide


def _is_static(path) -> bool:
  return isinstance(path, (tuple, list, np.ndarray))


class SPOSGait(nn.Module):
  """The SPOSGait network. See `build_model` for the meaning of the fields."""
  model_name: str
  channels: Tuple[int, ...]
  bins: Tuple[int, ...]
  out_channels: int
  class_num: int
  bnneck: bool
  fixed_path: Optional[Tuple[int, ...]] = None
  space: Optional[Tuple[int, ...]] = None
  dtype: Any = jnp.float32
  remat: bool = False

  @nn.compact
  def __call__(self, sils, path=None, lengths=None, *, train: bool = False, segments=None,
               num_segments: int = 0):
    """`sils` float `[n, T, h, w]`; `path` tuple of ints (static) or int32 `[L]` (traced);
    `lengths` int32 `[n]` valid frames per row, or None (all T valid).

    Packed rows (inference): `segments` int32 `[n, T]` numbers the sequences of each row
    0.. (-1 in the gaps), each starting at a multiple of 3 frames and followed by a gap that
    keeps it apart through the LTA (`evaluation.packing` lays them out, short clips already
    tiled); the embeddings are then `[n, num_segments, c, p]`, one per segment id."""
    names = space_lib.LAYER_NAMES[self.model_name]
    path = self._resolve_path(path, len(names))
    if sils.ndim != 4:
      raise ValueError(f"sils: expected [n, T, h, w], got shape {sils.shape}")
    x = sils.astype(self.dtype)[..., None]

    if segments is not None:
      if lengths is not None or train or num_segments < 1:
        raise ValueError("segments: packed rows are for inference, without lengths, with "
                         f"num_segments >= 1 (got {num_segments})")
      if segments.shape != sils.shape[:2]:
        raise ValueError(f"segments: expected shape {sils.shape[:2]}, got {segments.shape}")
      segments = jnp.asarray(segments, jnp.int32)
      mask = segment_mask(segments)
      x = apply_mask(x, mask)
    else:
      x, lengths, mask = _padded_rows(x, lengths)

    pos = 0
    for stage in STAGES[self.model_name]:
      x = self._stage(stage, x, path[pos:pos + len(stage.layers)], pos, mask, train)
      pos += len(stage.layers)
      out_c = self.channels[stage.layers[-1][1]]
      if stage.lta_after and segments is not None:
        x, segments, mask = LTA(out_c, self.dtype, name="LTA")(x, segments=segments)
      elif stage.lta_after:
        x, lengths, mask = LTA(out_c, self.dtype, name="LTA")(x, lengths)

    if segments is not None:
      x = segment_temporal_max(x, segments, num_segments)  # [n, S, h, w, c]
      x = x.reshape((-1,) + x.shape[2:])
    else:
      x = masked_temporal_max(x, mask)  # [n, h, w, c]
    feat = GeMHPP(tuple(self.bins), name="HPP")(x)  # f32 [n, c, p]
    parts = int(sum(self.bins))
    embed = SeparateFCs(parts, self.out_channels, self.dtype, name="Head0")(feat)
    embed = at_least_float32(embed)
    out = {"embeddings": embed}
    if self.bnneck:
      _, logits = SeparateBNNecks(parts, self.class_num, self.dtype, name="BNNecks")(
          embed, train=train)
      out["logits"] = logits
    if segments is not None:
      out = {k: v.reshape((sils.shape[0], num_segments) + v.shape[1:]) for k, v in out.items()}
    return out

  def _stage(self, stage, x, path, pos: int, mask, train: bool):
    """Stage `stage`'s layers (`path`: their candidates; `pos`: the first one's place in the
    whole path), its downsample branch, ReLU and pooling."""
    # The candidates known at trace time: a static path's, a fixed-path model's own, or where
    # the search space leaves the layers one candidate (a traced path can only pick it).
    width = len(stage.layers)
    ops = (tuple(self.fixed_path[pos:pos + width]) if self.fixed_path is not None
           else path if _is_static(path)
           else (0,) * width if self.space and max(self.space[pos:pos + width]) == 1
           else None)
    if (ops is not None and not self.is_initializing()
        and first_stage.applies(stage, ops, x, train)):
      if train:
        return first_stage.apply_train(self, stage, ops[0], x, mask)
      return first_stage.apply(self.variables, stage, ops[0], x, mask)
    identity = x
    for k, (name, ch, flg_relu) in enumerate(stage.layers):
      choice = path[k] if ops is None else ops[k]
      choices = (tuple(range(NUM_CANDIDATES)) if self.fixed_path is None
                 else (self.fixed_path[pos + k],))
      layer = ChoiceLayer(self.channels[ch], flg_relu, choices, self.dtype, remat=self.remat,
                          name=name)
      x = layer(x, choice, mask, train=train)
    out_c = self.channels[stage.layers[-1][1]]
    x = x + ConvBN(out_c, self.dtype, name=f"downsample{stage.index}")(
        identity, mask, train=train)
    if stage.relu:
      x = nn.relu(x)
    return max_pool_hw(x) if stage.pool else x

  def check_runs(self, path) -> None:
    """A fixed-path model holds only its own candidates: any other concrete path would run
    as the fixed one (inside jit a traced path cannot be compared, so callers that trace it
    check first)."""
    concrete = tuple(int(v) for v in np.asarray(path).reshape(-1))
    if self.fixed_path is not None and concrete != tuple(self.fixed_path):
      raise ValueError(f"path {concrete} differs from the model's fixed_path {self.fixed_path}")

  def _resolve_path(self, path, length):
    """The path to run (checked against the search space where it entered the package)."""
    if path is None:
      if self.fixed_path is None:
        raise ValueError("SPOSGait: a path is required (the supernet never runs all paths)")
      return tuple(self.fixed_path)
    if _is_static(path):
      path = tuple(int(v) for v in np.asarray(path).reshape(-1))
      self.check_runs(path)
      return path
    if not isinstance(path, jax.core.Tracer):
      self.check_runs(path)
    path = jnp.asarray(path)
    if path.shape != (length,):
      raise ValueError(f"traced path: expected shape ({length},), got {path.shape}")
    return path.astype(jnp.int32)


def _padded_rows(x, lengths):
  """(x, lengths, mask) of padded rows `[n, T, h, w, 1]` with `lengths` valid frames each
  (None: all T valid, and no mask unless clips shorter than 3 frames need the reference's
  tiling); padded frames zeroed."""
  t = x.shape[1]
  if lengths is None and t >= 3:
    return x, None, None
  if lengths is None:
    lengths = jnp.full((x.shape[0],), t, jnp.int32)
  if not isinstance(lengths, jax.core.Tracer):  # concrete: check now, with a clear error
    concrete = np.asarray(lengths)
    if concrete.shape != (x.shape[0],) or concrete.min() < 1 or concrete.max() > t:
      raise ValueError(f"lengths {concrete.tolist()}: expected {x.shape[0]} values in "
                       f"1..{t} (the padded frame count of sils)")
  lengths = jnp.asarray(lengths, jnp.int32)
  if t < 4:  # room for the L=2 → 4 frames tiling
    x = jnp.pad(x, ((0, 0), (0, 4 - t), (0, 0), (0, 0), (0, 0)))
  x, lengths = tile_short_sequences(x, lengths)
  mask = frame_mask(lengths, x.shape[1])
  return apply_mask(x, mask), lengths, mask


def abstract_variables(model: SPOSGait, frames: int = 3, height: int = INPUT_HW[0],
                       width: int = INPUT_HW[1]):
  """ShapeDtypeStructs of the model's `params` and `batch_stats` (no compute, no compile)."""
  n_layers = len(space_lib.LAYER_NAMES[model.model_name])
  # Traced: creates every candidate of a supernet (a fixed-path model only has its own).
  path = jnp.asarray(model.fixed_path if model.fixed_path is not None else (0,) * n_layers,
                     jnp.int32)
  sils = jax.ShapeDtypeStruct((1, frames, height, width), jnp.float32)
  return jax.eval_shape(lambda s: model.init(jax.random.key(0), s, path), sils)


def init_variables(model: SPOSGait, seed: int, *, height: int = INPUT_HW[0],
                   width: int = INPUT_HW[1]):
  """Reference-initialised variables drawn on the host with NumPy.

  Same distributions as `model.init` (conv Xavier-uniform with fans in·k / out·k, BN
  weight N(1, 0.02), bias 0, running mean 0 / var 1, GeM p = 6.5, `fc_bin` Xavier-uniform
  with the 3-D fan rule) but no jitted random-number code: on XLA:CPU compiling the
  threefry calls of `model.init` takes tens of seconds for a tiny supernet.
  """
  shapes = abstract_variables(model, height=height, width=width)
  rng = np.random.default_rng(int(seed))

  def uniform(bound, shape):  # float32 draws: the BN-neck weight alone can be 320 M values
    return (rng.random(shape, dtype=np.float32) * 2.0 - 1.0) * np.float32(bound)

  def draw(key_path, leaf):
    name = str(getattr(key_path[-1], "key", key_path[-1]))
    shape = tuple(leaf.shape)
    if name == "kernel":  # (kt, kh, kw, in, out)
      receptive = int(np.prod(shape[:-2]))
      bound = np.sqrt(6.0 / (receptive * (shape[-2] + shape[-1])))
      value = uniform(bound, shape)
    elif name == "fc_bin":
      value = uniform(separate_fc_bound(shape), shape)
    elif name == "scale":
      value = 1.0 + 0.02 * rng.standard_normal(shape, dtype=np.float32)
    elif name in ("bias", "mean"):
      value = np.zeros(shape)
    elif name == "var":
      value = np.ones(shape)
    elif name == "p":
      value = np.full(shape, 6.5)
    else:
      raise ValueError(f"init_variables: no rule for variable {jax.tree_util.keystr(key_path)}")
    return jnp.asarray(value, jnp.float32)

  return jax.tree_util.tree_map_with_path(draw, shapes)


def positive_ints(values, key: str) -> Tuple[int, ...]:
  """`values` as a tuple of positive ints, or a ValueError naming the config key."""
  try:
    out = tuple(int(v) for v in values)
  except (TypeError, ValueError):
    raise ValueError(f"{key}={values!r}: expected positive integers (on the command line "
                     f"comma-separated: --config.{key}=8,16,32)") from None
  if not out or any(v < 1 for v in out):
    raise ValueError(f"{key}={values!r}: expected positive integers")
  return out


def build_model(model_cfg, *, bnneck: bool, fixed_path: Optional[Sequence[int]] = None,
                dtype=jnp.float32) -> SPOSGait:
  """The SPOSGait network described by `model_cfg` (config key `model`).

  bnneck: build the BN-neck classifier (reference: only when CE is among the losses).
  fixed_path: only these candidates exist in the parameters (retrain / test / export), with
    the supernet's names, so its variables are a subset of the supernet's.
  dtype: compute dtype of convolutions and matmuls; parameters, BN statistics, GeM and the
    returned embeddings/logits stay float32.
  `model_cfg.remat` (optional, default False): rematerialise the searchable layers' candidates
    in the backward pass (see ChoiceLayer) — less memory, one more forward of each layer.
  `model_cfg.choice_max_num` (optional): the search space; the layers it leaves one candidate
    (the reference's first layers) run that candidate directly under a traced path too.
  """
  name = space_lib.canonical_model_name(model_cfg.name)
  channels = positive_ints(model_cfg.channels, "model.channels")
  if len(channels) != NUM_CHANNELS[name]:
    raise ValueError(f"model.channels={channels}: {name} expects {NUM_CHANNELS[name]} widths")
  bins = positive_ints(model_cfg.bins, "model.bins")
  parts = int(getattr(model_cfg, "parts", sum(bins)))
  if parts != sum(bins):
    raise ValueError(f"model.parts={parts} must equal sum(model.bins)={sum(bins)}")
  cmn = tuple(getattr(model_cfg, "choice_max_num", ()) or ())
  if cmn:
    space_lib.check_space(name, cmn)
  if fixed_path is not None:
    fixed_path = tuple(int(v) for v in fixed_path)
  out_channels = positive_ints((model_cfg.out_channels,), "model.out_channels")[0]
  class_num = model_cfg.class_num
  return SPOSGait(model_name=name, channels=channels, bins=bins,
                  out_channels=out_channels, class_num=class_num,
                  bnneck=bool(bnneck), fixed_path=fixed_path, space=cmn or None, dtype=dtype,
                  remat=bool(getattr(model_cfg, "remat", False)))
