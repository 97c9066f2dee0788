"""Assertions shared by the tests.

Two computations of the same value in different orders (jit vs eager, remat vs not, traced vs
static, chunked vs whole, 8 devices vs 1, another CPU's kernels) differ by rounding that grows
with the magnitude of what is summed, not by a fixed amount. So tolerances here are relative to
the scale of the compared array: an element may differ by `rtol * max|expected|` (and by `rtol`
relative to itself). Only replays of the very same computation (resume) are compared bit-exactly.
"""
import jax
import numpy as np


def assert_close(actual, expected, rtol=1e-5, err_msg=""):
  """|actual - expected| <= rtol * (|expected| + max|expected|), element-wise."""
  actual = np.asarray(actual, np.float64)
  expected = np.asarray(expected, np.float64)
  scale = float(np.max(np.abs(expected))) if expected.size else 0.0
  np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale, err_msg=err_msg)


def assert_trees_close(actual, expected, rtol=1e-5):
  """`assert_close` leaf by leaf, each leaf against its own scale; the structures must match."""
  assert jax.tree.structure(actual) == jax.tree.structure(expected)
  for (key, a), b in zip(jax.tree_util.tree_leaves_with_path(actual), jax.tree.leaves(expected)):
    assert_close(a, b, rtol, err_msg=jax.tree_util.keystr(key))
