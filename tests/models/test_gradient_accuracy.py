"""Every parameter's float32 gradient of a train-mode step is as close to a float64
computation of the same network (same weights, same batch) as PyTorch's float32 is, under the
CPU's default convolution formulation. Guards two regressions that made some gradients mostly
noise: the max pool's backward compared its output with a recomputed input (windows lost their
gradient), and the stem's kernel gradients summed 10^5 terms in one float32 dot.

The reference widths are checked by `python tools/benchmark.py gradients` (minutes)."""
import numpy as np
import pytest

from gait_jax.benchmarks import gradients


@pytest.mark.parametrize("path", [(0, 5, 0, 1), (3, 1, 4, 2)])
def test_float32_gradients_match_float64(path):
  report = gradients.accuracy((8, 16, 32), path=path, batch=8, frames=30, seed=0)
  worst = max(report["leaves"], key=lambda r: r["error"])
  # PyTorch float32 against float64 on this network: <= 1.1e-2 at the worst parameter.
  assert worst["error"] <= gradients.TOLERANCE, worst
  assert report["leaves"] and all(np.isfinite(r["error"]) for r in report["leaves"])
