"""OU-MVLP: the silhouette release `Silhouette_<view>-<seq>/<id>/*.png` (one folder per view
and sequence index, as `extractor.py` unpacks the archives), rearranged to `<id>/<seq>/<view>`
as the reference's `rearrange_OUMVLP.py` does, then cropped, scaled and centred. Partition:
odd ids train, even ids test, and the last id 10307 test too (the reference's OUMVLP.json)."""
import collections
import os

from gait_jax.data.prepare import layout

RELEASE = layout.Release(
    "OU-MVLP", "RAW/Silhouette_<view 000..270>-<seq 00|01>/<id 00001..10307>/*.png "
    "(the unpacked Silhouette_*.7z archives)")
LAST_ID = "10307"  # odd, yet in the reference's TEST_SET


def plan(raw: str, img_size: int, **_) -> layout.Plan:
  by_key = {}
  for folder in RELEASE.folders(raw, r"Silhouette_\d{3}-\d{2}", "view-sequence"):
    view, seq = folder[len("Silhouette_"):].split("-")
    for pid in RELEASE.folders(os.path.join(raw, folder), r"\d{5}", "subject id"):
      by_key[(pid, seq, view)] = os.path.join(raw, folder, pid)
  jobs = [layout.image_job(path, key, "align", img_size)
          for key, path in sorted(by_key.items())]

  def split(ids, _sequences):
    parts = collections.defaultdict(list)
    for i in ids:
      parts["TRAIN_SET" if int(i) % 2 and i != LAST_ID else "TEST_SET"].append(i)
    return {"TRAIN_SET": parts["TRAIN_SET"], "TEST_SET": parts["TEST_SET"]}
  return layout.Plan(jobs, split)
