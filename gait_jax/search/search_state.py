"""The search's state file: every evaluated candidate with its fitness, saved after each one,
so a rerun of the same command replays the search and evaluates nothing twice.

A recorded fitness is reused only under the same fingerprint (supernet, data, held-out ids,
fitness settings); the previous state is kept as `<file>.bak`, the fallback when the newest is
damaged (a write cut short by a full disk, say).
"""
from __future__ import annotations

import json
import os
from typing import Dict, List

from absl import logging

from gait_jax.common import io
from gait_jax.search.evolution import Result

STATE_FILE = "state.json"


def _parse_state(path: str) -> dict:
  """The state file's content, checked; ValueError saying what is wrong with it."""
  try:
    with open(path) as f:
      state = json.load(f)
    results = state["results"]
    known = {}
    for r in results:
      info = {k: v for k, v in r.items() if k not in ("path", "fitness", "generation")}
      path_t = tuple(int(v) for v in r["path"])
      known[path_t] = Result(path_t, float(r["fitness"]), int(r["generation"]), info)
    return {"fingerprint": state["fingerprint"], "known": known}
  except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
    raise ValueError(f"{type(e).__name__}: {e}") from None


def _differences(saved: dict, now: dict) -> List[str]:
  """What differs between a recorded fingerprint and the current one: changed keys first,
  then the keys the record lacks (a state written by an older version)."""
  saved = saved if isinstance(saved, dict) else {}
  changed = [f"{k}: saved {saved[k]!r}, now {now.get(k)!r}" for k in sorted(saved)
             if saved.get(k) != now.get(k)]
  missing = sorted(set(now) - set(saved))
  return changed + ([f"not recorded: {', '.join(missing)}"] if missing else [])


def load_state(path: str, fingerprint: dict) -> Dict[tuple, Result]:
  """Recorded results of an earlier run of the same search (same supernet, data and fitness
  settings). A damaged state file falls back to its backup (the state before the last
  candidate); settings that changed refuse the resume, naming them."""
  if not os.path.exists(path) and not os.path.exists(path + ".bak"):
    return {}
  try:
    state = _parse_state(path)
  except ValueError as e:
    try:
      state = _parse_state(path + ".bak")
    except ValueError:
      raise SystemExit(
          f"{path} is unreadable ({e}) and so is its backup {path}.bak. The recorded fitness "
          f"values cannot be reused: move both away (mv {path} {path}.broken) to start the "
          "search afresh, or use another --workdir") from None
    logging.warning("%s is unreadable (%s); resuming from its backup %s.bak (at most the last "
                    "candidate is evaluated again)", path, e, path)
  diff = _differences(state["fingerprint"], fingerprint)
  if diff:
    raise SystemExit(
        f"{path} was recorded with other settings, so its fitness values do not apply: "
        + "; ".join(diff) + ". Use another --workdir, or move the file away to start afresh")
  return state["known"]


def save_state(path: str, fingerprint: dict, results: List[Result]) -> None:
  """Atomic write; the previous state stays as `<path>.bak` (a fallback if this one is hurt)."""
  if os.path.exists(path):
    os.replace(path, path + ".bak")
  io.write_json(path, {"fingerprint": fingerprint, "results": [r.to_json() for r in results]})
