"""tools/train_pretrained.sh refuses settings that are not what it expects before anything runs
(its stages themselves are the KTH recipe's, tested end to end in test_kth_recipe.py)."""
import os
import subprocess

from conftest import REPO


def test_bad_settings_are_refused_in_one_line_before_anything_runs(tmp_path):
  for name, value, expected in (("WALKER_SEQS", "abc", "expected a whole number"),
                                ("WALKER_IDS", "08", "expected a whole number"),
                                ("STEPS", "0", "expected a whole number"),
                                ("WALKER_PROFILE", "clean", "expected kth or footage"),
                                ("SEED", "-1", "expected a whole number >= 0"),
                                ("SEED", "01", "expected a whole number >= 0"),
                                ("TRAIN_ARGS", "--config.seed=1 loss.ce_weight=0",
                                 "expected --config.KEY=VALUE overrides"),
                                ("TRAIN_ARGS", "--config.loss.ce_weight=", "expected --config")):
    env = dict(os.environ, PRETRAIN_DIR=str(tmp_path / "run"),
               PRETRAINED_OUT=str(tmp_path / "model"), **{name: value})
    proc = subprocess.run(["bash", "tools/train_pretrained.sh"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith("train_pretrained:")]
    assert len(lines) == 1 and f"{name}={value}: {expected}" in lines[0], proc.stderr[-2000:]
  assert not (tmp_path / "run").exists() and not (tmp_path / "model").exists()


def test_provenance_names_the_settings_that_differ_from_the_defaults():
  script = ('source tools/_stages.sh; WALKER_IDS=2000 STEPS=1200 SEED=0 '
            'TRAIN_ARGS="--config.loss.ce_weight=0 --config.data.frames=30"; '
            'changed_settings WALKER_IDS=2000 STEPS=2400 SEED=0 TRAIN_ARGS=')
  out = subprocess.run(["bash", "-c", script], cwd=REPO, capture_output=True, text=True,
                       check=True).stdout
  assert out == ("STEPS=1200 TRAIN_ARGS='--config.loss.ce_weight=0 --config.data.frames=30' ")


def test_a_run_folder_made_with_other_settings_is_refused(tmp_path):
  # A rerun resumes: its finished stages would be kept under the new settings.
  run = tmp_path / "run"
  run.mkdir()
  (run / "settings.txt").write_text("SEED=1 ")
  env = dict(os.environ, PRETRAIN_DIR=str(run), PRETRAINED_OUT=str(tmp_path / "model"),
             SEED="2", KTH_ROOT=str(tmp_path / "no_kth"))
  proc = subprocess.run(["bash", "tools/train_pretrained.sh"], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 2, proc.stderr[-2000:]
  lines = [line for line in proc.stderr.splitlines() if line.startswith("train_pretrained:")]
  assert len(lines) == 1 and "made with the settings 'SEED=1 ', not 'SEED=2 '" in lines[0]
  assert sorted(os.listdir(run)) == ["settings.txt"] and not (tmp_path / "model").exists()
