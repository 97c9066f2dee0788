#!/usr/bin/env python
"""How far can the supernet's ranking of paths be trusted? Its fitness against stand-alone
accuracy, measured.

  python tools/ranking_study.py --out DIR [--smoke] [--levers uniform,fair[,uniform+200]]
      [--fitness-variants map,margin,bn0,bn32,held20,held10[,uniform@1600/map]]

1. data: generated walkers (`--profile`: clean, or kth / footage with the degradations of
   real footage), three views (probes are scored across views), 10 walks per id
   (CASIA-B's NM, BG and CL conditions: the casia_b protocol scores both the fitness and the
   test); training ids, of which `--held-out` are held out for the fitness, and `--test-ids`
   test ids;
2. per lever (`train.path_sampler`: uniform = the reference, fair = FairNAS strict fairness;
   `SAMPLER@STEPS`: another supernet length; `:cosine`: another learning-rate schedule;
   `+MORE`: a second cycle, MORE more steps from that supernet's weights with the schedule
   restarted), one supernet on the training ids; the evolutionary search on the first
   lever's supernet;
3. `--paths` paths spread over the space: the search's best, `--random` uniformly random ones,
   and the rest picked across the MAC range; each scored by every supernet (BN recalibrated,
   the search's fitness on the held-out ids) and, on the first lever's supernet (or the one
   `LEVER/VARIANT` names), by each fitness variant (another search.fitness_metric, BN batches,
   fewer held-out ids, a few fine-tuning steps per path, the mean over K supernets of the
   lever that differ only in seed, trained for it, or one of those alone), and retrained
   stand-alone from scratch with the same budget, the first `--second-seed` of them with
   `--seeds` seeds in all (the noise floor);
4. DIR/ranking.json: per row (lever or "lever/variant") Kendall's tau (its p and a 90 %
   bootstrap interval over the paths; and against the mean of the first k seeds, for each k
   every path has), Spearman's rho, top-k overlap; the seed-to-seed tau of
   the stand-alone results and `noise` (gait_jax/search/ranking_noise.py: one run's training
   noise, the paths' true spread, and the tau a perfect fitness would show against the mean
   of k seeds per path: the ceiling any fitness can reach); every path with its MACs,
   fitness per row and stand-alone Rank-1 per seed; the searched path against the random
   ones. DIR/ranking.png: fitness against stand-alone Rank-1, one point per path, a panel per
   row.

Runs in-process, one stage after another; every stage is kept in DIR and skipped on a rerun,
so a killed study resumes. Defaults: the documented study (tiny widths 8/16/32 on the CPU);
`--smoke`: a seconds-long check of the whole pipeline (tests).
"""
import argparse
import importlib.util
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gait_jax.benchmarks import _machine  # noqa: E402
from gait_jax.common import huge_pages  # noqa: E402
from gait_jax.common import io  # noqa: E402
from gait_jax.search import ranking_noise  # noqa: E402
from gait_jax.synthetic import degrade  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RANDOM_SEED = 1000  # random paths: space.sample_path(choice_max_num, RANDOM_SEED, i)
SPREAD_SEED = 2000  # the pool the MAC-spread paths are picked from
TOP_K = 5
# Three near-lateral views, as the quickstart's walkers: frontal (000) against lateral (090)
# probes left the supernet at chance (5-9 % fitness on 40 ids after 400 steps).
VIEWS = ("072", "090", "108")
# Fitness variants scored on the first lever's supernet (the default is rank1, 8 BN batches, all
# held-out ids): the fitness metric, BN recalibration batches, fewer held-out ids.
VARIANTS = ("map", "margin", "bn0", "bn32", "held20", "held10")
SMOKE_VARIANTS = ("margin", "bn0", "held2")
FULL = dict(ids=240, held_out=40, test_ids=100, frames=30, supernet_steps=400,
            retrain_steps=200, paths=16, random=5, second_seed=6, seeds=2,
            channels=(8, 16, 32))
SMOKE = dict(ids=12, held_out=3, test_ids=3, frames=8, supernet_steps=2, retrain_steps=1,
             paths=3, random=1, second_seed=1, seeds=2, channels=(4, 8, 8))


def base_config(s: dict, data: dict, smoke: bool):
  """configs/quickstart.py on the study's data, at the study's widths."""
  spec = importlib.util.spec_from_file_location("quickstart", os.path.join(REPO, "configs",
                                                                           "quickstart.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  c = module.get_config().unlock()
  c.data.root, c.data.partition = data["root"], data["partition"]
  c.model.channels = tuple(s["channels"])
  c.model.out_channels = s["channels"][-1]
  c.search.val_ids = str(s["held_out"])
  c.train.log_every = max(1, min(c.train.log_every, s["supernet_steps"]))
  if smoke:
    c.data.batch_p, c.data.batch_k, c.data.frames = 4, 2, 4  # 8: any device count to 8
    c.search.population, c.search.select_num = 2, 1
    c.search.mutation_num = c.search.crossover_num = 1
    c.search.bn_batches = 1
  return c


def schedule(c, steps: int) -> None:
  c.train.total_steps = steps
  c.train.save_every = steps
  c.optim.milestones = (steps * 2 // 3, steps * 13 // 15) if steps >= 15 else (steps,)


def done(path: str):
  if os.path.exists(path):
    with open(path) as f:
      return json.load(f)
  return None


def run_mode(c, workdir: str) -> None:
  # The mode functions themselves: gait_jax.main would define its absl flags a second time
  # in a process (a test runner) that has them already.
  from gait_jax import config_check  # pylint: disable=g-import-not-at-top
  from gait_jax.modes import inference, search as search_mode, train  # pylint: disable=g-import-not-at-top
  config_check.check(c)
  print(f"== {c.mode} {workdir}" + (f" path {c.model.path}" if c.model.path else ""),
        flush=True)
  {"train": train.run, "search": search_mode.run, "test": inference.run_test}[c.mode](c, workdir)


def make_data(out: str, s: dict, profile: str) -> dict:
  from gait_jax.synthetic import walkers  # pylint: disable=g-import-not-at-top
  root = os.path.join(out, "data", "walkers")
  summary = done(os.path.join(out, "data", "summary.json"))
  if summary is None:
    summary = walkers.generate(root, ids=s["ids"], seqs_per_id=10, views=VIEWS,
                               frames=s["frames"], seed=11, workers=2,
                               train_ids=s["ids"] - s["test_ids"], profile=profile)
    io.write_json(os.path.join(out, "data", "summary.json"), summary)
  return summary


def parse_lever(text: str, default_steps: int) -> tuple:
  """`SAMPLER[@STEPS][:SCHEDULE][+MORE]` (train.path_sampler; supernet steps, default
  --supernet-steps, the learning-rate milestones scaling with them; optim.schedule, default
  the reference's multistep; MORE: a second cycle, that supernet trained MORE steps again from
  its weights with the schedule restarted) -> (sampler, steps, schedule, more: 0 = none)."""
  from gait_jax.models import space  # pylint: disable=g-import-not-at-top
  from gait_jax.training import optim  # pylint: disable=g-import-not-at-top
  first, plus, more = text.partition("+")
  rest, _, lr_schedule = first.partition(":")
  sampler, _, steps = rest.partition("@")
  if (sampler not in space.PATH_SAMPLERS or (steps and not (steps.isdigit() and int(steps)))
      or (lr_schedule and lr_schedule not in optim.SCHEDULES)
      or (plus and not (more.isdigit() and int(more)))):
    raise SystemExit(f"ranking_study: --levers: {text!r}: expected "
                     f"SAMPLER[@STEPS][:SCHEDULE][+MORE], SAMPLER one of "
                     f"{', '.join(space.PATH_SAMPLERS)}, SCHEDULE one of "
                     f"{', '.join(optim.SCHEDULES)}, MORE a number of steps")
  return (sampler, int(steps) if steps else default_steps, lr_schedule or "multistep",
          int(more) if more else 0)


def supernet_dir(out: str, lever: str) -> str:
  """The lever's supernet workdir: `fair@30:cosine` -> OUT/supernet_fair_30_cosine,
  `uniform+200` -> OUT/supernet_uniform_then_200."""
  name = lever.replace("@", "_").replace(":", "_").replace("+", "_then_")
  return os.path.join(out, f"supernet_{name}")


def supernet(out: str, c, lever: str, default_steps: int, seed: int = 0) -> str:
  """The lever's supernet; seed > 0: another one differing only in its seed, holding out the
  same ids as the first (an ensemble member). `LEVER+MORE`: LEVER's supernet (of that seed)
  trained MORE steps again from its weights (train.init_from), the same sampler, the schedule
  restarted and scaled to MORE, holding out the same ids."""
  workdir = supernet_dir(out, lever)
  c = c.copy_and_resolve_references()
  c.train.path_sampler, steps, c.optim.schedule, more = parse_lever(lever, default_steps)
  first = workdir if not more else supernet(out, c, lever.partition("+")[0], default_steps, seed)
  if seed or more:
    with open(os.path.join(first, "holdout.json")) as f:
      c.search.val_ids = ",".join(json.load(f)["held_out_ids"])
  if seed:
    c.seed, workdir = seed, f"{workdir}_seed{seed}"
  if more:
    c.train.init_from, steps = first, more
  schedule(c, steps)
  run_mode(c, workdir)  # a finished run is a no-op; a killed one resumes
  return workdir


def search(out: str, c, source: str) -> list:
  workdir = os.path.join(out, "search")
  result = done(os.path.join(workdir, "search", "result.json"))
  if result is None:
    c = c.copy_and_resolve_references()
    c.mode, c.train.init_from = "search", source
    run_mode(c, workdir)
    result = done(os.path.join(workdir, "search", "result.json"))
  return [int(v) for v in result["best_path"]]


def choose_paths(c, best, s: dict) -> list:
  """The search's best, `random` uniform draws, then paths spread over the MAC range."""
  from gait_jax.models import cost, space  # pylint: disable=g-import-not-at-top
  cmn = c.model.choice_max_num
  chosen = [tuple(best)]
  for i in range(10 * s["paths"]):
    if len(chosen) == 1 + s["random"]:
      break
    p = space.sample_path(cmn, RANDOM_SEED, i)
    if p not in chosen:
      chosen.append(p)
  kinds = ["searched"] + ["random"] * (len(chosen) - 1)
  pool = sorted({space.sample_path(cmn, SPREAD_SEED, i) for i in range(400)} - set(chosen),
                key=lambda p: cost.count(c.model, p, c.data.frames, bnneck=False)["macs"])
  need = s["paths"] - len(chosen)
  for q in np.linspace(0, len(pool) - 1, max(need, 0)).round().astype(int):
    chosen.append(pool[q])
    kinds.append("spread")
  return [{"path": ",".join(map(str, p)), "kind": k,
           "macs": int(cost.count(c.model, p, c.data.frames, bnneck=False)["macs"])}
          for p, k in zip(chosen, kinds)]


def parse_variant(text: str) -> dict:
  """A fitness variant: a `search.fitness_metric` (rank1, map, margin, angle), `bn<N>` BN
  recalibration batches (search.bn_batches), `held<N>` held-out ids scored, `ft<N>` /
  `ft<N>@<LR>` fine-tuning steps per candidate (search.finetune_steps, search.finetune_lr),
  `ens<K>` the mean over K supernets differing only in seed (search.ensemble), or `seed<J>` the
  lever's supernet trained with seed J alone (how much the ranking depends on the supernet's
  own seed); `A+B` both (e.g. angle+seed1: the angle on the seed-1 supernet)."""
  from gait_jax.search import fitness_metrics  # pylint: disable=g-import-not-at-top
  if "+" in text:
    merged = {}
    for part in text.split("+"):
      one = parse_variant(part)
      if set(one) & set(merged):
        raise SystemExit(f"ranking_study: --fitness-variants: {text!r}: {part!r} sets "
                         f"{', '.join(sorted(set(one) & set(merged)))} a second time")
      merged.update(one)
    return merged
  if text in fitness_metrics.FITNESS_METRICS:
    return {"fitness_metric": text}
  for prefix, key in (("bn", "bn_batches"), ("held", "held_out")):
    if text.startswith(prefix) and text[len(prefix):].isdigit():
      return {key: int(text[len(prefix):])}
  if text.startswith("ens") and text[3:].isdigit() and int(text[3:]) >= 2:
    return {"ensemble": int(text[3:])}
  if text.startswith("seed") and text[4:].isdigit() and int(text[4:]) >= 1:
    return {"supernet_seed": int(text[4:])}
  steps, _, lr = text[2:].partition("@")
  if text.startswith("ft") and steps.isdigit() and int(steps) and (not lr or _positive(lr)):
    return {"finetune_steps": int(steps), **({"finetune_lr": float(lr)} if lr else {})}
  raise SystemExit(f"ranking_study: --fitness-variants: {text!r}: expected one of "
                   f"{', '.join(fitness_metrics.FITNESS_METRICS)}, bn<N>, held<N>, ft<N>, "
                   "ft<N>@<LR>, ens<K> (K >= 2), seed<J> (J >= 1) or A+B")


def _positive(text: str) -> bool:
  try:
    return float(text) > 0
  except ValueError:
    return False


def variant_lever(text: str, levers: list) -> tuple:
  """`VARIANT` (on the first lever's supernet) or `LEVER/VARIANT` -> (lever, variant)."""
  lever, _, variant = text.rpartition("/")
  if lever and lever not in levers:
    raise SystemExit(f"ranking_study: --fitness-variants {text}: {lever!r} is not one of "
                     f"--levers {','.join(levers)}")
  return lever or levers[0], variant


def fitness(out: str, c, name: str, source: str, paths: list, variant: dict) -> dict:
  """{path: fitness} on the supernet `source` scored as `variant` says, recorded in
  DIR/fitness_<name>.json."""
  from gait_jax import config as config_lib  # pylint: disable=g-import-not-at-top
  from gait_jax.search import ensemble  # pylint: disable=g-import-not-at-top
  from gait_jax.search.fitness import CandidateScorer  # pylint: disable=g-import-not-at-top
  record = os.path.join(out, f"fitness_{name.replace('/', '_')}.json")
  scores = done(record) or {}
  todo = [p["path"] for p in paths if p["path"] not in scores]
  if todo:
    c = c.copy_and_resolve_references()
    for key in ("fitness_metric", "bn_batches", "finetune_steps", "finetune_lr", "ensemble"):
      if key in variant:
        c.search[key] = variant[key]
    scorer = (ensemble.make_scorer(c, source) if c.search.ensemble else
              CandidateScorer(c, source, held_out=variant.get("held_out", 0)))
    for path in todo:
      scores[path] = float(scorer.score(config_lib.parse_path(path)))
      io.write_json(record, scores)
      print(f"   fitness {name} {path}: {scores[path]:.2f}", flush=True)
  return scores


def standalone(out: str, c, path: str, seed: int, steps: int) -> float:
  """The test Rank-1 (the protocol's headline) of `path` retrained from scratch with `seed`."""
  from gait_jax.evaluation import protocols  # pylint: disable=g-import-not-at-top
  workdir = os.path.join(out, "retrain", f"{path.replace(',', '')}_seed{seed}")
  metrics = done(os.path.join(workdir, "metrics.json"))
  if metrics is None:
    c = c.copy_and_resolve_references()
    c.model.path, c.seed, c.search.val_ids = path, seed, ""
    schedule(c, steps)
    run_mode(c, workdir)
    c.mode = "test"
    run_mode(c, workdir)
    metrics = done(os.path.join(workdir, "metrics.json"))
  return float(metrics[protocols.get(c.evaluate.protocol).headline])


def kendall(x, y) -> tuple:
  from scipy import stats  # pylint: disable=g-import-not-at-top
  tau, p = stats.kendalltau(x, y)
  return float(tau), float(p)


def kendall_interval(x, y, draws: int = 1000) -> list:
  """A 90 % bootstrap interval of Kendall's tau over the paths (resampled with replacement,
  seeded), or None with fewer than 5 paths: how far two rows' taus can differ by the choice of
  paths alone."""
  x, y = np.asarray(x, float), np.asarray(y, float)
  if len(x) < 5:
    return None
  rng = np.random.default_rng(0)
  taus = []
  for _ in range(draws):
    i = rng.integers(0, len(x), len(x))
    if np.ptp(x[i]) > 0 and np.ptp(y[i]) > 0:
      taus.append(kendall(x[i], y[i])[0])
  return [float(np.percentile(taus, 5)), float(np.percentile(taus, 95))]


def spearman(x, y) -> float:
  from scipy import stats  # pylint: disable=g-import-not-at-top
  return float(stats.spearmanr(x, y)[0])


def summarise(paths: list, levers: list) -> dict:
  mean = np.array([np.mean(p["standalone"]) for p in paths])
  out = {"levers": {}}
  top = set(np.argsort(-mean)[:TOP_K].tolist())
  # τ against the mean of the first k seeds, for each k every path has: set beside the noise
  # model's ceiling for k, it shows how much of the gap to 1 the stand-alone noise explains.
  ks = [k for k in ranking_noise.SEEDS if all(len(p["standalone"]) >= k for p in paths)]
  for lever in levers:
    fit = np.array([p["fitness"][lever] for p in paths])
    tau, p_value = kendall(fit, mean)
    out["levers"][lever] = {
        "kendall_tau": tau, "kendall_p": p_value,
        "kendall_tau_90": kendall_interval(fit, mean), "spearman": spearman(fit, mean),
        f"top{TOP_K}_overlap": len(top & set(np.argsort(-fit)[:TOP_K].tolist())),
        "kendall_tau_by_seeds": {str(k): kendall(fit, [np.mean(p["standalone"][:k])
                                                       for p in paths])[0] for k in ks}}
  twice = [p for p in paths if len(p["standalone"]) > 1]
  out["seed_tau"] = (kendall([p["standalone"][0] for p in twice],
                             [p["standalone"][1] for p in twice])[0] if len(twice) > 2
                     else None)
  out["seed_spread"] = float(np.mean([abs(p["standalone"][0] - p["standalone"][1])
                                      for p in twice])) if twice else None
  out["noise"] = ranking_noise.noise_model([p["standalone"] for p in paths])
  searched = [np.mean(p["standalone"]) for p in paths if p["kind"] == "searched"][0]
  rand = [np.mean(p["standalone"]) for p in paths if p["kind"] == "random"]
  out["searched_vs_random"] = {
      "searched": float(searched), "random_mean": float(np.mean(rand)),
      "random_std": float(np.std(rand, ddof=1)) if len(rand) > 1 else 0.0}
  svr = out["searched_vs_random"]
  svr["beats_random"] = bool(svr["searched"] > svr["random_mean"] + svr["random_std"])
  return out


def plot(paths: list, levers: list, where: str) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  cols = min(len(levers), 4)
  rows = -(-len(levers) // cols)
  fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 4 * rows), squeeze=False)
  for ax in axes.flat[len(levers):]:
    ax.axis("off")
  for ax, lever in zip(axes.flat, levers):
    for kind, marker in (("searched", "*"), ("random", "o"), ("spread", "s")):
      mine = [p for p in paths if p["kind"] == kind]
      if mine:
        ax.errorbar([p["fitness"][lever] for p in mine],
                    [np.mean(p["standalone"]) for p in mine],
                    yerr=[np.ptp(p["standalone"]) / 2 for p in mine], fmt=marker, label=kind,
                    capsize=3, markersize=9 if kind == "searched" else 5)
    ax.set_xlabel(f"supernet fitness ({lever})")
    ax.set_ylabel("stand-alone test Rank-1 (mean over seeds)")
    ax.legend()
  fig.tight_layout()
  fig.savefig(where, dpi=100)
  plt.close(fig)


def parse_args(argv) -> tuple:
  """(args, settings, levers, fitness variants), every value checked before anything runs."""
  parser = argparse.ArgumentParser(description=__doc__, allow_abbrev=False,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--out", required=True, help="the study folder (rerun to resume)")
  parser.add_argument("--smoke", action="store_true", help="a tiny run of every stage")
  parser.add_argument("--profile", default="clean", choices=degrade.PROFILES,
                      help="the walkers (kth / footage: degraded as real footage)")
  parser.add_argument("--levers", default="uniform,fair",
                      help="one supernet each (the first: searched): train.path_sampler, "
                      "optionally @STEPS (e.g. uniform@1600: four times as long), "
                      ":SCHEDULE (optim.schedule, e.g. uniform:cosine) and +MORE (a second "
                      "cycle: MORE steps from its weights, schedule restarted; uniform+200)")
  parser.add_argument("--fitness-variants", default=None,
                      help=f"(default {','.join(VARIANTS)}; smoke {','.join(SMOKE_VARIANTS)}) "
                      "other ways to score the first lever's supernet (LEVER/VARIANT: that "
                      "lever's), one row each: search.fitness_metric (map, margin, angle), bn<N> "
                      "(search.bn_batches), held<N> (only N of the held-out ids), ft<N>, "
                      "ft<N>@<LR> (search.finetune_steps, search.finetune_lr), ens<K> (the "
                      "mean over K supernets of the lever, seeds 0..K-1: search.ensemble), "
                      "seed<J> (the lever's supernet with seed J alone), or A+B for both "
                      "(e.g. angle+seed1)")
  meaning = {"ids": "walkers in all", "held_out": "training ids held out for the fitness",
             "test_ids": "test ids", "frames": "mean frames per walk",
             "supernet_steps": "steps per supernet", "retrain_steps": "steps per retrain",
             "paths": "paths compared", "random": "of them uniformly random",
             "second_seed": "of them (the first ones) retrained with more seeds",
             "seeds": "seeds for each of those (the noise floor and the mean that is ranked)"}
  for key, value in FULL.items():
    if key != "channels":
      parser.add_argument(f"--{key.replace('_', '-')}", type=int, default=None,
                          help=f"{meaning[key]} (default {value}; smoke {SMOKE[key]})")
  args = parser.parse_args(argv)
  s = dict(SMOKE if args.smoke else FULL)
  s.update({k: v for k, v in vars(args).items() if k in s and v is not None})
  levers = [v for v in args.levers.split(",") if v]
  for lever in levers:
    parse_lever(lever, s["supernet_steps"])
  if not levers:
    raise SystemExit("ranking_study: --levers is empty")
  variants = [v for v in (args.fitness_variants if args.fitness_variants is not None else
                           ",".join(SMOKE_VARIANTS if args.smoke else VARIANTS)).split(",") if v]
  for text in variants:
    if parse_variant(variant_lever(text, levers)[1]).get("held_out", 0) > s["held_out"]:
      raise SystemExit(f"ranking_study: --fitness-variants {text}: more than --held-out ids")
  if s["held_out"] >= s["ids"] - s["test_ids"] or s["random"] + 1 > s["paths"]:
    raise SystemExit("ranking_study: need held-out < training ids and random + 1 <= paths")
  if s["seeds"] < 2:
    raise SystemExit("ranking_study: --seeds must be at least 2 (the noise floor needs two)")
  return args, s, levers, variants


def report(result: dict) -> None:
  for lever, r in result["levers"].items():
    ci = r["kendall_tau_90"]
    ci = f" [{ci[0]:+.2f}, {ci[1]:+.2f}]" if ci else ""
    print(f"{lever:20s} Kendall tau {r['kendall_tau']:+.3f}{ci} (p {r['kendall_p']:.3f}), "
          f"Spearman {r['spearman']:+.3f}, top-{TOP_K} overlap {r[f'top{TOP_K}_overlap']}"
          + "".join(f", tau vs {k} seed(s) {t:+.2f}" for k, t in r["kendall_tau_by_seeds"].items()
                    if len(r["kendall_tau_by_seeds"]) > 1))
  svr = result["searched_vs_random"]
  print(f"seed-to-seed tau {result['seed_tau']}, mean |seed difference| "
        f"{result['seed_spread']}; searched {svr['searched']:.2f} vs random "
        f"{svr['random_mean']:.2f} ± {svr['random_std']:.2f} (beats: {svr['beats_random']})")
  noise = result.get("noise")
  if noise:
    print(f"stand-alone noise: one run's sd {noise['single_run_sd']:.2f}, paths' true sd "
          f"{noise['between_path_sd']:.2f}; a perfect fitness would show tau " + ", ".join(
              f"{t:.2f} (k={k})" for k, t in noise["tau_ceiling"].items()) +
          " against the mean of k seeds per path")
  print(f"{len(result['paths'])} paths; {result['seconds_this_run']} s this run on "
        f"{result['machine']}")


def main(argv=None):
  args, s, levers, variants = parse_args(argv)
  os.makedirs(args.out, exist_ok=True)
  from absl import logging  # pylint: disable=g-import-not-at-top
  logging.set_verbosity(logging.INFO)  # the runs' progress lines, as the command line prints
  t0 = time.monotonic()
  data = make_data(args.out, s, args.profile)
  c = base_config(s, data, args.smoke)
  sources = {lever: supernet(args.out, c, lever, s["supernet_steps"]) for lever in levers}
  best = search(args.out, c, sources[levers[0]])
  paths = choose_paths(c, best, s)
  scores = {lever: fitness(args.out, c, lever, sources[lever], paths, {}) for lever in levers}
  for text in variants:
    lever, variant = variant_lever(text, levers)
    name, parsed = f"{lever}/{variant}", parse_variant(variant)
    source = sources[lever]
    if "ensemble" in parsed:  # its other members: the lever's supernet with seeds 1..K-1
      parsed["ensemble"] = ",".join(supernet(args.out, c, lever, s["supernet_steps"], seed)
                                    for seed in range(1, parsed["ensemble"]))
    if "supernet_seed" in parsed:
      source = supernet(args.out, c, lever, s["supernet_steps"], parsed.pop("supernet_seed"))
    scores[name] = fitness(args.out, c, name, source, paths, parsed)
  for i, p in enumerate(paths):
    p["fitness"] = {row: values[p["path"]] for row, values in scores.items()}
    seeds = range(s["seeds"] if i < s["second_seed"] else 1)
    p["standalone"] = [standalone(args.out, c, p["path"], seed, s["retrain_steps"])
                       for seed in seeds]
  rows = list(scores)
  result = {**summarise(paths, rows), "paths": paths,
            "settings": {**s, "profile": args.profile, "levers": levers,
                         "fitness_variants": variants},
            "machine": _machine.describe(), "seconds_this_run": round(time.monotonic() - t0)}
  result.update(result["levers"][levers[0]])  # the first lever's figures at the top level
  io.write_json(os.path.join(args.out, "ranking.json"), result)
  plot(paths, rows, os.path.join(args.out, "ranking.png"))
  report(result)
  return 0

if __name__ == "__main__":
  huge_pages.ensure()
  sys.exit(main())
