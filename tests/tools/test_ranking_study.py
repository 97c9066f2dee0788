"""tools/ranking_study.py --smoke: every stage of the study runs, its record holds what the
study reports, and a rerun resumes from the stages kept in its folder."""
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, fast_cli_env, load_tool

study = load_tool("ranking_study")


def _run_study(args):
  """The study as its users run it: a command on one CPU device, compiled with the fast-compile
  settings (a minute less than on the suite's 8 fake devices; its checks depend on neither)."""
  proc = subprocess.run([sys.executable, os.path.join("tools", "ranking_study.py"), *args],
                        cwd=REPO, env=fast_cli_env(), capture_output=True, text=True,
                        timeout=900)
  assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]


def test_smoke_study_records_the_ranking_and_resumes(tmp_path):
  out = str(tmp_path / "study")
  # Two supernets, the reference's sampler and FairNAS's, of one length: the second reuses the
  # first's compiled step (SAMPLER@STEPS: test_lever_sets_the_sampler_and_the_schedule).
  args = ["--out", out, "--smoke", "--levers", "uniform,fair",
          "--fitness-variants", "margin,bn0,held2,fair/margin"]
  _run_study(args)
  with open(os.path.join(out, "ranking.json")) as f:
    r = json.load(f)
  assert os.path.getsize(os.path.join(out, "ranking.png")) > 1000
  assert set(r["levers"]) == {"uniform", "fair", "uniform/margin", "uniform/bn0",
                              "uniform/held2", "fair/margin"}
  for lever in ("uniform", "fair"):
    assert os.listdir(os.path.join(out, f"supernet_{lever}", "checkpoints")) == ["2"]
    with open(os.path.join(out, f"supernet_{lever}", "config.json")) as f:
      assert json.load(f)["train"]["path_sampler"] == lever
  assert r["settings"]["fitness_variants"] == ["margin", "bn0", "held2", "fair/margin"]
  assert (r["paths"][0]["fitness"]["fair/margin"]
          != r["paths"][0]["fitness"]["uniform/margin"])  # another supernet scored
  for key in ("kendall_tau", "kendall_p", "spearman", "top5_overlap", "seed_tau",
              "searched_vs_random", "paths", "settings", "machine"):
    assert key in r, key
  assert r["kendall_tau"] == r["levers"]["uniform"]["kendall_tau"]
  assert r["levers"]["uniform"]["kendall_tau_90"] is None  # 3 paths: no interval
  kinds = [p["kind"] for p in r["paths"]]
  assert kinds[0] == "searched" and kinds.count("random") == 1 and len(kinds) == 3
  assert len({p["path"] for p in r["paths"]}) == 3  # no path twice
  for p in r["paths"]:
    assert all(math.isfinite(v) for v in p["fitness"].values()), p
    assert p["macs"] > 0 and all(0 <= v <= 100 for v in p["standalone"])
  assert [len(p["standalone"]) for p in r["paths"]] == [2, 1, 1]  # the first has a 2nd seed
  assert r["noise"] is None  # one path retrained twice: no noise estimate
  fit = [p["fitness"]["uniform"] for p in r["paths"]]
  assert r["levers"]["uniform"]["kendall_tau_by_seeds"] == {  # every path has one seed only
      "1": study.kendall(fit, [p["standalone"][0] for p in r["paths"]])[0]}
  svr = r["searched_vs_random"]
  assert svr["searched"] == np.mean(r["paths"][0]["standalone"])
  assert svr["beats_random"] == (svr["searched"] > svr["random_mean"] + svr["random_std"])
  # The supernets differ by their path sampler only; a rerun trains nothing again.
  kept = os.path.join(out, "retrain", r["paths"][0]["path"].replace(",", "") + "_seed1",
                      "metrics.json")
  before = os.path.getmtime(kept)
  _run_study(args)
  assert os.path.getmtime(kept) == before
  with open(os.path.join(out, "ranking.json")) as f:
    again = json.load(f)
  assert again["paths"] == r["paths"]


def test_lever_sets_the_sampler_and_the_schedule(tmp_path, monkeypatch):
  ran = {}
  monkeypatch.setattr(study, "run_mode", lambda c, workdir: ran.setdefault(workdir, c))
  c = study.base_config(study.SMOKE, {"root": str(tmp_path), "partition": ""}, smoke=True)
  for lever in ("uniform", "fair@30", "uniform@30:cosine"):
    study.supernet(str(tmp_path), c, lever, default_steps=2)
  uniform = ran[str(tmp_path / "supernet_uniform")]
  fair = ran[str(tmp_path / "supernet_fair_30")]
  cosine = ran[str(tmp_path / "supernet_uniform_30_cosine")]
  assert (uniform.train.path_sampler, uniform.train.total_steps) == ("uniform", 2)
  assert (fair.train.path_sampler, fair.train.total_steps) == ("fair", 30)
  assert fair.optim.milestones == (20, 26) and fair.train.save_every == 30
  assert uniform.optim.schedule == fair.optim.schedule == "multistep"  # the reference's
  assert (cosine.optim.schedule, cosine.train.total_steps) == ("cosine", 30)
  assert c.train.path_sampler == "uniform"  # the study's base config is not changed
  # An ensemble member: the lever's supernet with another seed, the same held-out ids.
  os.makedirs(study.supernet_dir(str(tmp_path), "fair@30"))
  with open(tmp_path / "supernet_fair_30" / "holdout.json", "w") as f:
    json.dump({"train_ids": ["a", "b"], "held_out_ids": ["c", "d"]}, f)
  member = study.supernet(str(tmp_path), c, "fair@30", default_steps=2, seed=2)
  assert member == str(tmp_path / "supernet_fair_30_seed2")
  m = ran[member]
  assert (m.seed, m.search.val_ids, m.train.path_sampler, m.train.total_steps) == (
      2, "c,d", "fair", 30)
  # A second cycle: the lever's supernet (of the same seed) trained again from its weights,
  # the schedule restarted and scaled to the extra steps, the same ids held out.
  os.makedirs(member)
  with open(os.path.join(member, "holdout.json"), "w") as f:
    json.dump({"train_ids": ["a", "b"], "held_out_ids": ["c", "e"]}, f)
  for seed, parent, held in ((0, "supernet_fair_30", "c,d"),
                             (2, "supernet_fair_30_seed2", "c,e")):
    again = study.supernet(str(tmp_path), c, "fair@30+15", default_steps=2, seed=seed)
    assert again == str(tmp_path / "supernet_fair_30_then_15") + (f"_seed{seed}" if seed else "")
    r = ran[again]
    assert (r.train.init_from, r.train.total_steps, r.optim.milestones, r.search.val_ids,
            r.seed, r.train.path_sampler) == (str(tmp_path / parent), 15, (10, 13), held, seed,
                                              "fair")
  assert study.parse_lever("uniform:cosine+5", 2) == ("uniform", 2, "cosine", 5)
  for bad in ("uniform+", "uniform+0", "uniform+x", "uniform+-3"):
    with pytest.raises(SystemExit, match="MORE"):
      study.parse_lever(bad, 2)


def test_variants_set_the_search_keys_they_name(tmp_path, monkeypatch):
  seen = {}

  class Scorer:  # what fitness() hands the search's CandidateScorer
    def __init__(self, c, source, held_out=0):
      seen[source] = (c.search.to_dict(), held_out)
      self.val_ids = self.val_set = self.protocol = self.step = self.bnneck = self.source = None

    def score(self, path):
      return float(sum(path))

  from gait_jax.search import ensemble, fitness as fitness_lib
  monkeypatch.setattr(fitness_lib, "CandidateScorer", Scorer)
  monkeypatch.setattr(ensemble, "CandidateScorer", Scorer)
  c = study.base_config(study.SMOKE, {"root": str(tmp_path), "partition": ""}, smoke=True)
  paths = [{"path": "0,1,2,3"}]
  for variant in ("ft20", "ft5@0.1", "map", "angle", "bn3", "held2"):
    study.fitness(str(tmp_path), c, f"uniform/{variant}", variant, paths,
                  study.parse_variant(variant))
  assert study.parse_variant("ens3") == {"ensemble": 3}
  assert study.parse_variant("seed2") == {"supernet_seed": 2}
  assert study.parse_variant("angle+seed1") == {"fitness_metric": "angle", "supernet_seed": 1}
  assert study.parse_variant("ens2+map+bn0") == {"ensemble": 2, "fitness_metric": "map",
                                                 "bn_batches": 0}
  study.fitness(str(tmp_path), c, "uniform/ens2", "first", paths, {"ensemble": "second"})
  assert json.load(open(tmp_path / "fitness_uniform_ens2.json")) == {"0,1,2,3": 6.0}
  assert seen["second"][0]["ensemble"] == "second" and seen["first"][0]["ensemble"] == "second"
  default = c.search.to_dict()
  changed = {source: ({k: v for k, v in keys.items() if default[k] != v}, held)
             for source, (keys, held) in seen.items()}
  assert changed == {"ft20": ({"finetune_steps": 20}, 0),
                     "ft5@0.1": ({"finetune_steps": 5, "finetune_lr": 0.1}, 0),
                     "map": ({"fitness_metric": "map"}, 0),
                     "angle": ({"fitness_metric": "angle"}, 0), "bn3": ({"bn_batches": 3}, 0),
                     "held2": ({}, 2), "first": ({"ensemble": "second"}, 0),
                     "second": ({"ensemble": "second"}, 0)}
  with open(tmp_path / "fitness_uniform_ft20.json") as f:
    assert json.load(f) == {"0,1,2,3": 6.0}


def test_fitness_variants_are_checked_before_anything_runs(tmp_path):
  out = str(tmp_path / "study")
  for flag, bad, message in (
      ("--fitness-variants", "top1", "expected one of rank1, map, margin, angle, bn<N>, held<N>"),
      ("--fitness-variants", "ft0", "ft<N>@<LR>, ens<K>"),
      ("--fitness-variants", "ft5@-1", "ft<N>@<LR>, ens<K>"),
      ("--fitness-variants", "ens1", "ens<K> (K >= 2)"),
      ("--fitness-variants", "seed0", "seed<J> (J >= 1)"),
      ("--fitness-variants", "held9", "more than --held-out ids"),
      ("--fitness-variants", "angle+map", "'map' sets fitness_metric a second time"),
      ("--levers", "uniform@0", "expected SAMPLER[@STEPS][:SCHEDULE]"),
      ("--levers", "greedy", "expected SAMPLER[@STEPS][:SCHEDULE]"),
      ("--levers", "uniform:linear", "SCHEDULE one of multistep, cosine"),
      ("--fitness-variants", "fair@9/map", "'fair@9' is not one of --levers uniform,fair"),
      ("--seeds", "1", "--seeds must be at least 2")):
    try:
      study.main(["--out", out, "--smoke", flag, bad])
    except SystemExit as e:
      assert message in str(e), e
    else:
      raise AssertionError(f"{bad} accepted")
  assert not os.path.exists(os.path.join(out, "data"))


def test_kendall_interval_brackets_tau_and_narrows_with_more_paths():
  rng = np.random.default_rng(1)
  widths = []
  for n in (12, 200):
    x = np.arange(n, dtype=float)
    y = x + rng.normal(scale=n / 3, size=n)
    lo, hi = study.kendall_interval(x, y)
    assert lo <= study.kendall(x, y)[0] <= hi
    widths.append(hi - lo)
  assert widths[1] < widths[0] / 2
