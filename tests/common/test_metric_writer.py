"""metric_writer: event files that TensorBoard can read, written without TensorFlow."""
import os

import numpy as np

from gait_jax.common import metric_writer
from helpers.events import read_events


def test_writer_writes_every_kind_of_summary(tmp_path):
  logdir = str(tmp_path / "tb")
  w = metric_writer.create_writer(logdir)
  w.write_scalars(3, {"train/loss": np.float32(1.5), "lr": 0.1})
  w.write_images(3, {"sils": np.random.rand(2, 8, 6, 1).astype(np.float32)})
  w.write_histograms(3, {"emb": np.random.randn(50)})
  w.write_texts(3, {"path": "0,1,2,3"})
  w.write_hparams({"optim": {"lr": 0.1, "milestones": (1, 2)}, "seed": 0})
  w.flush()
  w.close()
  events = read_events(logdir)
  values = {}
  for e in events:
    for v in e.summary.value:
      values.setdefault(v.tag, []).append((e.step, v))
  assert values["train/loss"][0][0] == 3
  assert abs(values["train/loss"][0][1].simple_value - 1.5) < 1e-6
  assert abs(values["lr"][0][1].simple_value - 0.1) < 1e-6
  assert any(t.startswith("sils") for t in values), sorted(values)
  assert values["sils"][0][1].image.height == 8 or values["sils"][0][1].HasField("image")
  assert "emb" in values and values["emb"][0][1].histo.num == 50
  assert any(t.startswith("path") for t in values)
  # hparams land in the same run (no extra sub-directory per call).
  assert any("hparams" in t for t in values), sorted(values)
  assert not [d for d in os.listdir(logdir) if os.path.isdir(os.path.join(logdir, d))]


def test_images_must_be_nhwc(tmp_path):
  w = metric_writer.create_writer(str(tmp_path))
  try:
    w.write_images(0, {"bad": np.zeros((8, 6))})
  except ValueError as e:
    assert "[N, H, W, C]" in str(e)
  else:
    raise AssertionError("a 2-D image was accepted")
  finally:
    w.close()


def test_just_logging_writes_no_files(tmp_path):
  w = metric_writer.create_writer(str(tmp_path / "tb"), just_logging=True)
  w.write_scalars(0, {"a": 1.0})
  w.close()
  assert not os.path.exists(tmp_path / "tb")


def test_flatten_hparams_keeps_only_tensorboard_types():
  flat = metric_writer.flatten_hparams({"a": {"b": (1, 2), "c": None}, "d": np.int64(3)})
  assert flat == {"a.b": "(1, 2)", "a.c": "None", "d": 3}


def test_tb_scalars_reads_back_what_the_writer_wrote(tmp_path):
  from gait_jax.common import metric_writer
  writer = metric_writer.create_writer(str(tmp_path))
  for step in (1, 2, 3):
    writer.write_scalars(step, {"train/loss": 1.0 / step, "lr": 0.1})
  writer.close()
  from conftest import load_tool
  module = load_tool("tb_scalars")
  scalars = module.read_scalars(str(tmp_path))
  assert [s for s, _ in scalars["train/loss"]] == [1, 2, 3]
  assert [round(v, 5) for _, v in scalars["train/loss"]] == [1.0, 0.5, 0.33333]
