"""k-reciprocal re-ranking against a small, literal float64 implementation of the formula."""
import numpy as np
import pytest

from gait_jax.evaluation import rerank
from helpers import assert_close


def oracle(dist, q, k1, k2, lam):
  """Set-based, loop-by-loop transcription of the reference re-ranking (float64, Python sets)."""
  n = dist.shape[0]
  d = (dist / dist.max(axis=0)).T
  order = [sorted(range(n), key=lambda j: (d[i, j], j)) for i in range(n)]

  def recip(i, k):
    return {j for j in order[i][:k + 1] if i in order[j][:k + 1]}

  half = int(np.around(k1 / 2))
  v = np.zeros((n, n))
  for i in range(n):
    r = recip(i, k1)
    expanded = set(r)
    for c in r:
      rc = recip(c, half)
      if len(rc & r) > 2 / 3 * len(rc):
        expanded |= rc
    idx = sorted(expanded)
    w = np.exp(-d[i, idx])
    v[i, idx] = w / w.sum()
  if k2 != 1:
    v = np.stack([v[order[i][:k2]].mean(0) for i in range(n)])
  jac = np.zeros((q, n))
  for i in range(q):
    for j in range(n):
      s = np.minimum(v[i], v[j]).sum()
      jac[i, j] = 1 - s / (2 - s)
  final = (1 - lam) * jac + lam * d[:q]
  return final[:, q:]


def random_dist(n, seed):
  rng = np.random.default_rng(seed)
  pts = np.concatenate([rng.normal(size=(n // 2, 3)), rng.normal(size=(n - n // 2, 3)) + 2])
  return np.linalg.norm(pts[:, None] - pts[None], axis=2).astype(np.float32)


@pytest.mark.parametrize("k1,k2,lam", [(4, 3, 0.3), (6, 1, 0.5), (3, 2, 0.0)])
def test_matches_oracle_in_float64(k1, k2, lam):
  dist = random_dist(14, seed=k1)
  got = rerank.k_reciprocal_rerank(dist, 5, k1=k1, k2=k2, lambda_value=lam, dtype=np.float64)
  assert got.shape == (5, 9) and got.dtype == np.float32
  assert_close(got, oracle(dist.astype(np.float64), 5, k1, k2, lam), rtol=1e-5)


def test_float16_storage_stays_close():
  """The reference stores V and the Jaccard sums in float16: close to the exact value."""
  dist = random_dist(16, seed=7)
  got = rerank.k_reciprocal_rerank(dist, 6, k1=5, k2=3, lambda_value=0.3)
  # float16 has 11 significant bits: about 1e-3 of the distances' scale.
  assert_close(got, oracle(dist.astype(np.float64), 6, 5, 3, 0.3), rtol=1e-3)


def test_nearest_is_stable_on_ties():
  m = np.array([[0.0, 1.0, 1.0, 0.5, 1.0]], np.float32)
  np.testing.assert_array_equal(rerank.nearest(m, 4), [[0, 3, 1, 2]])


def test_bad_arguments():
  with pytest.raises(ValueError, match="square"):
    rerank.k_reciprocal_rerank(np.zeros((3, 4)), 1)
  with pytest.raises(ValueError, match="num_query"):
    rerank.k_reciprocal_rerank(random_dist(4, 0), 4)
