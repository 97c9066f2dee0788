"""Embeddings that cannot give a meaningful ranking are caught before any table is printed.

A NaN distance sorts arbitrarily, so NaN embeddings do not fail the ranking: all-NaN embeddings
score exactly chance on every condition and one NaN sequence silently moves a Rank-1. Identical
embeddings (a collapsed model, all-blank inputs) tie every distance and rank by gallery order.
Both look like plausible numbers; here the first is an error and the second a loud warning.
"""
from __future__ import annotations

import numpy as np
from absl import logging

MAX_NAMED = 5


def _names(labels, types, views, rows) -> str:
  names = [f"{labels[i]}/{types[i]}/{views[i]}" for i in rows[:MAX_NAMED]]
  return ", ".join(names) + (" ..." if len(rows) > MAX_NAMED else "")


def check_finite(emb, labels, types, views, where: str) -> None:
  """ValueError naming how many sequences (and which) have a NaN or inf in their embedding."""
  emb = np.asarray(emb)
  if emb.size == 0:
    return
  bad = np.flatnonzero(~np.isfinite(emb.reshape(emb.shape[0], -1)).all(axis=1))
  if len(bad):
    ids = sorted({str(labels[i]) for i in bad})
    raise ValueError(
        f"{where}: {len(bad)} of {emb.shape[0]} embeddings are not finite (NaN/inf), from "
        f"{len(ids)} ids: {_names(labels, types, views, bad)}. Their ranking would be "
        "meaningless; the weights or those inputs are broken (look for skipped steps in the "
        "training log, or blank/corrupt silhouettes)")


def warn_if_identical(emb, where: str) -> bool:
  """Logs a warning and returns True when every embedding equals the first (to within float
  rounding of their scale)."""
  emb = np.asarray(emb, np.float64)
  if emb.shape[0] < 2:
    return False
  scale = float(np.max(np.abs(emb)))
  if float(np.max(np.abs(emb - emb[:1]))) > 1e-6 * scale:
    return False
  logging.warning(
      "%s: ALL %d EMBEDDINGS ARE IDENTICAL: every distance ties, so the ranks below follow "
      "gallery order and mean nothing. The model has collapsed or its inputs are blank.",
      where, emb.shape[0])
  return True


def check_usable(emb, labels, types, views, where: str) -> None:
  """Non-finite embeddings are an error, identical ones a warning (module docstring)."""
  check_finite(emb, labels, types, views, where)
  warn_if_identical(emb, where)
