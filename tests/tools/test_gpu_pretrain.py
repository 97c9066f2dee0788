"""tools/gpu_pretrain.sh: says so and exits 0 without a GPU, refuses bad settings in one line,
and its --dry-run rehearses the GPU machine's pipeline (walkers -> training -> the shipped
model in one archive) on the CPU with tiny settings."""
import json
import os
import subprocess
import tarfile

from conftest import REPO
from helpers import no_gpu
from gait_jax.common import checkpoint


def _run(args, tmp_path, **env):
  return subprocess.run(["bash", os.path.join(REPO, "tools", "gpu_pretrain.sh"), *args],
                        cwd=REPO, capture_output=True, text=True, timeout=600,
                        env=dict(os.environ, PRETRAIN_DIR=str(tmp_path / "run"),
                                 GPU_PRETRAIN_OUT=str(tmp_path / "out"), **env))


def test_without_a_gpu_it_says_so_and_exits_0(tmp_path):
  proc = _run([], tmp_path, PATH=no_gpu.failing_nvidia_smi_path(tmp_path))
  assert proc.returncode == 0, proc.stderr
  assert "no NVIDIA GPU on this machine" in proc.stdout
  assert not (tmp_path / "run").exists() and not (tmp_path / "out").exists()


def test_bad_settings_are_refused_in_one_line_before_anything_runs(tmp_path):
  for env, expected in (({"GPU_STEPS": "0"}, "GPU_STEPS=0: expected a whole number"),
                        ({"GPU_TRAIN_SECONDS": "4m"}, "GPU_TRAIN_SECONDS=4m: expected")):
    proc = _run(["--dry-run"], tmp_path, **env)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0, proc.stderr
    assert proc.stderr.startswith("gpu_pretrain: ") and expected in proc.stderr
  proc = _run(["--finish", str(tmp_path / "missing.tar.gz")], tmp_path)
  assert proc.returncode == 2 and "--finish needs the archive" in proc.stderr, proc.stderr
  proc = _run(["--train"], tmp_path)
  assert proc.returncode == 2 and "unknown argument --train" in proc.stderr
  assert not (tmp_path / "run").exists() and not (tmp_path / "out").exists()


def test_dry_run_ships_the_model_in_one_archive(tmp_path):
  proc = _run(["--dry-run"], tmp_path)
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  archive = tmp_path / "out" / "gpu_pretrained.tar.gz"
  assert os.listdir(tmp_path / "out") == ["gpu_pretrained.tar.gz"]
  with tarfile.open(archive) as tar:
    names = set(tar.getnames())
    tar.extractall(tmp_path / "unpacked", filter="data")
  assert {"model/config.json", "train/config.json", "walkers.json", "stage_seconds.txt",
          "trained_on.txt", "train.log"} <= names
  assert not any(n.startswith("train/checkpoints") for n in names)  # the lean model only
  unpacked = tmp_path / "unpacked"
  assert (unpacked / "trained_on.txt").read_text().startswith("the CPU (a dry run): ")
  stages = dict(line.split() for line in (unpacked / "stage_seconds.txt").read_text().splitlines())
  assert set(stages) == {"walkers", "train"}
  # The GPU variant's architecture (the reference's one 16-strip scale), at the rehearsal's
  # tiny widths, and its final step (3) without the BN-neck.
  config = json.loads((unpacked / "model" / "config.json").read_text())
  assert config["model"]["bins"] == [16] and config["model"]["channels"] == [4, 8, 8]
  assert config["train"]["total_steps"] == 3 and config["model"]["class_num"] == 6
  variables, step = checkpoint.restore_variables(str(unpacked / "model"))
  assert step == 3 and "BNNecks" not in variables["params"]
