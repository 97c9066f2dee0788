"""What a training run is made of, built from its config: the network with its loss and update
mask, the one jitted train step, and the training data (with the supernet's held-out ids left
out)."""
from __future__ import annotations

import functools
from typing import Callable, NamedTuple, Optional, Tuple

import jax
from absl import logging

from gait_jax import config as config_lib
from gait_jax.data import holdout
from gait_jax.data import samplers
from gait_jax.data import splits
from gait_jax.data.loader import TrainLoader
from gait_jax.models import build_model, conv, space
from gait_jax.training import step as step_lib
from gait_jax.training.losses import compute_losses


class Network(NamedTuple):
  model: object  # a Flax module: apply(variables, sils, path, lengths=, train=, mutable=)
  loss_fn: Callable  # (outputs, labels) -> (total, {name: scalar})
  mask_fn: Optional[Callable]  # (tree, path) -> which leaves the path uses; None = all
  fixed: Optional[Tuple[int, ...]]  # the retrained path, None for a supernet
  dtype: object  # compute dtype
  frames: int  # T of a training batch
  use_lengths: bool  # unfixed samplers: per-sequence lengths reach the model
  bf16: bool  # train.bf16 where it applies here: the convolutions multiply in bfloat16

  @property
  def float16(self) -> bool:
    """float16 compute: the step scales the loss dynamically (as torch's GradScaler)."""
    return self.dtype == step_lib.DTYPES["float16"]


def fresh_state(config, net: Network, optimizer, mesh) -> step_lib.FreshState:
  """The fresh replicated train state of this network and config (created on demand)."""
  return step_lib.fresh_state(net.model, optimizer, mesh, seed=config.seed, frames=net.frames,
                              fixed_path=net.fixed, path_len=len(config.model.choice_max_num),
                              float16=net.float16)


def init_state(config, net: Network, optimizer, mesh):
  """(fresh replicated train state, its sharding) for this network and config."""
  fresh = fresh_state(config, net, optimizer, mesh)
  return fresh.create(), fresh.sharding


def build_network(config, build=build_model) -> Network:
  """The network, loss and update mask of `config` (`build`: the model constructor)."""
  dtype = step_lib.compute_dtype(config)
  fixed = config_lib.model_path(config)
  model = build(config.model, bnneck=config_lib.use_bnneck(config), fixed_path=fixed,
                dtype=dtype)
  mask_fn = (functools.partial(space.path_mask, model_name=model.model_name)
             if fixed is None else None)
  return Network(model, functools.partial(compute_losses, loss_cfg=config.loss), mask_fn, fixed,
                 dtype, samplers.batch_frames(config.data),
                 not samplers.fixed_length(config.data.sample_type),
                 conv.bf16_usable("train.bf16", config.train.bf16))


_STEP_CACHE = {}  # repeated runs in one process (tests, notebooks) reuse the compiled step


def train_step(config, net: Network, optimizer, mesh, sharding):
  """The jitted `step(state, batch, path) -> (state, info)` of this run: the one way a train
  step is built (training and its benchmark)."""
  key = (repr(net.model), config.optim.to_json(), config.loss.to_json(), net.fixed,
         net.use_lengths, net.float16, net.bf16, tuple(d.id for d in mesh.devices.flat),
         repr(sharding))
  if key not in _STEP_CACHE:
    fn = step_lib.make_train_step(net.model, optimizer, net.loss_fn, fixed_path=net.fixed,
                                  mask_fn=net.mask_fn, use_lengths=net.use_lengths,
                                  float16=net.float16, bf16=net.bf16)
    _STEP_CACHE.clear()  # one at a time: executables hold memory
    _STEP_CACHE[key] = step_lib.jit_train_step(fn, mesh, sharding)
  return _STEP_CACHE[key]


EVAL_ON = ("test", "holdout")


def holds_out(config) -> bool:
  """Whether the run leaves `search.val_ids` out of training: a supernet always (its search
  scores on them), a fixed path when it validates on them (`train.eval_on=holdout`)."""
  return config_lib.model_path(config) is None or config.train.eval_on == "holdout"


def open_train_split(config):
  """The training split as the config names it (before any ids are held out): a fresh run
  opens it before its initialiser compiles, so that a wrong data.root or partition is a
  one-line error at once."""
  return splits.open_split(config.data, "train", num_train=config.data.num_train,
                           cache=config.data.cache)


def open_data(config, dataset, start_attempt: int, workdir: str, resumed: bool):
  """(dataset, loader) of the training ids of `dataset` (`open_train_split`'s), the loader
  starting at batch `start_attempt`."""
  if holds_out(config):
    # A supernet never sees the ids its search scores paths on (search.val_ids), nor does a
    # run validated on held-out ids; the split is recorded in the workdir, where search and
    # the validation read it and a resumed run keeps it.
    fixed = config_lib.model_path(config) is not None
    train_ids, val_ids = holdout.supernet_split(config, dataset.label_set, workdir, resumed,
                                                fixed_path=fixed)
    if config.train.init_from and not resumed:  # a fixed path's or a supernet's second cycle
      holdout.check_unseen(val_ids, config.train.init_from, config, dataset.label_set)
    logging.info("training on %d ids; %d held out for %s", len(train_ids), len(val_ids),
                 "the search fitness" if config_lib.model_path(config) is None
                 else "validation (train.eval_on=holdout)")
    dataset = splits.open_split(config.data, "train", num_train=config.data.num_train,
                                cache=config.data.cache, ids=train_ids)
  if config_lib.use_bnneck(config) and len(dataset.label_set) > config.model.class_num:
    raise ValueError(f"model.class_num={config.model.class_num} but the training set has "
                     f"{len(dataset.label_set)} ids (set model.class_num or data.num_train)")
  loader = TrainLoader(dataset, config.data, seed=config.seed, start_step=start_attempt,
                       process_index=jax.process_index(), process_count=jax.process_count())
  return dataset, loader
