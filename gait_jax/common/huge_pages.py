"""Transparent huge pages for XLA's CPU buffers: one environment setting, made before JAX starts.

XLA:CPU takes every buffer of an execution (its outputs and one temp block: 1.1 GiB a train
step at the GREW widths) from malloc, and glibc serves blocks that large with a fresh mmap,
returned at free. So every step faults its whole working set back in, 4 KiB at a time (300 k
page faults a step, measured), where the kernel only hands out 2 MiB pages to memory that asked
for them (`/sys/kernel/mm/transparent_hugepage/enabled` = madvise, the common default). glibc
asks for them when its tunable `glibc.malloc.hugetlb=1` is set (glibc >= 2.35) — read once, at
process start, hence the re-execution of the command with it set — the same re-execution that
preloads the block cache (block_cache.py: those blocks kept mapped between steps instead). The
numbers computed do not change; only how the memory is mapped.

`GAIT_JAX_HUGE_PAGES=0` turns it off. Where the kernel never gives huge pages, always gives
them, or the C library is not a glibc that knows the tunable, nothing is done.

Embedding is the exception: at the tiny widths it ran 1.3–1.6× slower on 2 MiB pages than on
4 KiB ones, at the GREW widths no faster (training 1.1–1.2× faster on them toggled in one
process, a few per cent across fresh processes; docs/benchmarks.md, Intel, 2026-12-06 — a VM
whose freed 2 MiB blocks go back to the host, not yet measured elsewhere), so
`paused()` turns the process's transparent huge pages off while a block runs
(`prctl(PR_SET_THP_DISABLE)`) and on again after.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import sys
from typing import Mapping, Optional

from gait_jax.common import block_cache, env_entries

ENV_VAR = "GAIT_JAX_HUGE_PAGES"  # "0": off; env_entries.ADDED: the tunable set by the re-execution
TUNABLE = "glibc.malloc.hugetlb=1"
THP_SETTING = "/sys/kernel/mm/transparent_hugepage/enabled"
_PR_SET_THP_DISABLE, _PR_GET_THP_DISABLE = 41, 42  # <linux/prctl.h>, Linux >= 3.15


def _glibc_version() -> Optional[tuple]:
  try:
    name, version = os.confstr("CS_GNU_LIBC_VERSION").split()
  except (AttributeError, ValueError, OSError):
    return None
  return tuple(int(v) for v in version.split(".")[:2]) if name == "glibc" else None


def _thp_mode() -> str:
  """The kernel's transparent-huge-page mode: always, madvise, never ("" where unknown)."""
  try:
    with open(THP_SETTING) as f:
      text = f.read()
  except OSError:
    return ""
  return text[text.index("[") + 1:text.index("]")] if "[" in text else ""


def wanted(env: Mapping[str, str], glibc: Optional[tuple], thp: str) -> bool:
  """Whether to set the tunable: asked-for huge pages would be given (madvise mode), glibc knows
  the tunable, the user has not turned it off, and no glibc.malloc.hugetlb is set already."""
  return (env.get(ENV_VAR, "1") not in ("0", env_entries.ADDED) and thp == "madvise"
          and glibc is not None and glibc >= (2, 35)
          and "glibc.malloc.hugetlb" not in env.get("GLIBC_TUNABLES", ""))


def ensure() -> None:
  """Re-executes this command with glibc's huge-page tunable where `wanted` says so and with the
  block cache preloaded where `block_cache.wanted` says so; returns where neither applies. Call
  first thing in a command's `__main__`, before JAX is imported."""
  if sys.platform != "linux" or not sys.executable:
    return
  env = dict(os.environ)
  if wanted(env, _glibc_version(), _thp_mode()):
    env = env_entries.add(env, "GLIBC_TUNABLES", TUNABLE, ENV_VAR)
  if block_cache.wanted(env):
    env = block_cache.preloading(env)
  if env == dict(os.environ):
    return
  sys.stdout.flush()
  sys.stderr.flush()
  try:
    os.execve(sys.executable, [sys.executable] + sys.orig_argv[1:], env)
  except OSError:
    pass  # could not re-execute: run on as launched (only slower)


def active() -> bool:
  """Whether this process asks for huge pages (the tunable is set, ours or the user's, and the
  kernel gives them)."""
  return (TUNABLE in os.environ.get("GLIBC_TUNABLES", "").split(":")
          and _thp_mode() in ("madvise", "always"))


def user_environment() -> dict:
  """This process's environment without what `ensure` added: how the user launched it."""
  return env_entries.remove(block_cache.without(os.environ), "GLIBC_TUNABLES", TUNABLE, ENV_VAR)


def _prctl(option: int, value: int = 0) -> int:
  """prctl(2) of this process (-1 where it fails or there is no C library to call)."""
  try:
    args = (ctypes.c_ulong(value),) + (ctypes.c_ulong(0),) * 3  # variadic: pass full widths
    return ctypes.CDLL(None, use_errno=True).prctl(ctypes.c_int(option), *args)
  except (OSError, AttributeError):
    return -1


def thp_disabled() -> bool:
  """Whether this process's transparent huge pages are off (`PR_GET_THP_DISABLE`)."""
  return _prctl(_PR_GET_THP_DISABLE) == 1


def pausable() -> bool:
  """Whether `paused()` can turn them off now: the kernel answers the prctl and they are on."""
  return sys.platform == "linux" and _prctl(_PR_GET_THP_DISABLE) == 0


@contextlib.contextmanager
def paused():
  """4 KiB pages for what runs inside (a decorator too), where this process asks for huge pages
  (`active()`); the whole process's, restored on exit. Nested or already off: left as it is."""
  if not active() or not pausable():
    yield
    return
  turned_off = _prctl(_PR_SET_THP_DISABLE, 1) == 0
  try:
    yield
  finally:
    if turned_off:
      _prctl(_PR_SET_THP_DISABLE, 0)
