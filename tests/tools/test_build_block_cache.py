"""tools/build_block_cache.sh never fails the set-up: where it cannot build it says why in one
line and writes nothing; where it builds, the library preloads cleanly and its stamp makes an
unchanged rerun do nothing."""
import os
import subprocess
import sys

from helpers import build_scripts


def _run(lib, **env):
  return build_scripts.run("build_block_cache.sh", "GAIT_JAX_BLOCK_CACHE_LIB", lib, **env)


def test_without_a_compiler_it_says_so_in_one_line_and_succeeds(tmp_path):
  build_scripts.assert_skipped_in_one_line(_run(tmp_path / "cache.so", CC="/nonexistent/cc"),
                                           tmp_path, "block cache not built (")


def test_a_failing_compiler_leaves_nothing_and_succeeds(tmp_path):
  build_scripts.assert_failed_compile_skipped(_run(tmp_path / "cache.so", CC="false"),
                                              tmp_path, "block cache not built")


def test_it_builds_a_library_that_preloads_and_an_unchanged_rerun_does_nothing(tmp_path):
  lib = tmp_path / "cache.so"
  r = _run(lib)
  assert r.returncode == 0, r.stderr
  if not lib.exists():  # not Linux with glibc, or no compiler: the one line says which
    assert "block cache not built" in r.stdout
    return
  probe = ("import ctypes; s = (ctypes.c_uint64 * 4)(); "
           "ctypes.CDLL(None).gait_jax_block_cache_stats(s); print(list(s))")
  run = subprocess.run([sys.executable, "-c", probe], env={**os.environ, "LD_PRELOAD": str(lib)},
                       capture_output=True, text=True, check=True)
  assert run.stdout.strip() == "[0, 0, 0, 0]" and run.stderr == ""
  before = lib.stat().st_mtime_ns
  again = _run(lib)
  assert again.returncode == 0 and again.stdout == "", again.stdout + again.stderr
  assert lib.stat().st_mtime_ns == before
