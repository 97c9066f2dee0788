"""A user's sequences on disk, whatever their kind, as aligned uint8 `[T, 64, 64]` frames.

Kinds (detected from the files, in this order):
  pkl tree     `<root>/<id>/<type>/<view>/*.pkl` (OpenGait; already aligned)
  PNG folders  `<root>/<id>/<seq>/*.png` (gallery) or `<root>/<probe>/*.png` (probes): any
               size, white person on black, aligned here by the pretreatment rule
  videos       `<root>/<id>/*.mp4|avi` (gallery) or `<root>/*.mp4|avi` (probes): silhouettes
               extracted by `identify.video` (each track of a video is one sequence)
A probe root may itself be one PNG folder or one video file.
"""
from __future__ import annotations

import dataclasses
import glob
import os
from typing import Callable, List, Tuple

import cv2
import numpy as np
from absl import logging

from gait_jax.data import dataset as dataset_lib
from gait_jax.data import pretreat
from gait_jax.identify import video

MIN_FRAMES = pretreat.FEW_FRAMES  # fewer usable frames than this: not a walk to recognise
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv")


@dataclasses.dataclass
class Sequence:
  """One sequence to embed: who (the gallery id, or "" for a probe) and its name."""
  id: str
  name: str
  load: Callable[[], np.ndarray]  # -> uint8 [T, 64, 64]


class InputError(ValueError):
  """Input that cannot be used; the message names the file and what was expected."""


def align_frames(frames: np.ndarray, where: str) -> np.ndarray:
  """uint8 `[T, H, W]` silhouettes of any size → aligned uint8 `[T', 64, 64]` (frames the
  pretreatment rule drops — empty, too small — are left out). Fewer than MIN_FRAMES left is an
  InputError naming `where`."""
  frames = np.asarray(frames)
  if frames.ndim != 3 or frames.shape[0] == 0:
    raise InputError(f"{where}: expected silhouette frames [T, H, W], got shape {frames.shape}")
  if frames.dtype != np.uint8:
    raise InputError(f"{where}: expected uint8 silhouettes (0 background, 255 person), got "
                     f"{frames.dtype}")
  kept = [a for a in (pretreat.align_frame(f)[0] for f in frames) if a is not None]
  if len(kept) < MIN_FRAMES:
    raise InputError(f"{where}: {len(kept)} usable frames of {frames.shape[0]} (at least "
                     f"{MIN_FRAMES} needed; empty or tiny silhouettes are dropped)")
  return np.stack(kept)


def read_png_folder(folder: str) -> np.ndarray:
  """The aligned frames of a folder of PNG silhouettes (sorted by name). Unreadable frames
  are skipped with a warning naming them."""
  files = sorted(glob.glob(os.path.join(folder, "*.png")))
  if not files:
    raise InputError(f"{folder}: no *.png frames")
  frames, aligned = [], []
  for f in files:
    img = cv2.imread(f, cv2.IMREAD_GRAYSCALE)
    if img is None:
      logging.warning("%s: unreadable PNG, skipped", f)
      continue
    frames.append(img)
    out, _ = pretreat.align_frame(img)
    if out is not None:
      aligned.append(out)
  if len(aligned) < MIN_FRAMES:
    raise InputError(f"{folder}: {len(aligned)} usable frames of {len(files)} PNGs (at least "
                     f"{MIN_FRAMES} needed; unreadable, empty or tiny silhouettes are dropped)")
  return np.stack(aligned)


def _video_sequences(path: str, pid: str) -> List[Sequence]:
  """One sequence per person track of a video (`<stem>`, or `<stem>#k` for several); a video
  without a usable person is skipped with a warning naming it."""
  try:
    tracks, _ = video.video_tracks(path, progress=True)
  except video.VideoError as e:
    logging.warning("skipped %s", e)
    return []
  stem = os.path.splitext(os.path.basename(path))[0]
  out = []
  for k, track in enumerate(tracks):
    name = stem if len(tracks) == 1 else f"{stem}#{k}"
    out.append(Sequence(pid, name, (lambda fr=track.frames: fr)))
  return out


def _pkl_sequences(root: str, with_ids: bool) -> List[Sequence]:
  out = []
  for pid in sorted(os.listdir(root)):
    for seq_dir in sorted(glob.glob(os.path.join(root, pid, "*", "*"))):
      pkls = sorted(glob.glob(os.path.join(seq_dir, "*.pkl")))
      if pkls:
        rel = os.path.relpath(seq_dir, root).replace(os.sep, "/")
        out.append(Sequence(pid if with_ids else "", rel,
                            (lambda p=pkls[0]: dataset_lib.load_pkl(p))))
  return out


def _is_pkl_tree(root: str) -> bool:
  return bool(glob.glob(os.path.join(root, "*", "*", "*", "*.pkl")))


def _pngs(folder: str) -> bool:
  return bool(glob.glob(os.path.join(folder, "*.png")))


def _is_video(path: str) -> bool:
  return os.path.isfile(path) and path.lower().endswith(VIDEO_EXTENSIONS)


def gallery_sequences(root: str) -> List[Sequence]:
  """Every sequence under a gallery root, with its id."""
  root = os.path.abspath(root)
  if not os.path.isdir(root):
    raise InputError(f"identify.gallery={root}: not a directory (expected <id>/<seq>/*.png, "
                     "<id>/*.mp4|avi or an OpenGait pkl tree <id>/<type>/<view>/)")
  if _is_pkl_tree(root):
    return _pkl_sequences(root, with_ids=True)
  out = []
  for pid in sorted(os.listdir(root)):
    id_dir = os.path.join(root, pid)
    if not os.path.isdir(id_dir):
      continue
    for entry in sorted(os.listdir(id_dir)):
      path = os.path.join(id_dir, entry)
      if os.path.isdir(path) and _pngs(path):
        out.append(Sequence(pid, f"{pid}/{entry}", (lambda p=path: read_png_folder(p))))
      elif _is_video(path):
        out.extend(_video_sequences(path, pid))
  if not out:
    raise InputError(f"identify.gallery={root}: no sequences found (expected <id>/<seq>/*.png, "
                     "<id>/*.mp4|avi or an OpenGait pkl tree <id>/<type>/<view>/*.pkl)")
  for s in out:
    s.name = s.name if "/" in s.name else f"{s.id}/{s.name}"
  return out


def probe_sequences(root: str) -> List[Sequence]:
  """Every probe under `root`: each PNG folder or video directly under it, each sequence of a
  pkl tree, or `root` itself when it is one PNG folder or one video."""
  root = os.path.abspath(root)
  if _is_video(root):
    return _video_sequences(root, "")
  if not os.path.isdir(root):
    raise InputError(f"identify.probes={root}: not a directory or a video file")
  if _pngs(root):
    return [Sequence("", os.path.basename(root), (lambda: read_png_folder(root)))]
  if _is_pkl_tree(root):
    return _pkl_sequences(root, with_ids=False)
  out: List[Sequence] = []
  for entry in sorted(os.listdir(root)):
    path = os.path.join(root, entry)
    if os.path.isdir(path) and _pngs(path):
      out.append(Sequence("", entry, (lambda p=path: read_png_folder(p))))
    elif _is_video(path):
      out.extend(_video_sequences(path, ""))
  if not out:
    raise InputError(f"identify.probes={root}: no probes found (expected PNG folders or videos "
                     "directly under it, an OpenGait pkl tree, or one PNG folder / video)")
  return out


def load_usable(sequences: List[Sequence]) -> List[Tuple[Sequence, np.ndarray]]:
  """(sequence, frames) of every sequence that loads with enough frames; the others are
  skipped with a one-line warning naming them."""
  out = []
  for s in sequences:
    try:
      frames = s.load()
    except (InputError, ValueError, OSError) as e:
      logging.warning("skipped %s: %s", s.name, e)
      continue
    if frames.shape[0] < MIN_FRAMES:
      logging.warning("skipped %s: %d frames (at least %d needed)", s.name, frames.shape[0],
                      MIN_FRAMES)
      continue
    out.append((s, frames))
  return out
