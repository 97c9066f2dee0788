"""Static-camera video → the walking person's silhouettes (OpenCV background subtraction).

Per video:
  1. the background model (MOG2, or KNN) is learned on the clip itself — a first pass over
     every frame — so a person who is never still becomes foreground everywhere;
  2. second pass, model frozen: foreground mask, shadows removed (both subtractors mark
     shadow pixels 127, the person 255), morphological opening (specks, noise) then closing
     (holes, thin gaps between limbs and body);
  3. the largest connected blob is the person when it has at least `min_area` of the frame,
     together with the blobs right around it (limbs the subtraction cut off); a frame where it touches the image border (the person is clipped) or is lower than
     `min_height` of the frame is dropped and counted;
  4. tracking: consecutive frames with a person form a track; `max_gap` frames in a row
     without one (the person left the frame) end it, and the next person starts a new track.
     Tracks shorter than MIN_FRAMES are discarded;
  5. each kept mask is aligned by the reference pretreatment rule to 64×64.
The clip is read twice, frame by frame, so memory does not grow with its length.
No detector or segmentation network is used (none can be downloaded here); a user with a
person-segmentation model can feed its masks as PNG folders instead.
"""
from __future__ import annotations

import dataclasses
import math
import os
from typing import Dict, List, Tuple

import cv2
import numpy as np
from absl import logging

from gait_jax.data import pretreat

MIN_FRAMES = pretreat.FEW_FRAMES
SENSITIVITY = 12.0  # MOG2's squared Mahalanobis threshold (OpenCV default 16): fainter contrast
SHADOW_RATIO = 0.7
PART_FRACTION = 0.05  # a cut-off limb is at least this fraction of the body blob's area


class VideoError(ValueError):
  """A video that yields no usable person; the message names the file."""


@dataclasses.dataclass
class Track:
  frames: np.ndarray  # uint8 [T, 64, 64], aligned
  indices: np.ndarray  # int [T]: the video frame each aligned frame came from


METHODS = ("mog2", "knn")


@dataclasses.dataclass
class Options:
  """The segmentation settings (`identify.video.*` keys, `tools/video_to_silhouettes.py`)."""
  method: str = "mog2"  # mog2 | knn
  min_area: float = 0.004  # of the frame area
  min_height: float = 0.2  # of the frame height
  max_gap: int = 5  # frames without a person that end a track
  open_px: int = 3
  close_px: int = 3

  def __post_init__(self):
    if self.method not in METHODS:
      raise ValueError(f"video method {self.method!r}: expected one of {METHODS}")
    for name in ("min_area", "min_height"):
      v = getattr(self, name)
      if not (isinstance(v, (int, float)) and math.isfinite(v) and 0 <= v < 1):
        raise ValueError(f"video {name}={v!r}: expected a fraction of the frame in [0, 1)")
    for name in ("max_gap", "open_px", "close_px"):
      v = getattr(self, name)
      if isinstance(v, bool) or not isinstance(v, int) or v < (0 if name == "max_gap" else 1):
        raise ValueError(f"video {name}={v!r}: expected a whole number >= "
                         f"{0 if name == 'max_gap' else 1}")


def _frames(path: str, desc: str = ""):
  """Yields a video's frames as uint8 BGR [H, W, 3], one at a time (a minute of 1080p would
  need gigabytes at once); warns when fewer frames decode than the file declares."""
  cap = cv2.VideoCapture(path)
  if not cap.isOpened():
    raise VideoError(f"{path}: cannot be opened as a video (unknown format or damaged file)")
  declared = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
  bar = None
  if desc:
    from tqdm import tqdm  # pylint: disable=g-import-not-at-top
    bar = tqdm(total=declared or None, desc=desc, unit="frame")
  n = 0
  try:
    while True:
      ok, frame = cap.read()
      if not ok:
        break
      n += 1
      if bar is not None:
        bar.update(1)
      yield frame if frame.ndim == 3 else cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
  finally:
    cap.release()
    if bar is not None:
      bar.close()
  if n == 0:
    raise VideoError(f"{path}: no frames could be read")
  if declared and n < declared - max(2, declared // 100):
    logging.warning("%s: only %d of the %d frames it declares could be decoded (a truncated or "
                    "damaged file?); using those", path, n, declared)


def _subtractor(method: str, history: int):
  if method == "mog2":
    sub = cv2.createBackgroundSubtractorMOG2(history=history, varThreshold=SENSITIVITY,
                                             detectShadows=True)
  elif method == "knn":
    sub = cv2.createBackgroundSubtractorKNN(history=history, detectShadows=True)
  else:
    raise ValueError(f"background method {method!r}: expected mog2 or knn")
  # A shadow darkens the background by a bounded ratio; OpenCV's default (0.5) also calls a
  # person in dark clothes "shadow". 0.7: only a mild darkening is shadow.
  sub.setShadowThreshold(SHADOW_RATIO)
  return sub


def _learned_background(path: str, opts: "Options", desc: str):
  """A background model learned on the whole clip (first pass, streamed)."""
  cap = cv2.VideoCapture(path)
  count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if cap.isOpened() else 0
  cap.release()
  sub = _subtractor(opts.method, history=max(count, 1))
  for f in _frames(path, f"{desc} (background)" if desc else ""):
    sub.apply(f)
  return sub


def person_mask(sub, frame: np.ndarray, opts: Options) -> Tuple[np.ndarray, str]:
  """(the person's uint8 mask or an empty array, "" / "none" / "clipped" / "small") of one
  frame, with the background model frozen."""
  h, w = frame.shape[:2]
  open_k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (opts.open_px, opts.open_px))
  close_k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (opts.close_px, opts.close_px))
  fg = (sub.apply(frame, learningRate=0) == 255).astype(np.uint8)  # 127 = shadow: dropped
  fg = cv2.morphologyEx(cv2.morphologyEx(fg, cv2.MORPH_OPEN, open_k), cv2.MORPH_CLOSE, close_k)
  n, labels, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
  if n <= 1:
    return np.zeros((0,), np.uint8), "none"
  k = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
  if stats[k, cv2.CC_STAT_AREA] < opts.min_area * h * w:
    return np.zeros((0,), np.uint8), "none"
  person = _fill_holes(_person_parts(labels, stats, k))
  ys, xs = np.nonzero(person)
  x, y, bw, bh = xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1
  if x == 0 or y == 0 or x + bw >= w or y + bh >= h:
    return np.zeros((0,), np.uint8), "clipped"
  if bh < opts.min_height * h:
    return np.zeros((0,), np.uint8), "small"
  return person.astype(np.uint8) * 255, ""


def _person_parts(labels, stats, k: int) -> np.ndarray:
  """The largest blob and every sizeable blob within a twelfth of its height of it: legs or a
  head that the subtraction cut off the body (thin parts, colours close to the background)
  belong to the same person; another object a step away does not."""
  body = labels == k
  reach = max(3, int(stats[k, cv2.CC_STAT_HEIGHT]) // 12)
  kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1, 2 * reach + 1))
  around = cv2.dilate(body.astype(np.uint8), kernel).astype(bool)
  # Specks (noise, compression) are left out: one above the head would stretch the crop.
  big = stats[:, cv2.CC_STAT_AREA] >= PART_FRACTION * stats[k, cv2.CC_STAT_AREA]
  touching = np.zeros(len(stats), bool)
  touching[np.unique(labels[around])] = True
  keep = touching & big
  keep[0] = False  # the background label
  keep[k] = True
  return keep[labels]


def _fill_holes(mask: np.ndarray) -> np.ndarray:
  """Background pockets enclosed by the person (clothes the colour of the wall behind) are the
  person: a silhouette has no holes."""
  filled = mask.astype(np.uint8)
  contours, _ = cv2.findContours(filled, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
  cv2.drawContours(filled, contours, -1, 1, thickness=cv2.FILLED)
  return filled.astype(bool)


def video_tracks(path: str, opts: Options = Options(), progress: bool = False
                 ) -> Tuple[List[Track], Dict[str, int]]:
  """(tracks, summary) of a video, read in two streamed passes (memory bounded by one frame
  and the aligned 64×64 tracks); a VideoError when no track has MIN_FRAMES usable frames."""
  desc = os.path.basename(path) if progress else ""
  sub = _learned_background(path, opts, desc)
  summary = {"frames": 0, "kept": 0, "clipped": 0, "small": 0, "tracks": 0}
  tracks, current, gap = [], [], 0

  def close():
    if len(current) >= MIN_FRAMES:
      tracks.append(Track(np.stack([a for _, a in current]),
                          np.asarray([i for i, _ in current])))
      summary["kept"] += len(current)

  for i, frame in enumerate(_frames(path, desc)):
    summary["frames"] += 1
    mask, why = person_mask(sub, frame, opts)
    if why in ("clipped", "small"):
      summary[why] += 1
    aligned = pretreat.align_frame(mask)[0] if not why else None
    if aligned is None:
      gap += 1
      if gap > opts.max_gap and current:
        close()
        current = []
      continue
    gap = 0
    current.append((i, aligned))
  close()
  summary["tracks"] = len(tracks)
  if not tracks:
    raise VideoError(f"{path}: no moving person found ({summary['frames']} frames read, "
                     f"{summary['clipped']} clipped by the border, {summary['small']} too small;"
                     f" at least {MIN_FRAMES} usable frames in a row are needed)")
  logging.info("%s: %d frames read, %d kept, %d tracks (%d clipped, %d too small dropped)",
               path, summary["frames"], summary["kept"], summary["tracks"], summary["clipped"],
               summary["small"])
  return tracks, summary
