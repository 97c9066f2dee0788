"""Every parameter's float32 gradient of a train-mode step is as close to a float64
computation of the same network (same weights, same batch) as PyTorch's float32 is, under the
CPU's default convolution formulation. Guards two regressions that made some gradients mostly
noise: the max pool's backward compared its output with a recomputed input (windows lost their
gradient), and the stem's kernel gradients summed 10^5 terms in one float32 dot.

The reference widths are checked by `python tools/benchmark.py gradients` (minutes)."""
import json
import os
import sys

import numpy as np
import pytest

from conftest import REPO
from gait_jax.benchmarks import gradients
from gait_jax.models import onednn_conv

sys.path.insert(0, os.path.join(REPO, "tools"))
import benchmark  # noqa: E402


@pytest.mark.parametrize("path", [(0, 5, 0, 1), (3, 1, 4, 2)])
def test_float32_gradients_match_float64(path, tmp_path, capsys):
  if path == (0, 5, 0, 1):
    report = gradients.accuracy((8, 16, 32), path=path, batch=8, frames=30, seed=0)
  else:  # through the benchmark's command line
    out = str(tmp_path / "g.json")
    benchmark.main(["gradients", "--channels", "8,16,32", "--path", "3,1,4,2", "--batch", "8",
                    "--frames", "30", "--json", out])
    assert "within PyTorch's float32 error" in capsys.readouterr().out
    report = json.load(open(out))
  worst = max(report["leaves"], key=lambda r: r["error"])
  # PyTorch float32 against float64 on this network: <= 1.1e-2 at the worst parameter.
  assert worst["error"] <= gradients.TOLERANCE, worst
  assert report["leaves"] and all(np.isfinite(r["error"]) for r in report["leaves"])


@pytest.mark.skipif(not onednn_conv.available(),
                    reason="oneDNN convolutions not built here (tools/build_onednn.sh)")
def test_onednn_float32_gradients_match_float64():
  """oneDNN's convolutions (the CPU default on one device) reduce in their own order."""
  report = gradients.accuracy((8, 16, 32), path=(2, 4, 1, 3), batch=8, frames=30, seed=1,
                              formulation="onednn")
  worst = max(report["leaves"], key=lambda r: r["error"])
  assert report["formulation"] == "onednn" and worst["error"] <= gradients.TOLERANCE, worst
