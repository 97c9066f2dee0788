"""GREW official-test submission files: the reference CSV, plus a zip for CodaLab.

CSV: header `videoId,rank1,...,rank20`, then one row per probe: the probe's video id (its
`view` string) and the 20 nearest gallery ids as integers (`00017` → `17`). Files are named by
local time, `<YYYY-MMDD-HHMMSS>.csv`, as the reference names them, but under
`WORKDIR/submission/` instead of `./GREW_result/`.
"""
from __future__ import annotations

import os
import time
import zipfile
from typing import Optional, Sequence, Tuple

RANKS = 20
HEADER = "videoId," + ",".join(f"rank{r}" for r in range(1, RANKS + 1))


def gallery_id_to_int(label: str) -> int:
  try:
    return int(label)
  except ValueError:
    raise ValueError(f"GREW submission: gallery id {label!r} is not an integer "
                     "(GREW test gallery ids are 5-digit numbers such as '00017')") from None


def write_submission(out_dir: str, probe_keys: Sequence[str], ranked_ids: Sequence[Sequence[str]],
                     timestamp: Optional[str] = None) -> Tuple[str, str]:
  """Writes `<out_dir>/<timestamp>.csv` and `<timestamp>.zip` (CSV inside); returns both paths.

  `ranked_ids[i]` holds at least 20 gallery ids of probe i, nearest first.
  """
  if len(probe_keys) != len(ranked_ids):
    raise ValueError(f"GREW submission: {len(probe_keys)} probes but {len(ranked_ids)} rankings")
  timestamp = timestamp or time.strftime("%Y-%m%d-%H%M%S", time.localtime())
  os.makedirs(out_dir, exist_ok=True)
  csv_path = os.path.join(out_dir, timestamp + ".csv")
  lines = [HEADER]
  for key, ids in zip(probe_keys, ranked_ids):
    if len(ids) < RANKS:
      raise ValueError(f"GREW submission: probe {key} has only {len(ids)} ranked gallery ids; "
                       f"the CSV needs {RANKS} (is the gallery smaller than {RANKS}?)")
    lines.append(",".join([str(key)] + [str(gallery_id_to_int(g)) for g in ids[:RANKS]]))
  tmp = csv_path + ".tmp"
  with open(tmp, "w") as f:
    f.write("\n".join(lines) + "\n")
  os.replace(tmp, csv_path)
  zip_path = os.path.join(out_dir, timestamp + ".zip")
  with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED) as z:
    z.write(csv_path, arcname=os.path.basename(csv_path))
  return csv_path, zip_path
