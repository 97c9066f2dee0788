"""Training identities held out for the search fitness (spec §10.3 fixed: never the test split).

Supernet training leaves these ids out too, so a candidate's fitness is measured on people the
supernet never saw, like the benchmark's test set but without touching it.
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

import numpy as np

DEFAULT_FRACTION = 0.1
MIN_IDS = 2


def split_train_ids(train_ids: Sequence[str], val_spec: str, seed: int
                    ) -> Tuple[List[str], List[str]]:
  """(ids to train on, held-out ids), both in the original order.

  `val_spec` is `search.val_ids`: "" (10 %, at least 2), "N" (N ids), or "a,b,c" (these ids).
  The choice depends only on the id list, the spec and the seed.
  """
  ids = list(train_ids)
  spec = str(val_spec).strip()
  if spec and not spec.isdigit():
    wanted = [v.strip() for v in spec.split(",") if v.strip()]
    missing = sorted(set(wanted) - set(ids))
    if missing:
      raise ValueError(f"search.val_ids names ids that are not training ids: {missing[:5]}"
                       f"{' ...' if len(missing) > 5 else ''}")
    held = set(wanted)
  else:
    count = int(spec) if spec else max(MIN_IDS, int(round(DEFAULT_FRACTION * len(ids))))
    if not 1 <= count < len(ids):
      raise ValueError(f"search.val_ids={spec or count}: need between 1 and {len(ids) - 1} "
                       f"held-out ids out of {len(ids)} training ids")
    order = np.random.default_rng(seed).permutation(len(ids))
    held = {ids[i] for i in order[:count]}
  return [i for i in ids if i not in held], [i for i in ids if i in held]
