"""An entry that gait_jax's re-execution adds to a colon-separated environment variable
(glibc's tunable to GLIBC_TUNABLES, the block cache to LD_PRELOAD), marked as its own in a
variable of its own, so that it can be taken out again for a process that must run as the user
launched it (the side-by-side benchmark's reference)."""
from __future__ import annotations

from typing import Mapping

ADDED = "added"  # the marker's value: the entry is ours, not the user's


def add(env: Mapping[str, str], var: str, entry: str, marker: str) -> dict:
  """`env` with `entry` after the user's own entries of `var`, and `marker` set to ADDED."""
  out = dict(env)
  out[var] = ":".join(filter(None, (env.get(var), entry)))
  out[marker] = ADDED
  return out


def remove(env: Mapping[str, str], var: str, entry: str, marker: str) -> dict:
  """`env` without what `add` put there; as it is where `marker` does not say ADDED (the
  user's own setting)."""
  out = dict(env)
  if out.get(marker) == ADDED:
    del out[marker]
    kept = [e for e in out.get(var, "").split(":") if e and e != entry]
    if kept:
      out[var] = ":".join(kept)
    else:
      out.pop(var, None)
  return out
