"""A candidate's weights fine-tuned a few steps on its own path before it is scored
(`search.finetune_steps`, `search.finetune_lr`).

Shared weights are a compromise among every path the supernet trained: a candidate scored with
them as they are is partly scored on how well the other paths' training suited it. A few steps
of its own path, from the supernet's weights and on the same training batches for every
candidate, are meant to move each one toward what it becomes alone; measured
(tools/ranking_study.py's `ft<N>` variants, docs/results.md) they lowered the ranking's τ, so
this is off by default. The steps are the run's own train step (its loss, update
mask and dtype) at a constant learning rate, compiled once for every candidate; nothing is
written back to the supernet.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from gait_jax.common import parallel
from gait_jax.training import optim
from gait_jax.training import setup
from gait_jax.training import train_state as ts


def finetune_config(config):
  """The run's config with its SGD (momentum, weight decay, clipping) at a constant
  `search.finetune_lr`."""
  c = config.copy_and_resolve_references()
  c.optim.lr, c.optim.milestones = config.search.finetune_lr, ()
  c.optim.schedule = "multistep"  # with no milestones: constant
  return c


def make_finetune(config, mesh):
  """`finetune(variables, path, batches) -> (variables, skipped steps)`: the supernet's
  variables after one train step of `path` on each of `batches` (train-step batches on the
  mesh, in order)."""
  c = finetune_config(config)
  net = setup.build_network(c)
  if net.fixed is not None:
    raise ValueError(f"search.finetune_steps: model.path={config.model.path!r} is a fixed "
                     "path; the search fine-tunes a supernet's candidates (model.path='')")
  sgd = optim.SGD(c.optim)
  replicated = parallel.replicated(mesh)

  @jax.jit  # one program, not one eager op per leaf
  def fresh_state(variables):
    # The step donates its state: start from copies, the supernet's arrays stay intact.
    params = jax.tree.map(jnp.copy, variables["params"])
    return ts.create(params, jax.tree.map(jnp.copy, variables["batch_stats"]), sgd.init(params),
                     float16=net.float16)

  def finetune(variables, path, batches):
    state = fresh_state(variables)
    step = setup.train_step(c, net, sgd, mesh, jax.tree.map(lambda _: replicated, state))
    for batch in batches:
      state, _ = step(state, batch, path)
    return {**variables, "params": state.params, "batch_stats": state.batch_stats}, state.skipped

  return finetune
