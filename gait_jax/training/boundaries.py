"""The step counts at which the train loop must look at the exact state: a log, a save, an
evaluation or the end."""
from __future__ import annotations

from typing import Sequence


class Boundaries:
  """Step counts at which the loop must look at the exact state (log/save/eval/end)."""

  def __init__(self, total: int, every: Sequence[int]):
    self.total = total
    self.every = [int(e) for e in every if e and e > 0]

  def is_boundary(self, step: int) -> bool:
    return step >= self.total or any(step % e == 0 for e in self.every)

  def next_after(self, step: int) -> int:
    cands = [self.total] + [(step // e + 1) * e for e in self.every]
    return min(c for c in cands if c > step) if step < self.total else step
