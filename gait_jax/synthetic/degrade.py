"""KTH-like degradations: what real low-resolution background subtraction does to a walker.

The clean profile's artefacts (ragged edges, holes, short shadows, a missing band now and
then) come from a sharp 128-pixel body. Real side-view footage such as KTH (160×120 pixels, a
person 40–100 pixels tall) differs in ways a model trained on clean walkers never sees:

- **resolution**: the person is a few dozen pixels tall, so the aligned 64×64 silhouette is a
  blocky upscale; in a zoom sequence (KTH d2) that height changes during the walk;
- **persistent losses**: a band of the body (torso against a wall of the same colour, legs
  against the ground) is missing for many consecutive frames, not one;
- **long shadows and clipping** more often than in the clean profile;
- **walking direction**: passes alternate left/right, i.e. mirror images.

`sample(rng)` draws one sequence's settings; `apply` works on the raw bool [H, W, T] masks
before the pretreatment's alignment, as real segmentation output would be.

The footage profile adds, on top of kth, what the real KTH silhouettes show beside the
generated ones (docs/data.md's contact sheet) — per sequence, each with some probability:

- **merged limbs**: a coarse segmentation closes the gaps between legs and arms and swells the
  outline (a morphological closing and dilation some percent of the body height wide): the
  blob a long coat or a poor background model gives;
- **thin, broken bodies**: the opposite (an erosion): thin limbs break up;
- **a part lost for the whole walk**: a large band (a quarter to half the body) missing in
  every frame, e.g. a torso the colour of the wall behind it;
- **an attached background patch**: a rectangle of background beside the body (a door, a
  parked bicycle) kept by the segmentation for part of the walk.

`sample_footage(rng)` draws these (after kth's draws: the kth bytes stay as they were);
`apply_footage` works on the raw masks before `apply`.
"""
from __future__ import annotations

from typing import Dict

import cv2
import numpy as np

from gait_jax.synthetic import render

PROFILES = ("clean", "kth", "footage")


def check_profile(profile: str) -> str:
  if profile not in PROFILES:
    raise ValueError(f"profile={profile!r}: expected one of {', '.join(PROFILES)}")
  return profile


def strengthen_noise(noise: Dict, rng: np.random.Generator) -> Dict:
  """The clean profile's artefact settings made as frequent as in KTH's segmentation."""
  noise = dict(noise)
  noise["edge"] = float(rng.uniform(0.15, 0.5))
  noise["shadow"] = bool(rng.random() < 0.6)
  noise["shadow_len"] = float(rng.uniform(0.2, 0.8))
  noise["fragment_p"] = float(rng.uniform(0.0, 0.2))
  noise["clip_p"] = float(rng.uniform(0.0, 0.12))
  return noise


def sample(rng: np.random.Generator) -> Dict:
  """One sequence's KTH-like settings."""
  height0 = float(rng.uniform(40.0, 100.0))  # body height in pixels at the first frame
  zoom = bool(rng.random() < 0.3)
  return {
      "height0": height0,
      # A zoom changes the height by up to 2× over the sequence, either way.
      "height1": height0 * float(np.exp(rng.uniform(-0.7, 0.7))) if zoom else height0,
      "band": bool(rng.random() < 0.4),
      "band_top": float(rng.uniform(0.2, 0.75)),  # fraction of body height from the top
      "band_size": float(rng.uniform(0.08, 0.25)),
      "band_run": float(rng.uniform(0.2, 0.8)),  # fraction of the frames it lasts
      "mirror": bool(rng.random() < 0.5),
  }


def apply(mask: np.ndarray, settings: Dict, rng: np.random.Generator) -> np.ndarray:
  """bool [H, W, T] raw masks (body `H` pixels tall at most) -> degraded bool masks of a
  possibly smaller size (alignment rescales every frame to 64 rows anyway)."""
  H, W, T = mask.shape
  out = mask.copy()
  if settings["band"] and T:
    run = max(1, int(round(settings["band_run"] * T)))
    start = int(rng.integers(0, T - run + 1))
    rows_any = out.any(1)  # [H, T]
    for t in range(start, start + run):
      rows = np.flatnonzero(rows_any[:, t])
      if len(rows) == 0:
        continue
      top, height = rows[0], rows[-1] - rows[0] + 1
      y0 = top + int(settings["band_top"] * height)
      out[y0:y0 + max(1, int(settings["band_size"] * height)), :, t] = False
  if settings["mirror"]:
    out = out[:, ::-1]
  heights = np.linspace(settings["height0"], settings["height1"], max(T, 1))
  return _lower_resolution(out, heights)


def _lower_resolution(mask: np.ndarray, heights: np.ndarray) -> np.ndarray:
  """Each frame seen by a camera where the whole picture `H` rows tall is `heights[t]` pixels
  (area-averaged, thresholded at half), then drawn back at the picture size (bilinear,
  thresholded at half): the lost detail and rounded outlines of a low-resolution
  segmentation."""
  H, W, T = mask.shape
  out = np.empty_like(mask)
  for t in range(T):
    f = min(1.0, float(heights[t]) / H)
    small = (max(1, int(round(W * f))), max(1, int(round(H * f))))
    low = cv2.resize(mask[..., t].view(np.uint8) * np.uint8(255), small,
                     interpolation=cv2.INTER_AREA) > 127
    out[..., t] = cv2.resize(low.view(np.uint8) * np.uint8(255), (W, H),
                             interpolation=cv2.INTER_LINEAR) > 127
  return out


def sample_footage(rng: np.random.Generator) -> Dict:
  """One sequence's footage settings (fractions of the body height)."""
  return {
      "merge": float(rng.uniform(0.04, 0.12)) if rng.random() < 0.35 else 0.0,
      "thin": float(rng.uniform(0.01, 0.03)) if rng.random() < 0.2 else 0.0,
      "lost": bool(rng.random() < 0.25),
      "lost_top": float(rng.uniform(0.1, 0.5)),
      "lost_size": float(rng.uniform(0.25, 0.5)),
      "patch": bool(rng.random() < 0.3),
      "patch_w": float(rng.uniform(0.15, 0.45)),
      "patch_h": float(rng.uniform(0.15, 0.5)),
      "patch_top": float(rng.uniform(0.0, 0.6)),
      "patch_left": bool(rng.random() < 0.5),
      "patch_run": float(rng.uniform(0.1, 0.5)),
  }


def apply_footage(mask: np.ndarray, settings: Dict, rng: np.random.Generator) -> np.ndarray:
  """bool [H, W, T] raw masks -> the same size with the footage artefacts `settings` asks."""
  present, top, bottom, left, right = render.body_boxes(mask)
  if not present.any():
    return mask.copy()
  body = float(np.median((bottom - top + 1)[present]))
  out = mask.view(np.uint8) * np.uint8(255)
  if settings["merge"]:
    out = _morph(out, cv2.MORPH_CLOSE, settings["merge"] * body)
    out = _morph(out, cv2.MORPH_DILATE, settings["merge"] * body / 3)
  if settings["thin"]:
    out = _morph(out, cv2.MORPH_ERODE, settings["thin"] * body)
  out = out > 127
  frames = np.flatnonzero(present)
  if settings["lost"]:
    for t in frames:
      height = bottom[t] - top[t] + 1
      y0 = top[t] + int(settings["lost_top"] * height)
      out[y0:y0 + max(1, int(settings["lost_size"] * height)), :, t] = False
  if settings["patch"]:
    run = max(1, int(round(settings["patch_run"] * len(frames))))
    start = int(rng.integers(0, len(frames) - run + 1))
    w, h = max(1, int(settings["patch_w"] * body)), max(1, int(settings["patch_h"] * body))
    for t in frames[start:start + run]:
      x0 = left[t] - w if settings["patch_left"] else right[t] + 1
      y0 = top[t] + int(settings["patch_top"] * (bottom[t] - top[t] + 1))
      out[y0:y0 + h, max(x0, 0):max(x0 + w, 0), t] = True
  return out


def _morph(stack: np.ndarray, op: int, size: float) -> np.ndarray:
  """A morphological `op` with an elliptical kernel about `size` pixels wide on uint8
  [H, W, T]."""
  k = 2 * int(round(size / 2)) + 1  # odd: centred, so the outline moves the same both ways
  kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
  return render.cv2_frames(lambda a: cv2.morphologyEx(a, op, kernel), stack)

