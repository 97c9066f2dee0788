#!/usr/bin/env python
"""Static-camera videos → aligned 64×64 silhouette PNG folders, one per person track.

  python tools/video_to_silhouettes.py VIDEO_OR_FOLDER --out DIR [--method mog2|knn]
      [--min-area 0.004] [--min-height 0.2] [--max-gap 5]

For each video (`*.mp4|avi|mov|mkv`; a folder is searched recursively, keeping its
sub-folders): OpenCV background subtraction learned on the clip, shadows removed,
morphological clean-up, the largest moving blob (with the limbs cut off it) tracked over
frames, each kept mask aligned by the reference pretreatment. Frames where the person touches
the image border or is too small are dropped and counted; a person leaving the frame ends a
track, and each track becomes `DIR/<video stem>[#k]/NNNN.png`. The PNG folders feed
`--config.mode=enroll|identify` (or `tools/pretreat.py`) like any other silhouettes.
A rerun into the same --out replaces each track folder whole (no stale frames mixed in), and
a frame that cannot be written (a full disk) stops the run with the folder named.

No detector or segmentation network is used. With a person-segmentation model of your own,
write its masks as PNG folders instead (white person on black, any size).
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _videos(source: str):
  from gait_jax.identify.sources import VIDEO_EXTENSIONS  # noqa: E402
  if os.path.isfile(source):
    return [(source, "")]
  out = []
  for dirpath, _, files in os.walk(source):
    for name in sorted(files):
      if name.lower().endswith(VIDEO_EXTENSIONS):
        out.append((os.path.join(dirpath, name), os.path.relpath(dirpath, source)))
  return sorted(out)


def _fraction(text: str) -> float:
  try:
    v = float(text)
  except ValueError:
    v = float("nan")
  if not 0 <= v < 1:  # also refuses nan
    raise argparse.ArgumentTypeError(f"{text!r}: expected a fraction in [0, 1)")
  return v


def _count(text: str) -> int:
  if not text.strip().isdigit():
    raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number >= 0")
  return int(text)


def _write_track(folder: str, track) -> None:
  """Writes a track's frames into `folder`, replacing what a previous run left there: the
  frames go to a new folder first (each PNG encoded in memory and written atomically, so a
  full disk is an error, never a 0-byte frame), which then takes the old one's place."""
  import shutil  # noqa: E402
  import cv2  # noqa: E402
  from gait_jax.common import io  # noqa: E402
  tmp = f"{folder}.partial{os.getpid()}"
  shutil.rmtree(tmp, ignore_errors=True)
  try:
    for i, frame in zip(track.indices, track.frames):
      ok, png = cv2.imencode(".png", frame)
      if not ok:
        raise OSError(f"could not encode frame {int(i)} as PNG")
      with io.atomic_open(os.path.join(tmp, f"{int(i):04d}.png"), "wb") as f:
        f.write(png.tobytes())
    if os.path.isdir(folder):
      shutil.rmtree(folder)
    os.replace(tmp, folder)
  finally:
    shutil.rmtree(tmp, ignore_errors=True)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("source", help="a video file or a folder of videos")
  parser.add_argument("--out", required=True, help="folder for the PNG folders")
  parser.add_argument("--method", default="mog2", choices=("mog2", "knn"))
  parser.add_argument("--min-area", type=_fraction, default=0.004,
                      help="smallest person blob, as a fraction of the frame area")
  parser.add_argument("--min-height", type=_fraction, default=0.2,
                      help="shortest person, as a fraction of the frame height")
  parser.add_argument("--max-gap", type=_count, default=5,
                      help="frames without a person that end a track")
  args = parser.parse_args(argv)
  from gait_jax.identify import video_tracks  # noqa: E402
  if not os.path.exists(args.source):
    raise SystemExit(f"video_to_silhouettes: {args.source} does not exist")
  videos = _videos(args.source)
  if not videos:
    raise SystemExit(f"video_to_silhouettes: no video under {args.source}")
  opts = video_tracks.Options(method=args.method, min_area=args.min_area, min_height=args.min_height,
                       max_gap=args.max_gap)
  failed = 0
  for path, rel in videos:
    try:
      tracks, summary = video_tracks.video_tracks(path, opts, progress=True)
    except video_tracks.VideoError as e:
      print(f"FAILED {e}", flush=True)
      failed += 1
      continue
    stem = os.path.splitext(os.path.basename(path))[0]
    for k, track in enumerate(tracks):
      folder = os.path.join(args.out, rel, stem if len(tracks) == 1 else f"{stem}#{k}")
      try:
        _write_track(folder, track)
      except OSError as e:
        raise SystemExit(f"video_to_silhouettes: cannot write {folder} "
                         f"({e.strerror or e}); nothing half-written is left there") from None
    print(f"{path}: {summary['frames']} frames read, {summary['kept']} kept in "
          f"{summary['tracks']} tracks ({summary['clipped']} clipped by the border, "
          f"{summary['small']} too small)", flush=True)
  if failed:
    raise SystemExit(f"video_to_silhouettes: {failed} of {len(videos)} videos gave no person")


if __name__ == "__main__":
  main()
