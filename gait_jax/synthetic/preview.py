"""A contact sheet (PNG) of generated sequences above real silhouettes, to compare by eye."""
from __future__ import annotations

import os
from typing import List, Optional, Tuple

import numpy as np

from gait_jax.common import safe_pickle

SIZE = 64


def _load_seq(path: str) -> np.ndarray:
  return np.asarray(safe_pickle.read(path))


def _strip(seq: np.ndarray, n: int, step: int) -> np.ndarray:
  """n frames (every step-th) side by side, padded with black if the sequence is short."""
  out = np.zeros((SIZE, SIZE * n), np.uint8)
  for i, f in enumerate(seq[::step][:n]):
    out[:, i * SIZE:(i + 1) * SIZE] = f
  out[:, ::SIZE] = np.maximum(out[:, ::SIZE], 60)  # faint frame separators
  return out


def contact_sheet(root: str, out_png: str, real_root: Optional[str] = None, ids: int = 3,
                  types=("nm-01", "bg-01", "cl-01"), n_frames: int = 10, step: int = 2,
                  real_rows: int = 6) -> str:
  """A PNG of generated sequences (first `ids` ids × types × every view, a strip of frames
  each) above real KTH silhouettes from `real_root` (when it exists), rows labelled."""
  from PIL import Image, ImageDraw  # pillow is only needed for previews

  rows: List[Tuple[str, np.ndarray]] = []
  for sid in sorted(os.listdir(root))[:ids]:
    for t in types:
      tdir = os.path.join(root, sid, t)
      if not os.path.isdir(tdir):
        continue
      for view in sorted(os.listdir(tdir)):
        seq = _load_seq(os.path.join(tdir, view, f"{view}.pkl"))
        rows.append((f"gen {sid} {t} {view}", _strip(seq, n_frames, step)))
  if real_root and os.path.isdir(real_root):
    seqs = []
    for pid in sorted(os.listdir(real_root)):
      pdir = os.path.join(real_root, pid)
      if os.path.isdir(pdir):
        for t in sorted(os.listdir(pdir)):
          if t.endswith("-00"):
            seqs.append((pid, t))
    # Spread the picks over people and scenarios.
    for pid, t in seqs[::max(1, len(seqs) // real_rows)][:real_rows]:
      vdir = os.path.join(real_root, pid, t)
      view = sorted(os.listdir(vdir))[0]
      seq = _load_seq(os.path.join(vdir, view, f"{view}.pkl"))
      rows.append((f"REAL {pid} {t}", _strip(seq, n_frames, step)))
  if not rows:
    raise ValueError(f"contact_sheet: no sequences under {root}")
  label_w = 150
  sheet = Image.new("L", (label_w + SIZE * n_frames, SIZE * len(rows)), 0)
  draw = ImageDraw.Draw(sheet)
  for r, (label, strip) in enumerate(rows):
    sheet.paste(Image.fromarray(strip), (label_w, r * SIZE))
    draw.text((4, r * SIZE + SIZE // 2 - 6), label, fill=200)
  os.makedirs(os.path.dirname(os.path.abspath(out_png)), exist_ok=True)
  sheet.save(out_png, optimize=True)
  return out_png
