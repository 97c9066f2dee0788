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
  else:
    count = int(spec) if spec else max(MIN_IDS, int(round(DEFAULT_FRACTION * len(ids))))
    if not 1 <= count < len(ids):
      asked = (f"search.val_ids={spec}" if spec else
               f"search.val_ids=\"\" (the default: 10 %, at least {MIN_IDS}, = {count} ids)")
      raise ValueError(f"{asked}: need between 1 and {len(ids) - 1} held-out ids out of "
                       f"{len(ids)} training ids")
    order = np.random.default_rng(seed).permutation(len(ids))
    held = {ids[i] for i in order[:count]}
  return [i for i in ids if i not in held], [i for i in ids if i in held]


def read_holdout(workdir: str) -> Optional[Tuple[List[str], List[str]]]:
  """(train ids, held-out ids) recorded by the supernet run in `workdir`, or None."""
  path = os.path.join(workdir, HOLDOUT_FILE)
  if not os.path.exists(path):
    return None
  try:
    with open(path) as f:
      data = json.load(f)
    train, held = [str(i) for i in data["train_ids"]], [str(i) for i in data["held_out_ids"]]
  except (OSError, ValueError, KeyError, TypeError) as e:
    raise ValueError(f"{path} is unreadable ({type(e).__name__}: {e}); it records which ids "
                     "the supernet trained on: restore it from a backup") from None
  return train, held


def supernet_split(config, train_ids: Sequence[str], workdir: str, resumed: bool
                   ) -> Tuple[List[str], List[str]]:
  """The supernet run's split. A resumed run keeps the split it recorded (another seed or
  search.val_ids would otherwise train on ids it held out so far); a new run computes it from
  the config and records it in WORKDIR/holdout.json."""
  recorded = read_holdout(workdir) if resumed else None
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
  spec = str(config.search.val_ids).strip()
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
