"""One writing run per workdir: an exclusive lock on WORKDIR/.lock while train or search runs.

Two runs writing the same checkpoints or search state would overwrite each other's files (orbax
then fails with an obscure NOT_FOUND and leaves a temporary directory behind). The lock is an
OS-level `flock` on an open file: the kernel releases it when the process ends, however it ends
(kill -9 included), so a stale lock file never blocks the next run. The file holds the pid of
the last holder, to name it in the refusal.
"""
from __future__ import annotations

import contextlib
import fcntl
import os

import jax

LOCK_FILE = ".lock"


class WorkdirInUse(SystemExit):
  """Another process holds the workdir's lock."""


def _read_holder(path: str) -> str:
  try:
    with open(path) as f:
      return f.read().strip() or "unknown"
  except OSError:
    return "unknown"


@contextlib.contextmanager
def hold(workdir: str, what: str):
  """Holds WORKDIR/.lock for the duration of the block; refuses when another run holds it.

  Only process 0 of a multi-process run takes it (all processes share one workdir)."""
  if jax.process_index() > 0:
    yield
    return
  workdir = os.path.abspath(workdir)
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, LOCK_FILE)
  fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
  try:
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      raise WorkdirInUse(f"workdir {workdir} is in use by another gait_jax run (pid "
                         f"{_read_holder(path)}); wait for it to end or use another "
                         "--workdir") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()} ({what})\n".encode())
    os.fsync(fd)
    yield
  finally:
    os.close(fd)  # closing the descriptor releases the lock
