"""Gait3D's SMPL parameters: one `.npz` per frame → a float32 `[T, 85]` sequence.

Each frame file holds `results`, a pickled dict whose entry 0 (the tracked person) has `cam`
(3), `poses` (72) and `betas` (10); a frame is their concatenation, cam first, as the
reference's `datasets/Gait3D/pretreatment_smpl.py` builds it. NumPy's own loader would have
to unpickle that dict, which runs whatever the file asks for; `safe_pickle` reads it instead.
"""
from __future__ import annotations

import io
import zipfile
from typing import Sequence

import numpy as np

from gait_jax.common import safe_pickle

PARTS = (("cam", 3), ("poses", 72), ("betas", 10))
WIDTH = sum(n for _, n in PARTS)  # 85


def _npy_payload(raw: bytes, where: str) -> bytes:
  """The data bytes after an `.npy` header of an object array (its pickle)."""
  f = io.BytesIO(raw)
  try:
    version = np.lib.format.read_magic(f)
    header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
              else np.lib.format.read_array_header_2_0)(f, max_header_size=10000)
  except ValueError as e:
    raise ValueError(f"{where}: not an .npy entry ({e})") from None
  if header[2] != np.dtype(object):
    raise ValueError(f"{where}: 'results' is an array of {header[2]}, expected the pickled "
                     "dict of Gait3D's SMPL release")
  return raw[f.tell():]


def read_frame(path: str) -> np.ndarray:
  """One frame's float32 [85] (cam, poses, betas)."""
  where = f"{path}:results"
  try:
    with zipfile.ZipFile(path) as z:
      raw = z.read("results.npy")
  except KeyError:
    raise ValueError(f"{path}: no 'results' entry (expected Gait3D's SMPL .npz)") from None
  except (OSError, zipfile.BadZipFile) as e:
    raise ValueError(f"{path}: not a readable .npz ({e})") from None
  results = safe_pickle.read_object_array(_npy_payload(raw, where), where)
  person = results.get(0) if isinstance(results, dict) else None
  if person is None and isinstance(results, (list, tuple)) and results:
    person = results[0]
  if not isinstance(person, dict):
    raise ValueError(f"{where}: expected a dict with an entry 0 holding cam/poses/betas")
  parts = []
  for key, size in PARTS:
    value = np.asarray(person.get(key, np.zeros(0)), np.float32).reshape(-1)
    if value.shape != (size,):
      raise ValueError(f"{where}: '{key}' has {value.size} values, expected {size}")
    parts.append(value)
  return np.concatenate(parts)


def read_sequence(files: Sequence[str]) -> np.ndarray:
  """The frames of `files` (in the order given) as float32 [T, 85]."""
  return np.stack([read_frame(f) for f in files]) if files else np.zeros((0, WIDTH), np.float32)
