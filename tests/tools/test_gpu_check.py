"""tools/gpu_check.sh: says so and exits 0 without a GPU; its --dry-run rehearses the GPU
pipeline (benchmarks, JSON files, the table) on the CPU with tiny shapes."""
import os
import subprocess

from conftest import REPO
from helpers import no_gpu


def _run(args, tmp_path, **env):
  return subprocess.run(["bash", os.path.join(REPO, "tools", "gpu_check.sh"), *args], cwd=REPO,
                        capture_output=True, text=True, timeout=900,
                        env=dict(os.environ, GPU_CHECK_OUT=str(tmp_path / "out"), **env))


def test_without_a_gpu_it_says_so_and_exits_0(tmp_path):
  proc = _run([], tmp_path, PATH=no_gpu.failing_nvidia_smi_path(tmp_path))
  assert proc.returncode == 0, proc.stderr
  assert "no NVIDIA GPU on this machine" in proc.stdout
  assert not (tmp_path / "out").exists()  # nothing was installed or run


def test_dry_run_produces_the_table(tmp_path):
  proc = _run(["--dry-run"], tmp_path)
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  out = proc.stdout
  assert "| model | path | dtype | compile s | step s | seq/s | TFLOP/s |" in out
  rows = [l for l in out.splitlines() if l.startswith("| sposgait_small |")]
  kinds = {(l.split("|")[2].strip().split()[0], l.split("|")[3].strip()) for l in rows[:-1]}
  # The GPU runs all four train kinds; the rehearsal each flag (--static, --dtype) once.
  assert kinds == {("traced", "float32"), ("static", "bfloat16")}, rows
  assert len(rows) == 3  # two train rows and the embed row
  assert sorted(os.listdir(tmp_path / "out")) == [
      "embed.json", "train_bfloat16_static.json", "train_float32_traced.json"]
