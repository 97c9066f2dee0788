"""Per-sequence input transforms: uint8 `[T, 64, 64]` in, float32 `[T, 64, 44]` out.

`build_transform("random_perspective,base_sil_cutting,random_horizontal_flip,random_rotate")`
composes the named steps in order (the Gait3D retrain transform); every pipeline contains
exactly one cutting step (`base_sil_cutting` or `random_rotate_flip`, which cuts first).

Randomness: every draw comes from the `np.random.Generator` passed in, one decision per
sequence (all frames of a sequence get the same flip/angle/warp). The reference draws from
torch's and Python's global RNGs, so the random *stream* differs from it; the probabilities,
ranges and geometry are the same.
"""
from __future__ import annotations

from typing import Callable, Dict

import cv2
import numpy as np
from PIL import Image

Transform = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def cut_width(seq: np.ndarray) -> np.ndarray:
  """Removes (w // 64) * 10 columns on each side (64 → 44), dtype unchanged."""
  w = seq.shape[-1]
  cut = (w // 64) * 10
  return seq[..., cut:w - cut] if cut else seq


def base_sil_cutting(seq: np.ndarray, rng=None) -> np.ndarray:
  """Reference BaseSilCuttingTransform: cut the width to 44 and scale 0..255 to [0, 1]."""
  del rng
  return cut_width(seq).astype(np.float32) / np.float32(255.0)


def pil_rotation_map(h: int, w: int, angle: float) -> np.ndarray:
  """Source pixel (flat index + 1, 0 = outside) of every output pixel when PIL rotates an
  h×w image by `angle` degrees with nearest-neighbour resampling.

  Nearest resampling only copies values, so rotating an image of indices with PIL itself
  gives PIL's exact geometry (its own rounding included) once per sequence instead of
  once per frame.
  """
  index = np.arange(1, h * w + 1, dtype=np.int32).reshape(h, w)
  return np.asarray(Image.fromarray(index).rotate(float(angle), resample=Image.NEAREST))


def rotate_flip_frames(seq: np.ndarray, angle: float, rotate: bool, flip: bool) -> np.ndarray:
  """Flips each frame horizontally (if `flip`), then rotates it by `angle` degrees (if
  `rotate`) counter-clockwise about the exact image centre, nearest neighbour, same canvas,
  fill 0 — PIL's `Image.rotate` as in the reference (torchvision on 32-bit float PIL images).
  """
  seq = np.asarray(seq, np.float32)
  if flip:
    seq = seq[..., ::-1]
  if not rotate:
    return np.ascontiguousarray(seq)
  t, h, w = seq.shape
  source = pil_rotation_map(h, w, angle).reshape(-1)
  flat = np.concatenate([np.zeros((t, 1), np.float32), seq.reshape(t, h * w)], axis=1)
  return flat[:, source].reshape(t, h, w)


def random_rotate_flip(rotate_p: float = 0.5, flip_p: float = 0.5, degree: float = 10.0) -> Transform:
  """Reference RandomRotateFlipTransform (GREW retrain): cut + /255, then per sequence an
  angle ~ U(-degree, degree), a rotate flag (p=rotate_p) and a flip flag (p=flip_p)."""

  def apply(seq, rng):
    seq = base_sil_cutting(seq)
    # Drawn for every sequence, in the reference's order (angle, rotate, flip).
    angle = rng.uniform(-degree, degree)
    rotate = rng.random() < rotate_p
    flip = rng.random() < flip_p
    return rotate_flip_frames(seq, angle, rotate, flip)

  return apply


def perspective_warp(seq: np.ndarray, src_points) -> np.ndarray:
  """Maps the quadrilateral `src_points` (TL, TR, BR, BL as (x, y)) onto the whole w×h canvas
  with one perspective matrix for every frame: bilinear, zero border (OpenCV)."""
  h, w = seq.shape[-2:]
  canvas = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
  matrix = cv2.getPerspectiveTransform(np.float32(src_points), canvas)
  return np.stack([
      cv2.warpPerspective(frame, matrix, (w, h), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)
      for frame in seq]).astype(seq.dtype, copy=False)


def random_perspective(prob: float = 0.2) -> Transform:
  """Reference RandomPerspective (Gait3D), meant for the uncut 64×64 frames: with probability
  `prob`, the top/bottom left corners' x are drawn from [0, c) and the right ones' from
  [w - c, w) with c = (w // 44) * 10, and that quadrilateral is stretched to the canvas."""

  def apply(seq, rng):
    if rng.random() >= prob:
      return seq
    h, w = seq.shape[-2:]
    c = (w // 44) * 10
    if c < 1:
      return seq
    tl, tr, bl, br = (int(rng.integers(0, c)), int(rng.integers(w - c, w)),
                      int(rng.integers(0, c)), int(rng.integers(w - c, w)))
    return perspective_warp(seq, [(tl, 0), (tr, 0), (br, h), (bl, h)])

  return apply


def random_horizontal_flip(prob: float = 0.2) -> Transform:
  """Reference RandomHorizontalFlip: with probability `prob` reverse the width axis."""

  def apply(seq, rng):
    if rng.random() >= prob:
      return seq
    return np.ascontiguousarray(seq[..., ::-1])

  return apply


def rotate_frames(seq: np.ndarray, angle: float) -> np.ndarray:
  """Rotates every frame by `angle` degrees (counter-clockwise for positive angles) with the
  reference's OpenCV matrix: the centre is given as (h // 2, w // 2) in OpenCV's (x, y)
  order — x and y swapped, as in the reference — bilinear, zero border."""
  h, w = seq.shape[-2:]
  matrix = cv2.getRotationMatrix2D((h // 2, w // 2), float(angle), 1.0)
  return np.stack([
      cv2.warpAffine(frame, matrix, (w, h), flags=cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_CONSTANT, borderValue=0)
      for frame in seq]).astype(seq.dtype, copy=False)


def random_rotate(prob: float = 0.2, degree: float = 10.0) -> Transform:
  """Reference RandomRotate: with probability `prob`, angle ~ U(-degree, degree)."""

  def apply(seq, rng):
    if rng.random() >= prob:
      return seq
    return rotate_frames(seq, rng.uniform(-degree, degree))

  return apply


def reshape_body(seq: np.ndarray, *, morph: int = 0, kernel=(1, 1), rows=None,
                 width_scale: float = 1.0) -> np.ndarray:
  """One body-shape change applied to every frame of `seq` (`[T, H, W]`, any dtype):

  - `morph` +1 dilates, −1 erodes, 0 leaves the outline, with a `kernel` (kh, kw) rectangle,
    only in the image rows `rows` (a slice; None: all) — a looser or tighter garment over that
    part of the body, or a merged shadow / a thinner segmentation;
  - `width_scale` stretches each frame horizontally about its centre column (bilinear, the
    canvas kept: wider bodies are clipped, narrower ones padded with 0) — broader or slimmer
    builds, and the aspect errors of cropping and resizing real silhouettes.
  """
  out = seq
  if morph:
    element = cv2.getStructuringElement(cv2.MORPH_RECT, (int(kernel[1]), int(kernel[0])))
    op = cv2.dilate if morph > 0 else cv2.erode
    changed = np.stack([op(frame, element) for frame in seq])
    if rows is None:
      out = changed
    else:
      out = seq.copy()
      out[:, rows] = changed[:, rows]
  if width_scale != 1.0:
    h, w = out.shape[-2:]
    c = (w - 1) / 2.0
    matrix = np.float32([[width_scale, 0, c * (1 - width_scale)], [0, 1, 0]])
    out = np.stack([
        cv2.warpAffine(frame, matrix, (w, h), flags=cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        for frame in out]).astype(seq.dtype, copy=False)
  return out


def random_body_shape(prob: float = 0.5, max_kernel: int = 3,
                      width_range=(0.8, 1.25)) -> Transform:
  """Not in the reference: a fresh body-shape change each time a sequence is drawn (the same
  for all its frames), so that a walker's identity must be told from how it moves rather than
  from the outline its generator gave it — clothes, build and segmentation change between real
  recordings of one person. With probability `prob` each: a dilation or erosion (kernel sides
  1..`max_kernel`, not both 1) of the whole body, its upper half or its lower half (1/2, 1/4,
  1/4); a horizontal stretch by a factor drawn log-uniformly from `width_range`. Meant for the
  uncut frames (before the cutting step). Measured on the walkers-only model it cost KTH
  validation 18 points (docs/results.md), so no config uses it."""
  lo, hi = np.log(width_range[0]), np.log(width_range[1])

  def apply(seq, rng):
    morph, kernel, rows, scale = 0, (1, 1), None, 1.0
    if rng.random() < prob:
      morph = 1 if rng.random() < 0.5 else -1
      while kernel == (1, 1):
        kernel = tuple(int(k) for k in rng.integers(1, max_kernel + 1, size=2))
      h = seq.shape[-2]
      part = rng.random()
      rows = None if part < 0.5 else (slice(0, h // 2) if part < 0.75 else slice(h // 2, h))
    if rng.random() < prob:
      scale = float(np.exp(rng.uniform(lo, hi)))
    if not morph and scale == 1.0:
      return seq
    return reshape_body(seq, morph=morph, kernel=kernel, rows=rows, width_scale=scale)

  return apply


# name -> factory of the transform with the reference configs' parameters.
TRANSFORMS: Dict[str, Callable[[], Transform]] = {
    "base_sil_cutting": lambda: base_sil_cutting,
    "random_rotate_flip": random_rotate_flip,
    "random_perspective": random_perspective,
    "random_horizontal_flip": random_horizontal_flip,
    "random_rotate": random_rotate,
    "random_body_shape": random_body_shape,
}
_CUTTING = ("base_sil_cutting", "random_rotate_flip")


def parse_names(names: str):
  parts = [n.strip() for n in str(names).split(",") if n.strip()]
  for n in parts:
    if n not in TRANSFORMS:
      raise ValueError(f"data.transforms: unknown transform {n!r}; expected a comma-separated "
                       f"list of {', '.join(TRANSFORMS)}")
  if sum(n in _CUTTING for n in parts) != 1:
    raise ValueError(f"data.transforms={names!r}: expected exactly one of {', '.join(_CUTTING)} "
                     "(the step that cuts 64 → 44 columns and scales to [0, 1])")
  return parts


def build_transform(names: str = "base_sil_cutting", uint8: bool = False) -> Transform:
  """The composition of the named transforms, `fn(seq uint8 [T,64,64], rng) -> float32 [T,64,44]`.

  `uint8=True` (only for "base_sil_cutting") returns the cut uint8 frames `[T, 64, 44]`
  instead, so the division by 255 can run on the accelerator (4× less host→device traffic).
  """
  parts = parse_names(names)
  if uint8:
    if parts != ["base_sil_cutting"]:
      raise ValueError(f"uint8 output needs data.transforms='base_sil_cutting' (got {names!r}): "
                       "the other transforms produce float frames")
    return lambda seq, rng=None: np.ascontiguousarray(cut_width(seq))
  steps = [TRANSFORMS[n]() for n in parts]

  def apply(seq, rng):
    for step in steps:
      seq = step(seq, rng)
    return np.ascontiguousarray(seq, dtype=np.float32)

  return apply
