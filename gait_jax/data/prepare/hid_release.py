"""HID (Human Identification at a Distance): the release `train/<id>/<seq>/*.png`,
`gallery/<id>/<seq>/*.png` and `probe/<seq>/*.png` (any of the three; HID 2023 has no train
set), stacked without cropping into `<id>/<seq>/default/<seq>.pkl` and
`probe/<seq>/default/<seq>.pkl` as the reference's `pretreatment_HID.py` does. Frames keep
their size (HID's are 128x128) unless --img-size resizes them (64 for SPOSGait's input).
Partition: TRAIN_SET the train ids, TEST_SET the gallery ids + `probe` (the reference's
HID.json)."""
import os

from gait_jax.data.prepare import layout

RELEASE = layout.Release(
    "HID", "RAW/train/<id>/<seq>/*.png, RAW/gallery/<id>/<seq>/*.png and/or RAW/probe/<seq>/*.png "
    "(train.tar and the test gallery/probe archives unpacked side by side)")
PROBE_ID, VIEW = "probe", "default"
_ID, _SEQ = r"\d+", r"[\w.-]+"


def plan(raw: str, img_size: int, **_) -> layout.Plan:
  train, gallery, probe = (os.path.join(raw, p) for p in ("train", "gallery", "probe"))
  if not any(os.path.isdir(p) for p in (train, gallery, probe)):
    raise RELEASE.refuse(raw, "has none of train/, gallery/, probe/")
  job = lambda path, key: layout.image_job(path, key, "stack", img_size, f"{key[1]}.pkl")  # noqa: E731
  jobs, train_ids = [], set()
  for part in (train, gallery):
    if os.path.isdir(part):
      for pid in RELEASE.folders(part, _ID, "subject id"):
        train_ids.update([pid] if part == train else [])
        for seq in RELEASE.folders(os.path.join(part, pid), _SEQ, "sequence"):
          jobs.append(job(os.path.join(part, pid, seq), (pid, seq, VIEW)))
  if os.path.isdir(probe):
    for seq in RELEASE.folders(probe, _SEQ, "probe sequence"):
      jobs.append(job(os.path.join(probe, seq), (PROBE_ID, seq, VIEW)))

  def split(ids, _sequences):
    return {"TRAIN_SET": [i for i in ids if i in train_ids],
            "TEST_SET": [i for i in ids if i not in train_ids and i != PROBE_ID]
                        + ([PROBE_ID] if PROBE_ID in ids else [])}
  return layout.Plan(jobs, split)
