"""`--config.mode=search` end to end on a tiny supernet: compile counts, constraints, state,
resume, outputs, and BN recalibration."""
import functools
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import REPO, load_config
from gait_jax.common import checkpoint
from gait_jax.models import cost
from gait_jax.common import parallel as mesh_lib
from gait_jax.modes import search
from gait_jax.search import fitness
from gait_jax.synthetic import walkers
from gait_jax.training import step as step_lib
from gait_jax.models import build_model
from helpers import fast_compile
from helpers.variables import random_variables

SPACE = (1, 6, 6, 6)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
  base = tmp_path_factory.mktemp("search")
  out = os.path.join(base, "walkers")
  walkers.generate(out, ids=8, seqs_per_id=10, views=("000", "090"), frames=8, seed=3,
                   train_ids=6)
  config = load_config("test_tiny")
  with config.unlocked():
    config.mode = "search"
    config.data.root, config.data.partition = out, out + ".json"
    config.search.val_ids = "2"
    config.search.epochs = 2
    config.search.population = 5
    config.search.select_num = 2
    config.search.mutation_num = 2
    config.search.crossover_num = 2
    config.search.bn_batches = 1
  model = build_model(config.model, bnneck=True)
  variables = random_variables(model, jnp.zeros(4, jnp.int32), seed=0)
  supernet = os.path.join(base, "supernet")
  ckpt = checkpoint.Checkpointer(checkpoint.checkpoint_dir(supernet))
  ckpt.save(5, {"params": variables["params"], "batch_stats": variables["batch_stats"]}, {})
  ckpt.wait()
  ckpt.close()
  with config.unlocked():
    config.train.init_from = supernet
  return config, base


def test_search_end_to_end_compiles_once_and_resumes(setup, monkeypatch):
  config, base = setup
  workdir = os.path.join(base, "run1")
  jitted = []
  monkeypatch.setattr(fitness, "_RECALIBRATE_FNS", {})  # count this search's programs only
  real_make = fitness.make_recalibrate
  monkeypatch.setattr(fitness, "make_recalibrate",
                      lambda *a: jitted.append(real_make(*a)) or jitted[-1])
  calls = []
  real_embed = fitness.embed_dataset
  monkeypatch.setattr(fitness, "embed_dataset",
                      lambda *a, **k: calls.append(tuple(np.asarray(a[3]))) or real_embed(*a, **k))
  search.run(config, workdir)

  out = os.path.join(workdir, "search")
  result = json.load(open(os.path.join(out, "result.json")))
  assert os.path.getsize(os.path.join(out, "pareto.png")) > 1000
  history = [tuple(h["path"]) for h in result["history"]]
  assert len(history) == len(set(history)) == len(calls) == 5 * 3  # population × (epochs + 1)
  assert sorted(calls) == sorted(history)
  assert all(len(p) == 4 and p[0] == 0 for p in history)
  best = max(result["history"], key=lambda h: h["fitness"])
  assert result["best_fitness"] == best["fitness"]
  assert result["top"][0]["fitness"] == best["fitness"]
  assert result["best_path"] in [t["path"] for t in result["top"]]
  expected = cost.count(config.model, tuple(result["best_path"]), config.flops.frames, bnneck=True)
  assert result["top"][0]["macs"] == cost.count(
      config.model, tuple(result["top"][0]["path"]), config.flops.frames, bnneck=True)["macs"]
  assert expected["params_path"] > 0
  assert f"--config.model.path={','.join(map(str, result['best_path']))}" in result[
      "retrain_command"]
  # One compiled recalibration and one embedding program per row length, for 15 paths.
  assert len(jitted) == 1 and jitted[0]._cache_size() == 1
  from gait_jax.evaluation import embed
  fn = embed.make_embed_fn(build_model(config.model, bnneck=True), mesh_lib.make_mesh())
  assert fn._cache_size() <= 2  # lengths 6..10: at most two row lengths

  # Rerunning resumes: nothing is evaluated again, the result is the same.
  calls.clear()
  search.run(config, workdir)
  assert calls == []
  again = json.load(open(os.path.join(out, "result.json")))
  assert again["best_path"] == result["best_path"] and again["history"] == result["history"]


def test_scorers_of_one_architecture_share_the_recalibration_program(setup):
  config, _ = setup
  mesh = mesh_lib.make_mesh()
  first = fitness.make_recalibrate(build_model(config.model, bnneck=True), mesh)
  assert fitness.make_recalibrate(build_model(config.model, bnneck=True), mesh) is first
  assert fitness.make_recalibrate(build_model(config.model, bnneck=False), mesh) is not first


def test_constraints_reject_without_evaluating(setup, monkeypatch):
  config, base = setup
  costs = {p: cost.count(config.model, p, config.flops.frames, bnneck=True)["macs"]
           for p in [(0, a, b, c) for a in range(6) for b in range(6) for c in range(6)]}
  limit = int(np.median(list(costs.values())))
  cfg = config.copy_and_resolve_references()
  with cfg.unlocked():
    cfg.search.max_macs = limit
    cfg.search.epochs = 1
    cfg.search.bn_batches = 0
  evaluated = []
  real_embed = fitness.embed_dataset
  monkeypatch.setattr(fitness, "embed_dataset",
                      lambda *a, **k: evaluated.append(tuple(np.asarray(a[3]))) or real_embed(*a, **k))
  search.run(cfg, os.path.join(base, "constrained"))
  assert evaluated and all(costs[p] <= limit for p in evaluated)
  result = json.load(open(os.path.join(base, "constrained", "search", "result.json")))
  assert result["rejected"] > 0
  assert all(h["macs"] <= limit for h in result["history"])


def test_state_of_another_supernet_is_refused(setup, tmp_path):
  config, base = setup
  state = tmp_path / "search" / "state.json"
  state.parent.mkdir(parents=True)
  state.write_text(json.dumps({"fingerprint": {"supernet": "/elsewhere"}, "results": []}))
  with pytest.raises(SystemExit, match="recorded with other settings.*supernet: saved "
                     "'/elsewhere'"):
    search.run(config, str(tmp_path))


def _small(config, **overrides):
  cfg = config.copy_and_resolve_references()
  with cfg.unlocked():
    cfg.search.epochs = 0
    cfg.search.population = 2
    cfg.search.bn_batches = 0
    for key, value in overrides.items():
      section, leaf = key.split(".")
      cfg[section][leaf] = value
  return cfg


def test_changed_fitness_settings_refuse_the_recorded_state(setup, tmp_path):
  config, _ = setup
  workdir = str(tmp_path / "w")
  search.run(_small(config), workdir)
  with pytest.raises(SystemExit, match="evaluate.metric: saved 'euc', now 'cos'"):
    search.run(_small(config, **{"evaluate.metric": "cos"}), workdir)
  with pytest.raises(SystemExit, match="evaluate.rerank: saved False, now True"):
    search.run(_small(config, **{"evaluate.rerank": True}), workdir)
  with pytest.raises(SystemExit, match="search.fitness_metric: saved 'rank1', now 'margin'"):
    search.run(_small(config, **{"search.fitness_metric": "margin"}), workdir)
  other_root = str(tmp_path / "same_data_elsewhere")
  os.symlink(config.data.root, other_root)
  with pytest.raises(SystemExit, match="data.root: saved"):
    search.run(_small(config, **{"data.root": other_root}), workdir)
  with pytest.raises(SystemExit, match="held_out_ids_sha256"):
    search.run(_small(config, **{"search.val_ids": "3"}), workdir)


def test_damaged_state_falls_back_to_its_backup(setup, tmp_path, monkeypatch):
  config, _ = setup
  workdir = str(tmp_path / "w")
  cfg = _small(config, **{"search.population": 3})
  search.run(cfg, workdir)
  state = os.path.join(workdir, "search", "state.json")
  assert os.path.exists(state + ".bak")  # the state before the last candidate
  with open(state, "w") as f:
    f.write('{"fingerprint": {"supernet": ')  # a write cut short
  calls = []
  real_embed = fitness.embed_dataset
  monkeypatch.setattr(fitness, "embed_dataset",
                      lambda *a, **k: calls.append(1) or real_embed(*a, **k))
  search.run(cfg, workdir)
  assert len(calls) == 1  # only the candidate missing from the backup is evaluated again
  with open(state, "w") as f:
    f.write("not json")
  with open(state + ".bak", "w") as f:
    json.dump({"results": []}, f)  # valid JSON, but no fingerprint
  with pytest.raises(SystemExit, match=f"{state} is unreadable .* move both away"):
    search.run(cfg, workdir)


def _supernet_workdir(config, base, train_ids, held):
  """A copy of the fixture's supernet whose workdir records the split it trained with."""
  import shutil
  src = config.train.init_from
  dest = os.path.join(base, "recorded")
  shutil.copytree(src, dest)
  with open(os.path.join(dest, "holdout.json"), "w") as f:
    json.dump({"train_ids": train_ids, "held_out_ids": held}, f)
  return dest


def test_search_scores_on_the_ids_the_supernet_held_out(setup, tmp_path):
  config, _ = setup
  ids = json.load(open(config.data.partition))["TRAIN_SET"]
  trained, held = ids[:4], ids[4:]
  source = _supernet_workdir(config, str(tmp_path), trained, held)
  # Another seed would draw another split; the recorded one decides.
  for seed in (0, 1, 2):
    cfg = _small(config, **{"train.init_from": source})
    with cfg.unlocked():
      cfg.seed = seed
    scorer = fitness.CandidateScorer(cfg, source)
    assert scorer.val_ids == held and scorer.train_ids == trained
  cfg = _small(config, **{"train.init_from": source, "search.val_ids": f"{held[0]},{trained[0]}"})
  with pytest.raises(ValueError, match=f"trained on \\({trained[0]}\\)"):
    fitness.CandidateScorer(cfg, source)
  cfg = _small(config, **{"train.init_from": source, "search.val_ids": ",".join(held[:2])})
  assert fitness.CandidateScorer(cfg, source).val_ids == held[:2]
  # One held-out id: every probe's nearest id is the right one, a 100 % fitness: refused.
  cfg = _small(config, **{"train.init_from": source, "search.val_ids": held[0] + ","})
  with pytest.raises(ValueError, match="names 1 id"):
    fitness.CandidateScorer(cfg, source)


def test_search_space_wider_than_the_supernet_trained_is_refused(setup, tmp_path):
  config, _ = setup
  source = _supernet_workdir(config, str(tmp_path), [], [])
  with open(os.path.join(source, "config.json"), "w") as f:
    json.dump({"model": {"name": "sposgait_small", "path": "",
                         "choice_max_num": [1, 6, 6, 6]}}, f)
  cfg = _small(config, **{"train.init_from": source, "model.choice_max_num": (6, 6, 6, 6)})
  with pytest.raises(SystemExit, match="wider than the space the supernet"):
    search.run(cfg, str(tmp_path / "w"))


def test_scorer_refuses_non_finite_embeddings(setup):
  config, _ = setup
  scorer = fitness.CandidateScorer(_small(config), config.train.init_from)
  bad = jax.tree.map(np.array, scorer.variables)
  bad["params"]["Head0"]["fc_bin"] *= 1e38  # finite weights, overflowing embeddings
  scorer.variables = bad
  with pytest.raises(ValueError, match=r"path 0,2,0,0 .*embeddings are not finite"):
    scorer.score((0, 2, 0, 0))


def test_scorer_fitness_metrics_score_the_same_embeddings(setup, monkeypatch):
  config, _ = setup
  seen = []
  real = fitness.fitness_metrics.fitness
  monkeypatch.setattr(fitness.fitness_metrics, "fitness",
                      lambda p, emb, seqs, metric: seen.append(emb) or real(p, emb, seqs, metric))
  values = {m: fitness.CandidateScorer(_small(config, **{"search.fitness_metric": m}),
                                       config.train.init_from).score((0, 2, 0, 0))
            for m in ("rank1", "map", "margin")}
  np.testing.assert_array_equal(seen[0], seen[2])
  assert 0 <= values["rank1"] <= 100 and 0 <= values["map"] <= 100
  assert -100 <= values["margin"] <= 100


def test_finetune_moves_only_the_candidates_ops(setup, monkeypatch):
  """search.finetune_steps: the path's own ops trained from the supernet's weights (the run's
  SGD at a constant search.finetune_lr); the other candidates and the supernet the scorer
  holds stay as they were, and every call fine-tunes on the same batches."""
  from gait_jax.models import space
  from gait_jax.search import path_finetune
  from gait_jax.training import setup as setup_lib
  train_step = setup_lib.train_step
  monkeypatch.setattr(setup_lib, "train_step",
                      lambda *a: fast_compile.compiled_once(train_step(*a)))
  config, _ = setup
  path = (0, 3, 1, 4)
  cfg = _small(config, **{"search.finetune_steps": 2, "search.finetune_lr": 0.02})
  tuned_cfg = path_finetune.finetune_config(cfg)
  assert (tuned_cfg.optim.lr, tuned_cfg.optim.milestones) == (0.02, ())
  assert tuned_cfg.optim.momentum == cfg.optim.momentum and cfg.optim.lr != 0.02
  scorer = fitness.CandidateScorer(cfg, config.train.init_from)
  before = jax.tree.map(np.array, scorer.variables)
  tuned = jax.tree.map(np.array, scorer.variables_for(path, recalibrate=False))
  jax.tree.map(np.testing.assert_array_equal, jax.tree.map(np.array, scorer.variables), before)
  used = jax.tree.leaves(space.path_mask(before["params"], path, scorer.model.model_name))
  moved = [bool((a != b).any()) for a, b in zip(jax.tree.leaves(tuned["params"]),
                                               jax.tree.leaves(before["params"]))]
  assert not any(m and not bool(u) for m, u in zip(moved, used))  # other candidates untouched
  assert sum(moved) > 0.9 * sum(map(bool, used))
  assert scorer.score(path) == scorer.score(path)
  fp = scorer.fingerprint()
  assert (fp["finetune_steps"], fp["finetune_lr"]) == (2, 0.02)
  assert "finetune_steps" not in fitness.CandidateScorer(
      _small(config), config.train.init_from).fingerprint()  # older records stay valid


def _other_supernet(config, where: str) -> str:
  """A supernet like the fixture's with other (seed 1) weights."""
  model = build_model(config.model, bnneck=True)
  variables = random_variables(model, jnp.zeros(4, jnp.int32), seed=1)
  ckpt = checkpoint.Checkpointer(checkpoint.checkpoint_dir(where))
  ckpt.save(5, {"params": variables["params"], "batch_stats": variables["batch_stats"]}, {})
  ckpt.wait()
  ckpt.close()
  return where


def test_ensemble_fitness_is_the_mean_over_its_supernets(setup, tmp_path, capsys):
  from gait_jax.search import ensemble
  config, _ = setup
  other = _other_supernet(config, str(tmp_path / "other"))
  alone = [fitness.CandidateScorer(_small(config), s) for s in (config.train.init_from, other)]
  cfg = _small(config, **{"search.ensemble": f" {other} ,"})
  assert ensemble.sources(cfg, "first") == ["first", other]
  scorer = ensemble.make_scorer(cfg, config.train.init_from)
  for path in ((0, 2, 0, 0), (0, 5, 3, 1)):
    each = [s.score(path) for s in alone]
    assert scorer.score(path) == pytest.approx(np.mean(each))
  fp = scorer.fingerprint()
  assert [f["supernet"] for f in fp["ensemble"]] == [os.path.abspath(other)]
  assert "ensemble" not in alone[0].fingerprint()  # older records stay valid
  search.run(cfg, str(tmp_path / "w"))
  assert "averaged with 1 more supernets (search.ensemble)" in capsys.readouterr().out
  with pytest.raises(SystemExit, match="recorded with other settings"):
    search.run(_small(config), str(tmp_path / "w"))  # one supernet's fitness is another's


def test_supernet_config_required(setup, tmp_path):
  config, _ = setup
  cfg = config.copy_and_resolve_references()
  with cfg.unlocked():
    cfg.model.path = "0,1,2,3"
  with pytest.raises(SystemExit, match="model.path must be empty"):
    search.run(cfg, str(tmp_path))


def test_recalibrated_eval_matches_train_mode_statistics(setup):
  """With statistics recalibrated on batch X, eval mode on X normalises with X's own
  statistics: it reproduces train mode up to the unbiased/biased variance factor."""
  config, _ = setup
  model = build_model(config.model, bnneck=True)
  variables = random_variables(model, jnp.zeros(4, jnp.int32), seed=1)
  mesh = mesh_lib.make_mesh(jax.devices()[:1])
  recal = fitness.make_recalibrate(model, mesh)
  rng = np.random.default_rng(0)
  x = (rng.random((1, 16, 12, 64, 44)) > 0.5).astype(np.float32)
  lengths = np.full((1, 16), 12, np.int32)
  path = jnp.asarray((0, 3, 1, 4), jnp.int32)
  stats = recal(variables, path, jnp.asarray(x), jnp.asarray(lengths))
  # Statistics of candidates the path does not use are untouched, used ones changed.
  old = variables["batch_stats"]
  assert np.array_equal(stats["conv3d_20"]["cand0"]["bn1"]["mean"],
                        old["conv3d_20"]["cand0"]["bn1"]["mean"])
  assert not np.allclose(stats["conv3d_20"]["cand3"]["bn1"]["mean"],
                         old["conv3d_20"]["cand3"]["bn1"]["mean"])
  # Jitted (op by op, the three applies take ~4x longer than compiling them), unoptimised.
  train_out, _ = step_lib.run_fast_compiled(
      functools.partial(model.apply, train=True, mutable=("batch_stats",)),
      variables, x[0], path, jnp.asarray(lengths[0]))
  evaluate = fast_compile.compiled_once(jax.jit(model.apply))
  eval_out = evaluate({**variables, "batch_stats": stats}, x[0], path, jnp.asarray(lengths[0]))
  a, b = np.asarray(train_out["embeddings"]), np.asarray(eval_out["embeddings"])
  assert np.allclose(a, b, rtol=0.05, atol=0.05 * np.abs(a).mean())
  # Without recalibration the random running statistics give something else entirely.
  stale = np.asarray(evaluate(variables, x[0], path, jnp.asarray(lengths[0]))["embeddings"])
  assert np.abs(stale - a).mean() > 5 * np.abs(b - a).mean()


def test_kendall_tau_hand_worked():
  from conftest import load_tool
  module = load_tool("bn_recalibration_study")
  assert module.kendall_tau([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
  assert module.kendall_tau([1, 2, 3], [30, 20, 10]) == pytest.approx(-1.0)
  # pairs (1,2)+ (1,3)+ (2,3)-  ->  (2 - 1) / 3
  assert module.kendall_tau([1, 2, 3], [1, 3, 2]) == pytest.approx(1 / 3)


def test_retrain_command_from_main_keeps_its_flags_and_from_elsewhere_names_the_config():
  from gait_jax.search import report
  main_py = os.path.join(REPO, "gait_jax", "main.py")
  cmd = report.retrain_command(
      [main_py, "--config", "configs/quickstart.py", "--workdir", "runs/q/supernet",
       "--config.mode=search", "--config.search.population_num=10"], "runs/q/supernet",
      (0, 1, 2, 3))
  assert cmd == ("python -m gait_jax.main --config configs/quickstart.py "
                 "--config.search.population_num=10 --workdir "
                 f"{os.path.abspath('runs/q/retrain')} --config.mode=train "
                 "--config.model.path=0,1,2,3")
  # A study (or pytest) that ran the search in its own process: none of its flags leak in.
  cmd = report.retrain_command(["tools/ranking_study.py", "--smoke", "--out", "d"], "d/search",
                               (0, 5, 0, 1))
  assert cmd.startswith("python -m gait_jax.main --config CONFIG --workdir ")
  assert "--smoke" not in cmd and cmd.endswith("--config.model.path=0,5,0,1")
