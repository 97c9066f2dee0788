#!/usr/bin/env python
"""Generates walking-person silhouettes in the OpenGait layout (the embedded default data).

  python tools/make_walkers.py --out DIR --ids N --seqs-per-id K [--views 000,045,090]
      [--frames 40] [--seed S] [--workers W] [--train-ids M] [--profile clean|kth|footage]
      [--preview FILE.png]

Writes DIR/<id>/<type>/<view>/<view>.pkl (uint8 [T, 64, 64], 0/255) and the partition file
DIR.json next to the folder (TRAIN_SET = the first M ids, default half rounded up).
Types follow CASIA-B: nm-01..06, bg-01, bg-02, cl-01, cl-02 (first K; more gives nm-07...).
The same arguments give the same bytes whatever --workers is.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gait_jax.synthetic import walkers  # noqa: E402

REAL_KTH = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "shared", "data", "kth_walking")


def build_parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--out", required=True, help="output folder (the partition goes to OUT.json)")
  p.add_argument("--ids", type=int, required=True, help="number of walkers (ids 00001...)")
  p.add_argument("--seqs-per-id", type=int, default=10, help="sequences (types) per walker")
  p.add_argument("--views", default=",".join(walkers.DEFAULT_VIEWS),
                 help="camera azimuths in degrees, 3 digits, comma-separated (0 = frontal, "
                      "90 = side)")
  p.add_argument("--frames", type=int, default=40, help="mean frames per sequence (±25 %%)")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--workers", type=int, default=1, help="processes")
  p.add_argument("--train-ids", type=int, default=None,
                 help="ids in TRAIN_SET (default: half, rounded up)")
  p.add_argument("--profile", default="clean", choices=walkers.degrade.PROFILES,
                 help="segmentation artefacts: clean (sharp 128-pixel bodies), kth (low "
                      "resolution and zoom, persistent missing bands, long shadows, clipping, "
                      "either walking direction: like KTH's footage) or footage (kth's, and "
                      "merged limbs, thin broken bodies, a part lost for the whole walk, "
                      "attached background patches: like real segmentation)")
  p.add_argument("--preview", default="", help="also write a contact sheet PNG here")
  p.add_argument("--real", default=REAL_KTH,
                 help="real silhouettes shown under the preview (skipped when absent)")
  return p


def main(argv=None):
  args = build_parser().parse_args(argv)
  start = time.time()

  def progress(done, total):
    if done == total or done % max(1, total // 10) == 0:
      print(f"  {done}/{total} ids ({time.time() - start:.1f} s)", flush=True)

  try:
    summary = walkers.generate(args.out, ids=args.ids, seqs_per_id=args.seqs_per_id,
                               views=args.views, frames=args.frames, seed=args.seed,
                               workers=args.workers, train_ids=args.train_ids,
                               progress=progress, profile=args.profile)
  except ValueError as e:
    raise SystemExit(f"make_walkers: {e}")
  print(f"wrote {summary['sequences']} sequences, {summary['frames']} frames of {args.ids} ids "
        f"to {args.out} and {summary['partition']} in {time.time() - start:.1f} s")
  if args.preview:
    walkers.contact_sheet(args.out, args.preview, real_root=args.real)
    print(f"preview: {args.preview}")
  return summary


if __name__ == "__main__":
  main()
