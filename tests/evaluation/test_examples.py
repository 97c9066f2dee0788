"""`evaluate.examples`: per probe group, a PNG of probes beside their top-3 gallery matches."""
import numpy as np
import pytest
from PIL import Image

from conftest import load_config
from gait_jax.data.dataset import GaitDataset
from gait_jax.evaluation import examples
from gait_jax.evaluation import protocols
from gait_jax.evaluation.protocol import Sequences
from gait_jax.synthetic import walkers


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
  out = str(tmp_path_factory.mktemp("walkers") / "walk")
  data = walkers.generate(out, ids=4, seqs_per_id=3, views=("090",), frames=8, seed=0,
                          train_ids=0)
  return GaitDataset(data["root"], data["partition"], split="test")


def _custom_cfg():
  c = load_config("test_tiny").unlock()
  c.evaluate.protocol = "custom"
  c.evaluate.custom_gallery = "nm-01/*"
  c.evaluate.custom_probes = "two=nm-02/*;three=nm-03/*"
  return c.lock()


def test_groups_follow_the_protocol(dataset):
  c = _custom_cfg()
  gallery, groups = protocols.from_config(c).select(
      Sequences.of(dataset.ids, dataset.types, dataset.views))
  assert list(dataset.types[gallery]) == ["nm-01"] * 4
  assert [n for n, _ in groups] == ["two", "three"]
  assert all(set(dataset.types[m]) == {t} for (_, m), t in zip(groups, ("nm-02", "nm-03")))
  gallery, groups = protocols.build("casia_b", c.evaluate).select(
      Sequences.of(["a"] * 3, ["nm-01", "nm-05", "cl-01"], ["090"] * 3))
  assert gallery.tolist() == [True, False, False]
  assert [(n, m.tolist()) for n, m in groups] == [("NM", [False, True, False]),
                                                  ("BG", [False, False, False]),
                                                  ("CL", [False, False, True])]
  data = {"embeddings": np.zeros((len(dataset), 1, 1), np.float32), "labels": dataset.ids,
          "types": dataset.types, "views": dataset.views}
  with pytest.raises(ValueError, match="grew_submission"):
    examples.write_examples("unused", data, dataset, protocols.build("grew_submission", c.evaluate),
                            1)


def test_figures_mark_right_and_wrong_matches(dataset, tmp_path):
  c = _custom_cfg()
  labels = dataset.ids
  # Embeddings that put each sequence next to its own id: every top match is right.
  ids = sorted(set(labels))
  emb = np.stack([np.full((8, 2), ids.index(i), np.float32) for i in labels])
  emb += np.random.default_rng(0).normal(0, 0.01, emb.shape).astype(np.float32)
  data = {"embeddings": emb, "labels": labels, "types": dataset.types, "views": dataset.views}
  paths = examples.write_examples(str(tmp_path), data, dataset, protocols.from_config(c), 3)
  assert [p.split("/")[-1] for p in paths] == ["two.png", "three.png"]
  image = np.asarray(Image.open(paths[0]).convert("RGB")).astype(int)
  green = ((image[..., 1] > 100) & (image[..., 0] < 80) & (image[..., 2] < 80)).sum()
  red = ((image[..., 0] > 180) & (image[..., 1] < 80) & (image[..., 2] < 80)).sum()
  assert green > 1000 and red > 1000  # top-1 right (green), the next two others (red)
  # Embeddings of another split are named, not drawn from the wrong silhouettes.
  bad = dict(data, types=np.where(dataset.types == "nm-02", "nm-09", dataset.types))
  c2 = c.unlock()
  c2.evaluate.custom_probes = "x=nm-09/*"
  with pytest.raises(ValueError, match="not in"):
    examples.write_examples(str(tmp_path), bad, dataset, protocols.from_config(c2), 2)
