"""The conv benchmark's choice of formulations and its switching between them."""
import os

import pytest

from gait_jax.benchmarks import conv_speed
from gait_jax.models import conv as conv_lib


def test_bf16_formulation_only_where_the_cpu_has_bf16_units(monkeypatch):
  monkeypatch.setattr(conv_lib.onednn_conv, "available", lambda: True)
  for units in (False, True):
    monkeypatch.setattr(conv_lib.cpu, "has_bf16_units", lambda units=units: units)
    forms = conv_speed.available_formulations()
    assert "onednn" in forms and ("onednn_bf16" in forms) == units


def test_use_formulation_restores_the_variable_also_when_the_block_fails(monkeypatch):
  """A benchmark that failed inside one formulation once left it set for every later
  convolution of the process (a whole test worker's)."""
  for before in (None, "fold"):
    if before is None:
      monkeypatch.delenv(conv_lib.ENV_VAR, raising=False)
    else:
      monkeypatch.setenv(conv_lib.ENV_VAR, before)
    with pytest.raises(RuntimeError, match="inside"):
      with conv_speed.use_formulation("gemm"):
        assert os.environ[conv_lib.ENV_VAR] == "gemm"
        raise RuntimeError("inside")
    assert os.environ.get(conv_lib.ENV_VAR) == before
