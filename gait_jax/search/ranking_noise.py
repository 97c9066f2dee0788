"""How well any fitness could rank paths against stand-alone results that are themselves noisy.

A path retrained from scratch lands a few points higher or lower with another seed. From the
paths retrained more than once this estimates that training noise (σ, one run's standard
deviation) and the spread of the paths' true stand-alone quality (between-path sd, what is left
of the spread of their means once the noise is taken out), then simulates, under normal noise,
the Kendall τ that a perfect fitness — the true quality itself — would show against the mean of
k seeds per path. That τ is the ceiling a supernet's fitness can reach on the study's benchmark;
`tools/ranking_study.py` records it in ranking.json (`noise`).

The j-th result of every path is seed j, so all paths share seed j's data order and
initialisation: a seed that is lucky or unlucky for every path alike (measured: one seed 1.8
points below the other three, on average over 16 paths) moves no path against another. That common
offset per seed is taken out before the noise is measured — it is not noise for a ranking.
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence

import numpy as np

SEEDS = (1, 2, 4, 8)


def noise_model(standalone: Sequence[Sequence[float]], seeds: Sequence[int] = SEEDS,
                draws: int = 2000) -> Optional[Dict]:
  """{"single_run_sd", "between_path_sd", "tau_ceiling": {k: τ}} from each path's stand-alone
  results (seed 0, seed 1, ...: any number); None with fewer than 3 paths retrained more than
  once. Seeded: the same results give the same figures."""
  from scipy import stats  # pylint: disable=g-import-not-at-top
  repeated = [np.asarray(s, np.float64) for s in standalone if len(s) > 1]
  if len(repeated) < 3:
    return None
  seeds_seen = max(len(r) for r in repeated)
  # Seed j's common offset: how far it sits, on average, from each path's own mean.
  offset = np.array([np.mean([r[j] - r.mean() for r in repeated if len(r) > j])
                     for j in range(seeds_seen)])
  adjusted = [r - offset[:len(r)] for r in repeated]
  # Pooled within-path variance of what is left; one degree of freedom per offset but one.
  dof = sum(len(r) - 1 for r in adjusted) - (seeds_seen - 1)
  noise_var = float(sum(np.sum((r - r.mean()) ** 2) for r in adjusted) / max(dof, 1))
  # A path's mean of k seeds varies by the true spread plus noise_var / k.
  means = np.array([r.mean() for r in adjusted])
  true_var = max(float(np.var(means, ddof=1)) -
                 noise_var * float(np.mean([1 / len(r) for r in adjusted])), 0.0)
  rng = np.random.default_rng(0)
  n = len(standalone)
  ceiling = {}
  for k in seeds:
    taus = []
    for _ in range(draws):
      true = rng.normal(0.0, np.sqrt(true_var), n)
      measured = true + rng.normal(0.0, np.sqrt(noise_var / k), n)
      taus.append(stats.kendalltau(true, measured)[0] if true_var > 0 else 0.0)
    ceiling[str(k)] = float(np.mean(taus))
  return {"single_run_sd": float(np.sqrt(noise_var)), "between_path_sd": float(np.sqrt(true_var)),
          "tau_ceiling": ceiling}
