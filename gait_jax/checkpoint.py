"""Checkpoints: an orbax `CheckpointManager` in WORKDIR/checkpoints, plus the run's config.

Layout of a workdir:
  WORKDIR/config.json                the config of the run that owns the checkpoints
  WORKDIR/checkpoints/<step>/state   the train state as a nested dict (orbax StandardSave)
  WORKDIR/checkpoints/<step>/meta    JSON bookkeeping (step, path, model config, ...)

Saving is asynchronous; orbax writes into `<step>.orbax-checkpoint-tmp*` and renames only
once everything is on disk, so a killed save leaves the previous checkpoints intact and the
unfinished directory is never picked up on restore.

`restore_variables(source)` is what embed/test/search/`train.init_from` use: it accepts a
workdir, a checkpoints directory (latest step) or one step directory, and returns NumPy
`{"params", "batch_stats"}` whatever device layout the checkpoint was written with.
"""
from __future__ import annotations

import json
import os
import re
from typing import Any, Mapping, Optional, Tuple

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging

CHECKPOINT_DIR = "checkpoints"
CONFIG_FILE = "config.json"
VARIABLE_COLLECTIONS = ("params", "batch_stats")


def checkpoint_dir(workdir: str) -> str:
  return os.path.join(os.path.abspath(workdir), CHECKPOINT_DIR)


def _handlers():
  return {"state": ocp.StandardCheckpointHandler(), "meta": ocp.JsonCheckpointHandler()}


class Checkpointer:
  """Saves and restores the train state (a nested dict of arrays) with JSON metadata."""

  def __init__(self, directory: str, keep: Optional[int] = 3, read_only: bool = False):
    self.directory = os.path.abspath(directory)
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep if keep and keep > 0 else None, create=not read_only,
        read_only=read_only)
    self._manager = ocp.CheckpointManager(self.directory, options=options,
                                          item_handlers=_handlers())

  def latest_step(self) -> Optional[int]:
    return self._manager.latest_step()

  def all_steps(self):
    return list(self._manager.all_steps())

  def save(self, step: int, state: Mapping[str, Any], meta: Mapping[str, Any]) -> bool:
    """Starts an asynchronous save; every process must call it (orbax is collective)."""
    saved = self._manager.save(
        int(step), args=ocp.args.Composite(state=ocp.args.StandardSave(dict(state)),
                                           meta=ocp.args.JsonSave(dict(meta))), force=True)
    if not saved:
      logging.warning("checkpoint of step %d was not written (it already exists in %s)",
                      step, self.directory)
    return saved

  def restore(self, step: int, target: Mapping[str, Any]) -> Tuple[dict, dict]:
    """The state of `step` laid out like `target` (arrays or ShapeDtypeStructs with
    shardings), and its metadata."""
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, dict(target))
    out = self._manager.restore(int(step), args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()))
    return out["state"], dict(out["meta"] or {})

  def read_meta(self, step: int) -> dict:
    out = self._manager.restore(int(step), args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
    return dict(out["meta"] or {})

  def state_metadata(self, step: int) -> dict:
    """Shapes/dtypes of the saved state tree of `step` (orbax array metadata)."""
    meta = self._manager.item_metadata(int(step))["state"]
    return dict(getattr(meta, "tree", meta))

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.close()


def _resolve(source: str) -> Tuple[str, Optional[int]]:
  """(checkpoints directory, step or None for latest) for a workdir, a checkpoints dir or a
  step dir."""
  source = os.path.abspath(os.path.expanduser(source))
  if not os.path.isdir(source):
    raise FileNotFoundError(f"checkpoint source {source} does not exist (expected a workdir, "
                            f"its {CHECKPOINT_DIR}/ directory or a step directory)")
  if os.path.isdir(os.path.join(source, CHECKPOINT_DIR)):
    return os.path.join(source, CHECKPOINT_DIR), None
  name = os.path.basename(source)
  if re.fullmatch(r"\d+", name) and os.path.isdir(os.path.join(source, "state")):
    return os.path.dirname(source), int(name)
  return source, None


def restore_variables(source: str, step: Optional[int] = None) -> Tuple[dict, int]:
  """`({"params", "batch_stats"} as NumPy arrays, step)` from a workdir, a checkpoints
  directory (latest step unless `step`) or a step directory.

  Only the model variables are read (no optimizer state); the result can be placed on any
  device layout.
  """
  directory, dir_step = _resolve(source)
  manager = Checkpointer(directory, read_only=True)
  step = dir_step if step is None else step
  if step is None:
    step = manager.latest_step()
    if step is None:
      raise FileNotFoundError(f"no finished checkpoint in {directory} (unfinished "
                              "*.orbax-checkpoint-tmp* directories are ignored)")
  elif step not in manager.all_steps():
    raise FileNotFoundError(f"checkpoint step {step} not found in {directory}; "
                            f"available: {sorted(manager.all_steps())}")
  state_dir = os.path.join(directory, str(step), "state")
  tree = manager.state_metadata(step)
  manager.close()
  missing = [k for k in VARIABLE_COLLECTIONS if k not in tree]
  if "params" in missing:
    raise ValueError(f"{state_dir}: no 'params' in the checkpoint (found {sorted(tree)})")
  wanted = {k: tree[k] for k in VARIABLE_COLLECTIONS if k in tree}
  target = jax.tree.map(lambda m: np.zeros(m.shape, m.dtype), wanted)
  restore_args = jax.tree.map(lambda m: ocp.RestoreArgs(restore_type=np.ndarray), wanted)
  variables = ocp.PyTreeCheckpointer().restore(state_dir, args=ocp.args.PyTreeRestore(
      item=target, restore_args=restore_args, partial_restore=True))
  variables = dict(variables)
  variables.setdefault("batch_stats", {})
  return variables, int(step)


# -- The config that owns a workdir ------------------------------------------------------

def _to_jsonable(config) -> dict:
  if hasattr(config, "to_json_best_effort"):
    return json.loads(config.to_json_best_effort())
  return json.loads(json.dumps(config, default=str))


def read_config(workdir: str) -> Optional[dict]:
  path = os.path.join(os.path.abspath(workdir), CONFIG_FILE)
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def write_config(workdir: str, config) -> str:
  """Writes WORKDIR/config.json (atomically: a crash never leaves half a file)."""
  path = os.path.join(os.path.abspath(workdir), CONFIG_FILE)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(_to_jsonable(config), f, indent=2, sort_keys=True)
  os.replace(tmp, path)
  return path


# model.* keys that change how a step computes, never the parameter tree: a run may resume or
# load weights with another value (and configs written before the key existed lack it).
NOT_ARCHITECTURE = ("remat",)


def architecture(config_dict: Mapping[str, Any]) -> dict:
  """The keys that decide the parameter tree: every model.* key (but NOT_ARCHITECTURE) and
  whether the BN-neck exists (loss.ce_weight > 0)."""
  model = dict(config_dict.get("model", {}))
  model = {f"model.{k}": (list(v) if isinstance(v, (list, tuple)) else v)
           for k, v in model.items() if k not in NOT_ARCHITECTURE}
  ce = float(config_dict.get("loss", {}).get("ce_weight", 0.0))
  model["loss.ce_weight>0 (BN-neck)"] = ce > 0
  return model


def architecture_differences(saved: Mapping[str, Any], current: Mapping[str, Any]) -> dict:
  """{key: (saved, current)} for every architecture key that differs."""
  a, b = architecture(saved), architecture(_to_jsonable(current))
  return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}
