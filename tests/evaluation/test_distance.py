"""Part-wise distances and chunked top-k ranking against hand-worked cases and NumPy brute force."""
import numpy as np
import pytest

from gait_jax.evaluation import distance
from helpers import assert_close


def brute_force(x, y, metric):
  """Independent oracle: explicit per-pair, per-part loops in float64."""
  x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
  out = np.zeros((len(x), len(y)))
  for i in range(len(x)):
    for j in range(len(y)):
      parts = []
      for k in range(x.shape[2]):
        a, b = x[i, :, k], y[j, :, k]
        if metric == "euc":
          parts.append(np.linalg.norm(a - b))
        else:
          na, nb = max(np.linalg.norm(a), 1e-12), max(np.linalg.norm(b), 1e-12)
          parts.append(np.dot(a / na, b / nb))
      out[i, j] = np.mean(parts) if metric == "euc" else 1 - np.mean(parts)
  return out


def test_hand_worked_euc_and_cos():
  # c=2, p=2. Part 0: x=(0,0), y=(3,4) → 5; part 1: x=(1,0), y=(1,0) → 0. Mean 2.5.
  x = np.array([[[0.0, 1.0], [0.0, 0.0]]], np.float32)
  y = np.array([[[3.0, 1.0], [4.0, 0.0]]], np.float32)
  np.testing.assert_allclose(distance.distance_matrix(x, y, "euc"), [[2.5]], rtol=1e-6)
  # cos: part 0 has a zero vector → cosine 0; part 1 cosine 1 → 1 − (0 + 1)/2.
  np.testing.assert_allclose(distance.distance_matrix(x, y, "cos"), [[0.5]], rtol=1e-6)


@pytest.mark.parametrize("metric", ["euc", "cos"])
@pytest.mark.parametrize("chunk,gallery_chunk", [(1024, 16384), (8, 16), (3, 5)])
def test_distance_matrix_matches_brute_force(metric, chunk, gallery_chunk):
  rng = np.random.default_rng(1)
  x = rng.normal(size=(21, 6, 3)).astype(np.float32)
  y = rng.normal(size=(19, 6, 3)).astype(np.float32)
  d = distance.distance_matrix(x, y, metric, chunk=chunk, gallery_chunk=gallery_chunk)
  assert d.shape == (21, 19) and d.dtype == np.float32
  assert_close(d, brute_force(x, y, metric), rtol=1e-5)


@pytest.mark.parametrize("metric", ["euc", "cos"])
@pytest.mark.parametrize("k,chunk,gallery_chunk", [(5, 1024, 16384), (7, 4, 8), (3, 5, 2), (50, 8, 4)])
def test_topk_matches_brute_force(metric, k, chunk, gallery_chunk):
  rng = np.random.default_rng(2)
  x = rng.normal(size=(13, 5, 4)).astype(np.float32)
  y = rng.normal(size=(23, 5, 4)).astype(np.float32)
  bf = brute_force(x, y, metric)
  d, idx = distance.topk(x, y, k, metric, chunk=chunk, gallery_chunk=gallery_chunk)
  k_eff = min(k, 23)
  assert idx.shape == (13, k_eff) and d.shape == (13, k_eff)
  np.testing.assert_array_equal(idx, np.argsort(bf, axis=1, kind="stable")[:, :k_eff])
  assert_close(d, np.sort(bf, axis=1)[:, :k_eff], rtol=1e-5)


def test_ties_rank_by_ascending_gallery_index_across_chunks():
  # Gallery items 1, 3, 4 and 6 are identical (equal distance to the probe); 0, 2, 5 are far.
  near = np.ones((4, 2), np.float32)
  far = np.full((4, 2), 9.0, np.float32)
  y = np.stack([far, near, far, near, near, far, near])
  x = np.zeros((2, 4, 2), np.float32)
  for gallery_chunk in (16384, 2, 3):
    _, idx = distance.topk(x, y, 5, chunk=1, gallery_chunk=gallery_chunk)
    np.testing.assert_array_equal(idx, [[1, 3, 4, 6, 0]] * 2)
  np.testing.assert_array_equal(distance.rank_rows(distance.distance_matrix(x, y), 5), [[1, 3, 4, 6, 0]] * 2)


def test_nan_embeddings_rank_last():
  rng = np.random.default_rng(3)
  y = rng.normal(size=(6, 3, 2)).astype(np.float32)
  y[1] = np.nan
  x = rng.normal(size=(2, 3, 2)).astype(np.float32)
  _, idx = distance.topk(x, y, 6, gallery_chunk=4)
  assert (idx[:, -1] == 1).all()
  assert sorted(idx[0].tolist()) == list(range(6))
  assert (distance.rank_rows(distance.distance_matrix(x, y))[:, -1] == 1).all()


def test_bad_input_errors_are_clear():
  with pytest.raises(ValueError, match="evaluate.metric"):
    distance.distance_matrix(np.zeros((1, 2, 1)), np.zeros((1, 2, 1)), "l1")
  with pytest.raises(ValueError, match=r"\[N, c, p\]"):
    distance.topk(np.zeros((2, 3)), np.zeros((2, 3)), 1)
  with pytest.raises(ValueError, match="differ"):
    distance.topk(np.zeros((2, 3, 1)), np.zeros((2, 4, 1)), 1)


def test_compilations_bounded_by_buckets():
  """Many subset sizes (as a view × view protocol produces) reuse a few compiled programs."""
  rng = np.random.default_rng(4)
  y = rng.normal(size=(40, 3, 2)).astype(np.float32)
  x = rng.normal(size=(40, 3, 2)).astype(np.float32)
  before = distance._topk_chunk._cache_size()
  for n in range(9, 17):  # probe and gallery sizes 9..16 all fall in the 16 bucket
    distance.topk(x[:n], y[:n], 5)
  assert distance._topk_chunk._cache_size() - before <= 1


def test_rank_benchmark_runs_small(capsys):
  import argparse
  from gait_jax.benchmarks import rank
  parser = argparse.ArgumentParser()
  rank.add_args(parser)
  args = parser.parse_args(["--probes", "20", "--gallery", "30", "--channels", "8", "--parts", "3"])
  rank.run(args)
  out = capsys.readouterr().out
  assert "20 probes × 30 gallery" in out and "peak RSS" in out and "(20, 20)" in out
