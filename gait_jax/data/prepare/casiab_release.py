"""CASIA-B: the silhouette release `<id>/<type>/<view>/*.png`. Frames are cropped, scaled and
centred (the reference's generic pretreatment). Partition: TRAIN_SET 001–074, TEST_SET
075–124 (the reference's CASIA-B.json)."""
import os

from gait_jax.data.prepare import layout

RELEASE = layout.Release(
    "CASIA-B", "RAW/<id 001..124>/<type nm-01..06, bg-01..02, cl-01..02>/<view 000..180>/*.png "
    "(the silhouette archive GaitDatasetB-silh, unpacked)")
LAST_TRAIN = 74


def plan(raw: str, img_size: int, **_) -> layout.Plan:
  jobs = []
  for pid in RELEASE.folders(raw, r"\d{3}", "subject id"):
    for typ in RELEASE.folders(os.path.join(raw, pid), r"(nm-0[1-6]|bg-0[12]|cl-0[12])",
                               "walking condition"):
      for view in RELEASE.folders(os.path.join(raw, pid, typ), r"\d{3}", "view"):
        jobs.append(layout.image_job(os.path.join(raw, pid, typ, view), (pid, typ, view),
                                     "align", img_size))

  def split(ids, _sequences):
    return {"TRAIN_SET": [i for i in ids if int(i) <= LAST_TRAIN],
            "TEST_SET": [i for i in ids if int(i) > LAST_TRAIN]}
  return layout.Plan(jobs, split)
