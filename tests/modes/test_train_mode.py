"""End to end: `python -m gait_jax.main --config configs/test_tiny.py` trains the real tiny
SPOSGait supernet on generated walkers, writes checkpoints + TensorBoard, and the same
command with more steps resumes from the last checkpoint."""
import glob
import os
import subprocess
import sys

from conftest import REPO, fast_cli_env
from gait_jax.common import checkpoint
from gait_jax.synthetic import walkers


def _main(workdir, data, *extra):
  # One CPU device, as a user's machine has (the in-process tests train on 8): its default
  # convolutions, and a third less to compile.
  env = fast_cli_env(1)
  cmd = [sys.executable, "-m", "gait_jax.main", "--config", "configs/test_tiny.py",
         "--workdir", workdir, f"--config.data.root={data['root']}",
         f"--config.data.partition={data['partition']}", "--config.train.log_every=1",
         "--alsologtostderr", *extra]
  proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
  assert proc.returncode == 0, "\n".join(l for l in proc.stderr.splitlines() if not l.startswith("I"))[-6000:]
  return proc.stderr


def test_train_writes_checkpoints_and_resumes(tmp_path):
  data = walkers.generate(str(tmp_path / "walk"), ids=8, seqs_per_id=2, views=("000", "090"),
                          frames=10, seed=0)
  workdir = str(tmp_path / "w")
  log = _main(workdir, data, "--config.train.total_steps=2")
  assert "compiling the train step" in log
  assert "step 2/2" in log, log[-3000:]
  assert checkpoint.restore_variables(workdir)[1] == 2
  assert glob.glob(os.path.join(workdir, "tb", "events.out.tfevents.*"))
  assert os.path.exists(os.path.join(workdir, "config.json"))

  # The resumed run also evaluates (train.eval_every, the reference's with_test) at its end.
  log = _main(workdir, data, "--config.train.total_steps=3", "--config.train.eval_every=3",
              "--config.evaluate.protocol=custom", "--config.evaluate.custom_gallery=nm-01/*",
              "--config.evaluate.custom_probes=nm=nm-02/*")
  assert "resumed from" in log and "step 3/3" in log, log[-3000:]
  from conftest import load_tool
  tb = load_tool("tb_scalars")
  scalars = tb.read_scalars(os.path.join(workdir, "tb"))
  evals = {k: v for k, v in scalars.items() if k.startswith("eval/") and "rank1" in k}
  assert evals, sorted(scalars)
  for tag, points in evals.items():
    assert [s for s, _ in points] == [3] and 0 <= points[0][1] <= 100, (tag, points)
  assert "step 1/3" not in log and "step 2/3" not in log  # no step was redone
  variables, step = checkpoint.restore_variables(workdir)
  assert step == 3
  # The supernet's parameters: every candidate of every searchable layer exists.
  assert set(variables["params"]["conv3d_20"]) == {f"cand{j}" for j in range(6)}
