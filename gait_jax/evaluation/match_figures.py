"""A probe's gait-energy image beside its nearest gallery matches, as a PNG."""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np

from gait_jax.data import transforms


def gei(frames: np.ndarray) -> np.ndarray:
  """uint8 [T, 64, 64] aligned silhouettes → uint8 [64, 44]: their mean, cut as the network
  sees them."""
  return np.clip(transforms.cut_width(np.asarray(frames)).astype(np.float32).mean(0), 0,
                 255).astype(np.uint8)


def match_figure(path: str, probe: np.ndarray, title: str,
                 matches: Sequence[Tuple[np.ndarray, str, float, Optional[bool]]]) -> str:
  """Writes `probe`'s GEI and each match's (GEI, label, distance, correct?) side by side;
  a correct match is framed green, a wrong one red (None: not known, grey)."""
  return match_rows(path, [(probe, title, matches)])


def match_rows(path: str, rows: Sequence[Tuple[np.ndarray, str, Sequence]], title: str = ""
               ) -> str:
  """One row per probe, as `match_figure`: (probe GEI, its title, its matches)."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  cols = 1 + max(len(m) for _, _, m in rows)
  fig, axes = plt.subplots(len(rows), cols, figsize=(1.6 * cols, 2.6 * len(rows) + 0.3 * bool(title)),
                           squeeze=False)
  for row_axes, (probe, probe_title, matches) in zip(axes, rows):
    panels = [(probe, probe_title, None, None)] + list(matches)
    for ax in row_axes[len(panels):]:
      ax.axis("off")
    for ax, (image, label, dist, correct) in zip(row_axes, panels):
      ax.imshow(image, cmap="gray", vmin=0, vmax=255)
      ax.set_xticks([])
      ax.set_yticks([])
      ax.set_title(label if dist is None else f"{label}\n{dist:.3f}", fontsize=8)
      color = {True: "tab:green", False: "tab:red", None: "0.6"}[correct]
      for spine in ax.spines.values():
        spine.set_color(color if dist is not None else "black")
        spine.set_linewidth(3 if dist is not None else 1)
  if title:
    fig.suptitle(title, fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path
