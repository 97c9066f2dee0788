"""The embeddings file (`WORKDIR/embeddings.npz`) that embed writes and evaluate reads:
`embeddings` float32 [N, c, p], `labels` (ids), `types`, `views` (strings, one per embedding),
and `step` (checkpoint step) / `path` when written by embed."""
from __future__ import annotations

import os
from typing import Dict

import numpy as np

from gait_jax.common import io
from gait_jax.evaluation import embedding_checks

NPZ_KEYS = ("embeddings", "labels", "types", "views")


def load_embeddings(path: str) -> Dict[str, np.ndarray]:
  """The embeddings npz as a dict, checked; errors name the file and the missing/bad key."""
  if not os.path.isfile(path):
    raise FileNotFoundError(f"embeddings file {path} does not exist (run --config.mode=embed first, "
                            "or set --config.evaluate.embeddings=FILE.npz)")
  try:
    with np.load(path, allow_pickle=False) as z:
      data = {k: z[k] for k in z.files}
  except Exception as e:  # zipfile/pickle/format errors: say which file
    raise ValueError(f"embeddings file {path} is not a readable .npz: {e}") from None
  missing = [k for k in NPZ_KEYS if k not in data]
  if missing:
    raise ValueError(f"embeddings file {path} lacks key(s) {missing}; expected {list(NPZ_KEYS)} "
                     f"(found {sorted(data)})")
  emb = data["embeddings"]
  if emb.ndim != 3 or not np.issubdtype(emb.dtype, np.floating):
    raise ValueError(f"embeddings file {path}: 'embeddings' must be float [N, c, p], "
                     f"got {emb.dtype} {emb.shape}")
  for k in NPZ_KEYS[1:]:
    if data[k].shape != (emb.shape[0],):
      raise ValueError(f"embeddings file {path}: '{k}' must hold {emb.shape[0]} strings "
                       f"(one per embedding), got shape {data[k].shape}")
  embedding_checks.check_finite(emb, data["labels"], data["types"], data["views"],
                                f"embeddings file {path}")
  return data


def save_embeddings(path: str, data: Dict[str, np.ndarray]) -> str:
  return io.write_npz(path, data)
