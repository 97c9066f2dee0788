"""PyTorch (reference OpenGait/SPOSGait) state-dict keys ↔ Flax variables.

NumPy only (no torch import): pass `{key: tensor.numpy()}` of a reference checkpoint's
`model` state dict. Keys never carry a `module.` prefix in reference checkpoints; one is
stripped if present.

Mapping table (XY = searchable layer, J = candidate 0..5, K = stage of the downsample;
`s` = the Sequential index of the conv inside the candidate: 0, and 3 for the second
conv of candidates 3, 4, 5; BN at s+1):

| Flax variable                                   | PyTorch key                              | transform |
|-------------------------------------------------|------------------------------------------|-----------|
| params/conv3d_XY/candJ/conv{s}/kernel           | conv3d_XY.J.{s}.conv3d.weight            | conv      |
| params/conv3d_XY/candJ/bn{s+1}/scale            | conv3d_XY.J.{s+1}.weight                 | copy      |
| params/conv3d_XY/candJ/bn{s+1}/bias             | conv3d_XY.J.{s+1}.bias                   | copy      |
| batch_stats/conv3d_XY/candJ/bn{s+1}/mean        | conv3d_XY.J.{s+1}.running_mean           | copy      |
| batch_stats/conv3d_XY/candJ/bn{s+1}/var         | conv3d_XY.J.{s+1}.running_var            | copy      |
| (none)                                          | conv3d_XY.J.{s+1}.num_batches_tracked    | dropped   |
| params/downsampleK/conv0/kernel                 | downsampleK.0.weight                     | conv      |
| params/downsampleK/bn1/{scale,bias}             | downsampleK.1.{weight,bias}              | copy      |
| batch_stats/downsampleK/bn1/{mean,var}          | downsampleK.1.{running_mean,running_var} | copy      |
| (none)                                          | downsampleK.1.num_batches_tracked        | dropped   |
| params/LTA/conv0/kernel                         | LTA.0.conv3d.weight                      | conv      |
| params/HPP/p                                    | HPP.p  [1]                               | copy      |
| params/Head0/fc_bin                             | Head0.fc_bin  [p, in, out]               | copy      |
| params/BNNecks/fc_bin                           | BNNecks.fc_bin  [p, in, class_num]       | copy      |
| params/BNNecks/bn1d/{scale,bias}                | BNNecks.bn1d.{weight,bias}  [in·p]       | copy      |
| batch_stats/BNNecks/bn1d/{mean,var}             | BNNecks.bn1d.{running_mean,running_var}  | copy      |
| (none)                                          | BNNecks.bn1d.num_batches_tracked         | dropped   |

"conv": PyTorch `[out, in, kt, kh, kw]` ↔ Flax `(kt, kh, kw, in, out)` (transpose
(2, 3, 4, 1, 0); its inverse is (4, 3, 0, 1, 2)). Both frameworks cross-correlate, so no
kernel flip. Layers per model: large conv3d_00/01/10/11/20/21/30/31/40/41, downsample0–4;
medium conv3d_00/01/10/11/20/30/40, downsample0–4; small conv3d_00/20/30/40, downsample
0, 2, 3, 4. `BNNecks.*` exists only for two-loss models (bnneck=True).

Every reference checkpoint holds all six candidates of every layer, retrain ones
included. Converting for a `fixed_path` model consumes those keys and keeps only the
chosen candidates.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from gait_jax.models import space as space_lib
from gait_jax.models.candidates import CANDIDATE_KERNELS, NUM_CANDIDATES
from gait_jax.models.space import NUM_CHANNELS, STAGES

CONV_TO_FLAX = (2, 3, 4, 1, 0)
CONV_TO_TORCH = (4, 3, 0, 1, 2)


@dataclasses.dataclass(frozen=True)
class Entry:
  """One PyTorch key. `collection` None = a key without a Flax variable (dropped)."""
  torch_key: str
  torch_shape: Tuple[int, ...]
  collection: Optional[str]  # "params" | "batch_stats" | None
  flax_path: Tuple[str, ...]
  conv: bool = False  # needs the conv-weight transposition
  candidate: Optional[Tuple[str, int]] = None  # (layer name, J) of a searchable-layer key


def _bn(prefix: str, path: Tuple[str, ...], c: int, candidate=None) -> List[Entry]:
  return [
      Entry(f"{prefix}.weight", (c,), "params", path + ("scale",), candidate=candidate),
      Entry(f"{prefix}.bias", (c,), "params", path + ("bias",), candidate=candidate),
      Entry(f"{prefix}.running_mean", (c,), "batch_stats", path + ("mean",), candidate=candidate),
      Entry(f"{prefix}.running_var", (c,), "batch_stats", path + ("var",), candidate=candidate),
      Entry(f"{prefix}.num_batches_tracked", (), None, path, candidate=candidate),
  ]


def _cfg(model_cfg):
  name = space_lib.canonical_model_name(model_cfg.name)
  channels = tuple(int(c) for c in model_cfg.channels)
  if len(channels) != NUM_CHANNELS[name]:
    raise ValueError(f"model.channels={channels}: {name} expects {NUM_CHANNELS[name]} widths")
  return name, channels


def torch_layout(model_cfg, *, bnneck: bool) -> List[Entry]:
  """Every key of the reference supernet's state dict (all candidates), with its shape."""
  name, channels = _cfg(model_cfg)
  parts = int(sum(int(b) for b in model_cfg.bins))
  out_c, class_num = model_cfg.out_channels, model_cfg.class_num
  entries: List[Entry] = []
  cin = 1  # silhouettes have one channel
  for stage in STAGES[name]:
    stage_in = c = cin
    for layer, ch, _ in stage.layers:
      cout = channels[ch]
      for j in range(NUM_CANDIDATES):
        cand = (layer, j)
        for i, kernel in enumerate(CANDIDATE_KERNELS[j]):
          s = 3 * i
          ci = c if i == 0 else cout
          path = (layer, f"cand{j}")
          entries.append(Entry(f"{layer}.{j}.{s}.conv3d.weight", (cout, ci) + kernel, "params",
                               path + (f"conv{s}", "kernel"), conv=True, candidate=cand))
          entries += _bn(f"{layer}.{j}.{s + 1}", path + (f"bn{s + 1}",), cout, cand)
      c = cout
    ds = f"downsample{stage.index}"
    entries.append(Entry(f"{ds}.0.weight", (c, stage_in, 1, 1, 1), "params",
                         (ds, "conv0", "kernel"), conv=True))
    entries += _bn(f"{ds}.1", (ds, "bn1"), c)
    if stage.lta_after:
      entries.append(Entry("LTA.0.conv3d.weight", (c, c, 3, 1, 1), "params",
                           ("LTA", "conv0", "kernel"), conv=True))
    cin = c
  entries.append(Entry("HPP.p", (1,), "params", ("HPP", "p")))
  entries.append(Entry("Head0.fc_bin", (parts, cin, out_c), "params", ("Head0", "fc_bin")))
  if bnneck:
    entries.append(Entry("BNNecks.fc_bin", (parts, out_c, class_num), "params",
                         ("BNNecks", "fc_bin")))
    entries += _bn("BNNecks.bn1d", ("BNNecks", "bn1d"), out_c * parts)
  return entries


def _kept(entry: Entry, fixed_path: Optional[Sequence[int]], positions: Dict[str, int]) -> bool:
  if entry.collection is None:
    return False
  if fixed_path is None or entry.candidate is None:
    return True
  layer, j = entry.candidate
  return fixed_path[positions[layer]] == j


def _set(tree: Dict[str, Any], path: Tuple[str, ...], value) -> None:
  for k in path[:-1]:
    tree = tree.setdefault(k, {})
  tree[path[-1]] = value


def _get(tree: Mapping[str, Any], path: Tuple[str, ...]):
  for k in path:
    if not isinstance(tree, Mapping) or k not in tree:
      return None
    tree = tree[k]
  return tree


def convert_torch_state_dict(state_dict: Mapping[str, Any], model_cfg, *, bnneck: bool,
                             fixed_path: Optional[Sequence[int]] = None) -> Dict[str, Any]:
  """A reference state dict (NumPy arrays) → `{"params": ..., "batch_stats": ...}` (float32).

  Every key of the reference layout must be present with its shape and no other key may
  appear (like PyTorch's strict loading); errors name the offending keys.
  """
  name, channels = _cfg(model_cfg)
  positions = {n: i for i, n in enumerate(space_lib.LAYER_NAMES[name])}
  if fixed_path is not None:
    fixed_path = tuple(int(v) for v in fixed_path)
    if len(fixed_path) != len(positions):
      raise ValueError(f"fixed_path={fixed_path}: {name} has {len(positions)} positions")
  sd = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state_dict.items()}
  layout = torch_layout(model_cfg, bnneck=bnneck)
  expected = {e.torch_key for e in layout}
  missing = sorted(expected - set(sd))
  unexpected = sorted(set(sd) - expected)
  shapes = {e.torch_key: tuple(np.shape(sd[e.torch_key])) for e in layout if e.torch_key in sd}
  wrong = [f"{e.torch_key} is {shapes[e.torch_key]}, expected {e.torch_shape}"
           for e in layout if e.torch_key in shapes and shapes[e.torch_key] != e.torch_shape]
  if missing or unexpected or wrong:
    problems = []
    if missing:
      problems.append(f"{len(missing)} missing keys {missing[:5]}")
    if unexpected:
      problems.append(f"{len(unexpected)} unexpected keys {unexpected[:5]}")
    if wrong:
      problems.append(f"{len(wrong)} shapes differ: {'; '.join(wrong[:5])}")
    raise ValueError(f"state dict does not match {name} with channels {channels}, "
                     f"bins {model_cfg.bins}, out_channels {model_cfg.out_channels}, "
                     f"class_num {model_cfg.class_num}, bnneck={bnneck}: "
                     + ", ".join(problems) + _hint(missing, unexpected))
  out: Dict[str, Any] = {"params": {}, "batch_stats": {}}
  for e in layout:
    value = np.asarray(sd[e.torch_key])
    if not _kept(e, fixed_path, positions):
      continue
    if e.conv:
      value = np.transpose(value, CONV_TO_FLAX)
    _set(out[e.collection], e.flax_path, np.ascontiguousarray(value, dtype=np.float32))
  return out


def _hint(missing: Sequence[str], unexpected: Sequence[str]) -> str:
  """What a typical mismatch means, in config terms."""
  if any(k.startswith("BNNecks.") for k in unexpected):
    return (" — the checkpoint has a BN-neck (a two-loss run): set loss.ce_weight > 0 and "
            "model.class_num to its class count")
  if any(k.startswith("BNNecks.") for k in missing):
    return " — the checkpoint has no BN-neck (a triplet-only run): set loss.ce_weight=0"
  if unexpected and any(k.split(".")[0] not in {m.split(".")[0] for m in missing}
                        for k in unexpected):
    return " — is model.name the variant the checkpoint was trained as?"
  return ""


def to_torch_state_dict(variables: Mapping[str, Any], model_cfg, *, bnneck: bool,
                        complete: bool = False) -> Dict[str, np.ndarray]:
  """Flax variables → reference state dict (NumPy; wrap with torch.from_numpy to load).

  A fixed-path model lacks the other candidates; `complete=True` fills them with the
  reference's deterministic defaults (zero convs, BN weight 1, bias 0, mean 0, var 1) so
  that PyTorch's strict `load_state_dict` accepts the result. `num_batches_tracked` is 0.
  Raises if `variables` holds a leaf the layout does not know.
  """
  layout = torch_layout(model_cfg, bnneck=bnneck)
  sd: Dict[str, np.ndarray] = {}
  used = set()
  for e in layout:
    if e.collection is None:  # num_batches_tracked: emitted with its BN
      present = _get(variables.get("params", {}), e.flax_path) is not None
      if present or complete:
        sd[e.torch_key] = np.zeros((), np.int64)
      continue
    value = _get(variables.get(e.collection, {}), e.flax_path)
    if value is None:
      if e.candidate is None or not complete:
        if e.candidate is None:
          raise ValueError(f"variables lack {e.collection}/{'/'.join(e.flax_path)} "
                           f"(torch key {e.torch_key})")
        continue
      fill = 1.0 if e.flax_path[-1] in ("scale", "var") else 0.0
      sd[e.torch_key] = np.full(e.torch_shape, fill, np.float32)
      continue
    used.add((e.collection,) + e.flax_path)
    value = np.asarray(value, np.float32)
    if e.conv:
      value = np.transpose(value, CONV_TO_TORCH)
    if tuple(value.shape) != e.torch_shape:
      raise ValueError(f"{e.collection}/{'/'.join(e.flax_path)}: shape {tuple(value.shape)} "
                       f"does not give torch {e.torch_key} {e.torch_shape}")
    sd[e.torch_key] = np.ascontiguousarray(value)
  leftover = [p for p in _leaf_paths(variables) if p not in used]
  if leftover:
    raise ValueError(f"variables hold leaves with no reference key: {leftover[:5]}")
  return sd


def _leaf_paths(tree, prefix=()):
  if isinstance(tree, Mapping):
    for k, v in tree.items():
      yield from _leaf_paths(v, prefix + (str(k),))
  else:
    yield prefix
