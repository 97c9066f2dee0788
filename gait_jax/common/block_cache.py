"""XLA's large CPU buffers kept mapped between executions: a library preloaded into the commands.

XLA:CPU takes each execution's temp block (150 MB a tiny train step, 1 GB at the GREW widths)
from posix_memalign, and glibc maps every block of 32 MiB or more afresh and unmaps it at free,
so every step faults its working set in and zeroes it again; on a VM whose freed memory goes back
to the host, it comes from the host (docs/benchmarks.md). `block_cache.c`, built by the set-up
(`tools/build_block_cache.sh`) and preloaded by `huge_pages.ensure`'s re-execution, keeps such
blocks mapped for the next request of about their size (at most 8 kept, a quarter of the
machine's memory). Allocation, not arithmetic: the numbers computed do not change.

`GAIT_JAX_BLOCK_CACHE=0` turns it off. Where it was not built (not Linux with glibc, no C
compiler), the commands run without it.
"""
from __future__ import annotations

import ctypes
from pathlib import Path
from typing import Mapping, Optional

from gait_jax.common import env_entries

ENV_VAR = "GAIT_JAX_BLOCK_CACHE"  # "0": off; env_entries.ADDED: preloaded by the re-execution
LIB_PATH = Path(__file__).with_name("_block_cache.so")
_STATS = "gait_jax_block_cache_stats"


def wanted(env: Mapping[str, str], lib: Path = LIB_PATH) -> bool:
  """Whether to preload it: built, not turned off by the user, not preloaded already, and at a
  path LD_PRELOAD can name (it splits on spaces and colons)."""
  return (env.get(ENV_VAR, "1") not in ("0", env_entries.ADDED) and lib.is_file()
          and not set(str(lib)) & set(" :\t")
          and str(lib) not in env.get("LD_PRELOAD", "").split(":"))


def preloading(env: Mapping[str, str], lib: Path = LIB_PATH) -> dict:
  """`env` with the library added to LD_PRELOAD (after the user's own) and marked as ours."""
  return env_entries.add(env, "LD_PRELOAD", str(lib), ENV_VAR)


def without(env: Mapping[str, str], lib: Path = LIB_PATH) -> dict:
  """`env` without what `preloading` added; a preload the user set stays."""
  return env_entries.remove(env, "LD_PRELOAD", str(lib), ENV_VAR)


def stats() -> Optional[dict]:
  """What it did in this process — blocks mapped, requests served by a kept block, blocks
  unmapped, bytes kept now — or None where it is not loaded."""
  try:
    fn = getattr(ctypes.CDLL(None), _STATS)
  except (OSError, AttributeError):
    return None
  out = (ctypes.c_uint64 * 4)()
  fn(out)
  return dict(zip(("mapped", "reused", "unmapped", "kept_bytes"), (int(v) for v in out)))


def active() -> bool:
  """Whether this process runs with it."""
  return stats() is not None
