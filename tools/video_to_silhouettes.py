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


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("source", help="a video file or a folder of videos")
  parser.add_argument("--out", required=True, help="folder for the PNG folders")
  parser.add_argument("--method", default="mog2", choices=("mog2", "knn"))
  parser.add_argument("--min-area", type=float, default=0.004,
                      help="smallest person blob, as a fraction of the frame area")
  parser.add_argument("--min-height", type=float, default=0.2,
                      help="shortest person, as a fraction of the frame height")
  parser.add_argument("--max-gap", type=int, default=5,
                      help="frames without a person that end a track")
  args = parser.parse_args(argv)
  import cv2  # noqa: E402
  from gait_jax.identify import video  # noqa: E402
  videos = _videos(args.source)
  if not videos:
    raise SystemExit(f"video_to_silhouettes: no video under {args.source}")
  opts = video.Options(method=args.method, min_area=args.min_area, min_height=args.min_height,
                       max_gap=args.max_gap)
  failed = 0
  for path, rel in videos:
    try:
      tracks, summary = video.video_tracks(path, opts, progress=True)
    except video.VideoError as e:
      print(f"FAILED {e}", flush=True)
      failed += 1
      continue
    stem = os.path.splitext(os.path.basename(path))[0]
    for k, track in enumerate(tracks):
      folder = os.path.join(args.out, rel, stem if len(tracks) == 1 else f"{stem}#{k}")
      os.makedirs(folder, exist_ok=True)
      for i, frame in zip(track.indices, track.frames):
        cv2.imwrite(os.path.join(folder, f"{int(i):04d}.png"), frame)
    print(f"{path}: {summary['frames']} frames read, {summary['kept']} kept in "
          f"{summary['tracks']} tracks ({summary['clipped']} clipped by the border, "
          f"{summary['small']} too small)", flush=True)
  if failed:
    raise SystemExit(f"video_to_silhouettes: {failed} of {len(videos)} videos gave no person")


if __name__ == "__main__":
  main()
