"""tools/_venv.sh: pip runs only when a requirement file the caller needs changed or was never
installed — a script needing fewer extras than the last (the quickstart or the GPU check after
the tests) installs nothing into the shared .venv."""
import os
import shutil
import subprocess

from conftest import REPO


def _skeleton(tmp_path):
  (tmp_path / "tools").mkdir()
  shutil.copy(os.path.join(REPO, "tools", "_venv.sh"), tmp_path / "tools" / "_venv.sh")
  for build in ("build_onednn.sh", "build_block_cache.sh"):
    (tmp_path / "tools" / build).write_text("exit 0\n")
  for name in ("requirements.txt", "pyproject.toml", "requirements-test.txt",
               "requirements-export.txt"):
    (tmp_path / name).write_text(f"# {name}\n")
  python = tmp_path / ".venv" / "bin" / "python"
  python.parent.mkdir(parents=True)
  # A stand-in for the venv's python: records each pip call, installs nothing.
  python.write_text(f'#!/bin/sh\necho "$@" >> "{tmp_path}/pip.log"\n')
  python.chmod(0o755)


def _setup(tmp_path, *extras) -> bool:
  """Sources _venv.sh with `extras`; whether it installed."""
  proc = subprocess.run(["bash", "-c", 'source tools/_venv.sh "$@"', "_", *extras],
                        cwd=tmp_path, capture_output=True, text=True, timeout=60)
  assert proc.returncode == 0, proc.stderr
  return "[setup] installing requirements" in proc.stdout


def test_installs_only_what_is_missing_or_changed(tmp_path):
  _skeleton(tmp_path)
  tests = ("requirements-test.txt", "nodeps:requirements-export.txt")
  assert _setup(tmp_path, *tests)  # first time
  assert not _setup(tmp_path, *tests)
  assert not _setup(tmp_path, "requirements-test.txt")  # the GPU check's dry run
  assert not _setup(tmp_path)  # the quickstart
  assert not _setup(tmp_path, *tests)  # the tests again
  (tmp_path / "requirements-test.txt").write_text("pytest>=8\n")
  assert _setup(tmp_path, "requirements-test.txt")  # a changed extra
  assert not _setup(tmp_path, *tests)
  (tmp_path / "requirements.txt").write_text("numpy\n")
  assert _setup(tmp_path)  # a changed base invalidates every extra installed over it
  assert _setup(tmp_path, *tests)
  assert not _setup(tmp_path, "requirements-test.txt")
  calls = (tmp_path / "pip.log").read_text().splitlines()
  assert sum("--no-deps -r requirements-export.txt" in c for c in calls) == 2, calls


def test_uv_follows_pip_configuration_or_leaves_it_to_pip():
  from conftest import load_tool
  uv = load_tool("_uv_install")
  lines = ["global.extra-index-url='file:///a/simple https://mirror/simple'",
           ":env:.find-links='/opt/wheels'", "global.constraint='/etc/c.txt'",
           "global.cert='/etc/ca.pem'", ":env:.default-timeout='180'",
           "global.index-url='https://pypi.example/simple'", "site.no-index='false'",
           "global.trusted-host='mirror'"]
  args, env = uv.translate(lines)
  assert args == ["--index-strategy", "unsafe-best-match",  # pip's choice over all indexes
                  "--extra-index-url", "file:///a/simple", "--extra-index-url",
                  "https://mirror/simple", "--find-links", "/opt/wheels",
                  "--constraint", "/etc/c.txt", "--index-url", "https://pypi.example/simple",
                  "--allow-insecure-host", "mirror",
                  "--compile-bytecode"]  # pip's default: .pyc files written at install
  assert env == {"SSL_CERT_FILE": "/etc/ca.pem"}
  assert uv.translate([]) == (["--index-strategy", "unsafe-best-match", "--compile-bytecode"],
                              {})
  assert uv.translate(["install.no-compile='true'"]) == (
      ["--index-strategy", "unsafe-best-match"], {})
  # What would change what is installed, and is not carried over: pip installs instead.
  assert uv.translate(["global.pre='true'"]) is None
  assert uv.translate(["global.only-binary=':all:'"]) is None
  assert uv.translate(["not a config line"]) is None
