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
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  fig, axes = plt.subplots(1, 1 + len(matches), figsize=(1.6 * (1 + len(matches)), 2.6))
  axes = np.atleast_1d(axes)
  panels = [(probe, title, None, None)] + list(matches)
  for ax, (image, label, dist, correct) in zip(axes, panels):
    ax.imshow(image, cmap="gray", vmin=0, vmax=255)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(label if dist is None else f"{label}\n{dist:.3f}", fontsize=8)
    color = {True: "tab:green", False: "tab:red", None: "0.6"}[correct]
    for spine in ax.spines.values():
      spine.set_color(color if dist is not None else "black")
      spine.set_linewidth(3 if dist is not None else 1)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path
