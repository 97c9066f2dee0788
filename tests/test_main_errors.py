"""User errors from `python -m gait_jax.main` are one line `gait_jax: ...` and exit 2 (a
misspelt key names the closest valid ones); --verbose shows the traceback."""
import subprocess
import sys

import pytest

from conftest import REPO


def _main(*args, workdir="/nonexistent/w"):
  return subprocess.run([sys.executable, "-m", "gait_jax.main", "--config",
                         "configs/test_tiny.py", "--workdir", workdir, *args], cwd=REPO,
                        capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("args,message", [
    (["--config.train.total_step=3"],
     "--config.train.total_step: train has no key 'total_step'; did you mean "
     "'train.total_steps'"),
    (["--config.trian.total_steps=3"], "the config has no key 'trian'; did you mean 'train'"),
    (["--config.train.total_steps=abc"], "--config.train.total_steps=abc"),
    (["--config.mode=trian"], "is not a mode; choose one of"),
    (["--config.mode=embed"], "mode=embed needs a fixed architecture"),
    (["--config.mode=identify", "--config.model.path=0,5,0,1"],
     "mode=identify needs identify.probes"),
    (["--config.mode=test", "--config.model.path=0,5,0,1"], "checkpoint source"),
])
def test_user_errors_are_one_line(args, message):
  r = _main(*args)
  assert r.returncode == 2, r.stderr[-2000:]
  lines = [l for l in r.stderr.splitlines() if l.startswith("gait_jax: ")]
  assert len(lines) == 1 and message in lines[0], r.stderr[-2000:]
  assert "Traceback" not in r.stderr


def test_missing_config_file_and_verbose():
  r = subprocess.run([sys.executable, "-m", "gait_jax.main", "--config", "configs/nope.py",
                      "--workdir", "/tmp/x"], cwd=REPO, capture_output=True, text=True,
                     timeout=300)
  assert r.returncode == 2 and "gait_jax: --config=configs/nope.py: no such config file" in (
      r.stderr)
  r = _main("--config.mode=embed", "--verbose")
  assert r.returncode != 0 and "Traceback" in r.stderr
