"""Raw silhouette PNGs → OpenGait pkls.

`<input>/<id>/<type>/<view>/*.png` becomes `<output>/<id>/<type>/<view>/<view>.pkl`, a uint8
`[T, S, S]` array (S = img_size, 64). Per frame (all datasets but GREW):
  1. grayscale; skip the frame when its pixel sum is <= 10000;
  2. crop rows to the first..last row holding a non-zero pixel;
  3. resize to height S, width int(S * w / h), bicubic;
  4. x-centre = first column where the cumulative column sum exceeds half the total; skip the
     frame when there is none or it is column 0;
  5. window [x - S/2, x + S/2); when it leaves the image (left <= 0 or right >= width) pad S/2
     zero columns on both sides and shift the window by S/2;
  6. keep the S×S crop as uint8.
GREW silhouettes are already aligned: frames are read as grayscale and kept unchanged.
A rerun keeps the pkls already written (each is written atomically), so a killed run resumes.
The command-line entry points are `tools/pretreat.py` (any `<id>/<type>/<view>` tree) and
`tools/prepare.py` (each dataset's release layout, `gait_jax/data/prepare/`).
"""
from __future__ import annotations

import collections
import logging
import multiprocessing
import os
import pickle
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import cv2
import numpy as np

from gait_jax.common import io
from gait_jax.data import smpl

log = logging.getLogger(__name__)

MIN_PIXEL_SUM = 10000
FEW_FRAMES = 5

Key = Tuple[str, str, str]


def collect_sequences(input_dir: str) -> Dict[Key, List[str]]:
  """All `*.png` under `input_dir` (names containing `gei.png` skipped), grouped by their last
  three directory levels `(id, type, view)`, each list in sorted path order."""
  input_dir = os.path.abspath(input_dir)
  if not os.path.isdir(input_dir):
    raise ValueError(f"--input {input_dir} is not a directory")
  groups: Dict[Key, List[str]] = collections.defaultdict(list)
  for dirpath, _, files in os.walk(input_dir):
    for name in files:
      if not name.endswith(".png") or "gei.png" in name:
        continue
      rel = os.path.relpath(dirpath, input_dir).split(os.sep)
      if len(rel) < 3 or rel[0] == ".":
        raise ValueError(f"{os.path.join(dirpath, name)}: expected PNGs at "
                         "<input>/<id>/<type>/<view>/*.png")
      groups[tuple(rel[-3:])].append(os.path.join(dirpath, name))
  return {k: sorted(v) for k, v in sorted(groups.items())}


def align_frame(img: np.ndarray, img_size: int = 64,
                binarize: bool = False) -> Tuple[Optional[np.ndarray], str]:
  """One grayscale frame cropped/scaled/centred to uint8 [S, S]; (None, reason) when dropped.

  binarize: threshold the resized frame back to 0/255 before centring (the generated walkers;
  the reference keeps the cubic grey levels)."""
  if int(img.sum(dtype=np.int64)) <= MIN_PIXEL_SUM:
    return None, "pixel sum <= 10000"
  rows = np.flatnonzero(img.sum(axis=1, dtype=np.int64))
  img = img[rows[0]:rows[-1] + 1]
  h, w = img.shape
  new_w = int(img_size * (w / h))
  if new_w < 1:
    return None, "too narrow to resize"
  img = cv2.resize(np.ascontiguousarray(img), (new_w, img_size), interpolation=cv2.INTER_CUBIC)
  if binarize:
    img = np.where(img > 127, 255, 0).astype(np.uint8)
  col_sum = img.sum(axis=0, dtype=np.int64)
  above = np.flatnonzero(np.cumsum(col_sum) > col_sum.sum() / 2)
  if len(above) == 0 or above[0] == 0:
    return None, "no x-centre"
  x = int(above[0])
  half = img_size // 2
  left, right = x - half, x + half
  if left <= 0 or right >= img.shape[1]:
    pad = np.zeros((img.shape[0], half), img.dtype)
    img = np.concatenate([pad, img, pad], axis=1)
    left, right = left + half, right + half
  return img[:, left:right].astype(np.uint8), ""


class Job(NamedTuple):
  """One output pkl: `<output>/<id>/<type>/<view>/<name>` from `files`, converted by `kind`.

  kind: "align" crops/scales/centres each frame (the reference's generic pretreatment);
  "keep" keeps already aligned frames, which must be img_size x img_size (GREW); "stack"
  keeps frames of any one size as they are, or resizes them to img_size when img_size > 0
  (HID). `paired` (Gait3D's SMPL): one `.npz` per frame of `files` ("" where a frame has
  none), written as float32 [T, 85] to `paired_name` for the frames kept in both, so the two
  modalities of the sequence keep one length.
  """
  key: Key
  files: Tuple[str, ...]
  name: str
  kind: str = "align"
  img_size: int = 64
  paired: Tuple[str, ...] = ()
  paired_name: str = ""


def _read_frames(job: Job, result: dict) -> Tuple[list, list]:
  """The kept frames of a job and their positions in `job.files`; sets result["error"] when
  the sequence must not be written (a frame of the wrong size)."""
  frames, kept, dropped = [], [], collections.Counter()
  for index, path in enumerate(job.files):
    if job.paired and not job.paired[index]:
      dropped["no SMPL frame"] += 1
      continue
    img = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
    if img is None:
      dropped["unreadable"] += 1
      result["unreadable"].append(path)
      continue
    if job.kind == "keep" and img.shape != (job.img_size, job.img_size):
      result["error"] = (f"{path}: frame of {img.shape[0]}x{img.shape[1]}, expected "
                         f"{job.img_size}x{job.img_size} (--img-size) for already aligned frames")
      return [], []
    if job.kind == "stack":
      if job.img_size > 0 and img.shape != (job.img_size, job.img_size):
        img = cv2.resize(img, (job.img_size, job.img_size), interpolation=cv2.INTER_AREA)
      if frames and img.shape != frames[0].shape:
        first = frames[0].shape
        result["error"] = (f"{path}: frame of {img.shape[0]}x{img.shape[1]}, the sequence's "
                           f"first is {first[0]}x{first[1]} (frames of one sequence must "
                           "share a size; --img-size resizes them)")
        return [], []
    if job.kind == "align":
      img, reason = align_frame(img, job.img_size)
      if img is None:
        dropped[reason] += 1
        continue
    frames.append(img.astype(np.uint8))
    kept.append(index)
  result["dropped"] = dict(dropped)
  return frames, kept


def process_sequence(job: Job, output: str) -> dict:
  """Converts one sequence and writes its pkl atomically; returns its statistics.

  A sequence that cannot be converted is reported in `error` and nothing is written for it;
  the other sequences go on. An output that exists already is kept (`skipped`): a rerun
  resumes where a killed one stopped, since every pkl is written whole or not at all."""
  out = os.path.join(output, *job.key, job.name)
  paired_out = os.path.join(output, *job.key, job.paired_name) if job.paired else ""
  result = dict(key=job.key, frames=0, dropped={}, unreadable=[], output=None, error=None,
                skipped=False)
  if os.path.exists(out) and (not paired_out or os.path.exists(paired_out)):
    result.update(output=out, skipped=True)
    return result
  frames, kept = _read_frames(job, result)
  if result["error"] or not frames:
    return result
  if paired_out:
    try:
      params = smpl.read_sequence([job.paired[i] for i in kept])
    except ValueError as e:  # a damaged or unsafe file: named in the message
      result["error"] = str(e)
      return result
    # The main pkl last: its presence marks the sequence done for a rerun.
    with io.atomic_open(paired_out, "wb") as f:
      pickle.dump(params, f)
  with io.atomic_open(out, "wb") as f:
    pickle.dump(np.stack(frames), f)
  result.update(frames=len(frames), output=out)
  return result


def _process(args) -> dict:
  return process_sequence(*args)


def convert(jobs: Sequence[Job], output_dir: str, workers: int = 4, progress: bool = True,
            desc: str = "pretreat") -> dict:
  """Runs every job (in `workers` processes); returns the summary `format_summary` prints."""
  os.makedirs(output_dir, exist_ok=True)
  bar = None
  if progress:
    from tqdm import tqdm
    bar = tqdm(total=len(jobs), unit="seq", desc=desc)
  summary = dict(sequences=len(jobs), written=0, skipped=0, frames=0,
                 dropped_frames=collections.Counter(), dropped_sequences=[],
                 short_sequences=[], failed=[], unreadable_files=[])

  def account(result):
    name = "/".join(result["key"])
    summary["frames"] += result["frames"]
    summary["dropped_frames"].update(result["dropped"])
    summary["unreadable_files"] += result["unreadable"]
    if result["skipped"]:
      summary["skipped"] += 1
    elif result["error"]:
      summary["failed"].append((name, result["error"]))
      log.error("%s: not converted: %s", name, result["error"])
    elif result["output"] is None:
      summary["dropped_sequences"].append(name)
      log.warning("%s: no valid frames, nothing written", name)
    else:
      summary["written"] += 1
      if result["frames"] < FEW_FRAMES:
        summary["short_sequences"].append(name)
        log.warning("%s: only %d valid frames", name, result["frames"])
    if bar is not None:
      bar.update()

  args = [(job, output_dir) for job in jobs]
  if workers <= 1:
    for a in args:
      account(_process(a))
  else:
    with multiprocessing.Pool(workers) as pool:
      for result in pool.imap_unordered(_process, args, chunksize=4):
        account(result)
  if bar is not None:
    bar.close()
  summary["dropped_frames"] = dict(summary["dropped_frames"])
  return summary


def pretreat(input_dir: str, output_dir: str, workers: int = 4, dataset: str = "CASIAB",
             img_size: int = 64, progress: bool = True) -> dict:
  """Converts every sequence under `input_dir`; returns a summary dict (also logged)."""
  sequences = collect_sequences(input_dir)
  if not sequences:
    raise ValueError(f"--input {input_dir}: no *.png files found")
  kind = "keep" if dataset.upper() == "GREW" else "align"
  jobs = [Job(key, tuple(files), f"{key[2]}.pkl", kind, img_size)
          for key, files in sequences.items()]
  return convert(jobs, output_dir, workers, progress)


def format_summary(summary: dict) -> str:
  dropped = summary["dropped_frames"]
  lines = [f"sequences: {summary['sequences']}, written: {summary['written']}, "
           f"frames kept: {summary['frames']}"
           + (f", already there (kept): {summary['skipped']}" if summary.get("skipped") else ""),
           "dropped frames: " + (", ".join(f"{k}: {v}" for k, v in sorted(dropped.items()))
                                 or "none"),
           f"dropped sequences (no valid frame): {len(summary['dropped_sequences'])}"
           + "".join(f"\n  {n}" for n in summary["dropped_sequences"][:20]),
           f"sequences with fewer than {FEW_FRAMES} frames: {len(summary['short_sequences'])}"
           + "".join(f"\n  {n}" for n in summary["short_sequences"][:20]),
           f"unreadable frames: {len(summary['unreadable_files'])}"
           + "".join(f"\n  {n}" for n in summary["unreadable_files"][:20]),
           f"FAILED sequences (nothing written): {len(summary['failed'])}"
           + "".join(f"\n  {n}: {why}" for n, why in summary["failed"][:20])]
  return "\n".join(lines)
