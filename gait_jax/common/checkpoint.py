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
import shutil
import time
from typing import Any, List, Mapping, Optional, Sequence, Tuple

import jax
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint._src.metadata import array_metadata_store  # the default handler's store
from absl import logging

from gait_jax.common import io

CHECKPOINT_DIR = "checkpoints"
CONFIG_FILE = "config.json"
VARIABLE_COLLECTIONS = ("params", "batch_stats")


def checkpoint_dir(workdir: str) -> str:
  return os.path.join(os.path.abspath(workdir), CHECKPOINT_DIR)


def _state_handler() -> ocp.StandardCheckpointHandler:
  """orbax's StandardCheckpointHandler, writing each replicated array from one device.

  Replica-parallel saving (orbax's default unless JAX_PLATFORMS names a GPU) slices every
  replicated array once per device, one dispatch each: seconds per save on a host with several
  devices, to split transfers far smaller than where splitting pays. The registry is this
  handler's own (orbax's global one is left as it is); the files written are the same."""
  scalar = ocp.type_handlers.ScalarHandler()
  registry = ocp.type_handlers.create_type_handler_registry(
      (int, scalar), (float, scalar), (bytes, scalar), (np.number, scalar),
      (np.ndarray, ocp.type_handlers.NumpyHandler()),
      (jax.Array, ocp.type_handlers.ArrayHandler(
          use_replica_parallel=False, array_metadata_store=array_metadata_store.Store())),
      (str, ocp.type_handlers.StringHandler()))
  handler = ocp.StandardCheckpointHandler()
  # Its PyTree handler with that registry: StandardCheckpointHandler takes no registry itself.
  handler._impl.close()  # pylint: disable=protected-access
  handler._impl = ocp.PyTreeCheckpointHandler(  # pylint: disable=protected-access
      type_handler_registry=registry)
  return handler


def _handlers():
  return {"state": _state_handler(), "meta": ocp.JsonCheckpointHandler()}


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

  def restore_newest_intact(self, target: Mapping[str, Any]
                            ) -> Tuple[Optional[int], Optional[dict], dict, List[Tuple[int, str]]]:
    """(step, state, meta, broken) of the newest step that restores, trying newer steps first;
    `broken` lists the (step, error) of the newer ones that failed. (None, None, {}, broken)
    when no step restores."""
    broken = []
    for step in sorted(self.all_steps(), reverse=True):
      try:
        state, meta = self.restore(step, target)
        return step, state, meta, broken
      except Exception as e:  # orbax/tensorstore/json raise many types for damaged files
        broken.append((step, f"{type(e).__name__}: {_first_line(e)}"))
    return None, None, {}, broken

  def state_metadata(self, step: int) -> dict:
    """Shapes/dtypes of the saved state tree of `step` (orbax array metadata)."""
    meta = self._manager.item_metadata(int(step))["state"]
    return dict(getattr(meta, "tree", meta))

  def reload(self) -> None:
    """Re-reads the step list from disk (after steps were moved aside)."""
    self._manager.reload()

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.close()


def _first_line(error: Exception) -> str:
  text = str(error).strip().splitlines()
  return text[0][:300] if text else ""


def set_aside(directory: str, step: int) -> str:
  """Moves an unreadable step directory out of the checkpoints (nothing is deleted) so a resumed
  run can write that step again; returns where it went."""
  src = os.path.join(directory, str(step))
  dest_dir = os.path.join(os.path.dirname(directory), "broken_checkpoints")
  os.makedirs(dest_dir, exist_ok=True)
  dest = os.path.join(dest_dir, f"{step}-{time.strftime('%Y%m%d-%H%M%S')}")
  shutil.move(src, dest)
  return dest


def _resolve(source: str) -> Tuple[str, Optional[int]]:
  """(checkpoints directory, step or None for latest) for a workdir, a checkpoints dir or a
  step dir."""
  source = os.path.abspath(os.path.expanduser(source))
  if os.path.isfile(source):
    hint = (" a PyTorch checkpoint: import it first with `python tools/import_torch.py "
            f"{source} --config CONFIG --workdir DIR`, then use DIR"
            if source.endswith((".pt", ".pth")) else " expected a directory")
    raise FileNotFoundError(f"checkpoint source {source} is a file:{hint} (a workdir, its "
                            f"{CHECKPOINT_DIR}/ directory or a step directory)")
  if not os.path.isdir(source):
    raise FileNotFoundError(f"checkpoint source {source} does not exist (expected a workdir, "
                            f"its {CHECKPOINT_DIR}/ directory or a step directory)")
  if os.path.isdir(os.path.join(source, CHECKPOINT_DIR)):
    return os.path.join(source, CHECKPOINT_DIR), None
  name = os.path.basename(source)
  if re.fullmatch(r"\d+", name) and os.path.isdir(os.path.join(source, "state")):
    return os.path.dirname(source), int(name)
  return source, None


def _restore_items(source: str, step: Optional[int], keys: Tuple[str, ...],
                   required: Tuple[str, ...]) -> Tuple[dict, int, str, list]:
  """`(the entries `keys` of a step's saved state as NumPy, step, step dir, other steps)`;
  an entry of `required` that the checkpoint lacks is an error."""
  directory, dir_step = _resolve(source)
  manager = Checkpointer(directory, read_only=True)
  steps = sorted(manager.all_steps())
  step = dir_step if step is None else step
  if step is None:
    step = manager.latest_step()
  if step is None or step not in steps:
    manager.close()
    if step is None:
      raise FileNotFoundError(f"no finished checkpoint in {directory} (unfinished "
                              "*.orbax-checkpoint-tmp* directories are ignored)")
    raise FileNotFoundError(f"checkpoint step {step} not found in {directory}; "
                            f"available: {steps}")
  step_dir = os.path.join(directory, str(step))
  state_dir = os.path.join(step_dir, "state")
  others = [s for s in steps if s != step]
  try:
    tree = manager.state_metadata(step)
    missing = [k for k in required if k not in tree]
    if missing:
      raise ValueError(f"no {missing} in the checkpoint (found {sorted(tree)})")
    wanted = {k: tree[k] for k in keys if k in tree}
    target = jax.tree.map(lambda m: np.zeros(m.shape, m.dtype), wanted)
    restore_args = jax.tree.map(lambda m: ocp.RestoreArgs(restore_type=np.ndarray), wanted)
    items = ocp.PyTreeCheckpointer().restore(state_dir, args=ocp.args.PyTreeRestore(
        item=target, restore_args=restore_args, partial_restore=True))
  except Exception as e:  # orbax/tensorstore/json raise many types for damaged files
    hint = (f"; the other steps there are {others}: pass one as "
            f"--config.train.init_from={directory}/<step>" if others else "")
    raise ValueError(f"checkpoint {step_dir} is unreadable ({type(e).__name__}: "
                     f"{_first_line(e)}){hint}") from None
  finally:
    manager.close()
  items = dict(items)
  bad = [jax.tree_util.keystr(k) for k, v in jax.tree_util.tree_leaves_with_path(items)
         if not np.all(np.isfinite(v))]
  if bad:
    raise ValueError(f"checkpoint {step_dir} holds non-finite values (NaN/inf) in {len(bad)} "
                     f"variables, e.g. {', '.join(bad[:3])}: its run diverged; use an earlier "
                     f"step{f' (steps there: {others})' if others else ''}")
  return items, int(step), step_dir, others


def restore_variables(source: str, step: Optional[int] = None) -> Tuple[dict, int]:
  """`({"params", "batch_stats"} as NumPy arrays, step)` from a workdir, a checkpoints
  directory (latest step unless `step`) or a step directory.

  Only the model variables are read (no optimizer state); the result can be placed on any
  device layout.
  """
  variables, step, _, _ = _restore_items(source, step, VARIABLE_COLLECTIONS, ("params",))
  variables.setdefault("batch_stats", {})
  return variables, step


def restore_optimizer(source: str, step: Optional[int] = None) -> Tuple[dict, int]:
  """`(momentum tree as NumPy, step)`: the optimizer state and step counter of a checkpoint,
  to continue its run elsewhere (`train.resume_optimizer`). Refuses a checkpoint that holds
  none: an import of weights only records zero momentum that was never trained."""
  items, step, step_dir, _ = _restore_items(source, step, ("opt_state", "step"),
                                            ("opt_state", "step"))
  meta_path = os.path.join(step_dir, "meta", "metadata")
  meta = {}
  if os.path.exists(meta_path):
    with open(meta_path) as f:
      meta = json.load(f)
  if meta.get("optimizer") == "none":
    raise ValueError(f"checkpoint {step_dir} holds no optimizer state (imported from "
                     f"{meta.get('imported_from', '?')} without one): "
                     "train.resume_optimizer=True cannot continue it; leave it False")
  if "momentum" not in items["opt_state"]:
    raise ValueError(f"checkpoint {step_dir}: opt_state has {sorted(items['opt_state'])}, "
                     "expected 'momentum'")
  return items["opt_state"]["momentum"], int(items["step"])


def select_by_name(restored: Mapping[str, Any], template: Any, where: str,
                   keep_fresh: Sequence[str] = (), kept: Optional[List[str]] = None) -> Any:
  """The entries of `restored` that `template` (a model's own variable tree: arrays or
  ShapeDtypeStructs) names, as NumPy arrays of the template's dtypes.

  Extra entries are ignored: a fixed-path model's variables are a subset of the supernet's
  under the same names, so a supernet checkpoint serves any of its paths. Missing or
  differently shaped entries are an error listing the first of them, except under the
  module names in `keep_fresh`: those leaves keep the template's own value (it must then be
  an array) and their names are appended to `kept`."""
  problems = []

  def take(key_path, leaf):
    node = restored
    fresh_ok = any(getattr(k, "key", None) in keep_fresh for k in key_path)
    for k in key_path:
      name = getattr(k, "key", getattr(k, "name", k))
      if not hasattr(node, "keys") or name not in node:
        if fresh_ok:
          return _keep(key_path, leaf, kept)
        problems.append(f"variable {_slashed(key_path)} is missing from the checkpoint")
        return None
      node = node[name]
    if tuple(np.shape(node)) != tuple(leaf.shape):
      if fresh_ok:
        return _keep(key_path, leaf, kept)
      problems.append(f"variable {_slashed(key_path)} has shape {tuple(np.shape(node))}, the "
                      f"model expects {tuple(leaf.shape)}")
      return None
    return np.asarray(node).astype(leaf.dtype)

  selected = jax.tree_util.tree_map_with_path(take, template)
  if problems:
    raise ValueError(f"{where}: the weights do not fit this model ({len(problems)} problems; "
                     "do model.* and model.path match the trained network?): "
                     + "; ".join(problems[:8]))
  return selected


def _keep(key_path, leaf, kept: Optional[List[str]]):
  if kept is not None:
    kept.append(_slashed(key_path))
  return leaf


def _slashed(key_path) -> str:
  return "/".join(str(getattr(k, "key", getattr(k, "name", k))) for k in key_path)


# -- The config that owns a workdir ------------------------------------------------------

def to_jsonable(config) -> dict:
  if hasattr(config, "to_json_best_effort"):
    return json.loads(config.to_json_best_effort())
  return json.loads(json.dumps(config, default=str))


def read_config(workdir: str) -> Optional[dict]:
  """WORKDIR/config.json as a dict, None when there is none; an unreadable file is an error
  naming it."""
  path = os.path.join(os.path.abspath(workdir), CONFIG_FILE)
  if not os.path.exists(path):
    return None
  try:
    with open(path) as f:
      data = json.load(f)
  except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
    raise ValueError(f"{path} is unreadable ({e}); it records the config of the run that owns "
                     "this workdir: restore it or use another --workdir") from None
  if not isinstance(data, dict):
    raise ValueError(f"{path}: expected a JSON object (a run's config), got "
                     f"{type(data).__name__}")
  return data


def source_workdir(source: str) -> str:
  """The workdir a checkpoint source (workdir, checkpoints dir or step dir) belongs to."""
  directory, _ = _resolve(source)
  if os.path.basename(directory) == CHECKPOINT_DIR:
    return os.path.dirname(directory)
  return directory


def trained_space(source: str) -> Optional[Tuple[int, ...]]:
  """The search space (choice_max_num) a supernet at `source` was trained on, from its
  config.json; None when `source` is not a supernet run or records none."""
  saved = read_config(source_workdir(source))
  model = (saved or {}).get("model", {})
  if not model or model.get("path") or not model.get("choice_max_num"):
    return None
  return tuple(int(m) for m in model["choice_max_num"])


def write_config(workdir: str, config) -> str:
  """Writes WORKDIR/config.json (atomically: a crash never leaves half a file)."""
  return io.write_json(os.path.join(os.path.abspath(workdir), CONFIG_FILE),
                       to_jsonable(config), indent=2, sort_keys=True)

