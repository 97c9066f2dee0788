"""`evaluate` mode end to end through the CLI, and its input checks."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO
from gait_jax.evaluation import embeddings_file
from gait_jax.modes import inference
from helpers.embeddings import casia_set



def write_npz(path, emb, labels, types, views, **extra):
  np.savez(path, embeddings=emb, labels=np.array(labels), types=np.array(types),
           views=np.array(views), **extra)


def test_cli_writes_metrics_json(tmp_path):
  npz = tmp_path / "emb.npz"
  write_npz(npz, *casia_set())
  workdir = tmp_path / "w"
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=REPO)
  proc = subprocess.run(
      [sys.executable, "-m", "gait_jax.main", "--config", "configs/test_tiny.py",
       "--workdir", str(workdir), "--config.mode=evaluate", f"--config.evaluate.embeddings={npz}",
       "--config.evaluate.protocol=casia_b"],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  metrics = json.loads((workdir / "metrics.json").read_text())
  # Hand-worked values of casia_set (see test_eval_protocols): NM 100, BG 50, CL 0 at Rank-1.
  assert metrics["NM/rank1_exclude"] == 100.0 and metrics["BG/rank1_exclude"] == 50.0
  assert metrics["CL/rank1_exclude"] == 0.0 and metrics["mean/rank1_exclude"] == 50.0
  assert "exclude identical views" in proc.stdout
  tb = workdir / "tb"
  assert tb.is_dir() and any(f.startswith("events") for _, _, fs in os.walk(tb) for f in fs)


def test_default_path_is_workdir_embeddings(tmp_path):
  from conftest import load_config
  config = load_config("test_tiny").unlock()
  config.evaluate.protocol = "casia_b"
  with pytest.raises(FileNotFoundError, match=str(tmp_path / "embeddings.npz")):
    inference.run_evaluate(config, str(tmp_path))
  write_npz(tmp_path / "embeddings.npz", *casia_set())
  inference.run_evaluate(config, str(tmp_path))
  assert json.loads((tmp_path / "metrics.json").read_text())["NM/rank5_include"] == 100.0


def test_bad_npz_errors_name_file_and_key(tmp_path):
  emb, labels, types, views = casia_set()
  p = tmp_path / "nolabels.npz"
  np.savez(p, embeddings=emb, types=np.array(types), views=np.array(views))
  with pytest.raises(ValueError, match=r"nolabels\.npz.*'labels'"):
    embeddings_file.load_embeddings(str(p))
  p2 = tmp_path / "flat.npz"
  write_npz(p2, emb[:, :, 0], labels, types, views)
  with pytest.raises(ValueError, match=r"flat\.npz.*\[N, c, p\]"):
    embeddings_file.load_embeddings(str(p2))
  p3 = tmp_path / "short.npz"
  write_npz(p3, emb, labels[:-1], types, views)
  with pytest.raises(ValueError, match=r"short\.npz.*'labels'"):
    embeddings_file.load_embeddings(str(p3))
  p4 = tmp_path / "junk.npz"
  p4.write_text("not a zip")
  with pytest.raises(ValueError, match=r"junk\.npz.*not a readable"):
    embeddings_file.load_embeddings(str(p4))


def test_non_finite_embeddings_are_refused_with_their_names(tmp_path):
  from conftest import load_config
  config = load_config("test_tiny").unlock()
  config.evaluate.protocol = "casia_b"
  emb, labels, types, views = casia_set()
  all_nan = np.full_like(emb, np.nan)  # today: 25.00 on every condition, exit 0
  write_npz(tmp_path / "embeddings.npz", all_nan, labels, types, views)
  with pytest.raises(ValueError, match=r"embeddings\.npz: 40 of 40 embeddings are not finite"):
    inference.run_evaluate(config, str(tmp_path))
  one = emb.copy()
  one[13, 0, 0] = np.inf  # a single broken sequence would silently move a Rank-1
  write_npz(tmp_path / "embeddings.npz", one, labels, types, views)
  with pytest.raises(ValueError, match=rf"1 of 40 .* from 1 ids: {labels[13]}/{types[13]}/"):
    inference.run_evaluate(config, str(tmp_path))
  assert not (tmp_path / "metrics.json").exists()
  from gait_jax.evaluation import protocols
  with pytest.raises(ValueError, match="not finite"):
    protocols.run_protocol("casia_b", one, labels, types, views, config.evaluate)


def test_identical_embeddings_warn_loudly(tmp_path, caplog):
  from conftest import load_config
  config = load_config("test_tiny").unlock()
  config.evaluate.protocol = "casia_b"
  emb, labels, types, views = casia_set()
  write_npz(tmp_path / "embeddings.npz", np.ones_like(emb), labels, types, views)
  with caplog.at_level("WARNING"):
    inference.run_evaluate(config, str(tmp_path))
  assert "ALL 40 EMBEDDINGS ARE IDENTICAL" in caplog.text
  caplog.clear()
  with caplog.at_level("WARNING"):
    write_npz(tmp_path / "embeddings.npz", emb, labels, types, views)
    inference.run_evaluate(config, str(tmp_path))
  assert "IDENTICAL" not in caplog.text
