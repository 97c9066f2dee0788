"""tools/to_tfds.py: the TFDS form of a pkl tree reads back without TensorFlow and gives the
same sequences, batches and embeddings as the tree."""
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO
from gait_jax.data import splits, tfds_format
from gait_jax.data.dataset import GaitDataset
from gait_jax.data.loader import TrainLoader
from gait_jax.synthetic import walkers
from helpers.configs import tiny



@pytest.fixture(scope="module")
def both(tmp_path_factory):
  """(walkers summary, TFDS_DIR) — the TFDS form written by the command line."""
  out = tmp_path_factory.mktemp("tfds")
  data = walkers.generate(str(out / "walkers"), ids=8, seqs_per_id=2, views=("000", "090"),
                          frames=16, seed=3)
  proc = subprocess.run([sys.executable, os.path.join(REPO, "tools", "to_tfds.py"), "--root",
                         data["root"], "--partition", data["partition"], "--out",
                         str(out / "tfds"), "--workers", "2", "--no-progress"],
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert "train: 16 sequences, 1 shard(s)" in proc.stdout
  return data, str(out / "tfds")


def test_read_back_without_tensorflow(both):
  data, tfds_dir = both
  code = ("import sys, numpy as np, tensorflow_datasets as tfds\n"
          f"src = tfds.data_source('gait_sequences', data_dir={tfds_dir!r}, split='test')\n"
          "r = src[3]\n"
          "print(len(src), r['id'].decode(), r['type'].decode(), r['view'].decode(), "
          "r['sils'].shape, r['sils'].dtype, 'tensorflow' in sys.modules)\n")
  proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr[-2000:]
  pkl = GaitDataset(data["root"], data["partition"], "test")
  n, pid, typ, view, shape, dtype, tf_loaded = proc.stdout.split()[:4] + [
      " ".join(proc.stdout.split()[4:7])] + proc.stdout.split()[7:]
  s = pkl.sequences[3]
  assert (int(n), pid, typ, view) == (len(pkl), s.id, s.type, s.view)
  assert shape == f"({pkl.lengths()[3]}, 64, 64)" and dtype == "uint8" and tf_loaded == "False"


@pytest.mark.parametrize("kwargs", [{}, {"num_train": 3}, {"ids": ["00004", "00002"]}])
def test_same_sequences_as_the_tree(both, kwargs):
  data, tfds_dir = both
  pkl = GaitDataset(data["root"], data["partition"], "train", **kwargs)
  packed = tfds_format.TfdsDataset(tfds_dir, "train", **kwargs)
  assert [s.name for s in packed.sequences] == [s.name for s in pkl.sequences]
  assert packed.label_set == pkl.label_set and np.array_equal(packed.labels, pkl.labels)
  assert np.array_equal(packed.lengths(), pkl.lengths())
  for i in range(len(pkl)):
    np.testing.assert_array_equal(packed.load(i)[0], pkl.load(i)[0])


@pytest.mark.parametrize("transforms", ["base_sil_cutting", "random_rotate_flip"])
def test_same_batches_at_every_step(both, transforms):
  data, tfds_dir = both
  pkl_cfg = tiny(data, **{"data.transforms": transforms})
  tfds_cfg = tiny(data, **{"data.transforms": transforms, "data.format": "tfds",
                           "data.root": tfds_dir, "data.partition": ""})
  loaders = [TrainLoader(splits.open_split(c.data, "train"), c.data, seed=5, start_step=2)
             for c in (pkl_cfg, tfds_cfg)]
  try:
    for (step_a, a), (step_b, b) in zip(*[[next(it) for _ in range(3)] for it in loaders]):
      assert step_a == step_b
      assert a.keys() == b.keys()
      for key in a:
        np.testing.assert_array_equal(a[key], b[key])
  finally:
    for loader in loaders:
      loader.close()


def test_same_embeddings(both, tmp_path):
  data, tfds_dir = both
  out = {}
  for form, extra in (("pkl", []), ("tfds", ["--config.data.format=tfds",
                                             f"--config.data.root={tfds_dir}",
                                             "--config.data.partition="])):
    work = tmp_path / form
    proc = subprocess.run(
        [sys.executable, "-m", "gait_jax.main", "--config", os.path.join(REPO, "configs",
         "test_tiny.py"), "--workdir", str(work), "--config.mode=embed",
         f"--config.data.root={data['root']}", f"--config.data.partition={data['partition']}",
         f"--config.train.init_from={os.path.join(REPO, 'pretrained', 'walkers')}", *extra],
        capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    with np.load(work / "embeddings.npz") as z:
      out[form] = {k: z[k] for k in z.files}
  assert out["pkl"].keys() == out["tfds"].keys() and len(out["pkl"]["embeddings"]) == 16
  for key in out["pkl"]:
    np.testing.assert_array_equal(out["pkl"][key], out["tfds"][key])


def test_refusals(both, tmp_path):
  data, tfds_dir = both
  with pytest.raises(ValueError, match="exists already: choose another --out"):
    tfds_format.write(data["root"], data["partition"], tfds_dir, progress=False)
  other = tmp_path / "other.json"
  other.write_text('{"TRAIN_SET": ["00001"], "TEST_SET": []}')
  with pytest.raises(ValueError, match="TRAIN_SET differs from the one stored"):
    tfds_format.TfdsDataset(tfds_dir, "train", partition=str(other))
  assert len(tfds_format.TfdsDataset(tfds_dir, "train", partition=data["partition"])) == 16
  with pytest.raises(ValueError, match=r"holds no dataset: expected .*gait_sequences/1\.0\.0"):
    tfds_format.TfdsDataset(str(tmp_path), "train")
  c = tiny(data, **{"data.format": "tfds", "data.root": ""})
  with pytest.raises(ValueError, match="data.format=tfds: set data.root"):
    splits.open_split(c.data, "train")
