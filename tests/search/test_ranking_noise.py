"""The ceiling a fitness can reach against noisy stand-alone results (ranking_noise)."""
import numpy as np

from gait_jax.search import ranking_noise


def _results(true_sd, noise_sd, paths=16, seed=0):
  rng = np.random.default_rng(seed)
  true = 50 + rng.normal(0, true_sd, paths)
  return [list(t + rng.normal(0, noise_sd, 2)) for t in true]


def test_noise_and_spread_are_recovered_and_the_ceiling_rises_with_seeds():
  m = ranking_noise.noise_model(_results(true_sd=3.0, noise_sd=1.0, paths=200), draws=300)
  assert abs(m["single_run_sd"] - 1.0) < 0.15 and abs(m["between_path_sd"] - 3.0) < 0.5
  taus = [m["tau_ceiling"][str(k)] for k in ranking_noise.SEEDS]
  assert taus == sorted(taus) and taus[0] > 0.6 and taus[-1] < 1


def test_pure_noise_leaves_no_ranking_to_find():
  """Paths of equal quality: whatever differs between them is noise, so no fitness can rank."""
  m = ranking_noise.noise_model([[50.0, 53.0], [52.0, 49.0], [51.0, 50.0], [48.0, 52.0]],
                                draws=200)
  assert m["between_path_sd"] == 0.0
  assert all(t == 0.0 for t in m["tau_ceiling"].values())


def test_needs_three_paths_retrained_twice_and_is_deterministic():
  assert ranking_noise.noise_model([[50.0, 51.0], [49.0, 52.0], [47.0]]) is None
  results = _results(true_sd=2.0, noise_sd=3.0)
  assert ranking_noise.noise_model(results, draws=100) == ranking_noise.noise_model(results,
                                                                                     draws=100)


def test_any_number_of_seeds_pools_the_noise():
  """Four seeds a path: the noise is pooled over all of them, and the true spread is what is
  left of the means' spread once a quarter of the noise variance is taken out."""
  rng = np.random.default_rng(1)
  true = 50 + rng.normal(0, 2.0, 300)
  results = [list(t + rng.normal(0, 1.5, 4)) for t in true]
  m = ranking_noise.noise_model(results, draws=100)
  assert abs(m["single_run_sd"] - 1.5) < 0.1 and abs(m["between_path_sd"] - 2.0) < 0.25
  two = ranking_noise.noise_model([r[:2] for r in results], draws=100)
  assert abs(two["single_run_sd"] - 1.5) < 0.2 and two != m


def test_a_seed_lucky_for_every_path_alike_is_not_noise():
  """Seed j is the same seed for every path: an offset it gives all paths alike moves no path
  against another, so it leaves the noise and the true spread as they were."""
  rng = np.random.default_rng(2)
  true = 50 + rng.normal(0, 2.0, 300)
  results = np.array([t + rng.normal(0, 1.0, 4) for t in true])
  shifted = results + np.array([0.0, 0.0, 0.0, -3.0])  # seed 3: 3 points lower for all
  plain = ranking_noise.noise_model(results.tolist(), draws=50)
  m = ranking_noise.noise_model(shifted.tolist(), draws=50)
  assert abs(m["single_run_sd"] - plain["single_run_sd"]) < 1e-9
  assert abs(m["between_path_sd"] - plain["between_path_sd"]) < 1e-9
  assert abs(m["single_run_sd"] - 1.0) < 0.1
