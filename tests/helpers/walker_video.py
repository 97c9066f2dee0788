"""Static-camera videos of generated walkers, with their ground-truth masks.

What makes them hard in the ways CCTV footage is: the walker (a textured, shaded body) crosses
a textured background that shifts by a pixel or so (camera shake), under flickering light,
with sensor noise, JPEG compression (MJPG) and a second moving object (smaller than a person).
The walker's silhouettes come from `walkers.render_views` (aligned 64×64, walking on the
spot), scaled to `person_height` pixels and moved across the frame at walking speed.
"""
from __future__ import annotations

import os
from typing import Dict, Tuple

import cv2
import numpy as np

from gait_jax.synthetic import gait, walkers


def _texture(rng: np.random.Generator, h: int, w: int, cell: int, lo: float, hi: float):
  small = rng.uniform(lo, hi, size=(max(2, h // cell), max(2, w // cell), 3))
  return cv2.resize(small.astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)


def walker_masks(seed: int, sid: str, seq_type: str = "nm-01", frames: int = 40) -> np.ndarray:
  """A generated walker's side-view silhouettes, uint8 [T, 64, 64] (0/255)."""
  return walkers.render_views(seed, sid, seq_type, ("090",), frames)["090"]


def compose(silhouettes: np.ndarray, *, seed: int, size: Tuple[int, int] = (320, 240),
            person_height: int = 120, lead_in: int = 6, distractor: bool = True,
            shake: float = 1.0, flicker: float = 0.06, noise: float = 4.0,
            ) -> Tuple[np.ndarray, np.ndarray]:
  """(BGR frames uint8 [T, H, W, 3], ground-truth masks uint8 [T, H, W]) of a walker crossing
  the scene left to right; `lead_in` frames before it enters and after it leaves are empty."""
  rng = np.random.default_rng(seed)
  w, h = size
  n = len(silhouettes)
  scale = person_height / silhouettes.shape[1]
  side = int(round(silhouettes.shape[2] * scale))
  margin = 8
  total = n + 2 * lead_in
  background = _texture(rng, h + 2 * margin, w + 2 * margin, 24, 90, 210)  # wall, floor
  background += rng.normal(0, 6, background.shape).astype(np.float32)  # fine grain
  skin = _texture(rng, side, side, 8, 15, 95)  # the person: darker clothes, own texture
  top = h - person_height - int(0.08 * h)
  xs = np.linspace(-side * 0.25, w - side * 0.75, n)  # from the left edge to the right edge
  frames = np.zeros((total, h, w, 3), np.uint8)
  masks = np.zeros((total, h, w), np.uint8)
  for t in range(total):
    dx, dy = (rng.normal(0, shake, 2) if shake else (0.0, 0.0))
    shift = np.float32([[1, 0, dx - margin], [0, 1, dy - margin]])
    img = cv2.warpAffine(background, shift, (w, h), flags=cv2.INTER_LINEAR)
    if distractor:  # a small box gliding up and down at the right
      cy = int(h * (0.3 + 0.2 * np.sin(t / 6.0)))
      cv2.rectangle(img, (int(0.85 * w), cy), (int(0.85 * w) + 14, cy + 14), (30, 200, 220), -1)
    k = t - lead_in
    if 0 <= k < n:
      sil = cv2.resize(silhouettes[k], (side, side), interpolation=cv2.INTER_LINEAR) > 127
      x0 = int(round(xs[k]))
      full = np.zeros((h, w), bool)
      xa, xb = max(0, x0), min(w, x0 + side)
      ya, yb = max(0, top), min(h, top + side)
      if xb > xa:
        full[ya:yb, xa:xb] = sil[ya - top:yb - top, xa - x0:xb - x0]
        person = np.zeros((h, w, 3), np.float32)
        person[ya:yb, xa:xb] = skin[ya - top:yb - top, xa - x0:xb - x0]
        img = np.where(full[..., None], person, img)
        masks[t] = full.astype(np.uint8) * 255
    gain = 1.0 + flicker * np.sin(t * 1.3) + rng.normal(0, flicker / 3)
    img = img * gain + rng.normal(0, noise, img.shape)
    frames[t] = np.clip(img, 0, 255).astype(np.uint8)
  return frames, masks


def write_video(path: str, frames: np.ndarray, fps: int = 25) -> str:
  """Writes BGR frames as an MJPG .avi (OpenCV's built-in codec: no ffmpeg needed)."""
  os.makedirs(os.path.dirname(os.path.abspath(path)) or ".", exist_ok=True)
  h, w = frames.shape[1:3]
  writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
  if not writer.isOpened():
    raise OSError(f"{path}: OpenCV cannot write an MJPG video here")
  try:
    for f in frames:
      writer.write(f)
  finally:
    writer.release()
  return path


def make_walker_video(path: str, seed: int, sid: str, seq_type: str = "nm-01",
                      frames: int = 40, **kwargs) -> Dict[str, np.ndarray]:
  """Renders one walker's crossing to `path`; returns its clean silhouettes and the masks."""
  sils = walker_masks(seed, sid, seq_type, frames)
  scene_seed = int(gait.rng_for(seed, "video", sid, seq_type).integers(2**31))
  video, masks = compose(sils, seed=scene_seed, **kwargs)
  write_video(path, video)
  return {"silhouettes": sils, "masks": masks}
