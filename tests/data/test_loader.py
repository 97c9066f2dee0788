"""TrainLoader: batch layout, per-step determinism, resume, multi-process slicing, errors."""
import os
import threading

import numpy as np
import pytest

from conftest import load_config
from gait_jax.config import base_config
from gait_jax.data.dataset import GaitDataset
from gait_jax.data.loader import LoaderError, TrainLoader, iter_sequences
from helpers.gait_tree import make_tree


def data_cfg(**kw):
  c = base_config().data
  c.update(dict(batch_p=3, batch_k=2, batch_shuffle=True, sample_type="fixed_ordered", frames=6,
                frames_skip=0, frames_min=3, frames_max=7, transforms="base_sil_cutting",
                workers=2, prefetch=2))
  c.update(kw)
  return c


@pytest.fixture
def dataset(tmp_path):
  lengths = {"001": 4, "002": 9, "003": 12, "004": 5}
  root, part = make_tree(tmp_path, ids=tuple(lengths), frames=lambda i, t, v: lengths[i] + len(t))
  return GaitDataset(root, part, "train")


def take(loader, n):
  out = []
  for _ in range(n):
    out.append(next(loader))
  loader.close()
  return out


def assert_batches_equal(a, b):
  assert a[0] == b[0]
  assert a[1].keys() == b[1].keys()
  for key in a[1]:
    np.testing.assert_array_equal(a[1][key], b[1][key], err_msg=key)


def test_batch_layout(dataset):
  loader = TrainLoader(dataset, data_cfg(), seed=0)
  step, batch = next(loader)
  assert step == 0
  assert batch["sils"].shape == (6, 6, 64, 44) and batch["sils"].dtype == np.float32
  assert 0.0 <= batch["sils"].min() and batch["sils"].max() == 1.0
  assert batch["labels"].dtype == np.int32 and batch["lengths"].dtype == np.int32
  assert list(batch["lengths"]) == [6] * 6
  idx = loader.global_indices(0)
  np.testing.assert_array_equal(batch["labels"], dataset.labels[idx])
  assert list(batch["types"]) == [dataset.sequences[i].type for i in idx]
  assert batch["views"].dtype.kind == "U"
  # Each of the P = 3 ids appears K = 2 times.
  counts = np.bincount(batch["labels"], minlength=4)
  assert sorted(counts) == [0, 2, 2, 2]
  assert 0.0 <= loader.wait_fraction <= 1.0
  loader.close()


def test_frames_come_from_the_sequence(dataset):
  # Every output frame is a cut, scaled frame of the sampled sequence (contiguous clip).
  loader = TrainLoader(dataset, data_cfg(workers=0), seed=3)
  _, batch = next(loader)
  for row, index in enumerate(loader.global_indices(0)):
    seq = dataset.load(index)[0][:, :, 10:54].astype(np.float32) / 255
    first = [t for t in range(len(seq)) if np.array_equal(seq[t], batch["sils"][row, 0])]
    assert first, f"row {row}: first frame not found in its sequence"
    t0 = first[0]
    expect = seq[(t0 + np.arange(6)) % len(seq)]
    np.testing.assert_array_equal(batch["sils"][row], expect)


def test_deterministic_and_resume(dataset):
  a = take(TrainLoader(dataset, data_cfg(), seed=5), 4)
  b = take(TrainLoader(dataset, data_cfg(workers=0, prefetch=1), seed=5), 4)
  for x, y in zip(a, b):
    assert_batches_equal(x, y)
  resumed = take(TrainLoader(dataset, data_cfg(), seed=5, start_step=2), 2)
  assert [s for s, _ in resumed] == [2, 3]
  for x, y in zip(a[2:], resumed):
    assert_batches_equal(x, y)
  other = take(TrainLoader(dataset, data_cfg(), seed=6), 1)[0]
  assert not np.array_equal(other[1]["sils"], a[0][1]["sils"])
  assert not np.array_equal(a[0][1]["sils"], a[1][1]["sils"])


def test_two_process_slices_equal_global_batch(dataset):
  cfg = data_cfg(sample_type="unfixed_ordered", transforms="random_rotate_flip")
  whole = take(TrainLoader(dataset, cfg, seed=1), 3)
  parts = [take(TrainLoader(dataset, cfg, seed=1, process_index=i, process_count=2), 3)
           for i in range(2)]
  for s in range(3):
    for key in whole[s][1]:
      joined = np.concatenate([parts[0][s][1][key], parts[1][s][1][key]])
      np.testing.assert_array_equal(joined, whole[s][1][key], err_msg=key)
    assert parts[0][s][1]["sils"].shape[0] == 3
  with pytest.raises(ValueError, match="not divisible by the 4 processes"):
    TrainLoader(dataset, cfg, seed=1, process_index=0, process_count=4)


def test_unfixed_lengths_and_padding(dataset):
  loader = TrainLoader(dataset, data_cfg(sample_type="unfixed_ordered"), seed=0)
  seen = set()
  for _ in range(6):
    _, batch = next(loader)
    assert batch["sils"].shape[1] == 7  # frames_max
    for row, n in enumerate(batch["lengths"]):
      assert 3 <= n <= 7
      assert not batch["sils"][row, n:].any()
      seen.add(int(n))
  loader.close()
  assert len(seen) > 1  # counts are drawn per sequence, as the reference collate


def test_uint8_output(dataset):
  f = take(TrainLoader(dataset, data_cfg(), seed=2), 1)[0][1]
  u = take(TrainLoader(dataset, data_cfg(), seed=2, uint8=True), 1)[0][1]
  assert u["sils"].dtype == np.uint8 and u["sils"].shape == f["sils"].shape
  np.testing.assert_array_equal(u["sils"].astype(np.float32) / 255, f["sils"])
  with pytest.raises(ValueError, match="uint8 output needs"):
    TrainLoader(dataset, data_cfg(transforms="random_rotate_flip"), seed=0, uint8=True)


def test_worker_error_names_file(dataset):
  loader = TrainLoader(dataset, data_cfg(), seed=0)
  victim = dataset.sequences[int(loader.global_indices(0)[0])].files[0]
  with open(victim, "wb") as f:
    f.write(b"garbage")
  with pytest.raises(LoaderError, match="cannot unpickle") as err:
    next(loader)
  assert victim in str(err.value)
  with pytest.raises(RuntimeError, match="closed"):
    next(loader)


def test_close_joins_threads(dataset):
  before = threading.active_count()
  with TrainLoader(dataset, data_cfg(workers=2, prefetch=3), seed=0) as loader:
    next(loader)
    assert threading.active_count() > before
  assert threading.active_count() == before
  loader.close()  # idempotent


def test_bad_transform_is_named(dataset):
  # (sample types and the seed are checked with the whole config: tests/test_config_check.py)
  with pytest.raises(ValueError, match="unknown transform"):
    TrainLoader(dataset, data_cfg(transforms="nope,base_sil_cutting"), seed=0)


def test_iter_sequences(dataset):
  order = [3, 0, 5]
  got = list(iter_sequences(dataset, order, frames_all_limit=6, workers=2, prefetch=2))
  assert [i for i, _ in got] == order
  for i, seq in got:
    full = dataset.load(i)[0]
    n = min(6, len(full))
    assert seq.dtype == np.float32 and seq.shape == (n, 64, 44)
    np.testing.assert_array_equal(seq, full[:n, :, 10:54].astype(np.float32) / 255)
  lengths = [s.shape[0] for _, s in iter_sequences(dataset, range(len(dataset)), workers=0)]
  assert lengths == list(dataset.lengths())


def test_tiny_config_on_kth(shared_data):
  cfg = load_config("test_tiny")
  ds = GaitDataset(os.path.join(shared_data, "kth_walking"),
                   os.path.join(shared_data, "kth_walking.json"), "train")
  with TrainLoader(ds, cfg.data, seed=cfg.seed) as loader:
    step, batch = next(loader)
  b = cfg.data.batch_p * cfg.data.batch_k
  assert step == 0 and batch["sils"].shape == (b, cfg.data.frames, 64, 44)
  assert batch["sils"].max() == 1.0 and batch["labels"].max() < 12
