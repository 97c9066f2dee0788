"""tools/pretreat.py: crop/scale/centre of synthetic PNG silhouettes."""
import json
import os
import pickle
import subprocess
import sys

import cv2
import numpy as np

from conftest import REPO
from gait_jax.data import pretreat
from gait_jax.data.dataset import GaitDataset


def rect_frame(rows, cols, shape=(240, 320)):
  img = np.zeros(shape, np.uint8)
  img[rows[0]:rows[1], cols[0]:cols[1]] = 255
  return img


def write_frames(root, key, frames):
  d = os.path.join(root, *key)
  os.makedirs(d, exist_ok=True)
  for t, img in enumerate(frames):
    cv2.imwrite(os.path.join(d, f"{t:03d}.png"), img)
  return d


def load(path):
  with open(path, "rb") as f:
    return pickle.load(f)


def col_centre(frame):
  cols = frame.sum(axis=0, dtype=np.float64)
  return (cols * (np.arange(frame.shape[1]) + 0.5)).sum() / cols.sum()


def test_centred_person():
  # Person: rows 40..199 (h = 160), columns 100..139 of a 320-wide frame. Crop rows -> 160×320,
  # resize to 64×128 (scale 0.4): columns 40..56, x-centre 48, window [16, 80) -> the person
  # spans columns 24..40 of the output, centred on 32, over all 64 rows.
  frame, reason = pretreat.align_frame(rect_frame((40, 200), (100, 140)))
  assert reason == "" and frame.dtype == np.uint8 and frame.shape == (64, 64)
  assert abs(col_centre(frame) - 32) <= 1.0
  assert frame[:, 25:39].min() == 255
  assert frame[:, :22].max() == 0 and frame[:, 42:].max() == 0
  assert frame[0].max() > 0 and frame[63].max() > 0  # the crop spans the full height


def test_person_at_the_left_edge_is_padded():
  # Columns 0..19 -> 0..8 after scaling, x-centre 4: left = -28 <= 0, so 32 zero columns are
  # padded each side and the window becomes [4, 68) -> the person lands on columns 28..36.
  frame, _ = pretreat.align_frame(rect_frame((40, 200), (0, 20)))
  assert frame.shape == (64, 64)
  assert frame[:, :26].max() == 0 and frame[:, 38:].max() == 0
  assert frame[:, 29:35].min() == 255


def test_dropped_frames():
  tiny = rect_frame((10, 15), (10, 15))  # 25 px * 255 = 6375 <= 10000
  assert pretreat.align_frame(tiny) == (None, "pixel sum <= 10000")
  edge = rect_frame((40, 200), (0, 1))  # all mass in column 0 -> centre 0
  assert pretreat.align_frame(edge) == (None, "no x-centre")


def test_pretreat_tree(tmp_path):
  raw, out = str(tmp_path / "raw"), str(tmp_path / "out")
  person = rect_frame((40, 200), (100, 140))
  d = write_frames(raw, ("001", "nm-01", "090"), [person] * 6 + [rect_frame((1, 3), (1, 3))])
  cv2.imwrite(os.path.join(d, "001-gei.png"), np.full((240, 320), 255, np.uint8))  # skipped
  write_frames(raw, ("001", "nm-02", "090"), [person] * 3)  # short: warned
  write_frames(raw, ("002", "nm-01", "000"), [rect_frame((1, 3), (1, 3))] * 2)  # nothing left
  summary = pretreat.pretreat(raw, out, workers=1, progress=False)
  assert summary["sequences"] == 3 and summary["written"] == 2
  assert summary["dropped_frames"] == {"pixel sum <= 10000": 3}
  assert summary["dropped_sequences"] == ["002/nm-01/000"]
  assert summary["short_sequences"] == ["001/nm-02/090"]
  seq = load(os.path.join(out, "001", "nm-01", "090", "090.pkl"))
  assert seq.dtype == np.uint8 and seq.shape == (6, 64, 64)
  np.testing.assert_array_equal(seq[0], pretreat.align_frame(person)[0])
  assert not os.path.exists(os.path.join(out, "002"))
  assert "dropped sequences (no valid frame): 1" in pretreat.format_summary(summary)


def test_grew_pass_through(tmp_path):
  raw, out = str(tmp_path / "raw"), str(tmp_path / "out")
  rng = np.random.default_rng(0)
  frames = [((rng.random((64, 64)) < 0.01) * 255).astype(np.uint8) for _ in range(3)]
  write_frames(raw, ("00001", "01", "abc"), frames)
  pretreat.pretreat(raw, out, dataset="GREW", workers=1, progress=False)
  np.testing.assert_array_equal(load(os.path.join(out, "00001", "01", "abc", "abc.pkl")),
                                np.stack(frames))


def test_cli_with_workers_reads_back(tmp_path):
  raw, out = str(tmp_path / "raw"), str(tmp_path / "out")
  person = rect_frame((40, 200), (100, 140))
  for pid in ("001", "002"):
    for typ in ("nm-01", "nm-02"):
      write_frames(raw, (pid, typ, "090"), [person] * 5)
  proc = subprocess.run([sys.executable, os.path.join(REPO, "tools", "pretreat.py"), "--input",
                         raw, "--output", out, "--workers", "2", "--no-progress"],
                        capture_output=True, text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr
  assert "sequences: 4, written: 4" in proc.stdout
  part = tmp_path / "p.json"
  part.write_text(json.dumps({"TRAIN_SET": ["001", "002"], "TEST_SET": []}))
  ds = GaitDataset(out, str(part))
  assert len(ds) == 4 and ds.load(3)[0].shape == (5, 64, 64)
  bad = subprocess.run([sys.executable, os.path.join(REPO, "tools", "pretreat.py"), "--input",
                        str(tmp_path / "missing"), "--output", out], capture_output=True,
                       text=True, timeout=120)
  assert bad.returncode != 0 and "is not a directory" in bad.stderr


def test_bad_sequences_are_reported_and_the_rest_is_written(tmp_path):
  raw, out = str(tmp_path / "raw"), str(tmp_path / "out")
  rng = np.random.default_rng(0)
  good = [((rng.random((64, 64)) < 0.2) * 255).astype(np.uint8) for _ in range(3)]
  write_frames(raw, ("001", "01", "000"), good)
  write_frames(raw, ("002", "01", "000"), [np.zeros((80, 80), np.uint8)] * 2)  # not --img-size
  mixed = write_frames(raw, ("003", "01", "000"), good[:1])
  cv2.imwrite(os.path.join(mixed, "001.png"), np.zeros((64, 32), np.uint8))  # another size
  broken = os.path.join(write_frames(raw, ("004", "01", "000"), good), "009.png")
  with open(broken, "wb") as f:
    f.write(b"not a png")
  proc = subprocess.run([sys.executable, os.path.join(REPO, "tools", "pretreat.py"), "--input",
                         raw, "--output", out, "--dataset", "GREW", "--workers", "2",
                         "--no-progress"], capture_output=True, text=True, timeout=120)
  assert proc.returncode == 1, proc.stdout + proc.stderr  # something failed: scripts notice
  assert "FAILED sequences (nothing written): 2" in proc.stdout
  assert "002/01/000: " in proc.stdout and "frame of 80x80, expected 64x64" in proc.stdout
  assert f"003/01/000: {mixed}/001.png: frame of 64x32" in proc.stdout  # mixed sizes
  assert f"unreadable frames: 1\n  {broken}" in proc.stdout
  assert os.path.exists(os.path.join(out, "001", "01", "000", "000.pkl"))
  assert load(os.path.join(out, "004", "01", "000", "000.pkl")).shape == (3, 64, 64)
  assert not os.path.exists(os.path.join(out, "002")) and not os.path.exists(os.path.join(out, "003"))
