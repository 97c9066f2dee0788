"""The enrolled gallery (WORKDIR/gallery.npz) and the open-set decision threshold.

gallery.npz: `embeddings` f32 [n, c, p], `ids`, `names` and `sources` str [n], `halves`
f32 [n, 2, c, p] (each sequence's two halves embedded apart, for the threshold; `has_halves`
[n] says which sequences were long enough), `geis` for figures, and what made them: `path`,
`step`, `source` and `model` (the architecture keys as JSON), with `model_hash`, a digest of
the model *and its weights' content* — the same weights referenced another way (moved, a
symlink, a relative path) are the same model; other weights are not. Embeddings from another
model are not comparable, so a gallery is only ever extended with the model that made it.
"""
from __future__ import annotations

import hashlib
import json
import os
from typing import Dict, Optional, Tuple

import jax
import numpy as np
from absl import logging

from gait_jax.common import io

GALLERY_FILE = "gallery.npz"
REQUIRED = ("embeddings", "ids", "names", "model_hash", "model")


def weights_digest(variables) -> str:
  """A digest of a variable tree's names, shapes, dtypes and bytes."""
  h = hashlib.sha256()
  for keypath, leaf in jax.tree_util.tree_flatten_with_path(variables)[0]:
    a = np.ascontiguousarray(np.asarray(leaf))
    h.update(f"{jax.tree_util.keystr(keypath)}|{a.shape}|{a.dtype}|".encode())
    h.update(a.tobytes())
  return h.hexdigest()


def model_record(architecture: Dict, path: str, flip: bool, step: int, source: str,
                 digest: str) -> Dict[str, str]:
  """What decides a gallery's embeddings: network, path, `embed.flip` and the weights (by
  content, `digest`); the step and source are kept to be named in a refusal."""
  model = json.dumps({"architecture": architecture, "model.path": path, "embed.flip": flip},
                     sort_keys=True)
  model_hash = hashlib.sha256(f"{model}|{digest}".encode()).hexdigest()[:16]
  return {"model": model, "path": path, "step": str(step), "source": os.path.abspath(source),
          "weights": digest[:16], "model_hash": model_hash}


def empty(record: Dict[str, str]) -> Dict[str, np.ndarray]:
  return {"embeddings": np.zeros((0, 0, 0), np.float32), "ids": np.zeros((0,), np.str_),
          "names": np.zeros((0,), np.str_), "sources": np.zeros((0,), np.str_),
          **{k: np.asarray(v) for k, v in record.items()}}


def load(path: str) -> Optional[Dict[str, np.ndarray]]:
  """The gallery at `path` (None when there is none), read without pickles and checked:
  its arrays agree in length and every embedding is finite."""
  if not os.path.exists(path):
    return None
  try:
    with np.load(path, allow_pickle=False) as z:
      data = {k: z[k] for k in z.files}
  except (OSError, ValueError, EOFError) as e:
    raise ValueError(f"{path} is unreadable ({e}); move it away to enrol afresh") from None
  missing = [k for k in REQUIRED if k not in data]
  if missing:
    raise ValueError(f"{path}: not a gait_jax gallery (missing {missing})")
  n = len(data["ids"])
  for key in ("embeddings", "names", "sources", "halves", "has_halves", "geis"):
    if key in data and data[key].size and len(data[key]) != n:
      raise ValueError(f"{path}: {key} holds {len(data[key])} entries for {n} ids: a damaged "
                       "gallery; move it away and enrol afresh")
  for key in ("embeddings", "halves"):
    if key in data and data[key].size:
      if data[key].dtype.kind != "f":
        raise ValueError(f"{path}: {key} of dtype {data[key].dtype}, expected float")
      bad = ~np.isfinite(data[key]).reshape(len(data[key]), -1).all(axis=1)
      if "has_halves" in data and key == "halves":
        bad &= data["has_halves"].astype(bool)
      if bad.any():
        raise ValueError(f"{path}: {int(bad.sum())} sequences have non-finite {key} (e.g. "
                         f"{str(data['names'][np.argmax(bad)])}); move the file away and enrol "
                         "afresh")
  data.setdefault("sources", np.full((n,), "", np.str_))
  return data


def check_same_model(gallery: Dict[str, np.ndarray], record: Dict[str, str], where: str) -> None:
  """Refuses a gallery another model (architecture, path, flip or weights) made."""
  if str(gallery["model_hash"]) == record["model_hash"]:
    return
  old, new = json.loads(str(gallery["model"])), json.loads(record["model"])
  diff = [f"{k}: gallery {old['architecture'].get(k)!r} vs now {new['architecture'].get(k)!r}"
          for k in sorted(set(old["architecture"]) | set(new["architecture"]))
          if old["architecture"].get(k) != new["architecture"].get(k)]
  for key in ("model.path", "embed.flip"):
    if old.get(key) != new.get(key):
      diff.append(f"{key}: gallery {old.get(key)!r} vs now {new.get(key)!r}")
  if not diff:
    diff.append(f"the weights differ (gallery: {str(gallery.get('source', ''))!r} step "
                f"{str(gallery.get('step', ''))}; now: {record['source']!r} step "
                f"{record['step']})")
  raise ValueError(f"{where} was enrolled with another model ({'; '.join(diff)}); its "
                   "embeddings are not comparable: use another workdir or re-enrol into a new one")


def save(path: str, gallery: Dict[str, np.ndarray]) -> str:
  return io.write_npz(path, gallery)


def _equal_error(same: np.ndarray, other: np.ndarray) -> Tuple[float, float, float]:
  """(threshold, false-accept rate, false-reject rate) where the two rates are closest."""
  best = None
  for t in np.unique(np.concatenate([same, other])):
    frr = float(np.mean(same > t))
    far = float(np.mean(other <= t)) if other.size else 0.0
    key = (abs(far - frr), max(far, frr))
    if best is None or key < best[0]:
      best = (key, float(t), far, frr)
  return best[1], best[2], best[3]


def _eer(method: str, computed_from: str, same: np.ndarray, other: np.ndarray
         ) -> Tuple[float, Dict]:
  t, far, frr = _equal_error(same, other)
  return t, {"method": method, "computed_from": computed_from, "threshold": t,
             "false_accept_rate": far, "false_reject_rate": frr,
             "same_id_pairs": int(same.size), "other_id_pairs": int(other.size)}


def _pairs(distances: np.ndarray, ids: np.ndarray, groups: np.ndarray):
  """(same-person distances, other-person distances) over the upper triangle; pairs of the
  same group (a sequence's two halves) are same-person, pairs of different ids other."""
  iu = np.triu_indices(len(ids), 1)
  d = distances[iu]
  same_group = groups[iu[0]] == groups[iu[1]]
  other = ids[iu[0]] != ids[iu[1]]
  return d[same_group], d[other]


def calibrate(gallery: Dict[str, np.ndarray], distance_fn) -> Tuple[float, Dict]:
  """The open-set threshold from the gallery itself: (threshold, report).

  Same-person distances come from ids enrolled twice or more (whole sequences against each
  other); with one sequence per person, from the two halves of each sequence (embedded apart
  at enrolment), against other people's halves. The threshold is the equal-error point of
  same-person and other-person distances; the report says what it was computed from. With a
  single person enrolled there is no other-person distance: the largest same-person distance
  is used (false-accept rate unknown). Never infinite: a stranger is never accepted by default.
  `distance_fn(x, y)` is the metric's distance matrix.
  """
  ids = np.asarray(gallery["ids"])
  seq = np.arange(len(ids))
  same_full, other_full = _pairs(distance_fn(gallery["embeddings"], gallery["embeddings"]),
                                 ids, ids)
  if same_full.size:
    return _eer("equal error rate on gallery pairs",
                f"{same_full.size} same-person pairs of whole sequences (ids enrolled twice or "
                f"more), {other_full.size} other-person pairs", same_full, other_full)
  has = np.asarray(gallery.get("has_halves", np.zeros(len(ids), bool))).astype(bool)
  if has.any():
    halves = gallery["halves"][has]
    flat = halves.reshape((-1,) + halves.shape[2:])  # [2m, c, p]: a, b of each sequence
    h_ids, h_seq = np.repeat(ids[has], 2), np.repeat(seq[has], 2)
    same, other = _pairs(distance_fn(flat, flat), h_ids, h_seq)
    if other.size:
      return _eer("equal error rate on sequence halves (one sequence per person)",
                  f"{same.size} same-person pairs (the two halves of each sequence), "
                  f"{other.size} other-person pairs of halves", same, other)
    t = float(np.max(same))
    logging.warning("identify.threshold=auto: one person enrolled, so no other-person distance "
                    "exists; the threshold is the largest distance between halves of their "
                    "sequences (%.4f) and the false-accept rate is unknown", t)
    return t, {"method": "largest same-person distance (one person enrolled)",
               "computed_from": f"{same.size} same-person pairs of sequence halves; no other "
                                "person enrolled: false-accept rate unknown", "threshold": t}
  if other_full.size:
    t = float(np.min(other_full))
    logging.warning("identify.threshold=auto: no sequence is long enough to be split in halves "
                    "and no id has two sequences; falling back to the smallest distance between "
                    "two enrolled people (%.4f)", t)
    return t, {"method": "fallback: nearest other-person pair",
               "computed_from": f"{other_full.size} other-person pairs; no same-person pair",
               "threshold": t}
  raise ValueError("identify.threshold=auto cannot be calibrated: one person with one sequence "
                   "too short to split is enrolled; enrol more sequences or people, or set "
                   "identify.threshold to a number")
