"""The set-up's native builds (tools/build_onednn.sh, tools/build_block_cache.sh), run as the
set-up runs them but into a library path of the test's own."""
import os
import subprocess

from conftest import REPO


def run(script: str, lib_var: str, lib, **env) -> subprocess.CompletedProcess:
  """tools/`script` with its library at `lib` (through `lib_var`) and `env` set."""
  return subprocess.run(["bash", os.path.join(REPO, "tools", script)],
                        env={**os.environ, lib_var: str(lib), **env}, capture_output=True,
                        text=True, timeout=600)


def assert_skipped_in_one_line(result, folder, says: str) -> str:
  """The build succeeded without building: one line that `says` why, nothing in `folder`."""
  assert result.returncode == 0, result.stderr
  lines = result.stdout.strip().splitlines()
  assert len(lines) == 1 and says in lines[0], lines
  assert list(folder.iterdir()) == []
  return lines[0]


def assert_failed_compile_skipped(result, folder, says: str) -> None:
  """A compiler that failed: the build still succeeds, its last line `says` so, and nothing it
  began to write is left in `folder` (no half-written library, no stamp)."""
  assert result.returncode == 0, result.stderr
  last = result.stdout.strip().splitlines()[-1]
  assert says in last and "(the compiler failed)" in last, result.stdout
  assert list(folder.iterdir()) == []
