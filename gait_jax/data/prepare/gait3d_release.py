"""Gait3D: the release `2D_Silhouettes/<id>/<camid<X>_videoid<Y>>/<seq<Z>>/*.png`, cropped,
scaled and centred (the reference's generic pretreatment) to `<id>/<type>/<view>/<view>.pkl`.

With --smpl, `3D_SMPLs/<id>/<type>/<view>/*.npz` (one file per frame) becomes a second pkl
per sequence, float32 [T, 85] (cam, poses, betas; `datasets/Gait3D/pretreatment_smpl.py`),
and the two are named `sils-<view>.pkl` and `smpls-<view>.pkl` as the reference's
`merge_two_modality.py` links them. Frames pair by file name (by position when no name
matches), and only frames kept in both are written, so the two modalities keep one length
(the reference's loader refuses sequences whose modalities differ in length).

Partition: Gait3D's own split (train / test ids and the probe sequences) is a list that
comes with the benchmark, not with the release tree: --split FILE (a JSON with TRAIN_SET,
TEST_SET and PROBE_SET, e.g. OpenGait's Gait3D.json) writes it, kept to what was prepared.
"""
import os

from gait_jax.data.dataset import read_partition
from gait_jax.data.prepare import layout

RELEASE = layout.Release(
    "Gait3D", "RAW/2D_Silhouettes/<id 0000..4000>/<camid<X>_videoid<Y>>/<seq<Z>>/*.png and, "
    "with --smpl, RAW/3D_SMPLs/<id>/<camid..>/<seq..>/*.npz")
SILS, SMPLS = "2D_Silhouettes", "3D_SMPLs"


def _pair(pngs, npz_dir):
  """For each frame image, its SMPL file ("" if none): by file stem, else by position."""
  npzs = sorted(n for n in os.listdir(npz_dir) if n.endswith(".npz")) if os.path.isdir(
      npz_dir) else []
  by_stem = {os.path.splitext(n)[0]: os.path.join(npz_dir, n) for n in npzs}
  stems = [os.path.splitext(os.path.basename(p))[0] for p in pngs]
  if any(s in by_stem for s in stems):
    return tuple(by_stem.get(s, "") for s in stems)
  paths = [os.path.join(npz_dir, n) for n in npzs]
  return tuple(paths[i] if i < len(paths) else "" for i in range(len(pngs)))


def plan(raw: str, img_size: int, smpl: bool = False, split: str = "", **_) -> layout.Plan:
  sils = os.path.join(raw, SILS)
  if not os.path.isdir(sils):
    raise RELEASE.refuse(raw, f"has no {SILS}/ folder")
  if smpl and not os.path.isdir(os.path.join(raw, SMPLS)):
    raise RELEASE.refuse(raw, f"--smpl given but there is no {SMPLS}/ folder")
  given = read_partition(split) if split else None  # named in its errors as the partition
  jobs = []
  for pid in RELEASE.folders(sils, r"\d{4}", "subject id"):
    for typ in RELEASE.folders(os.path.join(sils, pid), r"camid\d+_videoid\d+", "camera/video"):
      for view in RELEASE.folders(os.path.join(sils, pid, typ), r"seq\d+", "sequence"):
        job = layout.image_job(os.path.join(sils, pid, typ, view), (pid, typ, view), "align",
                               img_size, f"sils-{view}.pkl" if smpl else "")
        if smpl:
          job = job._replace(paired=_pair(job.files, os.path.join(raw, SMPLS, pid, typ, view)),
                             paired_name=f"smpls-{view}.pkl")
        jobs.append(job)

  def partition(ids, sequences):
    if given is None:
      return None
    have = set(ids)
    out = {k: [i for i in given[k] if i in have] for k in ("TRAIN_SET", "TEST_SET")}
    if "PROBE_SET" in given:
      out["PROBE_SET"] = [p for p in given["PROBE_SET"] if p in sequences]
    return out
  return layout.Plan(jobs, partition)
