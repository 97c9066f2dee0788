"""Projected capsules to binary masks (vectorised rasterisation), then the artefacts of real
background subtraction: ragged edges, holes, ground shadows, missing bands, blobs, clipping."""
from __future__ import annotations

from typing import Dict

import cv2
import numpy as np

RASTER_CHUNK = 15  # frames rasterised together (see rasterise)


def rasterise(caps2d, height: int, width: int) -> np.ndarray:
  """Binary union of 2-D tapered capsules, vectorised over frames.

  caps2d: list of (a [T,2], b [T,2], r_a, r_b) in pixel coordinates (col, row).
  Returns bool [height, width, T] (frames last, the layout cv2 filters take as channels).
  """
  T = caps2d[0][0].shape[0]
  canvas = np.zeros((height, width, T), bool)
  # Moving limbs sweep a large box over a whole sequence; boxes over ~half a stride are
  # smaller, which outweighs the extra loop overhead.
  for s in range(0, T, RASTER_CHUNK):
    canvas[..., s:s + RASTER_CHUNK] = _rasterise_frames(
        [(a[s:s + RASTER_CHUNK], b[s:s + RASTER_CHUNK], ra, rb) for a, b, ra, rb in caps2d],
        height, width)
  return canvas


def _rasterise_frames(caps2d, height: int, width: int) -> np.ndarray:
  T = caps2d[0][0].shape[0]
  canvas = np.zeros((height, width, T), bool)
  for a, b, ra, rb in caps2d:
    rmax = max(ra, rb)
    lo = np.floor(np.minimum(a, b).min(0) - rmax).astype(int)
    hi = np.ceil(np.maximum(a, b).max(0) + rmax).astype(int) + 1
    x0, y0 = max(lo[0], 0), max(lo[1], 0)
    x1, y1 = min(hi[0], width), min(hi[1], height)
    if x1 <= x0 or y1 <= y0:
      continue
    px = np.arange(x0, x1, dtype=np.float32) + 0.5
    py = np.arange(y0, y1, dtype=np.float32) + 0.5
    d = (b - a).astype(np.float32)
    inv = 1.0 / np.maximum((d * d).sum(-1), 1e-6)
    dx = px[None, :, None] - a[:, 0].astype(np.float32)  # [1, w, T]
    dy = py[:, None, None] - a[:, 1].astype(np.float32)  # [h, 1, T]
    t = np.clip((dx * (d[:, 0] * inv) + dy * (d[:, 1] * inv)), 0.0, 1.0)
    ex = dx - t * d[:, 0]
    ey = dy - t * d[:, 1]
    r = ra + (rb - ra) * t
    canvas[y0:y1, x0:x1] |= ex * ex + ey * ey <= r * r
  return canvas


def _smooth_noise(rng, height: int, width: int, frames: int, cell: int) -> np.ndarray:
  """Random uint8 field [height, width, frames] (0..255) with features about `cell` pixels."""
  small = rng.integers(0, 256, (height // cell + 2, width // cell + 2, frames), dtype=np.uint8)
  return _resize_frames(small, width, height)


def _resize_frames(stack: np.ndarray, width: int, height: int) -> np.ndarray:
  return cv2_frames(lambda a: cv2.resize(a, (width, height), interpolation=cv2.INTER_LINEAR),
                    stack)


def cv2_frames(fn, stack: np.ndarray) -> np.ndarray:
  """`fn` (a cv2 filter of one multi-channel picture) over the frames of [H, W, T] pictures:
  cv2 takes at most 512 channels at a time and drops a single channel axis."""
  parts = [_as3d(fn(stack[..., i:i + 512])) for i in range(0, stack.shape[-1], 512)]
  return parts[0] if len(parts) == 1 else np.concatenate(parts, -1)


def body_boxes(mask: np.ndarray):
  """(present, top, bottom, left, right), each [T], of bool [H, W, T] masks: which frames hold
  a body and its box, vectorised over frames (empty frames get a dummy box)."""
  H, W, _ = mask.shape
  rows_any, cols_any = mask.any(1), mask.any(0)  # [H, T], [W, T]
  top = np.argmax(rows_any, 0)
  bottom = H - 1 - np.argmax(rows_any[::-1], 0)
  left = np.argmax(cols_any, 0)
  right = W - 1 - np.argmax(cols_any[::-1], 0)
  return rows_any.any(0), top, bottom, left, right


def corrupt(mask: np.ndarray, rng: np.random.Generator, noise: Dict, ground_row: np.ndarray,
            scale: float) -> np.ndarray:
  """Background-subtraction artefacts on bool [H, W, T] silhouettes.

  ground_row: per-frame image row of the feet (shadow anchor); scale: pixels per stature.
  """
  H, W, T = mask.shape
  # Ragged edges: threshold a blurred mask at a noisy level.
  # Everything in uint8 (0..255): a quarter of float32's memory traffic.
  m = mask.view(np.uint8) * np.uint8(255)
  blur = cv2_frames(lambda a: cv2.blur(a, (5, 5)), m)
  # Threshold 0.5 ± edge, looked up per noise value.
  lut = np.clip(np.round(127.5 + (np.arange(256) - 127.5) * 2 * noise["edge"]), 0, 255)
  level = _as3d(cv2.LUT(_smooth_noise(rng, H, W, T, 4), lut.astype(np.uint8)))
  out = blur > level
  # Holes where clothing happens to match the background.
  if noise["holes"] > 0.01:
    out &= _smooth_noise(rng, H, W, T, 10) > min(int(noise["holes"] * 1.5 * 255), 255)
  present, top, bottom, left, right = body_boxes(mask)
  cols = np.arange(W, dtype=np.float32)
  if noise["shadow"]:
    # A flat band on the ground beside the feet that background subtraction keeps.
    length = noise["shadow_len"] * scale
    half_h = max(1.5, 0.015 * scale)
    cx = (left + right) / 2 + noise["shadow_side"] * length / 2
    y0 = max(int(np.floor(ground_row.min() - half_h)), 0)
    y1 = min(int(np.ceil(ground_row.max() + half_h)) + 1, H)
    if y1 > y0:
      ry = (np.arange(y0, y1, dtype=np.float32)[:, None, None] - ground_row) / half_h
      rx = (cols[None, :, None] - cx) / (length / 2 + 1)
      out[y0:y1] |= (rx * rx + ry * ry <= 1.0) & present
  rows = np.arange(H, dtype=np.float32)[:, None]
  for t in np.nonzero((rng.random(T) < noise["fragment_p"]) & present)[0]:
    # A band of the body lost (e.g. the torso matching a wall).
    h = int(rng.uniform(0.05, 0.2) * (bottom[t] - top[t] + 1)) + 1
    y = int(rng.uniform(top[t], max(bottom[t] - h + 1, top[t] + 1)))
    out[y:y + h, :, t] = False
  for t in np.nonzero((rng.random(T) < noise["blob_p"]) & present)[0]:
    r = rng.uniform(0.02, 0.05) * scale
    cy = rng.uniform(top[t], bottom[t])
    cx = left[t] - r * 0.8 if rng.random() < 0.5 else right[t] + r * 0.8
    out[..., t] |= (cols[None, :] - cx) ** 2 + (rows - cy) ** 2 <= r * r
  for t in np.nonzero((rng.random(T) < noise["clip_p"]) & present)[0]:
    # The picture edge cuts the person (feet or head outside the frame).
    cut = int(rng.uniform(0.05, 0.25) * (bottom[t] - top[t]))
    if rng.random() < 0.7:
      out[bottom[t] - cut + 1:, :, t] = False
    else:
      out[:top[t] + cut, :, t] = False
  if noise["enter"]:
    # The walker enters the field of view: early frames show only the leading part.
    n = int(rng.integers(1, 5))
    for t in range(min(n, T)):
      if present[t]:
        keep = 0.4 + 0.6 * (t + 1) / (n + 1)
        cut = int(right[t] - keep * (right[t] - left[t]))
        out[:, :cut, t] = False
  return out


def _as3d(a: np.ndarray) -> np.ndarray:
  # cv2 drops a single channel axis.
  return a if a.ndim == 3 else a[..., None]
