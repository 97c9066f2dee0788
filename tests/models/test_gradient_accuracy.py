"""Every parameter's float32 gradient of a train-mode step is as close to a float64
computation of the same network (same weights, same batch) as PyTorch's float32 is, under each of
the CPU's default convolution formulations. Guards two regressions that made some gradients mostly
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


def _check(report):
  assert report["leaves"] and all(np.isfinite(r["error"]) for r in report["leaves"])
  worst = max(report["leaves"], key=lambda r: r["error"])
  # PyTorch float32 against float64 on this network: <= 1.1e-2 at the worst parameter.
  assert worst["error"] <= gradients.TOLERANCE, worst


# The two CPU defaults, each named rather than "auto" (which depends on the process's device
# count): fold on several devices, oneDNN's convolutions (which reduce in their own order) on
# one. Between them the two paths run every candidate; 3,1,4,2 is the path whose BN sums lost
# 2 % of a bias's gradient before they were split (docs/benchmarks.md).
def test_fold_float32_gradients_match_float64_through_the_benchmark_command(tmp_path, capsys):
  out = str(tmp_path / "g.json")
  benchmark.main(["gradients", "--channels", "8,16,32", "--path", "3,1,4,2", "--batch", "8",
                  "--frames", "30", "--formulation", "fold", "--json", out])
  printed = capsys.readouterr().out
  report = json.load(open(out))
  assert report["formulation"] == "fold" and report["path"] == "3,1,4,2"
  errors = [r["error"] for r in report["leaves"]]
  assert errors == sorted(errors, reverse=True)  # worst first, as printed
  assert f"worst {errors[0]:.2e}: within PyTorch's float32 error" in printed, printed
  _check(report)


@pytest.mark.skipif(not onednn_conv.available(),
                    reason="oneDNN convolutions not built here (tools/build_onednn.sh)")
def test_onednn_float32_gradients_match_float64():
  report = gradients.accuracy((8, 16, 32), path=(0, 5, 0, 1), batch=8, frames=30, seed=1,
                              formulation="onednn")
  assert report["formulation"] == "onednn"
  _check(report)
