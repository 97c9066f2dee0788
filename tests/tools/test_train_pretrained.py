"""tools/train_pretrained.sh refuses settings that are not what it expects before anything runs
(its stages themselves are the KTH recipe's, tested end to end in test_kth_recipe.py)."""
import os
import subprocess

from conftest import REPO


def test_bad_settings_are_refused_in_one_line_before_anything_runs(tmp_path):
  for name, value, expected in (("WALKER_SEQS", "abc", "expected a whole number"),
                                ("WALKER_IDS", "08", "expected a whole number"),
                                ("STEPS", "0", "expected a whole number"),
                                ("WALKER_PROFILE", "clean", "expected kth or footage")):
    env = dict(os.environ, PRETRAIN_DIR=str(tmp_path / "run"),
               PRETRAINED_OUT=str(tmp_path / "model"), **{name: value})
    proc = subprocess.run(["bash", "tools/train_pretrained.sh"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith("train_pretrained:")]
    assert len(lines) == 1 and f"{name}={value}: {expected}" in lines[0], proc.stderr[-2000:]
  assert not (tmp_path / "run").exists() and not (tmp_path / "model").exists()
