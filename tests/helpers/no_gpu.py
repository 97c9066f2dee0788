"""A machine without a usable NVIDIA GPU, for the GPU scripts' refusal tests."""
import os


def failing_nvidia_smi_path(tmp_path) -> str:
  """A PATH whose `nvidia-smi` fails as it does where the driver finds no GPU."""
  fake = tmp_path / "bin"
  fake.mkdir()
  (fake / "nvidia-smi").write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed' >&2\nexit 9\n")
  (fake / "nvidia-smi").chmod(0o755)
  return f"{fake}:{os.environ['PATH']}"
