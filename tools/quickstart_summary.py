#!/usr/bin/env python
"""Prints the quickstart's outcome: best path, its cost, test Rank-1 vs the GEI baseline, and
where the logs are. `python tools/quickstart_summary.py --run runs/quickstart`."""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _load(path):
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def headline(metrics):
  """The protocol's headline figure: CASIA-B-style mean of NM/BG/CL, else Rank-1."""
  for key in ("mean/rank1_exclude", "rank1", "mean/rank1"):
    if metrics and key in metrics:
      return key, metrics[key]
  return None, None


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--run", default="runs/quickstart")
  args = parser.parse_args(argv)
  run = args.run
  result = _load(os.path.join(run, "search", "search", "result.json"))
  test = _load(os.path.join(run, "retrain", "metrics.json"))
  gei = _load(os.path.join(run, "gei_baseline.json"))
  print("\n=== quickstart summary ===")
  if result:
    from gait_jax import config as config_lib
    from gait_jax.models import cost
    here = os.path.dirname(os.path.abspath(__file__))
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        "quickstart_cfg", os.path.join(here, "..", "configs", "quickstart.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config()
    best = tuple(result["best_path"])
    counts = cost.count(config.model, best, config.flops.frames,
                         bnneck=config_lib.use_bnneck(config))
    print(f"best path        : {','.join(map(str, best))} (search fitness "
          f"{result['best_fitness']:.2f} on held-out training ids, "
          f"{len(result['history'])} paths evaluated)")
    print(f"its cost         : {counts['macs'] / 1e9:.3f} GMACs at {config.flops.frames} frames, "
          f"{counts['params_path'] / 1e6:.3f} M parameters")
  key, value = headline(test)
  if value is not None:
    print(f"test {key:12s}: {value:.2f} % (retrained best path, walkers test ids)")
  gkey, gvalue = headline(gei)
  if gvalue is not None:
    print(f"GEI baseline     : {gvalue:.2f} % ({gkey}, same protocol)")
  print(f"TensorBoard      : tensorboard --logdir {run}  (supernet/tb, search/tb, retrain/tb)")
  print(f"checkpoints      : {run}/supernet/checkpoints, {run}/retrain/checkpoints")


if __name__ == "__main__":
  main()
