"""GREW: the release `train/<id>/<seq>/*.png`, `test/gallery/<id>/<seq>/*.png`,
`test/probe/<seq>/*.png` and, optionally, `distractor/<seq>/*.png`, rearranged as the
reference's `rearrange_GREW.py` meant to:

  train       <id>train/00/<seq>   (the reference's train call is commented out; built here)
  gallery     <id>/01|02/<seq>     (numbered in sorted name order; the reference uses the file
                                    system's order, which differs between machines)
  probe       probe/03/<seq>       (no ids: the grew_submission protocol ranks them)
  distractor  99999/04/<seq>       (with --distractors; the first 1000 frames, as the reference)

GREW's frames are aligned 64x64 already and kept unchanged. Partition: TRAIN_SET the
`<id>train` ids, TEST_SET the gallery ids + `probe` (+ `99999`), as the reference's GREW.json.
"""
import logging
import os

from gait_jax.data.prepare import layout

RELEASE = layout.Release(
    "GREW", "RAW/train/<id 00001..20000>/<seq>/*.png, RAW/test/gallery/<id>/<seq>/*.png, "
    "RAW/test/probe/<seq>/*.png and optionally RAW/distractor/<seq>/*.png (train.zip, test.zip, "
    "distractor.zip unpacked side by side)")
PROBE_ID, DISTRACTOR_ID = "probe", "99999"
DISTRACTOR_FRAMES = 1000
_ID, _SEQ = r"\d{5}", r"[\w.-]+"
log = logging.getLogger(__name__)


def plan(raw: str, img_size: int, distractors: bool = False, **_) -> layout.Plan:
  train, gallery = os.path.join(raw, "train"), os.path.join(raw, "test", "gallery")
  probe, distractor = os.path.join(raw, "test", "probe"), os.path.join(raw, "distractor")
  if not any(os.path.isdir(p) for p in (train, gallery, probe)):
    raise RELEASE.refuse(raw, "has none of train/, test/gallery/, test/probe/")
  if distractors and not os.path.isdir(distractor):
    raise RELEASE.refuse(raw, "--distractors given but there is no distractor/ folder")
  job = lambda path, key: layout.image_job(path, key, "keep", img_size)  # noqa: E731
  jobs = []
  if os.path.isdir(train):
    for pid in RELEASE.folders(train, _ID, "subject id"):
      for seq in RELEASE.folders(os.path.join(train, pid), _SEQ, "sequence"):
        jobs.append(job(os.path.join(train, pid, seq), (f"{pid}train", "00", seq)))
  if os.path.isdir(gallery):
    for pid in RELEASE.folders(gallery, _ID, "subject id"):
      seqs = RELEASE.folders(os.path.join(gallery, pid), _SEQ, "sequence")
      if len(seqs) > 2:
        log.warning("%s: %d gallery sequences (GREW has 2); numbered 01..%02d", pid, len(seqs),
                    len(seqs))
      for number, seq in enumerate(seqs, 1):
        jobs.append(job(os.path.join(gallery, pid, seq), (pid, f"{number:02d}", seq)))
  if os.path.isdir(probe):
    for seq in RELEASE.folders(probe, _SEQ, "probe sequence"):
      jobs.append(job(os.path.join(probe, seq), (PROBE_ID, "03", seq)))
  if distractors:
    for seq in RELEASE.folders(distractor, _SEQ, "distractor sequence"):
      first = job(os.path.join(distractor, seq), (DISTRACTOR_ID, "04", seq))
      jobs.append(first._replace(files=first.files[:DISTRACTOR_FRAMES]))

  def split(ids, _sequences):
    test = [i for i in ids if i not in (PROBE_ID, DISTRACTOR_ID) and not i.endswith("train")]
    return {"TRAIN_SET": [i for i in ids if i.endswith("train")],
            "TEST_SET": test + [i for i in (PROBE_ID, DISTRACTOR_ID) if i in ids]}
  return layout.Plan(jobs, split)
