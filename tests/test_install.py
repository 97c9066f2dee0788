"""The set-up installs gait_jax into .venv (editable): the API imports from any folder."""
import subprocess
import sys

from conftest import REPO


def test_the_package_imports_outside_the_repository(tmp_path):
  r = subprocess.run([sys.executable, "-c", "import gait_jax.identify as m; "
                      "from gait_jax.identify import Recognizer; print(m.__file__)"],
                     cwd=str(tmp_path), capture_output=True, text=True, timeout=120)
  assert r.returncode == 0, r.stderr[-2000:]
  assert r.stdout.strip().startswith(REPO)
