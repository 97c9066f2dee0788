"""Reference (OpenGait/SPOSGait PyTorch) checkpoints in and out of a gait_jax workdir.

A reference checkpoint is `torch.save({"model": state_dict, "optimizer": SGD state,
"scheduler": MultiStepLR state, "iteration": N})`; a bare state dict is accepted too. Importing
writes `WORKDIR/checkpoints/<N>` in exactly the layout training writes (so `train` resumes it,
and embed/test/search/`train.init_from` read it as their own) and `WORKDIR/config.json`.

Optimizer: torch's SGD state is indexed by parameter position (`model.parameters()` order,
which is the state dict's order without its buffers); its `momentum_buffer`s become the train
state's momentum — torch's buffer is exactly the momentum tree of `training.optim.SGD`.
A parameter without a buffer (never sampled by the supernet) gets zero momentum, which is what
torch's lazily created buffer amounts to.
"""
from __future__ import annotations

import collections
import os
from typing import Any, Dict, Mapping, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from gait_jax import config as config_lib
from gait_jax.common import checkpoint as ckpt_lib
from gait_jax.data import holdout
from gait_jax.interop import torch_file
from gait_jax.models import abstract_variables, build_model, torch_keys
from gait_jax.training import train_state as ts
from gait_jax.training.step import compute_dtype

BUFFER_SUFFIXES = ("running_mean", "running_var", "num_batches_tracked")


def read_reference(path: str) -> Dict[str, Any]:
  """`{"model": OrderedDict of arrays, "optimizer": dict or None, "scheduler": dict or None,
  "iteration": int}` from a reference checkpoint or a bare state dict."""
  obj = torch_file.load(path)
  if isinstance(obj, Mapping) and "model" in obj:
    model = obj["model"]
    if not torch_file.is_mapping_of_arrays(model):
      raise torch_file.TorchFileError(f"{path}: 'model' is not a state dict of tensors")
    iteration = obj.get("iteration", 0)
    if not isinstance(iteration, int) or iteration < 0:
      raise torch_file.TorchFileError(f"{path}: 'iteration' is {iteration!r}, expected a "
                                      "non-negative int")
    return {"model": model, "optimizer": obj.get("optimizer"), "scheduler": obj.get("scheduler"),
            "iteration": iteration}
  if torch_file.is_mapping_of_arrays(obj):
    return {"model": obj, "optimizer": None, "scheduler": None, "iteration": 0}
  keys = sorted(obj)[:8] if isinstance(obj, Mapping) else type(obj).__name__
  raise torch_file.TorchFileError(
      f"{path} is not a model checkpoint: expected a dict with 'model' (a state dict) or a state "
      f"dict of tensors, found {keys}")


def momentum_by_key(state_dict: Mapping[str, np.ndarray], optimizer: Any,
                    where: str) -> Optional[Dict[str, np.ndarray]]:
  """`{torch parameter key: momentum buffer}` from a torch SGD state dict (None without one)."""
  if not optimizer:
    return None
  try:
    groups, state = optimizer["param_groups"], optimizer["state"]
    indices = [int(i) for g in groups for i in g["params"]]
  except (KeyError, TypeError, ValueError):
    raise ValueError(f"{where}: 'optimizer' is not a torch optimizer state dict (expected "
                     "'state' and 'param_groups')") from None
  names = [k for k in state_dict if not k.endswith(BUFFER_SUFFIXES)]
  if len(indices) != len(names):
    raise ValueError(f"{where}: the optimizer holds {len(indices)} parameters, the model "
                     f"{len(names)}: they are not from the same network")
  out = {}
  for index, name in zip(indices, names):
    buf = (state.get(index) or {}).get("momentum_buffer")
    if buf is None:
      continue
    if np.shape(buf) != np.shape(state_dict[name]):
      raise ValueError(f"{where}: optimizer parameter {index} has shape {np.shape(buf)} but "
                       f"model parameter {name} {np.shape(state_dict[name])}")
    out[name] = np.asarray(buf, np.float32)
  return out


def _check_hyperparameters(ckpt: Mapping[str, Any], config, where: str) -> None:
  """Warns when the reference run's SGD settings differ from the config that will continue it."""
  opt, sched = ckpt.get("optimizer") or {}, ckpt.get("scheduler") or {}
  group = (opt.get("param_groups") or [{}])[0]
  wanted = {"lr": ("initial_lr", config.optim.lr),
            "momentum": ("momentum", config.optim.momentum),
            "weight_decay": ("weight_decay", config.optim.weight_decay)}
  for key, (torch_key, value) in wanted.items():
    if torch_key in group and not np.isclose(float(group[torch_key]), value):
      logging.warning("%s: the reference optimizer had %s=%s, the config optim.%s=%s",
                      where, torch_key, group[torch_key], key, value)
  last = sched.get("last_epoch")
  if last is not None and int(last) != ckpt["iteration"]:
    logging.warning("%s: scheduler last_epoch %s differs from iteration %d (the schedule "
                    "continues from the iteration)", where, last, ckpt["iteration"])


def _convert(state_dict, config, where: str) -> Dict[str, Any]:
  try:
    return torch_keys.convert_torch_state_dict(
        state_dict, config.model, bnneck=config_lib.use_bnneck(config),
        fixed_path=config_lib.model_path(config))
  except ValueError as e:
    raise ValueError(f"{where} does not fit the config: {e}") from None


def import_reference(pt_path: str, config, workdir: str) -> Tuple[str, Dict[str, Any]]:
  """Writes the checkpoint at `pt_path` into `workdir`; returns (step directory, meta)."""
  where = os.path.abspath(pt_path)
  ckpt = read_reference(where)
  sd = collections.OrderedDict(ckpt["model"])
  variables = _convert(sd, config, where)
  path = config_lib.model_path(config)
  model = build_model(config.model, bnneck=config_lib.use_bnneck(config), fixed_path=path)
  variables = ckpt_lib.select_by_name(variables, abstract_variables(model), where)
  _check_finite(variables, where)
  buffers = momentum_by_key(sd, ckpt["optimizer"], where)
  if buffers is not None:
    full = {k: buffers.get(k, np.zeros(np.shape(v), np.float32)) for k, v in sd.items()}
    momentum = _convert(full, config, where)["params"]
    momentum = ckpt_lib.select_by_name(momentum, variables["params"], where)
    _check_hyperparameters(ckpt, config, where)
  else:
    momentum = jax.tree.map(np.zeros_like, variables["params"])

  directory = ckpt_lib.checkpoint_dir(workdir)
  manager = ckpt_lib.Checkpointer(directory, keep=None)
  try:
    existing = manager.all_steps()
    if existing:
      raise FileExistsError(f"{directory} already holds checkpoints {sorted(existing)}: import "
                            "into a new --workdir (nothing there is overwritten)")
    state = ts.create(variables["params"], variables["batch_stats"], {"momentum": momentum},
                      float16=compute_dtype(config) == jnp.float16)
    step = ckpt["iteration"]
    state = state.replace(step=jnp.asarray(step, jnp.int32))
    meta = {"step": step, "attempts": step, "skipped": 0,
            "model_path": config_lib.format_path(path) if path else "",
            "experiment": config.experiment, "imported_from": where,
            "optimizer": "momentum" if buffers is not None else "none"}
    manager.save(step, ts.to_tree(state), meta)
    manager.wait()
  finally:
    manager.close()
  ckpt_lib.write_config(workdir, config)
  # The reference trains on every TRAIN_SET id: nothing of this workdir is held out, and a
  # search or a held-out validation on its training ids must not claim otherwise.
  holdout.record_trained_on_all(workdir, f"imported from {where}")
  return os.path.join(directory, str(step)), meta


def _check_finite(variables, where: str) -> None:
  for keypath, leaf in jax.tree_util.tree_flatten_with_path(variables)[0]:
    bad = int(np.size(leaf) - np.count_nonzero(np.isfinite(leaf)))
    if bad:
      raise ValueError(f"{where}: {jax.tree_util.keystr(keypath)} holds {bad} non-finite "
                       "values (NaN/inf): the checkpoint is damaged or from a diverged run; "
                       "nothing was imported")


def export_reference(workdir: str, out: str, step: Optional[int] = None) -> Dict[str, Any]:
  """Writes `workdir`'s checkpoint as a reference `.pt` ({"model", "iteration"}); returns info.

  A fixed-path checkpoint lacks the other candidates, which are written with the defaults
  that PyTorch's strict loading accepts (see torch_keys.to_torch_state_dict)."""
  config = config_lib.saved_config(workdir)
  variables, step = ckpt_lib.restore_variables(workdir, step)
  sd = torch_keys.to_torch_state_dict(variables, config.model,
                                      bnneck=config_lib.use_bnneck(config), complete=True)
  layout = torch_keys.torch_layout(config.model, bnneck=config_lib.use_bnneck(config))
  state_dict = collections.OrderedDict((e.torch_key, sd[e.torch_key]) for e in layout)
  torch_file.save({"model": state_dict, "iteration": int(step)}, out)
  return {"step": int(step), "keys": len(state_dict), "path": str(config.model.path or "")}
