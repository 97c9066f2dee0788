"""Training identities held out for the search fitness.

Supernet training leaves these ids out too, so a candidate's fitness is measured on people the
supernet never saw, like the benchmark's test set but without touching it.
"""
from __future__ import annotations

import json
import os
from typing import List, Optional, Sequence, Tuple

import numpy as np
from absl import logging

from gait_jax.common import checkpoint
from gait_jax.common import io

DEFAULT_FRACTION = 0.1
MIN_IDS = 2
HOLDOUT_FILE = "holdout.json"  # in a supernet's workdir: the ids it trained on / held out


def split_train_ids(train_ids: Sequence[str], val_spec: str, seed: int
                    ) -> Tuple[List[str], List[str]]:
  """(ids to train on, held-out ids), both in the original order.

  `val_spec` is `search.val_ids`: "" (10 %, at least 2), "N" (N ids), or "a,b,c" (these ids).
  The choice depends only on the id list, `val_spec` and the seed.
  """
  ids = list(train_ids)
  spec = str(val_spec).strip()
  if spec and not spec.isdigit():
    wanted = [v.strip() for v in spec.split(",") if v.strip()]
    missing = sorted(set(wanted) - set(ids))
    if missing:
      raise ValueError(f"search.val_ids names ids that are not training ids: {missing[:5]}"
                       f"{' ...' if len(missing) > 5 else ''}")
    held = set(wanted)
    if len(held) < MIN_IDS:
      raise ValueError(f"search.val_ids={spec!r} names {len(held)} id: with fewer than "
                       f"{MIN_IDS} held-out ids every probe's nearest id is the right one "
                       f"(100 % whatever the network); name at least {MIN_IDS}")
  else:
    count = int(spec) if spec else max(MIN_IDS, int(round(DEFAULT_FRACTION * len(ids))))
    if not MIN_IDS <= count < len(ids):
      asked = (f"search.val_ids={spec}" if spec else
               f"search.val_ids=\"\" (the default: 10 %, at least {MIN_IDS}, = {count} ids)")
      raise ValueError(f"{asked}: need between {MIN_IDS} and {len(ids) - 1} held-out ids out "
                       f"of {len(ids)} training ids (with fewer than {MIN_IDS} the fitness is "
                       "100 % whatever the network)")
    order = np.random.default_rng(seed).permutation(len(ids))
    held = {ids[i] for i in order[:count]}
  return [i for i in ids if i not in held], [i for i in ids if i in held]


def _read(workdir: str) -> Optional[dict]:
  path = os.path.join(workdir, HOLDOUT_FILE)
  if not os.path.exists(path):
    return None
  try:
    with open(path) as f:
      data = json.load(f)
    data["train_ids"] = [str(i) for i in data["train_ids"]]
    data["held_out_ids"] = [str(i) for i in data["held_out_ids"]]
  except (OSError, ValueError, KeyError, TypeError) as e:
    raise ValueError(f"{path} is unreadable ({type(e).__name__}: {e}); it records which ids "
                     "the supernet trained on: restore it from a backup") from None
  return data


def read_holdout(workdir: str) -> Optional[Tuple[List[str], List[str]]]:
  """(train ids, held-out ids) recorded by the run in `workdir`, or None. A workdir that
  trained on every training id (an imported reference checkpoint) holds no id out."""
  data = _read(workdir)
  if data is None:
    return None
  return data["train_ids"], data["held_out_ids"]


def trained_on_all(workdir: str) -> str:
  """Why `workdir`'s weights saw every training id ("" when its holdout.json says nothing)."""
  data = _read(workdir) or {}
  return str(data.get("trained_on_all", ""))


def record_trained_on_all(workdir: str, why: str) -> None:
  """Records that `workdir`'s weights trained on every TRAIN_SET id (nothing held out)."""
  io.write_json(os.path.join(workdir, HOLDOUT_FILE),
                {"train_ids": [], "held_out_ids": [], "trained_on_all": why})


def supernet_split(config, train_ids: Sequence[str], workdir: str, resumed: bool,
                   fixed_path: bool = False) -> Tuple[List[str], List[str]]:
  """The run's split (a supernet, or a `fixed_path` run validated on held-out ids). A resumed
  run keeps the split it recorded (another seed or search.val_ids would otherwise train on ids
  it held out so far); a new run computes it from the config and records it in
  WORKDIR/holdout.json. A resumed fixed-path run without a recorded split trained on every id:
  refused, as is any run resumed in a workdir recorded as trained on every id."""
  recorded = read_holdout(workdir) if resumed else None
  if resumed and (recorded is None or trained_on_all(workdir)):
    why = trained_on_all(workdir) or (f"its checkpoints come from a run that held no id out: "
                                      f"no {HOLDOUT_FILE}")
    if recorded is not None or fixed_path:
      raise ValueError(f"{workdir}: its weights have seen every training id ({why}), so no "
                       "id can be held out "
                       "now: a validation or fitness on them would be false. Train in a new "
                       "--workdir (train.init_from= a model of other ids is fine)")
  if recorded is not None:
    if split_train_ids(train_ids, config.search.val_ids, config.seed) != recorded:
      logging.warning("resuming with the split recorded in %s, not the one this config's seed "
                      "/ search.val_ids give", os.path.join(workdir, HOLDOUT_FILE))
    return recorded
  train, held = split_train_ids(train_ids, config.search.val_ids, config.seed)
  import jax  # pylint: disable=g-import-not-at-top
  if jax.process_index() == 0:
    io.write_json(os.path.join(workdir, HOLDOUT_FILE), {"train_ids": train, "held_out_ids": held})
  return train, held


def supernet_train_ids(source_workdir: str, all_train_ids: Sequence[str]
                       ) -> Optional[Tuple[List[str], List[str]]]:
  """(train ids, held-out ids) of the supernet in `source_workdir`: its holdout.json, else the
  split its own config.json gives (runs made before the file existed), else None."""
  if trained_on_all(source_workdir):
    return list(all_train_ids), []
  recorded = read_holdout(source_workdir)
  if recorded is not None:
    return recorded
  saved = checkpoint.read_config(source_workdir)
  if saved is None:
    return None
  return split_train_ids(all_train_ids, saved.get("search", {}).get("val_ids", ""),
                         int(saved.get("seed", 0)))


def search_split(config, all_train_ids: Sequence[str], source_workdir: str
                 ) -> Tuple[List[str], List[str]]:
  """(supernet's train ids, ids to score on) for a search over the supernet in
  `source_workdir`. The held-out ids are the supernet's own; an explicit id list in
  search.val_ids is accepted only when the supernet never trained on any of them."""
  supernet = supernet_train_ids(source_workdir, all_train_ids)
  mine = split_train_ids(all_train_ids, config.search.val_ids, config.seed)
  if supernet is None:
    logging.warning("%s records no training split (no holdout.json or config.json): cannot "
                    "check that the held-out ids were unseen by the supernet", source_workdir)
    return mine
  trained, held = supernet
  if not held:
    raise ValueError(f"the supernet in {source_workdir} trained on every training id "
                     f"({trained_on_all(source_workdir) or 'it records no held-out id'}): a "
                     "fitness on its training ids would measure memorisation, not a path. "
                     "Search a supernet gait_jax trained (it holds search.val_ids out)")
  spec = config.search.val_ids.strip()
  if spec and not spec.isdigit():
    overlap = sorted(set(mine[1]) & set(trained))
    if overlap:
      raise ValueError(f"search.val_ids names {len(overlap)} ids the supernet in "
                       f"{source_workdir} trained on ({', '.join(overlap[:5])}"
                       f"{' ...' if len(overlap) > 5 else ''}): fitness on them would favour "
                       "memorisation; choose ids among its held-out ones or leave "
                       "search.val_ids empty")
    return trained, mine[1]
  if mine[1] != held:
    logging.info("scoring on the %d ids the supernet held out (recorded in %s), not the split "
                 "this config's seed / search.val_ids would give", len(held), source_workdir)
  return trained, held


def _same_data(saved: dict, config) -> bool:
  data = saved.get("data", {}) if isinstance(saved, dict) else {}
  same = lambda a, b: bool(a) and bool(b) and os.path.realpath(str(a)) == os.path.realpath(str(b))  # noqa: E731
  return (same(data.get("root"), config.data.root)
          and data.get("format", "pkl") == config.data.format
          and (same(data.get("partition"), config.data.partition)
               or not (data.get("partition") or config.data.partition)))


def check_unseen(held_out: Sequence[str], init_from: str, config,
                 all_train_ids: Sequence[str]) -> None:
  """Refuses to hold out `held_out` ids (for a validation, or a supernet's search fitness) when
  the weights of `init_from` trained on some of them (the same data root and partition, and
  its record says it saw them)."""
  source = checkpoint.source_workdir(init_from)
  saved = checkpoint.read_config(source)
  if saved is None or not _same_data(saved, config):
    return
  if trained_on_all(source) or read_holdout(source) is not None or not (
      saved.get("model", {}).get("path")):
    trained, _ = supernet_train_ids(source, all_train_ids)
  else:  # a fixed path trained without holding ids out: every training id
    trained = list(all_train_ids)
  seen = sorted(set(held_out) & set(trained))
  if seen:
    raise ValueError(f"train.init_from={init_from} trained on {len(seen)} of the ids this run "
                     f"would hold out ({', '.join(seen[:5])}{' ...' if len(seen) > 5 else ''}): "
                     "a validation or a search fitness on them would be false. Hold out ids "
                     "it never saw (search.val_ids) or start from a model trained on other "
                     "data")
