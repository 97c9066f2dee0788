"""tools/ship_checkpoint.py: a workdir's newest step as a model folder (config.json + one step),
replaced atomically, refused when too big, with a provenance page built from the run's files."""
import json
import os

import numpy as np
import pytest

from conftest import load_tool
from gait_jax.common import checkpoint


ship_checkpoint = load_tool("ship_checkpoint")


def _workdir(path, steps=(3, 7)):
  ckpt = checkpoint.Checkpointer(checkpoint.checkpoint_dir(str(path)), keep=5)
  for step in steps:
    variables = {"params": {"w": np.full((4,), step, np.float32),
                            "BNNecks": {"fc": np.ones((3, 2), np.float32)}},
                 "batch_stats": {"bn": {"mean": np.full((2,), -step, np.float32)}}}
    ckpt.save(step, {**variables, "opt_state": {"momentum": variables["params"]}},
              {"step": step})
  ckpt.wait()
  ckpt.close()
  checkpoint.write_config(str(path), {"seed": 0, "model": {"name": "sposgait_small",
                                                             "path": "0,5,5,4"}})
  return str(path)


def test_ships_the_newest_step_only_and_replaces_the_old_folder(tmp_path):
  work = _workdir(tmp_path / "train")
  out = str(tmp_path / "model")
  os.makedirs(os.path.join(out, "checkpoints", "1"))  # a previous shipment
  assert ship_checkpoint.ship(work, out) == 7
  assert sorted(os.listdir(out)) == ["checkpoints", "config.json"]
  assert os.listdir(os.path.join(out, "checkpoints")) == ["7"]
  assert not os.path.exists(out + ".partial") and not os.path.exists(out + ".old")
  assert json.load(open(os.path.join(out, "config.json")))["model"]["path"] == "0,5,5,4"
  # The network's variables only: no BN-neck (a classifier of the training ids), no optimizer.
  variables, step = checkpoint.restore_variables(out)
  assert step == 7 and sorted(variables["params"]) == ["w"]
  np.testing.assert_array_equal(variables["params"]["w"], np.full((4,), 7, np.float32))
  np.testing.assert_array_equal(variables["batch_stats"]["bn"]["mean"], np.full((2,), -7.0))
  with pytest.raises(ValueError, match="no .*opt_state"):
    checkpoint.restore_optimizer(out)


def test_a_step_over_the_limit_is_refused_and_the_old_folder_kept(tmp_path, monkeypatch):
  work = _workdir(tmp_path / "train", steps=(2,))
  out = str(tmp_path / "model")
  ship_checkpoint.ship(work, out)
  monkeypatch.setattr(ship_checkpoint, "MAX_BYTES", 10)
  with pytest.raises(SystemExit, match="over 20 MB"):
    ship_checkpoint.ship(work, out)
  assert os.listdir(os.path.join(out, "checkpoints")) == ["2"]
  with pytest.raises(SystemExit, match="no checkpoint step"):
    ship_checkpoint.ship(str(tmp_path / "empty"), str(tmp_path / "m2"))


def test_provenance_reports_the_runs_own_figures(tmp_path):
  run = tmp_path / "run"
  _workdir(run / "train")
  out = str(tmp_path / "model")
  step = ship_checkpoint.ship(str(run / "train"), out)
  groups = ("d4", "d1", "d2", "d3", "mean")
  rng = np.random.default_rng(0)
  model = {f"{g}/rank1": float(v) for g, v in zip(groups, rng.uniform(0, 100, 5).round(2))}
  gei = {f"{g}/rank1": float(v) for g, v in zip(groups, rng.uniform(0, 100, 5).round(2))}
  os.makedirs(run / "zero_shot")
  (run / "zero_shot" / "metrics.json").write_text(json.dumps(model))
  (run / "gei_flip_test.json").write_text(json.dumps(gei))
  os.makedirs(run / "validation")
  (run / "validation" / "metrics.json").write_text(json.dumps({"d4/rank1": 33.3, "mean/rank1": 4}))
  (run / "stage_seconds.txt").write_text("walkers 61\ntrain 1200\ntrain 30\n")
  (run / "train" / "validation.json").write_text(json.dumps(
      {"points": [{"step": 500, "d4/rank1": 12.5, "mean/rank1": 9.75}]}))
  text = ship_checkpoint.provenance(str(run), out, step)
  assert open(os.path.join(out, "PROVENANCE.md")).read() == text
  assert "| Rank-1 % | " + " | ".join(f"{model[f'{g}/rank1']:.2f}" for g in groups) in text
  assert " | ".join(f"{gei[f'{g}/rank1']:.2f}" for g in groups) in text
  assert "train 1230" in text and "| 500 | 12.50 |" in text and f"shipped step: {step}" in text
  assert f"| {step} (shipped, `embed.flip` as configs/kth_walking.py) | 33.30 | nan" in text
  assert "--profile kth " in text and "--seqs-per-id 6 " in text
  assert "--profile footage " in ship_checkpoint.provenance(str(run), out, step, "footage")
  assert "--seqs-per-id 10 " in ship_checkpoint.provenance(str(run), out, step, "kth", 10)


def test_a_folder_shipped_elsewhere_gets_its_provenance_and_training_machine(tmp_path, capsys):
  run = tmp_path / "run"
  _workdir(run / "train")
  out = str(tmp_path / "model")
  ship_checkpoint.ship(str(run / "train"), out)
  (run / "trained_on.txt").write_text("GPU 0: NVIDIA H200; AMD EPYC (AVX2), 16 cores\n")
  recipe = "bash tools/gpu_pretrain.sh"
  ship_checkpoint.main(["--out", out, "--provenance", str(run), "--recipe", recipe])
  text = open(os.path.join(out, "PROVENANCE.md")).read()
  assert f"`{recipe}`" in text and "trained on: GPU 0: NVIDIA H200; AMD EPYC" in text
  assert "shipped step: 7 " in text and "step 7 of" not in capsys.readouterr().out
  assert os.listdir(os.path.join(out, "checkpoints")) == ["7"]  # nothing re-shipped
  with pytest.raises(SystemExit, match="holds no shipped step"):
    ship_checkpoint.main(["--out", str(tmp_path / "none"), "--provenance", str(run)])
  with pytest.raises(SystemExit):
    ship_checkpoint.main(["--out", out])  # neither --workdir nor --provenance
