"""OpenGait reader: order, partition handling, num_train, ids, cache, bad input, real data."""
import json
import logging
import os

import numpy as np
import pytest

from gait_jax.data.dataset import GaitDataset, read_partition
from helpers.gait_tree import make_tree, random_sils, write_pkl


def test_reference_order_and_labels(tmp_path):
  # Partition order 003, 001, 002 is kept; types and views are sorted within an id.
  root, part = make_tree(tmp_path, ids=("003", "001", "002"), types=("nm-02", "bg-01"),
                         views=("180", "000"))
  ds = GaitDataset(root, part, "train")
  got = [(s.id, s.type, s.view) for s in ds.sequences]
  expected = [(i, t, v) for i in ("003", "001", "002") for t in ("bg-01", "nm-02")
              for v in ("000", "180")]
  assert got == expected
  assert ds.label_set == ["001", "002", "003"]
  # Class index = position of the id in the sorted label_set.
  assert ds.labels.dtype == np.int32
  assert list(ds.labels[:4]) == [2] * 4 and list(ds.labels[4:8]) == [0] * 4
  assert ds.indices_by_label["001"] == [4, 5, 6, 7]
  assert len(ds) == 12
  assert list(ds.types[:2]) == ["bg-01", "bg-01"] and list(ds.views[:2]) == ["000", "180"]
  assert ds.sequences[0].files[0].endswith(os.path.join("003", "bg-01", "000", "000.pkl"))


def test_splits_and_missing_ids_warn(tmp_path, caplog):
  root, part = make_tree(tmp_path, ids=("a", "b", "c"), train=["a", "zz", "b", "yy"],
                         test=["c"])
  with caplog.at_level(logging.WARNING):
    ds = GaitDataset(root, part, "train")
  assert ds.label_set == ["a", "b"]
  assert any("2 of 4 TRAIN_SET ids" in r.getMessage() for r in caplog.records)
  test = GaitDataset(root, part, "test")
  assert test.label_set == ["c"] and len(test) == 4


def test_num_train_takes_first_present_ids(tmp_path):
  root, part = make_tree(tmp_path, ids=("05", "02", "09", "01"), train=["05", "missing", "02",
                                                                        "09", "01"])
  ds = GaitDataset(root, part, "train", num_train=2)
  assert [s.id for s in ds.sequences][::4] == ["05", "02"]
  assert ds.label_set == ["02", "05"]
  assert GaitDataset(root, part, "train", num_train=0).label_set == ["01", "02", "05", "09"]
  assert len(GaitDataset(root, part, "train", num_train=100).label_set) == 4


def test_ids_filter(tmp_path):
  root, part = make_tree(tmp_path, ids=("a", "b", "c"))
  ds = GaitDataset(root, part, "train", ids=["c", "a"])
  assert ds.label_set == ["a", "c"] and {s.id for s in ds.sequences} == {"a", "c"}
  with pytest.raises(ValueError, match="'q'"):
    GaitDataset(root, part, "train", ids=["a", "q"])


def test_load_cache_and_lengths(tmp_path):
  lengths = {"a": 5, "b": 9}
  root, part = make_tree(tmp_path, ids=("a", "b"), types=("t",), views=("v",),
                         frames=lambda i, t, v: lengths[i])
  ds = GaitDataset(root, part, cache=True)
  first = ds.load(0)
  assert len(first) == 1 and first[0].dtype == np.uint8 and first[0].shape == (5, 64, 64)
  assert ds.load(0)[0] is first[0]  # kept in memory, not re-read
  assert list(ds.lengths()) == [5, 9] and ds.lengths().dtype == np.int32
  nocache = GaitDataset(root, part, cache=False)
  assert nocache.load(1)[0] is not nocache.load(1)[0]
  np.testing.assert_array_equal(nocache.load(1)[0], ds.load(1)[0])


def test_multi_modality(tmp_path):
  root, part = make_tree(tmp_path, ids=("a",), types=("t",), views=("v",), frames=4)
  rng = np.random.default_rng(1)
  extra = random_sils(rng, 4)
  write_pkl(os.path.join(root, "a", "t", "v", "a_second.pkl"), extra)
  ds = GaitDataset(root, part)
  mods = ds.load(0)
  assert len(mods) == 2  # sorted file order: a_second.pkl, v.pkl
  np.testing.assert_array_equal(mods[0], extra)
  write_pkl(os.path.join(root, "a", "t", "v", "a_second.pkl"), random_sils(rng, 3))
  with pytest.raises(ValueError, match="different frame counts"):
    GaitDataset(root, part).load(0)


@pytest.mark.parametrize("payload,match", [
    (np.zeros((4, 64, 64), np.float32), "expected dtype uint8"),
    (np.zeros((64, 64), np.uint8), r"expected shape \[T, H, W\]"),
    (np.zeros((4, 64, 32), np.uint8), "expected frames of 64x64"),
    (np.zeros((0, 64, 64), np.uint8), "empty sequence"),
    ([1, 2, 3], "got list"),
    # 0/1 masks would be ~0 after the /255 of the transforms: trained on as blanks.
    ((np.random.default_rng(0).random((4, 64, 64)) < 0.3).astype(np.uint8),
     r"silhouette values are 0/1; expected 0\.\.255"),
])
def test_bad_pkl_contents(tmp_path, payload, match):
  root, part = make_tree(tmp_path, ids=("a",), types=("t",), views=("v",))
  path = os.path.join(root, "a", "t", "v", "v.pkl")
  write_pkl(path, payload)
  with pytest.raises(ValueError, match=match) as err:
    GaitDataset(root, part).load(0)
  assert path in str(err.value)


def test_other_frame_sizes_allowed_explicitly(tmp_path):
  root, part = make_tree(tmp_path, ids=("a",), types=("t",), views=("v",))
  write_pkl(os.path.join(root, "a", "t", "v", "v.pkl"), np.zeros((3, 128, 128), np.uint8))
  assert GaitDataset(root, part, frame_size=None).load(0)[0].shape == (3, 128, 128)


def test_corrupt_pkl(tmp_path):
  root, part = make_tree(tmp_path, ids=("a",), types=("t",), views=("v",))
  path = os.path.join(root, "a", "t", "v", "v.pkl")
  with open(path, "wb") as f:
    f.write(b"\x80\x04 this is not a pickle")
  with pytest.raises(ValueError, match="cannot unpickle") as err:
    GaitDataset(root, part).load(0)
  assert path in str(err.value)


def test_id_without_sequences(tmp_path):
  root, part = make_tree(tmp_path, ids=("a", "b"))
  os.makedirs(os.path.join(root, "c", "nm-01", "000"))  # a view dir without pkls
  with open(part, "w") as f:
    json.dump({"TRAIN_SET": ["a", "b", "c"], "TEST_SET": []}, f)
  with pytest.raises(ValueError, match="id 'c' has no sequences") as err:
    GaitDataset(root, part)
  assert os.path.join(root, "c") in str(err.value)


def test_partition_errors(tmp_path):
  missing = tmp_path / "nope.json"
  with pytest.raises(ValueError, match="nope.json does not exist"):
    read_partition(missing)
  bad = tmp_path / "bad.json"
  bad.write_text("{not json")
  with pytest.raises(ValueError, match="bad.json is not readable JSON"):
    read_partition(bad)
  nokey = tmp_path / "nokey.json"
  nokey.write_text(json.dumps({"TRAIN_SET": ["a"]}))
  with pytest.raises(ValueError, match="nokey.json has no key 'TEST_SET'"):
    read_partition(nokey)
  notlist = tmp_path / "notlist.json"
  notlist.write_text(json.dumps({"TRAIN_SET": "a", "TEST_SET": []}))
  with pytest.raises(ValueError, match="notlist.json: TRAIN_SET must be a list"):
    read_partition(notlist)
  probe = tmp_path / "probe.json"
  probe.write_text(json.dumps({"TRAIN_SET": ["a"], "TEST_SET": ["b"], "PROBE_SET": ["b-t-v"]}))
  assert read_partition(probe)["PROBE_SET"] == ["b-t-v"]


def test_no_ids_present_and_bad_split(tmp_path):
  root, part = make_tree(tmp_path, ids=("a",), train=["x"])
  with pytest.raises(ValueError, match="no TRAIN_SET ids"):
    GaitDataset(root, part)
  with pytest.raises(ValueError, match="split='val'"):
    GaitDataset(root, part, split="val")
  _, empty = make_tree(tmp_path, ids=("a",), train=[], name="empty")
  with pytest.raises(ValueError, match=r"empty\.json: TRAIN_SET is empty"):
    GaitDataset(root, empty)


def test_kth_walking(shared_data):
  root = os.path.join(shared_data, "kth_walking")
  part = os.path.join(shared_data, "kth_walking.json")
  train = GaitDataset(root, part, "train")
  test = GaitDataset(root, part, "test")
  assert (len(train.label_set), len(train)) == (12, 142)
  assert (len(test.label_set), len(test)) == (13, 162)
  assert len(train.label_set) + len(test.label_set) == 25 and len(train) + len(test) == 304
  assert train.label_set[0] == "person01" and test.label_set[-1] == "person25"
  seq = train.load(0)[0]
  assert seq.dtype == np.uint8 and seq.shape[1:] == (64, 64)
  assert set(np.unique(seq)) <= {0, 255}
  assert GaitDataset(root, part, "train", num_train=3).label_set == [
      "person01", "person02", "person03"]


def test_opengait_demo(shared_data, tmp_path):
  part = tmp_path / "demo.json"
  part.write_text(json.dumps({"TRAIN_SET": [], "TEST_SET": ["001"]}))
  ds = GaitDataset(os.path.join(shared_data, "opengait_demo"), str(part), "test")
  assert [s.type for s in ds.sequences] == ["bg-01", "cl-01", "nm-01"]
  assert list(ds.lengths()) == [47, 63, 60]
