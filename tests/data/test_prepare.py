"""tools/prepare.py: small raw trees in each release layout → pkl trees and partitions."""
import csv
import json
import os
import pickle
import subprocess
import sys

import cv2
import numpy as np
import pytest

from conftest import REPO
from gait_jax.data import prepare
from gait_jax.data.dataset import GaitDataset

PERSON = np.zeros((240, 320), np.uint8)
PERSON[40:200, 100:140] = 255


def frames(root, *parts, count=5, img=PERSON, names=None):
  d = os.path.join(root, *parts)
  os.makedirs(d, exist_ok=True)
  for t in range(count):
    cv2.imwrite(os.path.join(d, names[t] if names else f"{t:04d}.png"),
                img(t) if callable(img) else img)
  return d


def aligned(seed):
  """Distinct already-aligned 64x64 frames (GREW): frame t of sequence `seed`."""
  def make(t):
    rng = np.random.default_rng([seed, t])
    return ((rng.random((64, 64)) < 0.3) * 255).astype(np.uint8)
  return make


def load(path):
  with open(path, "rb") as f:
    return pickle.load(f)


def run(dataset, raw, out, *extra, workers=1):
  return prepare.prepare(dataset, str(raw), str(out), workers=workers, progress=False, **dict(extra))


def cli(*args):
  return subprocess.run([sys.executable, os.path.join(REPO, "tools", "prepare.py"), *args,
                         "--no-progress"], capture_output=True, text=True, timeout=180)


def test_casiab_tree_and_partition(tmp_path):
  raw, out = tmp_path / "raw", tmp_path / "CASIA-B-pkl"
  for pid in ("001", "074", "075"):
    for typ in ("nm-01", "cl-02"):
      for view in ("000", "090"):
        frames(raw, pid, typ, view, count=4)
  frames(raw, "124", "bg-01", "180", count=2, img=np.zeros((240, 320), np.uint8))  # all dropped
  summary = run("casiab", raw, out)
  assert summary["written"] == 12 and summary["dropped_sequences"] == ["124/bg-01/180"]
  seq = load(out / "075" / "cl-02" / "090" / "090.pkl")
  assert seq.dtype == np.uint8 and seq.shape == (4, 64, 64) and seq.max() == 255
  part = json.loads((tmp_path / "CASIA-B-pkl.json").read_text())
  assert part == {"TRAIN_SET": ["001", "074"], "TEST_SET": ["075"]}  # 124 has no sequence
  ds = GaitDataset(out, part, "test")
  assert [s.name for s in ds.sequences] == [
      "075/cl-02/000", "075/cl-02/090", "075/nm-01/000", "075/nm-01/090"]


def test_oumvlp_rearranges_view_folders(tmp_path):
  raw, out = tmp_path / "raw", tmp_path / "OUMVLP-pkl"
  for folder in ("Silhouette_000-00", "Silhouette_015-01"):
    for pid in ("00001", "00002", "10307"):
      frames(raw, folder, pid, count=3)
  summary = run("oumvlp", raw, out)
  assert summary["written"] == 6 and not summary["failed"]
  assert load(out / "10307" / "01" / "015" / "015.pkl").shape == (3, 64, 64)
  assert sorted(os.listdir(out / "00002")) == ["00", "01"]
  part = json.loads((tmp_path / "OUMVLP-pkl.json").read_text())
  assert part == {"TRAIN_SET": ["00001"], "TEST_SET": ["00002", "10307"]}


def grew_release(raw, gallery_ids=3):
  frames(raw, "train", "00001", "4XPn5Z28", count=3, img=aligned(1))
  frames(raw, "train", "00002", "aaaa", count=3, img=aligned(2))
  for pid in range(1, gallery_ids + 1):
    frames(raw, "test", "gallery", f"{pid:05d}", "zz", count=3, img=aligned(10 * pid))
    frames(raw, "test", "gallery", f"{pid:05d}", "bb", count=3, img=aligned(10 * pid + 1))
  frames(raw, "test", "probe", "etaGVnWf", count=3, img=aligned(11))  # like gallery 00001 bb
  frames(raw, "test", "probe", "eT1EXpgZ", count=3, img=aligned(30))  # like gallery 00003 zz
  frames(raw, "distractor", "dis01", count=3, img=aligned(99))


def test_grew_rearrangement_and_partition(tmp_path):
  raw, out = tmp_path / "raw", tmp_path / "GREW-pkl"
  grew_release(raw)
  summary = run("grew", raw, out, ("distractors", True))
  assert summary["written"] == 11 and not summary["failed"]
  np.testing.assert_array_equal(load(out / "00001train" / "00" / "4XPn5Z28" / "4XPn5Z28.pkl"),
                                np.stack([aligned(1)(t) for t in range(3)]))  # unchanged
  # Gallery sequences numbered in sorted name order (bb before zz), whatever the file system.
  assert os.listdir(out / "00002" / "01") == ["bb"] and os.listdir(out / "00002" / "02") == ["zz"]
  assert sorted(os.listdir(out / "probe" / "03")) == ["eT1EXpgZ", "etaGVnWf"]
  assert os.listdir(out / "99999" / "04") == ["dis01"]
  part = json.loads((tmp_path / "GREW-pkl.json").read_text())
  assert part == {"TRAIN_SET": ["00001train", "00002train"],
                  "TEST_SET": ["00001", "00002", "00003", "probe", "99999"]}


def test_grew_probes_flow_into_the_submission(tmp_path):
  raw, out, work = tmp_path / "raw", tmp_path / "GREW-pkl", tmp_path / "work"
  grew_release(raw, gallery_ids=10)  # the CSV ranks 20 gallery sequences
  run("grew", raw, out)
  proc = subprocess.run(
      [sys.executable, "-m", "gait_jax.main", "--config", os.path.join(REPO, "configs",
       "test_tiny.py"), "--workdir", str(work), "--config.mode=test",
       f"--config.data.root={out}", f"--config.data.partition={out}.json",
       "--config.evaluate.protocol=grew_submission",
       f"--config.train.init_from={os.path.join(REPO, 'pretrained', 'walkers')}"],
      capture_output=True, text=True, timeout=300, cwd=REPO)
  assert proc.returncode == 0, proc.stderr[-3000:]
  sub = work / "submission"
  name = [f for f in os.listdir(sub) if f.endswith(".csv")][0]
  with open(sub / name) as f:
    rows = list(csv.reader(f))
  assert sorted(r[0] for r in rows[1:]) == ["eT1EXpgZ", "etaGVnWf"]
  # Each probe copies one gallery sequence: its id first; the 20 ranks are the 20 gallery
  # sequences of the 10 ids.
  best = {r[0]: r[1] for r in rows[1:]}
  assert best == {"etaGVnWf": "1", "eT1EXpgZ": "3"}
  assert all(sorted(r[1:21]) == sorted(str(i) for i in range(1, 11) for _ in "ab")
             for r in rows[1:])


def gait3d_release(raw, drop_smpl_of=""):
  names = [f"human_crop_f{11000 + 10 * t}.png" for t in range(4)]
  for pid in ("0000", "0001"):
    for typ, view in (("camid0_videoid2", "seq0"), ("camid3_videoid1", "seq1")):
      frames(raw, "2D_Silhouettes", pid, typ, view, count=4, names=names)
      d = os.path.join(raw, "3D_SMPLs", pid, typ, view)
      os.makedirs(d)
      for t, name in enumerate(names):
        if name == drop_smpl_of:
          continue
        person = {"cam": np.full(3, t, np.float32), "poses": np.full(72, int(pid), np.float32),
                  "betas": np.arange(10, dtype=np.float32)}
        np.savez(os.path.join(d, name[:-4] + ".npz"), results={0: person})


def test_gait3d_with_smpl_and_split(tmp_path):
  raw, out = tmp_path / "raw", tmp_path / "Gait3D-pkl"
  gait3d_release(raw, drop_smpl_of="human_crop_f11010.png")
  split = tmp_path / "Gait3D.json"
  split.write_text(json.dumps({"TRAIN_SET": ["0001", "0002"], "TEST_SET": ["0000"],
                               "PROBE_SET": ["0000-camid3_videoid1-seq1", "0999-camid1_videoid1-seq0"]}))
  summary = run("gait3d", raw, out, ("smpl", True), ("split", str(split)))
  assert summary["written"] == 4 and summary["dropped_frames"] == {"no SMPL frame": 4}
  seq_dir = out / "0001" / "camid3_videoid1" / "seq1"
  assert sorted(os.listdir(seq_dir)) == ["sils-seq1.pkl", "smpls-seq1.pkl"]
  sils, smpls = load(seq_dir / "sils-seq1.pkl"), load(seq_dir / "smpls-seq1.pkl")
  assert sils.shape == (3, 64, 64) and smpls.shape == (3, 85) and smpls.dtype == np.float32
  np.testing.assert_array_equal(smpls[:, 0], [0, 2, 3])  # frame 1 had no SMPL: dropped from both
  assert (smpls[:, 3:75] == 1).all() and (smpls[:, 75:] == np.arange(10)).all()
  part = json.loads((tmp_path / "Gait3D-pkl.json").read_text())
  assert part == {"TRAIN_SET": ["0001"], "TEST_SET": ["0000"],
                  "PROBE_SET": ["0000-camid3_videoid1-seq1"]}
  ds = GaitDataset(out, part, "train")
  sil, params = ds.load(0)
  assert sil.shape == (3, 64, 64) and params.shape == (3, 85)


def test_gait3d_without_split_writes_no_partition(tmp_path):
  raw, out = tmp_path / "raw", tmp_path / "Gait3D-pkl"
  gait3d_release(raw)
  summary = run("gait3d", raw, out)
  assert summary["written"] == 4 and summary["partition"] is None
  assert os.listdir(out / "0000" / "camid0_videoid2" / "seq0") == ["seq0.pkl"]
  assert not (tmp_path / "Gait3D-pkl.json").exists()


def test_smpl_file_that_would_run_code_is_refused(tmp_path):
  raw, out = tmp_path / "raw", tmp_path / "Gait3D-pkl"
  gait3d_release(raw)
  evil = os.path.join(raw, "3D_SMPLs", "0000", "camid0_videoid2", "seq0", "human_crop_f11000.npz")
  np.savez(evil, results=np.array([os.system], dtype=object))
  summary = run("gait3d", raw, out, ("smpl", True))
  assert [n for n, _ in summary["failed"]] == ["0000/camid0_videoid2/seq0"]
  assert "refused" in summary["failed"][0][1] and summary["written"] == 3


def test_hid_stacks_frames_as_released_or_resized(tmp_path):
  raw = tmp_path / "raw"
  big = aligned(5)
  frames(raw, "train", "0000", "seqA", count=3, img=lambda t: cv2.resize(big(t), (128, 128)))
  frames(raw, "gallery", "0500", "seqB", count=3, img=lambda t: cv2.resize(big(t), (128, 128)))
  frames(raw, "probe", "seqC", count=3, img=lambda t: cv2.resize(big(t), (128, 128)))
  run("hid", raw, tmp_path / "HID-128")
  assert load(tmp_path / "HID-128" / "0000" / "seqA" / "default" / "seqA.pkl").shape == (3, 128, 128)
  assert load(tmp_path / "HID-128" / "probe" / "seqC" / "default" / "seqC.pkl").shape == (3, 128, 128)
  part = json.loads((tmp_path / "HID-128.json").read_text())
  assert part == {"TRAIN_SET": ["0000"], "TEST_SET": ["0500", "probe"]}
  run("hid", raw, tmp_path / "HID-64", ("img_size", 64))
  assert load(tmp_path / "HID-64" / "0500" / "seqB" / "default" / "seqB.pkl").shape == (3, 64, 64)


def casiab_release(raw):
  frames(raw, "001", "nm-01", "090", count=2)


@pytest.mark.parametrize("dataset,release,expect", [
    ("casiab", grew_release, "CASIA-B expects RAW/<id 001..124>"),
    ("oumvlp", grew_release, "OU-MVLP expects RAW/Silhouette_"),
    ("gait3d", grew_release, "has no 2D_Silhouettes/ folder"),
    ("grew", casiab_release, "has none of train/, test/gallery/, test/probe/; GREW expects"),
    ("hid", casiab_release, "has none of train/, gallery/, probe/; HID expects")])
def test_a_tree_in_another_layout_is_refused_by_name(tmp_path, dataset, release, expect):
  release(tmp_path / "raw")
  proc = cli(dataset, "-i", str(tmp_path / "raw"), "-o", str(tmp_path / "out"))
  assert proc.returncode != 0 and expect in proc.stderr
  assert len(proc.stderr.strip().splitlines()) == 1 and proc.stderr.startswith("prepare: ")
  assert not (tmp_path / "out.json").exists()


def test_grew_layout_refusal_names_the_folder(tmp_path):
  frames(tmp_path / "raw", "train", "subject1", "s", count=2, img=aligned(0))
  with pytest.raises(prepare.LayoutError, match=r"train/subject1: subject id folder 'subject1' "
                     r"is not of the form \\d\{5\}; GREW expects RAW/train/"):
    run("grew", tmp_path / "raw", tmp_path / "out")


def test_rerun_resumes_and_workers_agree(tmp_path):
  raw = tmp_path / "raw"
  for pid in ("001", "002", "080"):
    for view in ("000", "018", "036"):
      frames(raw, pid, "nm-01", view, count=3)
  proc = cli("casiab", "-i", str(raw), "-o", str(tmp_path / "a"), "--workers", "2")
  assert proc.returncode == 0, proc.stderr
  assert "sequences: 9, written: 9" in proc.stdout and "TRAIN_SET: 2, TEST_SET: 1" in proc.stdout
  victim = tmp_path / "a" / "002" / "nm-01" / "018" / "018.pkl"
  kept = tmp_path / "a" / "001" / "nm-01" / "000" / "000.pkl"
  before = kept.stat().st_mtime_ns
  victim.unlink()  # as if the first run had been killed before this sequence
  proc = cli("casiab", "-i", str(raw), "-o", str(tmp_path / "a"), "--workers", "2")
  assert proc.returncode == 0 and "written: 1" in proc.stdout and "already there (kept): 8" in proc.stdout
  assert kept.stat().st_mtime_ns == before and victim.exists()
  run("casiab", raw, tmp_path / "b")
  for key in ("002/nm-01/018/018.pkl", "080/nm-01/036/036.pkl"):
    np.testing.assert_array_equal(load(tmp_path / "a" / key), load(tmp_path / "b" / key))


def test_options_of_another_dataset_are_refused(tmp_path):
  proc = cli("casiab", "-i", str(tmp_path), "-o", str(tmp_path / "o"), "--smpl")
  assert proc.returncode != 0 and "--smpl does not apply to casiab" in proc.stderr
