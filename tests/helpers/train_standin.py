"""A tiny stand-in for SPOSGait with the same interface and variable naming
(`conv3d_XY/candJ/...`, params + batch_stats), compiling in about a second on the CPU.

Used by the training tests whose subject is the training engine, not the network."""
from typing import Any, Optional, Tuple

import flax.linen as nn
import jax.numpy as jnp

from gait_jax.training.setup import build_network as _REAL_BUILD_NETWORK  # before any patching

LAYERS = ("conv3d_00", "conv3d_20", "conv3d_30", "conv3d_40")  # sposgait_small's order


class Candidate(nn.Module):
  features: int
  scale: float
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train):
    x = nn.Dense(self.features, dtype=self.dtype, name="fc")(x) * self.scale
    x = nn.BatchNorm(use_running_average=not train, momentum=0.9, name="bn")(x)
    return nn.relu(x)


class Choice(nn.Module):
  features: int
  choices: Tuple[int, ...]
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, choice, train):
    cands = {j: Candidate(self.features, 1.0 + 0.1 * j, self.dtype, name=f"cand{j}")
             for j in self.choices}
    if isinstance(choice, int):
      return cands[choice](x, train)
    outs = jnp.stack([cands[j](x, train) for j in self.choices])
    return outs[choice if len(self.choices) > 1 else 0]


class StandIn(nn.Module):
  model_name = "sposgait_small"  # its layer names, for the path masks
  features: int = 8
  parts: int = 3
  class_num: int = 8
  bnneck: bool = True
  fixed_path: Optional[Tuple[int, ...]] = None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, sils, path=None, lengths=None, *, train=False, segments=None,
               num_segments=0):
    del lengths
    path = self.fixed_path if path is None else path
    if isinstance(path, (tuple, list)):
      path = tuple(int(v) for v in path)
    if segments is not None:  # packed rows: each segment's frames on a row of its own
      one_hot = (segments[:, :, None] == jnp.arange(num_segments)).astype(self.dtype)
      x = jnp.einsum("nthw,nts->nshw", sils.astype(self.dtype), one_hot)
      x = x / jnp.maximum(one_hot.sum(axis=1), 1)[:, :, None, None]
      out = self(x.reshape((-1, 1) + x.shape[2:]), path, train=train)
      return {k: v.reshape((sils.shape[0], num_segments) + v.shape[1:]) for k, v in out.items()}
    n = sils.shape[0]
    x = sils.astype(self.dtype).mean(axis=1)  # [n, 64, 44]
    x = x.reshape(n, 8, x.shape[1] // 8, 4, x.shape[2] // 4).mean(axis=(2, 4)).reshape(n, 32)
    for i, name in enumerate(LAYERS):
      choices = tuple(range(6)) if self.fixed_path is None else (self.fixed_path[i],)
      x = Choice(self.features, choices, self.dtype, name=name)(x, path[i], train)
    emb = nn.Dense(self.features * self.parts, dtype=self.dtype, name="head")(x)
    emb = emb.reshape(n, self.features, self.parts).astype(jnp.float32)
    out = {"embeddings": emb}
    if self.bnneck:
      logits = nn.Dense(self.class_num * self.parts, name="BNNecks")(emb.reshape(n, -1))
      out["logits"] = logits.reshape(n, self.class_num, self.parts).astype(jnp.float32)
    return out


def build(model_cfg, *, bnneck, fixed_path=None, dtype=jnp.float32):
  return StandIn(features=int(model_cfg.out_channels), parts=int(sum(model_cfg.bins)),
                 class_num=int(model_cfg.class_num), bnneck=bnneck,
                 fixed_path=None if fixed_path is None else tuple(fixed_path), dtype=dtype)


def build_network(config):
  """`training.setup.build_network` with the stand-in instead of SPOSGait (real losses and
  path masks: the stand-in uses sposgait_small's layer names)."""
  return _REAL_BUILD_NETWORK(config, build=build)

