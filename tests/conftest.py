"""Test set-up: 8 fake CPU devices (before jax is imported) and shared fixtures."""
import os
import sys

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import pytest  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.path.join(os.path.dirname(REPO), "shared", "data")
sys.path.insert(0, REPO)


@pytest.fixture
def shared_data():
  """Path to ../shared/data; skips the test with a clear message when it is absent."""
  if not os.path.isdir(SHARED_DATA):
    pytest.skip(f"real silhouettes not found at {SHARED_DATA} (../shared/data is absent)")
  return SHARED_DATA


def load_config(name: str):
  """A config from configs/ by file name, e.g. load_config('test_tiny')."""
  import importlib.util
  path = os.path.join(REPO, "configs", name if name.endswith(".py") else name + ".py")
  spec = importlib.util.spec_from_file_location("cfg_" + os.path.basename(name), path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()
