"""Atomic file writes: a crash or a kill never leaves half a file where a whole one was.

Each writer fills a temporary file in the destination's directory and renames it over the
destination (`os.replace` is atomic on POSIX filesystems), so readers see the old content or
the new one, never a mix.
"""
from __future__ import annotations

import contextlib
import json
import os
from typing import Any, Dict

import numpy as np


@contextlib.contextmanager
def atomic_open(path: str, mode: str = "w"):
  """Yields a file opened for writing; on success it replaces `path`, on error it is removed."""
  path = os.path.abspath(path)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  tmp = f"{path}.tmp{os.getpid()}"
  try:
    with open(tmp, mode) as f:
      yield f
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def write_json(path: str, obj: Any, *, indent: int = 1, sort_keys: bool = False) -> str:
  with atomic_open(path) as f:
    json.dump(obj, f, indent=indent, sort_keys=sort_keys)
    f.write("\n")
  return path


def write_npz(path: str, arrays: Dict[str, np.ndarray]) -> str:
  with atomic_open(path, "wb") as f:
    np.savez(f, **arrays)
  return path
