"""What the train loop reports between steps: throughput and ETA, and silhouette grids for
TensorBoard."""
from __future__ import annotations

import math
import time
from typing import Dict

import numpy as np


class Progress:
  """Steps/s, sequences/s and ETA between reports.

  Hand-written: clu's periodic_actions.ReportProgress cannot be imported without TensorFlow."""

  def __init__(self, total_steps: int, global_batch: int, start_step: int):
    self.total = total_steps
    self.global_batch = global_batch
    self.last_step, self.last_time = start_step, None
    self.rates = []

  def start(self, step: int):
    self.last_step, self.last_time = step, time.monotonic()

  def report(self, step: int) -> Dict[str, float]:
    now = time.monotonic()
    out = {}
    if self.last_time is not None and step > self.last_step:
      dt = now - self.last_time
      steps = step - self.last_step
      out = {"steps_per_s": steps / dt, "seq_per_s": steps * self.global_batch / dt,
             "step_time": dt / steps}
      out["eta_s"] = (self.total - step) * out["step_time"]
    self.last_step, self.last_time = step, now
    return out


def format_eta(seconds: float) -> str:
  if not math.isfinite(seconds):
    return "?"
  seconds = int(seconds)
  h, rem = divmod(seconds, 3600)
  m, s = divmod(rem, 60)
  return f"{h}:{m:02d}:{s:02d}"


def silhouette_grid(sils: np.ndarray, rows: int = 4, cols: int = 8) -> np.ndarray:
  """[1, rows*H, cols*W, 1] float in [0, 1]: the first frames of the first sequences."""
  sils = np.asarray(sils, np.float32)
  if sils.max(initial=0.0) > 1.0:
    sils = sils / 255.0
  n, t, h, w = sils.shape
  rows, cols = min(rows, n), min(cols, t)
  grid = sils[:rows, :cols].transpose(0, 2, 1, 3).reshape(rows * h, cols * w)
  return grid[None, :, :, None]
