"""The block cache: XLA's large CPU buffers kept mapped between calls, everything else glibc's.

The library's checks run in a child process with it preloaded, as the commands run."""
import json
import os
import subprocess
import sys

import pytest

from gait_jax.common import block_cache
from helpers import page_faults

BUILT = block_cache.LIB_PATH.is_file()
_NEEDS_LIB = pytest.mark.skipif(not BUILT, reason=f"{block_cache.LIB_PATH} not built (`bash "
                                "tools/build_block_cache.sh` builds it where it can)")
MIB = 2**20

HEADER = """
import ctypes, json, threading
lib = ctypes.CDLL(None)
lib.posix_memalign.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_size_t, ctypes.c_size_t]
lib.aligned_alloc.restype = lib.realloc.restype = ctypes.c_void_p
lib.aligned_alloc.argtypes = [ctypes.c_size_t, ctypes.c_size_t]
lib.realloc.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
lib.free.argtypes = [ctypes.c_void_p]
lib.malloc_usable_size.restype = ctypes.c_size_t
lib.malloc_usable_size.argtypes = [ctypes.c_void_p]
MIB = 2**20
def stats():
  out = (ctypes.c_uint64 * 4)(); lib.gait_jax_block_cache_stats(out); return list(out)
def memalign(n, alignment=64):
  p = ctypes.c_void_p(); rc = lib.posix_memalign(ctypes.byref(p), alignment, n)
  assert rc == 0, rc
  return p.value
"""


def _child(body: str, preload: bool = True, env_extra=None) -> dict:
  env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", block_cache.ENV_VAR)}
  if preload:
    env["LD_PRELOAD"] = str(block_cache.LIB_PATH)
  env.update(env_extra or {})
  proc = subprocess.run([sys.executable, "-c", HEADER + body], env=env, capture_output=True,
                        text=True)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "ld.so" not in proc.stderr, proc.stderr  # the loader found nothing to complain about
  return json.loads(proc.stdout.strip().splitlines()[-1])


@_NEEDS_LIB
def test_a_freed_large_block_serves_the_next_request_of_about_its_size():
  got = _child("""
a = memalign(100 * MIB); ctypes.memset(a, 7, 100 * MIB); lib.free(a)
b = memalign(99 * MIB)            # within an eighth of the kept block: the same block
lib.free(b)
c = memalign(40 * MIB)            # far smaller: a block of its own, the kept one left alone
d = lib.aligned_alloc(4096, 64 * MIB)
small = memalign(1 * MIB)         # under 32 MiB: glibc's
wide = memalign(40 * MIB, 4 * MIB)  # alignment beyond a huge page: glibc's
lib.malloc.restype = ctypes.c_void_p
lib.malloc.argtypes = [ctypes.c_size_t]
m = lib.malloc(33 * MIB)          # operator new's route: ours too
absurd = [lib.malloc(2**64 - 4096), lib.aligned_alloc(64, 2**63)]  # refused, as glibc refuses
p = ctypes.c_void_p()
absurd.append(lib.posix_memalign(ctypes.byref(p), 64, 2**64 - 1))
print(json.dumps({"a": a, "b": b, "c": c, "d": d, "m": m, "small": small, "wide": wide,
                  "absurd": absurd,
                  "usable": lib.malloc_usable_size(c), "stats": stats()}))
""")
  assert got["b"] == got["a"]
  assert got["c"] != got["a"] and got["d"] not in (got["a"], got["c"])
  assert all(got[k] % (2 * MIB) == 0 for k in "cdm") and len({got[k] for k in "acdm"}) == 4
  assert got["small"] % 64 == 0 and got["wide"] % (4 * MIB) == 0
  assert got["usable"] >= 40 * MIB
  assert got["absurd"] == [None, None, 12]  # NULL, NULL, ENOMEM
  mapped, reused, unmapped, kept = got["stats"]
  # a's block (mapped, reused for b, kept again), c's, d's and m's (in use)
  assert (mapped, reused, unmapped, kept) == (4, 1, 0, 100 * MIB), got["stats"]


@_NEEDS_LIB
def test_realloc_moves_a_block_out_with_its_contents_and_frees_keep_at_most_eight():
  got = _child("""
a = memalign(48 * MIB); ctypes.memset(a, 5, 48 * MIB); ctypes.memset(a + 48 * MIB - 1, 9, 1)
b = lib.realloc(a, 48 * MIB)
moved = ctypes.string_at(b + 48 * MIB - 2, 2)
lib.free(b)
after_realloc = stats()
blocks = [memalign((34 + 4 * i) * MIB) for i in range(12)]  # sizes too far apart to share
for p in blocks:
  lib.free(p)
print(json.dumps({"moved": list(moved), "after_realloc": after_realloc, "end": stats()}))
""")
  assert got["moved"] == [5, 9]
  assert got["after_realloc"][:2] == [1, 0] and got["after_realloc"][3] == 48 * MIB
  mapped, reused, unmapped, kept = got["end"]
  # The realloc's 48 MiB block served the 42 MiB request (7/8 of 48), 11 blocks mapped; freed
  # in order, the four oldest (34, 38, 48, 46 MiB) unmapped beyond 8 kept: 50..78 MiB stay.
  assert (mapped, reused, unmapped) == (12, 1, 4), got["end"]
  assert kept == sum(range(50, 79, 4)) * MIB


THREADS = """
errors = []
def work(seed):
  try:
    for i in range(ROUNDS):
      n = SIZE(seed, i) * MIB
      p = memalign(n)
      ctypes.memset(p, seed, 4096); ctypes.memset(p + n - 4096, seed, 4096)
      time.sleep(0)  # let the other threads take and give back blocks meanwhile
      # Still this thread's alone: no other thread was handed the same block.
      assert ctypes.string_at(p, 1)[0] == ctypes.string_at(p + n - 1, 1)[0] == seed
      lib.free(p)
  except Exception as e:
    errors.append(repr(e))
threads = [threading.Thread(target=work, args=(s + 1,)) for s in range(4)]
[t.start() for t in threads]; [t.join() for t in threads]
print(json.dumps({"errors": errors, "stats": stats()}))
"""


@_NEEDS_LIB
@pytest.mark.parametrize("sizes", ["same", "spread"])
def test_threads_allocating_and_freeing_at_once_each_get_a_block_of_their_own(sizes):
  # same: 40 MiB each time, so each thread's request finds a kept block unless the other
  # threads hold every block: at most 4 are ever mapped, whatever the scheduling. spread:
  # 32-536 MiB, blocks unmapped often.
  size = "40" if sizes == "same" else "32 + 8 * ((seed * 5 + i * 3) % 64)"
  got = _child(f"import time\nROUNDS = 200\nSIZE = lambda seed, i: {size}\n" + THREADS)
  assert got["errors"] == []
  mapped, reused, unmapped, _ = got["stats"]
  assert mapped + reused == 800 and mapped - unmapped <= 8, got["stats"]  # all ours, 8 kept
  if sizes == "same":
    assert mapped <= 4 and unmapped == 0, got["stats"]
  else:
    assert unmapped > 100, got["stats"]


@_NEEDS_LIB
def test_xla_computes_the_same_with_it_and_faults_nothing_in_after_the_first_calls():
  plain = page_faults.measure(GLIBC_TUNABLES="", LD_PRELOAD=None)  # 4 KiB pages either way
  cached = page_faults.measure(GLIBC_TUNABLES="", LD_PRELOAD=str(block_cache.LIB_PATH))
  assert plain["block_cache"] is None and cached["block_cache"][1] > 0  # XLA's blocks reused
  assert (cached["digest"], cached["first"]) == (plain["digest"], plain["first"])
  pages = page_faults.OUTPUT_BYTES / 4096
  # Without it every call faults its 64 MiB output in afresh; with it, none.
  assert plain["faults"] > 0.9 * pages and cached["faults"] < 0.02 * pages, (plain, cached)


def test_the_environment_gets_the_preload_once_and_gives_back_only_its_own(tmp_path):
  lib = tmp_path / "_block_cache.so"
  assert not block_cache.wanted({}, lib)  # not built
  lib.write_bytes(b"")
  assert block_cache.wanted({}, lib) and block_cache.wanted({"LD_PRELOAD": "/x/user.so"}, lib)
  for env in ({block_cache.ENV_VAR: "0"}, {block_cache.ENV_VAR: "added"},
              {"LD_PRELOAD": f"/x/user.so:{lib}"}):
    assert not block_cache.wanted(env, lib), env
  spaced = tmp_path / "a b" / "_block_cache.so"
  spaced.parent.mkdir()
  spaced.write_bytes(b"")
  assert not block_cache.wanted({}, spaced)  # LD_PRELOAD could not name it
  env = block_cache.preloading({"LD_PRELOAD": "/x/user.so", "PATH": "/bin"}, lib)
  assert env["LD_PRELOAD"] == f"/x/user.so:{lib}" and env[block_cache.ENV_VAR] == "added"
  assert not block_cache.wanted(env, lib)
  assert block_cache.without(env, lib) == {"LD_PRELOAD": "/x/user.so", "PATH": "/bin"}
  assert block_cache.without(block_cache.preloading({}, lib), lib) == {}
  users = {"LD_PRELOAD": str(lib), block_cache.ENV_VAR: "1"}  # the user's own: left alone
  assert block_cache.without(users, lib) == users
