"""A user's sequences on disk, whatever their kind, as aligned uint8 `[T, 64, 64]` frames.

Every layout is read by one rule, applied below each gallery id folder (the gallery) or below
the probe root (probes):
  - a folder that directly holds silhouette images (`*.png|jpg|bmp`, any case) is one sequence,
    named by its path: `<id>/*.png`, `<id>/<seq>/*.png`, `<id>/<seq>/<cam>/*.png` all work;
  - a folder that directly holds `*.pkl` files is one sequence (an OpenGait
    `<id>/<type>/<view>/` folder; its first pkl holding a `[T, H, W]` array is the silhouettes);
  - a video (`*.mp4|avi|mov|mkv`) gives one sequence per person track (`identify.video`).
Images of any size and encoding are normalised by `identify.masks` (0/1, 16-bit, one colour on
black), then aligned by the pretreatment rule. What is not read is reported, never dropped
silently: each `Skipped` entry names the file or folder and why.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Callable, List, Optional, Tuple

import cv2
import numpy as np
from absl import logging

from gait_jax.common import safe_pickle
from gait_jax.data import pretreat
from gait_jax.identify import masks
from gait_jax.identify import video_tracks

MIN_FRAMES = pretreat.FEW_FRAMES  # fewer usable frames than this: not a walk to recognise
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")
LAYOUTS = ("<id>/<seq>/*.png, <id>/*.png, <id>/<seq>/<cam>/*.png, <id>/*.mp4|avi or an "
           "OpenGait pkl tree <id>/<type>/<view>/*.pkl")


@dataclasses.dataclass
class Sequence:
  """One sequence to embed: who (the gallery id, or "" for a probe), its name, and where it
  comes from (a video's sequences share the video file)."""
  id: str
  name: str
  load: Callable[[], np.ndarray]  # -> uint8 [T, 64, 64]
  source: str = ""


@dataclasses.dataclass
class Found:
  """What a gallery or probe root holds: the sequences, and what was not read (path, why)."""
  sequences: List[Sequence]
  skipped: List[Tuple[str, str]] = dataclasses.field(default_factory=list)


class InputError(ValueError):
  """Input that cannot be used; the message names the file and what was expected."""


def _is_image(name: str) -> bool:
  return name.lower().endswith(IMAGE_EXTENSIONS)


def _is_video(path: str) -> bool:
  return os.path.isfile(path) and path.lower().endswith(VIDEO_EXTENSIONS)


def align_frames(frames, where: str) -> np.ndarray:
  """Silhouette frames of any size and mask encoding (a `[T, H, W(, C)]` array or a list of
  frames) → aligned uint8 `[T', 64, 64]`; frames the pretreatment rule drops (empty, too
  small) are left out. Fewer than MIN_FRAMES left is an InputError naming `where`."""
  if isinstance(frames, np.ndarray) and (frames.ndim not in (3, 4) or frames.shape[0] == 0):
    raise InputError(f"{where}: expected silhouette frames [T, H, W], got shape {frames.shape}")
  if not isinstance(frames, np.ndarray) and not len(frames):
    raise InputError(f"{where}: no frames")
  try:
    plain = masks.normalise(list(frames), where)
  except masks.MaskError as e:
    raise InputError(str(e)) from None
  kept = [a for a in (pretreat.align_frame(f)[0] for f in plain) if a is not None]
  if len(kept) < MIN_FRAMES:
    raise InputError(f"{where}: {len(kept)} usable frames of {len(plain)} (at least "
                     f"{MIN_FRAMES} needed; empty or tiny silhouettes are dropped)")
  return np.stack(kept)


def _images(folder: str) -> List[str]:
  return sorted(os.path.join(folder, n) for n in os.listdir(folder)
                if _is_image(n) and os.path.isfile(os.path.join(folder, n)))


def read_image_folder(folder: str) -> np.ndarray:
  """The aligned frames of a folder of silhouette images (sorted by name). Unreadable images
  are skipped with a warning naming them."""
  files = _images(folder)
  if not files:
    raise InputError(f"{folder}: no silhouette images (*.png)")
  frames = []
  for f in files:
    img = cv2.imread(f, cv2.IMREAD_UNCHANGED)
    if img is None:
      logging.warning("%s: unreadable image, skipped", f)
      continue
    frames.append(img)
  if not frames:
    raise InputError(f"{folder}: none of its {len(files)} images could be read")
  return align_frames(frames, folder)


def read_pkl_folder(folder: str) -> np.ndarray:
  """The aligned frames of an OpenGait sequence folder: its first pkl (sorted) that holds a
  `[T, H, W]` (or `[T, H, W, C]`) array, read without running code."""
  pkls = sorted(os.path.join(folder, n) for n in os.listdir(folder) if n.endswith(".pkl"))
  for path in pkls:
    data = safe_pickle.read(path)
    if isinstance(data, np.ndarray) and data.ndim in (3, 4) and data.shape[0] > 0:
      return align_frames(data, path)
  raise InputError(f"{folder}: no pkl holds silhouette frames [T, H, W] (read {len(pkls)})")


def video_key(path: str) -> str:
  """What identifies a video's content cheaply: its path, size and modification time."""
  st = os.stat(path)
  return f"{os.path.abspath(path)}|{st.st_size}|{st.st_mtime_ns}"


def _video_sequences(path: str, pid: str, name: str, opts: video_tracks.Options,
                     skipped: List[Tuple[str, str]]) -> List[Sequence]:
  """One sequence per person track of a video (`<name>`, or `<name>#k` for several); a video
  without a usable person is reported in `skipped`."""
  try:
    tracks, _ = video_tracks.video_tracks(path, opts, progress=True)
  except video_tracks.VideoError as e:
    skipped.append((path, str(e).replace(f"{path}: ", "")))
    return []
  return [Sequence(pid, name if len(tracks) == 1 else f"{name}#{k}",
                   (lambda fr=track.frames: fr), source=video_key(path))
          for k, track in enumerate(tracks)]


@dataclasses.dataclass
class _Entry:
  """A sequence found on disk before anything is decoded."""
  kind: str  # images | pkl | video
  path: str
  name: str


def _walk(top: str, name: str, skipped: List[Tuple[str, str]]) -> List[_Entry]:
  """Every sequence below folder `top` (named from `name`), by the module's rule."""
  out: List[_Entry] = []
  for dirpath, dirnames, files in os.walk(top):
    dirnames.sort()
    rel = os.path.relpath(dirpath, top)
    here = name if rel == "." else f"{name}/{rel.replace(os.sep, '/')}" if name else rel
    images = [f for f in files if _is_image(f)]
    pkls = [f for f in files if f.endswith(".pkl")]
    if images:
      out.append(_Entry("images", dirpath, here))
    if pkls and not images:
      out.append(_Entry("pkl", dirpath, here))
    for f in sorted(files):
      path = os.path.join(dirpath, f)
      if f.lower().endswith(VIDEO_EXTENSIONS):
        stem = os.path.splitext(f)[0]
        out.append(_Entry("video", path, f"{here}/{stem}" if here else stem))
      elif not (_is_image(f) or f.endswith(".pkl") or f.startswith(".")):
        skipped.append((path, "not a silhouette image, pkl or video"))
  return out


def _sequences(entries: List[_Entry], pid: str, opts: video_tracks.Options, known_sources,
               skipped: List[Tuple[str, str]]) -> List[Sequence]:
  out = []
  for e in entries:
    if e.kind == "video":
      if video_key(e.path) in known_sources:
        continue  # enrolled before: not decoded again
      out.extend(_video_sequences(e.path, pid, e.name, opts, skipped))
    else:
      read = read_image_folder if e.kind == "images" else read_pkl_folder
      out.append(Sequence(pid, e.name, (lambda r=read, p=e.path: r(p)), source=e.path))
  return out


def gallery_sequences(root: str, opts: Optional[video_tracks.Options] = None,
                      known_sources=frozenset()) -> Found:
  """Every sequence under a gallery root `<root>/<id>/...`, with its id. Videos whose path is
  in `known_sources` (enrolled before) are not decoded again."""
  root = os.path.abspath(root)
  if not os.path.isdir(root):
    raise InputError(f"identify.gallery={root}: not a directory (expected {LAYOUTS})")
  opts = opts or video_tracks.Options()
  found = Found([])
  for pid in sorted(os.listdir(root)):
    id_dir = os.path.join(root, pid)
    if pid.startswith("."):
      continue
    if not os.path.isdir(id_dir):
      found.skipped.append((id_dir, "not inside an <id> folder (the folder name is the id)"))
      continue
    entries = _walk(id_dir, pid, found.skipped)
    if not entries:
      found.skipped.append((id_dir, "no silhouette images, pkls or videos below it"))
    found.sequences.extend(_sequences(entries, pid, opts, known_sources, found.skipped))
  if not found.sequences and not any(video_key(p) in known_sources for p in _all_videos(root)):
    raise InputError(f"identify.gallery={root}: no sequences found (expected {LAYOUTS})"
                     + _skipped_hint(found.skipped))
  return found


def _all_videos(root: str) -> List[str]:
  return [os.path.join(d, f) for d, _, files in os.walk(root) for f in files
          if f.lower().endswith(VIDEO_EXTENSIONS)]


def probe_sequences(root: str, opts: Optional[video_tracks.Options] = None) -> Found:
  """Every probe under `root` (each sequence found by the module's rule, named by its path
  below `root`), or `root` itself when it is one video or one folder of images."""
  root = os.path.abspath(root)
  opts = opts or video_tracks.Options()
  found = Found([])
  if _is_video(root):
    stem = os.path.splitext(os.path.basename(root))[0]
    found.sequences = _video_sequences(root, "", stem, opts, found.skipped)
    return found
  if not os.path.isdir(root):
    raise InputError(f"identify.probes={root}: not a directory or a video file")
  subdirs = [e for e in sorted(os.listdir(root))
             if os.path.isdir(os.path.join(root, e)) and not e.startswith(".")]
  if _images(root) and not subdirs:  # the root is one probe: a folder of frames
    return Found([Sequence("", os.path.basename(root),
                           (lambda: read_image_folder(root)), source=root)])
  for n in _images(root):
    found.skipped.append((n, "an image directly under the probe root, beside probe folders "
                             "(a probe is a folder of frames: move it into one)"))
  entries = [e for e in _walk(root, "", found.skipped) if e.path != root or e.kind == "video"]
  found.sequences = _sequences(entries, "", opts, frozenset(), found.skipped)
  if not found.sequences:
    raise InputError(f"identify.probes={root}: no probes found (expected folders of silhouette "
                     "images, videos, an OpenGait pkl tree, or one folder / video)"
                     + _skipped_hint(found.skipped))
  return found


def _skipped_hint(skipped: List[Tuple[str, str]]) -> str:
  return f"; skipped {skipped[0][0]}: {skipped[0][1]}" if skipped else ""


def load_usable(found: Found) -> Tuple[List[Tuple[Sequence, np.ndarray]], List[Tuple[str, str]]]:
  """((sequence, frames) of every sequence that loads with enough frames, skipped): the
  sequences that do not load join `found.skipped`, each with its reason."""
  out, skipped = [], list(found.skipped)
  for s in found.sequences:
    try:
      frames = s.load()
    except (InputError, ValueError, OSError) as e:
      skipped.append((s.source or s.name, str(e).replace(f"{s.source}: ", "")))
      continue
    out.append((s, frames))
  return out, skipped


def skipped_report(skipped: List[Tuple[str, str]], limit: int = 10) -> str:
  """One line per skipped item (at most `limit`, then a count): `  skipped PATH: why`."""
  lines = [f"  skipped {path}: {why}" for path, why in skipped[:limit]]
  if len(skipped) > limit:
    lines.append(f"  ... and {len(skipped) - limit} more")
  return "\n".join(lines)

