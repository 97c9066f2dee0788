"""The walker generator: names, layout, determinism, alignment rule, identity structure, CLI."""
import hashlib
import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO
from gait_jax.synthetic import walkers



def _tree_digest(root):
  """{relative path: sha1 of bytes} of every pkl under root."""
  out = {}
  for dirpath, _, files in os.walk(root):
    for f in files:
      path = os.path.join(dirpath, f)
      with open(path, "rb") as fh:
        out[os.path.relpath(path, root)] = hashlib.sha1(fh.read()).hexdigest()
  return out


def _load(path):
  with open(path, "rb") as f:
    return pickle.load(f)


# --- names ---

def test_sequence_types_follow_casia_b():
  assert walkers.sequence_types(10) == ["nm-01", "nm-02", "nm-03", "nm-04", "nm-05", "nm-06",
                                        "bg-01", "bg-02", "cl-01", "cl-02"]
  assert walkers.sequence_types(2) == ["nm-01", "nm-02"]
  assert walkers.sequence_types(12)[-2:] == ["nm-07", "nm-08"]
  with pytest.raises(ValueError, match="seqs_per_id"):
    walkers.sequence_types(0)


def test_parse_views():
  assert walkers.parse_views("0,45, 090") == ["000", "045", "090"]
  for bad in ("abc", "400", "", "090,090"):
    with pytest.raises(ValueError, match="views"):
      walkers.parse_views(bad)


# --- the alignment rule on hand-made blobs ---

def test_align_uniform_rectangle_is_resized_and_centred_with_padding():
  frame = np.zeros((100, 200), np.uint8)
  frame[20:60, 100:120] = 255  # 40 rows x 20 columns
  out = walkers.align_frame(frame)
  # Height 40 -> 64, width int(64 * 20 / 40) = 32; the column-mass median of a uniform
  # 32-wide block is column 16, so the window [-16, 48) needs the 32-column padding.
  expected = np.zeros((64, 64), np.uint8)
  expected[:, 16:48] = 255
  np.testing.assert_array_equal(out, expected)


def test_align_uses_column_mass_median_not_box_centre():
  # Full-height block on the left, half-height block on the right, already 64 rows tall
  # (no resize). Column sums: 64 for columns 0-31, 32 for 32-63; total 3072, half 1536;
  # the cumulative sum first exceeds it at column 24 (25 * 64 = 1600).
  body = np.zeros((64, 64), np.uint8)
  body[:, 0:32] = 255
  body[32:, 32:64] = 255
  frame = np.zeros((100, 200), np.uint8)
  frame[10:74, 50:114] = body
  out = walkers.align_frame(frame)
  # Centre x = 50 + 24 = 74 -> window [42, 106) of the cropped 64 x 200 image.
  expected = np.zeros((64, 64), np.uint8)
  expected[:, 8:40] = 255
  expected[32:, 40:64] = 255
  np.testing.assert_array_equal(out, expected)


def test_align_drops_empty_and_tiny_frames():
  assert walkers.align_frame(np.zeros((80, 80), np.uint8)) is None
  tiny = np.zeros((80, 80), np.uint8)
  tiny[10:16, 10:16] = 255  # 36 px * 255 = 9180 <= 10000
  assert walkers.align_frame(tiny) is None
  stack = np.stack([tiny, np.zeros_like(tiny)])
  assert walkers.align_frames(stack).shape == (0, 64, 64)


# --- generation ---

@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
  out = str(tmp_path_factory.mktemp("walkers") / "w")
  summary = walkers.generate(out, ids=3, seqs_per_id=2, views="000,090", frames=8, seed=1)
  return out, summary


def test_layout_dtype_and_partition(tiny_set):
  out, summary = tiny_set
  ids = ["00001", "00002", "00003"]
  assert sorted(os.listdir(out)) == ids
  for sid in ids:
    assert sorted(os.listdir(os.path.join(out, sid))) == ["nm-01", "nm-02"]
    for t in ("nm-01", "nm-02"):
      assert sorted(os.listdir(os.path.join(out, sid, t))) == ["000", "090"]
      for v in ("000", "090"):
        seq = _load(os.path.join(out, sid, t, v, f"{v}.pkl"))
        assert isinstance(seq, np.ndarray) and seq.dtype == np.uint8
        assert seq.ndim == 3 and seq.shape[1:] == (64, 64)
        # frames ± 25 % (8 -> 6..10), minus at most a dropped frame or two.
        assert 4 <= seq.shape[0] <= 10
        assert set(np.unique(seq).tolist()) <= {0, 255}
        # Aligned frames touch the top and bottom rows (cropped to the body's extent).
        assert (seq[:, 0].any(1) & seq[:, -1].any(1)).mean() > 0.5
  with open(out + ".json") as f:
    partition = json.load(f)
  assert partition == {"TRAIN_SET": ["00001", "00002"], "TEST_SET": ["00003"]}
  assert summary["partition"] == out + ".json"
  assert summary["sequences"] == 12


def test_same_seed_same_bytes_any_workers(tiny_set, tmp_path):
  out, _ = tiny_set
  again = str(tmp_path / "w")
  walkers.generate(again, ids=3, seqs_per_id=2, views="000,090", frames=8, seed=1, workers=2)
  assert _tree_digest(again) == _tree_digest(out)
  other = str(tmp_path / "other")
  walkers.generate(other, ids=3, seqs_per_id=2, views="000,090", frames=8, seed=2)
  a, b = _tree_digest(out), _tree_digest(other)
  assert sum(a[k] != b.get(k) for k in a) == len(a)


def test_generate_rejects_bad_arguments(tmp_path):
  with pytest.raises(ValueError, match="ids"):
    walkers.generate(str(tmp_path / "a"), ids=0, seqs_per_id=1)
  with pytest.raises(ValueError, match="train_ids"):
    walkers.generate(str(tmp_path / "b"), ids=2, seqs_per_id=1, frames=4, train_ids=3)
  with pytest.raises(ValueError, match="frames"):
    walkers.generate(str(tmp_path / "c"), ids=2, seqs_per_id=1, frames=0)


def _gei(seq):
  return seq[:, :, 10:54].astype(np.float32).mean(0) / 255.0


def test_identity_is_consistent_but_not_identical():
  """Side-view GEIs: same person closer than different people on average, never equal."""
  ids = ["00001", "00002", "00003", "00004", "00005"]
  types = ["nm-01", "nm-02", "nm-03"]
  geis = {(i, t): _gei(walkers.render_views(3, i, t, ["090"], 30)["090"])
          for i in ids for t in types}
  same, diff = [], []
  keys = sorted(geis)
  for a in range(len(keys)):
    for b in range(a + 1, len(keys)):
      d = float(np.linalg.norm(geis[keys[a]] - geis[keys[b]]))
      (same if keys[a][0] == keys[b][0] else diff).append(d)
  assert min(same) > 0.5  # sessions differ (speed, posture, noise, phase)
  assert np.mean(same) < 0.85 * np.mean(diff)


def test_covariates_change_the_silhouette():
  """A coat widens the silhouette; a bag changes it (side view, mean over people)."""
  nm, bg, cl = [], [], []
  for i in ["00001", "00002", "00003", "00004"]:
    for t, acc in (("nm-01", nm), ("bg-01", bg), ("cl-01", cl)):
      seq = walkers.render_views(5, i, t, ["090"], 24)["090"]
      acc.append((seq > 0).mean())
  assert np.mean(cl) > 1.1 * np.mean(nm)
  assert np.mean(bg) != np.mean(nm)


def test_views_see_the_same_walk_differently():
  seqs = walkers.render_views(0, "00001", "nm-01", ["000", "090"], 24)
  front, side = _gei(seqs["000"]), _gei(seqs["090"])
  # From the front the body is narrower and the legs never spread fore-aft.
  assert (front > 0.5).sum(1).mean() < (side > 0.1).sum(1).mean()


# --- command line ---

def test_make_walkers_cli(tmp_path):
  out = str(tmp_path / "cli")
  preview = str(tmp_path / "sheet.png")
  proc = subprocess.run(
      [sys.executable, os.path.join(REPO, "tools", "make_walkers.py"), "--out", out, "--ids", "2",
       "--seqs-per-id", "2", "--frames", "8", "--views", "090", "--train-ids", "1",
       "--preview", preview, "--real", str(tmp_path / "absent")],
      capture_output=True, text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr
  assert os.path.isfile(os.path.join(out, "00002", "nm-02", "090", "090.pkl"))
  with open(out + ".json") as f:
    assert json.load(f) == {"TRAIN_SET": ["00001"], "TEST_SET": ["00002"]}
  from PIL import Image
  with Image.open(preview) as im:
    assert im.size[1] == 64 * 2  # 2 ids x nm-01 (the sheet's bg-01/cl-01 do not exist) x 1 view
  bad = subprocess.run(
      [sys.executable, os.path.join(REPO, "tools", "make_walkers.py"), "--out", out, "--ids", "2",
       "--views", "9x0"], capture_output=True, text=True, timeout=120)
  assert bad.returncode != 0 and "views" in bad.stderr
