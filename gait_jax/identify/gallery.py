"""The enrolled gallery (WORKDIR/gallery.npz) and the open-set decision threshold.

gallery.npz: `embeddings` f32 [n, c, p], `ids` and `names` str [n], and what made them —
`path`, `step`, `source` (the checkpoint) and `model` (the architecture keys as JSON) with its
`model_hash`. Embeddings from another model are not comparable, so a gallery is only ever
extended with the model that made it.
"""
from __future__ import annotations

import hashlib
import json
import os
from typing import Dict, Optional, Tuple

import numpy as np
from absl import logging

from gait_jax.common import io

GALLERY_FILE = "gallery.npz"


def model_record(architecture: Dict, path: str, flip: bool, step: int, source: str
                 ) -> Dict[str, str]:
  """What decides a gallery's embeddings: network, path, `embed.flip`, checkpoint and step."""
  model = json.dumps({"architecture": architecture, "model.path": path, "embed.flip": flip},
                     sort_keys=True)
  digest = hashlib.sha256(f"{model}|{step}|{os.path.abspath(source)}".encode()).hexdigest()[:16]
  return {"model": model, "path": path, "step": str(step), "source": os.path.abspath(source),
          "model_hash": digest}


def empty(record: Dict[str, str]) -> Dict[str, np.ndarray]:
  return {"embeddings": np.zeros((0, 0, 0), np.float32), "ids": np.zeros((0,), np.str_),
          "names": np.zeros((0,), np.str_), **{k: np.asarray(v) for k, v in record.items()}}


def load(path: str) -> Optional[Dict[str, np.ndarray]]:
  if not os.path.exists(path):
    return None
  try:
    with np.load(path, allow_pickle=False) as z:
      data = {k: z[k] for k in z.files}
  except (OSError, ValueError) as e:
    raise ValueError(f"{path} is unreadable ({e}); move it away to enrol afresh") from None
  missing = [k for k in ("embeddings", "ids", "names", "model_hash", "model") if k not in data]
  if missing:
    raise ValueError(f"{path}: not a gait_jax gallery (missing {missing})")
  return data


def check_same_model(gallery: Dict[str, np.ndarray], record: Dict[str, str], where: str) -> None:
  """Refuses a gallery another model (architecture, path, checkpoint or step) made."""
  if str(gallery["model_hash"]) == record["model_hash"]:
    return
  old, new = json.loads(str(gallery["model"])), json.loads(record["model"])
  diff = [f"{k}: gallery {old['architecture'].get(k)!r} vs now {new['architecture'].get(k)!r}"
          for k in sorted(set(old["architecture"]) | set(new["architecture"]))
          if old["architecture"].get(k) != new["architecture"].get(k)]
  for key in ("model.path", "embed.flip"):
    if old.get(key) != new.get(key):
      diff.append(f"{key}: gallery {old.get(key)!r} vs now {new.get(key)!r}")
  for key in ("step", "source"):
    if str(gallery.get(key, "")) != record[key]:
      diff.append(f"{key}: gallery {str(gallery.get(key, ''))!r} vs now {record[key]!r}")
  raise ValueError(f"{where} was enrolled with another model ({'; '.join(diff)}); its "
                   "embeddings are not comparable: use another workdir or re-enrol into a new one")


def save(path: str, gallery: Dict[str, np.ndarray]) -> str:
  return io.write_npz(path, gallery)


def calibrate(distances: np.ndarray, ids: np.ndarray) -> Tuple[float, Dict[str, float]]:
  """The equal-error threshold on the gallery's own pairs: (threshold, report).

  Same-id pairs should fall below it, other-id pairs above; at the threshold the estimated
  false-reject rate (same-id pairs above) equals the false-accept rate (other-id pairs at or
  below) as nearly as the pairs allow. With no id enrolled twice there are no same-id pairs:
  the fallback is the smallest distance between two different ids (no two enrolled people are
  confused at it), with a warning; with a single id, every probe is accepted.
  """
  ids = np.asarray(ids)
  n = len(ids)
  iu = np.triu_indices(n, 1)
  same = ids[iu[0]] == ids[iu[1]]
  d = distances[iu]
  if not same.any():
    if (~same).any():
      t = float(np.min(d[~same]))
      logging.warning("identify.threshold=auto: no id has two gallery sequences, so same-person "
                      "distances cannot be measured; falling back to the smallest distance "
                      "between two enrolled people (%.4f)", t)
      return t, {"method": "fallback: nearest other-id pair", "threshold": t}
    logging.warning("identify.threshold=auto: one enrolled sequence; every probe is accepted")
    return float("inf"), {"method": "fallback: single sequence", "threshold": float("inf")}
  s, o = np.sort(d[same]), np.sort(d[~same])
  best = None
  for t in np.unique(d):
    frr = float(np.mean(s > t))
    far = float(np.mean(o <= t)) if o.size else 0.0
    key = (abs(far - frr), max(far, frr))
    if best is None or key < best[0]:
      best = (key, float(t), far, frr)
  _, t, far, frr = best
  return t, {"method": "equal error rate on gallery pairs", "threshold": t,
             "false_accept_rate": far, "false_reject_rate": frr,
             "same_id_pairs": int(same.sum()), "other_id_pairs": int((~same).sum())}
