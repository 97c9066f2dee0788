"""The six candidate operations of the SPOSGait search space and the choice layer.

A candidate is conv → BN [→ ReLU → conv → BN] with an optional final ReLU (`flg_relu`);
the ReLU between the two convs is always there. Submodule names carry the index of the
layer inside the reference's nn.Sequential (`conv0`, `bn1`, `conv3`, `bn4`) so that
`torch_keys` maps names one-to-one.

`ChoiceLayer` owns candidates `cand0`…`cand5` (or only the fixed one) and runs one of
them: by Python index (static, only that candidate is traced) or by a traced int32 index
(`nn.switch`, one compiled function for every path; only the chosen candidate's BN
statistics change).
"""
from __future__ import annotations

from typing import Any, Tuple

import flax.linen as nn
import jax.numpy as jnp

from gait_jax.models import switch_residuals
from gait_jax.models.frames import apply_mask
from gait_jax.models.batch_norm import BatchNorm
from gait_jax.models.layers import conv3d
from gait_jax.models.space import NUM_CANDIDATES

# (kt, kh, kw) of the first and, for ops 3-5, the second convolution.
CANDIDATE_KERNELS: Tuple[Tuple[Tuple[int, int, int], ...], ...] = (
    ((3, 3, 3),),
    ((3, 1, 3),),
    ((3, 3, 1),),
    ((3, 3, 1), (3, 1, 3)),
    ((3, 1, 3), (3, 3, 1)),
    ((3, 1, 1), (1, 3, 3)),
)


class Candidate(nn.Module):
  """Candidate op `op` (0..5): `[n, t, h, w, in]` → `[n, t, h, w, features]`.

  Expects padded frames of `x` to be zero (see layers.py) and keeps them zero.
  """
  op: int
  features: int
  flg_relu: bool
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, mask=None, train=False):
    kernels = CANDIDATE_KERNELS[self.op]
    for i, kernel in enumerate(kernels):
      seq = 3 * i  # position of this conv inside the reference Sequential
      x = conv3d(self.features, kernel, name=f"conv{seq}", dtype=self.dtype)(x)
      x = BatchNorm(name=f"bn{seq + 1}")(x, mask, train=train)
      x = apply_mask(x, mask)
      if i < len(kernels) - 1 or self.flg_relu:
        x = nn.relu(x)
    return x


class ChoiceLayer(nn.Module):
  """A searchable layer: candidates `cand{j}` for j in `choices` (all six in a supernet).

  `remat`: recompute each candidate's forward in the backward pass instead of storing its
  activations (same variables, same results). Under a traced index this matters beyond the
  usual remat trade: differentiating `lax.switch` keeps the stored activations of *every*
  branch, so a supernet step needs more memory than its heaviest static path; with remat a
  branch keeps only its input, which all branches share.
  """
  features: int
  flg_relu: bool
  choices: Tuple[int, ...] = tuple(range(NUM_CANDIDATES))
  dtype: Any = jnp.float32
  remat: bool = False

  def setup(self):
    # `train` (argument 3, counting self) is a Python bool that selects code: static.
    cls = nn.remat(Candidate, static_argnums=(3,)) if self.remat else Candidate
    self.cands = [cls(j, self.features, self.flg_relu, self.dtype, name=f"cand{j}")
                  for j in self.choices]

  def __call__(self, x, choice, mask=None, *, train=False):
    if isinstance(choice, int):
      if choice not in self.choices:
        raise ValueError(f"{self.name}: candidate {choice} requested but only "
                         f"{self.choices} exist (fixed_path model?)")
      local = self.choices.index(choice)
      if self.is_initializing():
        # A supernet's variables always hold every candidate, whatever path init saw.
        return [c(x, mask, train) for c in self.cands][local]
      return self.cands[local](x, mask, train)

    if len(self.choices) == 1:
      # Fixed-path model: the only existing candidate runs whatever the traced index says.
      return self.cands[0](x, mask, train)

    if self.is_initializing():
      # nn.switch needs every branch's variables to exist already: create all six.
      outs = [c(x, mask, train) for c in self.cands]
      return jnp.stack(outs)[choice]

    branches = [_branch(i, train) for i in range(len(self.choices))]
    # Index into the local candidate list (equal to the candidate id in a supernet).
    index = jnp.asarray(choice, jnp.int32)
    with switch_residuals.uninitialized():  # the slots of unchosen branches: never read
      return nn.switch(index, branches, self, x, mask)


def _branch(i: int, train: bool):
  """A switch branch calling local candidate i; `train` is closed over (it is static)."""
  def fn(mdl, x, mask):
    return mdl.cands[i](x, mask, train)
  return fn
