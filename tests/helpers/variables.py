"""Random model variables without compiling the initialiser."""
import jax
import jax.numpy as jnp
import numpy as np


def random_variables(model, path, seed):
  """Random variables of the right shapes without compiling the initialiser (a supernet's
  init compiles all six candidates of every layer: slow on a shared CPU). A traced path
  makes a supernet declare every candidate. BN statistics: means near 0, variances near 1."""
  def f(key, path_arr):
    p = path if isinstance(path, tuple) else path_arr
    return model.init(key, jnp.zeros((1, 8, 64, 44)), p, lengths=jnp.ones((1,), jnp.int32))
  shapes = jax.eval_shape(f, jax.random.PRNGKey(0), jnp.asarray(path, jnp.int32))
  rng = np.random.default_rng(seed)
  def fill(key_path, leaf):
    name = jax.tree_util.keystr(key_path)
    v = rng.normal(size=leaf.shape).astype(np.float32)
    if "'var'" in name:
      return 1.0 + 0.2 * np.abs(v)
    if "'mean'" in name:
      return 0.05 * v
    if "'scale'" in name:
      return 1.0 + 0.1 * v
    return 0.3 * v
  return jax.tree_util.tree_map_with_path(fill, shapes)
