"""What every dataset preparation shares: reading a release tree, refusing a wrong one by
name with the layout expected, and the plan (the pkls to write and the partition rule)."""
from __future__ import annotations

import os
import re
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Set

from gait_jax.data.pretreat import Job

Split = Dict[str, List[str]]


class LayoutError(ValueError):
  """The raw tree is not the release layout the dataset's preparation expects."""


class Plan(NamedTuple):
  """The pkls to write, and the partition rule: `split(ids, sequences)` takes the ids (sorted)
  and the `<id>-<type>-<view>` names of the sequences that are in the output and returns the
  partition dict (None when the release alone does not define it)."""
  jobs: List[Job]
  split: Callable[[Sequence[str], Set[str]], Optional[Split]]


class Release:
  """A dataset's raw release layout, for reading its folders and refusing other trees."""

  def __init__(self, title: str, layout: str):
    self.title, self.layout = title, layout

  def refuse(self, where: str, why: str) -> LayoutError:
    return LayoutError(f"{where}: {why}; {self.title} expects {self.layout}")

  def folders(self, path: str, pattern: str, what: str) -> List[str]:
    """The sub-directories of `path` (sorted: a stable order, unlike the file system's); each
    must match `pattern`, else the tree is refused."""
    if not os.path.isdir(path):
      raise self.refuse(path, f"no such directory (expected the {what} folders)")
    names = sorted(e.name for e in os.scandir(path) if e.is_dir())
    bad = [n for n in names if not re.fullmatch(pattern, n)]
    if bad:
      raise self.refuse(os.path.join(path, bad[0]),
                        f"{what} folder {bad[0]!r} is not of the form {pattern}")
    if not names:
      raise self.refuse(path, f"no {what} folders")
    return names


def pngs(path: str) -> List[str]:
  """The frame images of a sequence folder in sorted name order (GEIs left out, as the
  reference's pretreatment does)."""
  return [os.path.join(path, n) for n in sorted(os.listdir(path))
          if n.lower().endswith(".png") and "gei.png" not in n]


def image_job(seq_dir: str, key, kind: str, img_size: int, name: str = "") -> Job:
  """The job of one sequence folder of PNG frames; the pkl is named `<view>.pkl` by default."""
  return Job(tuple(key), tuple(pngs(seq_dir)), name or f"{key[2]}.pkl", kind, img_size)
