"""tools/build_onednn.sh never fails the set-up: where it cannot build it says why in one line
and writes nothing; where it builds, the library loads and its stamp (source, wheels, jaxlib)
makes an unchanged rerun do nothing."""
import ctypes

import jaxlib

from helpers import build_scripts


def _run(lib, **env):
  return build_scripts.run("build_onednn.sh", "GAIT_JAX_ONEDNN_LIB", lib, **env)


def _gxx_failing_on(folder, flag: str) -> str:
  """A compiler that fails whenever it is given `flag` and is g++ otherwise: its path. It
  compiles unoptimised (`-O0` after the script's own level): these tests check what the script
  builds and leaves, not how fast the library runs (-O2: 18 s a build here, -O0: 13 s)."""
  cxx = folder / "cxx"
  cxx.write_text(f'#!/bin/sh\nfor a in "$@"; do [ "$a" = {flag} ] && exit 1; done\n'
                 'exec g++ "$@" -O0\n')
  cxx.chmod(0o755)
  return str(cxx)


def test_without_a_compiler_it_says_so_in_one_line_and_succeeds(tmp_path):
  line = build_scripts.assert_skipped_in_one_line(
      _run(tmp_path / "conv.so", CXX="/nonexistent/g++"), tmp_path,
      "oneDNN convolutions not built (no C++ compiler")
  assert "XLA's convolutions" in line


def test_a_failing_compiler_leaves_nothing_and_succeeds(tmp_path):
  build_scripts.assert_failed_compile_skipped(_run(tmp_path / "conv.so", CXX="false"),
                                              tmp_path, "oneDNN convolutions not built")


def test_it_builds_a_library_that_loads_and_an_unchanged_rerun_does_nothing(tmp_path):
  lib = tmp_path / "conv.so"
  r = _run(lib)
  assert r.returncode == 0, r.stderr
  if not lib.exists():  # not Linux x86-64, or no compiler: the one line says which
    assert "oneDNN convolutions not built" in r.stdout
    return
  assert ctypes.CDLL(str(lib)).GaitOnednnVersion() >= 30000  # oneDNN 3.x
  assert hasattr(ctypes.CDLL(str(lib)), "GaitUninitialized")  # switch_residuals.py's fill
  for symbol in ("GaitFirstStageForward", "GaitFirstStageTrainForward",
                 "GaitFirstStageTrainBackward"):  # first_stage.py's passes
    assert hasattr(ctypes.CDLL(str(lib)), symbol)
  stamp = tmp_path / "conv.so.sha"
  assert stamp.read_text().strip().endswith("-jaxlib-" + jaxlib.__version__)
  before = lib.stat().st_mtime_ns
  again = _run(lib)
  assert again.returncode == 0 and again.stdout == "", again.stdout + again.stderr
  assert lib.stat().st_mtime_ns == before


def test_a_compiler_without_the_first_stage_flags_still_builds_the_convolutions(tmp_path):
  """The first stage's AVX2 + OpenMP kernel is optional: a compiler that rejects its flags gets
  the library without it and one line saying so."""
  lib = tmp_path / "lib" / "conv.so"
  lib.parent.mkdir()
  r = _run(lib, CXX=_gxx_failing_on(tmp_path, "-mavx2"))
  assert r.returncode == 0, r.stderr
  if not lib.exists():  # not Linux x86-64, or no g++ behind the wrapper
    assert "oneDNN convolutions not built" in r.stdout
    return
  assert "the native first stage not built (the compiler failed)" in r.stdout
  assert ctypes.CDLL(str(lib)).GaitOnednnVersion() >= 30000
  assert not hasattr(ctypes.CDLL(str(lib)), "GaitFirstStageForward")
  assert sorted(p.name for p in lib.parent.iterdir()) == ["conv.so", "conv.so.sha"]


def test_a_failing_link_leaves_no_first_stage_object(tmp_path):
  """The first stage's object compiles, then the library's link fails: nothing is left."""
  lib = tmp_path / "lib" / "conv.so"
  lib.parent.mkdir()
  build_scripts.assert_failed_compile_skipped(_run(lib, CXX=_gxx_failing_on(tmp_path, "-shared")),
                                              lib.parent,
                                              "oneDNN convolutions not built")
