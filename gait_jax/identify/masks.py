"""A user's silhouette frames, of whatever encoding, as uint8 masks: white person on black.

One rule for PNG folders, pkl files and the API's arrays:
  - unambiguous encodings are converted: bool or 0/1 masks (× 255), 16-bit images (÷ 257),
    floats in [0, 1] (× 255), grey saved as RGB, one bright colour on black (red, magenta...:
    the brightest channel), an alpha channel that carries the mask over a flat image;
  - what cannot be read as a silhouette is refused with the source named: a black person on
    a white background (inverted: say so, the fix is one line), colour images (a photo, not a
    mask), negative values, values beyond the dtype's mask range.
"""
from __future__ import annotations

from typing import List, Sequence

import numpy as np


class MaskError(ValueError):
  """Frames that are not a silhouette; the message names the source and what was expected."""


EXPECTED = "expected white (255) person on black (0) silhouettes"
# Inverted: the frame's border, where a walking person rarely is, is mostly bright.
INVERTED_BORDER = 0.6


def _scale(frame: np.ndarray, where: str) -> np.ndarray:
  """One frame's values as uint8 0..255 (0/1 kept as they are: decided per sequence)."""
  if frame.dtype == np.bool_:
    return frame.astype(np.uint8)
  if frame.dtype.kind == "f":
    if not np.isfinite(frame).all():
      raise MaskError(f"{where}: non-finite values; {EXPECTED}")
    lo, hi = float(frame.min(initial=0)), float(frame.max(initial=0))
    if lo < 0 or hi > 255:
      raise MaskError(f"{where}: float values in [{lo:g}, {hi:g}]; {EXPECTED} (0..1 or 0..255)")
    return np.rint(frame * (255.0 if hi <= 1.0 else 1.0)).astype(np.uint8)
  if frame.dtype.kind not in "iu":
    raise MaskError(f"{where}: values of dtype {frame.dtype}; {EXPECTED}")
  lo, hi = int(frame.min(initial=0)), int(frame.max(initial=0))
  if lo < 0:
    raise MaskError(f"{where}: negative values ({lo}); {EXPECTED}")
  if hi <= 255:
    return frame.astype(np.uint8)
  if hi <= 65535:  # a 16-bit mask (0 / 65535, or grey levels)
    return np.rint(frame.astype(np.float32) / 257.0).astype(np.uint8)
  raise MaskError(f"{where}: values up to {hi}; {EXPECTED} (8 or 16 bits)")


def _one_channel(frame: np.ndarray, where: str) -> np.ndarray:
  """[H, W] of a grey, one-colour-on-black, or alpha-mask image [H, W, C]."""
  if frame.ndim == 2:
    return frame
  if frame.ndim != 3 or frame.shape[2] not in (1, 2, 3, 4):
    raise MaskError(f"{where}: frames of shape {frame.shape}; {EXPECTED} [H, W] (or an image "
                    "with 1-4 channels)")
  channels = [frame[..., c] for c in range(frame.shape[2])]
  if len(channels) in (2, 4):  # grey+alpha / colour+alpha
    alpha, colour = channels[-1], channels[:-1]
    flat = all(int(c.max()) == int(c.min()) for c in colour)
    if flat and int(alpha.max()) != int(alpha.min()):
      return alpha  # the mask is the transparency over a flat image
    channels = colour
  brightest = np.max(np.stack(channels), axis=0)
  for c in channels:
    # Every channel is either dark or the brightest one: grey, or one colour on black.
    if np.any((c != brightest) & (c > 16)):
      raise MaskError(f"{where}: colour frames (the channels differ: a photo, or a mask of "
                      f"several colours); {EXPECTED}")
  return brightest


def normalise(frames: Sequence[np.ndarray], where: str) -> List[np.ndarray]:
  """uint8 [H, W] masks (white person on black) of one sequence's frames, each [H, W] or
  [H, W, C], of any dtype; a MaskError naming `where` when they are not silhouettes."""
  out = [_scale(_one_channel(np.asarray(f), where), where) for f in frames]
  if not out:
    return out
  peak = max(int(f.max(initial=0)) for f in out)
  if peak == 1:  # a 0/1 mask: the pretreatment's pixel-sum rule would drop every frame
    out = [f * np.uint8(255) for f in out]
  border = np.concatenate([np.concatenate([f[0], f[-1], f[:, 0], f[:, -1]]) for f in out])
  if border.size and float(np.mean(border > 127)) > INVERTED_BORDER:
    raise MaskError(f"{where}: looks inverted (a dark person on a white background: "
                    f"{100 * float(np.mean(border > 127)):.0f} % of the frame border is white); "
                    f"{EXPECTED}: invert the frames (255 - value)")
  return out
