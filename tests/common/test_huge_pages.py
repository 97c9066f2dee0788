"""Huge pages for XLA's CPU buffers: when the tunable is set, that the command re-executes (the
block cache preloaded too) with its own arguments, and that it removes the page faults it is for."""
import json
import os
import subprocess
import sys

import pytest

from conftest import REPO
from gait_jax.common import block_cache, huge_pages
from helpers import page_faults

# Where the kernel and glibc allow it (else the re-execution is skipped, and so is the last test).
USABLE = huge_pages.wanted({}, huge_pages._glibc_version(),  # pylint: disable=protected-access
                           huge_pages._thp_mode())  # pylint: disable=protected-access


def test_wanted_only_where_asked_for_pages_would_be_given_and_nothing_is_set():
  new_glibc, old_glibc = (2, 36), (2, 31)
  assert huge_pages.wanted({}, new_glibc, "madvise")
  assert huge_pages.wanted({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}, new_glibc, "madvise")
  for env, glibc, thp in (({}, new_glibc, "always"), ({}, new_glibc, "never"),
                          ({}, new_glibc, ""), ({}, old_glibc, "madvise"), ({}, None, "madvise"),
                          ({"GAIT_JAX_HUGE_PAGES": "0"}, new_glibc, "madvise"),
                          ({"GAIT_JAX_HUGE_PAGES": "added"}, new_glibc, "madvise"),
                          ({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}, new_glibc, "madvise")):
    assert not huge_pages.wanted(env, glibc, thp), (env, glibc, thp)


def test_user_environment_removes_only_what_was_added(monkeypatch):
  monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1")
  monkeypatch.setenv("GAIT_JAX_HUGE_PAGES", "added")
  env = huge_pages.user_environment()
  assert env["GLIBC_TUNABLES"] == "glibc.malloc.arena_max=2" and "GAIT_JAX_HUGE_PAGES" not in env
  monkeypatch.setenv("GAIT_JAX_HUGE_PAGES", "1")  # the user's own setting: kept as it is
  env = huge_pages.user_environment()
  assert env["GLIBC_TUNABLES"].endswith("glibc.malloc.hugetlb=1")


PROBE = """
import json, os, sys
sys.path.insert(0, {repo!r})
from gait_jax.common import block_cache, huge_pages
huge_pages.ensure()
print(json.dumps({{"argv": sys.argv[1:], "tunables": os.environ.get("GLIBC_TUNABLES", ""),
                  "active": huge_pages.active(), "preload": os.environ.get("LD_PRELOAD", ""),
                  "cache_active": block_cache.active(), "user": huge_pages.user_environment()}}))
"""


def _probe(tmp_path, env_extra):
  """What a command sees after `ensure()`, launched with none of its settings but `env_extra`."""
  script = tmp_path / "probe.py"
  script.write_text(PROBE.format(repo=REPO))
  ours = ("GLIBC_TUNABLES", huge_pages.ENV_VAR, "LD_PRELOAD", block_cache.ENV_VAR)
  env = {k: v for k, v in os.environ.items() if k not in ours}
  env.update(env_extra)
  out = subprocess.run([sys.executable, str(script), "--flag", "a b"], env=env, check=True,
                       capture_output=True, text=True).stdout
  return json.loads(out.strip().splitlines()[-1])


def test_ensure_reexecutes_once_with_the_same_arguments(tmp_path):
  got = _probe(tmp_path, {})
  assert got["argv"] == ["--flag", "a b"]
  if USABLE:
    assert got["tunables"] == "glibc.malloc.hugetlb=1" and got["active"]
  else:
    assert got["tunables"] == "" and not got["active"]
  off = _probe(tmp_path, {"GAIT_JAX_HUGE_PAGES": "0"})
  assert off["tunables"] == "" and not off["active"] and off["argv"] == ["--flag", "a b"]


@pytest.mark.skipif(not block_cache.LIB_PATH.is_file(), reason=f"{block_cache.LIB_PATH} not "
                    "built (`bash tools/build_block_cache.sh` builds it where it can)")
def test_ensure_preloads_the_block_cache_unless_turned_off(tmp_path):
  on = _probe(tmp_path, {})
  assert on["argv"] == ["--flag", "a b"] and on["cache_active"]
  assert on["preload"] == str(block_cache.LIB_PATH)
  assert not {"LD_PRELOAD", block_cache.ENV_VAR, huge_pages.ENV_VAR} & set(on["user"])
  off = _probe(tmp_path, {block_cache.ENV_VAR: "0"})
  assert off["argv"] == ["--flag", "a b"] and not off["cache_active"] and off["preload"] == ""


@pytest.mark.skipif(not USABLE, reason="needs glibc >= 2.35 and transparent huge pages in "
                    "madvise mode")
def test_the_tunable_removes_the_page_faults_of_large_xla_buffers():
  faults = {tunables: page_faults.measure(GLIBC_TUNABLES=tunables, LD_PRELOAD=None)["faults"]
            for tunables in ("", huge_pages.TUNABLE)}
  pages = page_faults.OUTPUT_BYTES / 4096
  # Without: every call faults its 64 MiB output in, page by page; with: a few 2 MiB pages.
  assert faults[""] > 0.9 * pages and faults[huge_pages.TUNABLE] < 0.1 * pages, faults


_NEEDS_PRCTL = pytest.mark.skipif(not huge_pages.pausable(), reason="PR_GET_THP_DISABLE "
                                  "unavailable here or the huge pages already off")


@_NEEDS_PRCTL
def test_paused_turns_the_huge_pages_off_inside_and_on_again(monkeypatch):
  monkeypatch.setattr(huge_pages, "active", lambda: True)
  assert not huge_pages.thp_disabled()
  with huge_pages.paused():
    assert huge_pages.thp_disabled()
    with huge_pages.paused():  # nested: the inner block leaves the outer's setting alone
      assert huge_pages.thp_disabled()
    assert huge_pages.thp_disabled()
  assert not huge_pages.thp_disabled()
  with pytest.raises(RuntimeError):
    with huge_pages.paused():
      raise RuntimeError("an error inside")
  assert not huge_pages.thp_disabled()  # restored on the way out of an error too


@_NEEDS_PRCTL
def test_paused_does_nothing_where_this_process_asks_for_no_huge_pages(monkeypatch):
  monkeypatch.setattr(huge_pages, "active", lambda: False)
  with huge_pages.paused():
    assert not huge_pages.thp_disabled()
