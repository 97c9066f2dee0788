"""tools/kth_recipe.sh, the smoke version: every stage runs end to end on a KTH-shaped stand-in
(random silhouettes named like KTH passes) with a tiny network and two steps, writes what the
summary reads, and a rerun skips what is done."""
import json
import os
import subprocess

from conftest import REPO, fast_cli_env
from helpers import gait_tree

TINY = ("--config.model.channels=(4,8,8) --config.model.bins=(4,2,1) --config.model.parts=7 "
        "--config.model.out_channels=8 --config.data.frames=6 --config.data.batch_p=2 "
        "--config.data.batch_k=2 --config.data.workers=1 --config.data.test_frames_all_limit=12 "
        "--config.embed.batch=2 --config.train.log_every=1")


def _run(tmp_path, kth):
  env = fast_cli_env(
      KTH_RECIPE_DIR=str(tmp_path / "run"), KTH_ROOT=kth[0], KTH_PARTITION=kth[1],
      WALKER_IDS="4", PRETRAIN_STEPS="2", FINETUNE_STEPS="2",
      KTH_ONLY_LR="0.001",  # the fine-tuning's: the compiled step is shared (cache)
      RECIPE_ARGS=TINY,
      # Pretraining, fine-tuning and the tests share compiled programs across processes.
      JAX_COMPILATION_CACHE_DIR=os.environ.get("JAX_COMPILATION_CACHE_DIR",
                                               str(tmp_path / "jax_cache")),
      JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
  proc = subprocess.run(["bash", "tools/kth_recipe.sh"], cwd=REPO, env=env, capture_output=True,
                        text=True, timeout=900)
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
  return proc.stdout


def test_recipe_smoke(tmp_path):
  kth = gait_tree.make_tree(
      tmp_path, ids=[f"person{i:02d}" for i in range(1, 10)],
      types=("d4-00", "d4-01", "d1-00", "d2-00", "d3-00"), views=("090",), frames=8,
      train=[f"person{i:02d}" for i in range(1, 6)],
      test=[f"person{i:02d}" for i in range(6, 10)], name="kth")
  out = _run(tmp_path, kth)
  run = tmp_path / "run"
  for rel in ("gei_plain.json", "gei_flip.json", "walkers_only/metrics.json",
              "finetune/metrics.json", "kth_only/metrics.json", "summary.json"):
    assert (run / rel).exists(), rel
  # The fine-tuning started from the pretrained weights, its BN-neck fresh (4 walkers vs 12).
  with open(run / "finetune" / "config.json") as f:
    assert json.load(f)["train"]["init_from"].endswith("pretrain")
  # The validation run held 3 of the 5 training people out and evaluated on them.
  with open(run / "finetune_val" / "holdout.json") as f:
    assert len(json.load(f)["held_out_ids"]) == 3
  with open(run / "finetune_val" / "validation.json") as f:
    points = json.load(f)["points"]
  # Step 0 is the pretrained model before fine-tuning.
  assert [p["step"] for p in points] == [0, 1, 2] and "d4/rank1" in points[0]
  assert (run / "finetune_val" / "validation.png").stat().st_size > 1000
  assert sorted(os.listdir(run / "finetune" / "examples")) == ["d1.png", "d2.png", "d3.png",
                                                              "d4.png"]
  assert "walkers-pretrained + KTH fine-tuned" in out and "probes: d4 4, d1 4" in out
  summary = json.loads((run / "summary.json").read_text())
  assert len(summary["rows"]) == 5 and set(summary["stage_seconds"]) >= {"pretrain", "finetune"}
  # Rerunning continues: nothing is left to do, so no stage trains or tests again.
  done = {rel: (run / rel).stat().st_mtime_ns for rel in (
      "walkers.json", "gei_plain.json", "walkers_only/metrics.json", "finetune/metrics.json",
      "kth_only/metrics.json")}
  _run(tmp_path, kth)
  assert {rel: (run / rel).stat().st_mtime_ns for rel in done} == done
  assert sorted(os.listdir(run / "finetune" / "checkpoints")) == ["2"]


def test_numbers_that_are_not_whole_are_refused_before_anything_runs(tmp_path):
  for name, value in (("FINETUNE_STEPS", "08"), ("FINETUNE_STEPS", "1e3"),
                      ("PRETRAIN_STEPS", "abc"), ("WALKER_IDS", "-3"), ("KTH_ONLY_LR", "x")):
    env = dict(os.environ, KTH_RECIPE_DIR=str(tmp_path / "run"), **{name: value})
    proc = subprocess.run(["bash", "tools/kth_recipe.sh"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"kth_recipe: {name}={value}: expected" in proc.stderr
    assert "unbound variable" not in proc.stderr
  assert not (tmp_path / "run").exists()
