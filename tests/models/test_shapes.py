"""Shapes and parameter counts of every reference configuration.

Everything here is abstract (`jax.eval_shape`): no convolution is compiled or run.
"""
import os

import jax
import jax.numpy as jnp
import pytest

from conftest import REPO, load_config
from gait_jax.config import model_path, use_bnneck
from gait_jax.models import abstract_variables, build_model, layer_names

HEADS = ("HPP", "Head0", "BNNecks")


def _count(tree):
  return sum(int(x.size) for x in jax.tree.leaves(tree))


def _counts(config_name):
  config = load_config(config_name)
  model = build_model(config.model, bnneck=True, fixed_path=model_path(config))
  params = abstract_variables(model)["params"]
  backbone = _count({k: v for k, v in params.items() if k not in HEADS})
  with_fc = backbone + _count(params["HPP"]) + _count(params["Head0"])
  return backbone / 1e6, with_fc / 1e6, _count(params) / 1e6


# The reference's figures (millions): backbone, + GeM + SeparateFCs, + BN-neck.
FIXED_PATH_COUNTS = {
    "retrain/sposgait_large_GREW_train20000id_retrain": (20.79, 28.91, 346.38),
    "retrain/sposgait_large_GREW_train5000id_retrain": (20.79, 28.91, 108.30),
    "retrain/sposgait_large_GREW_train500id_retrain": (20.79, 28.91, 36.88),
    "retrain/sposgait_large_Gait3D_retrain": (22.87, 24.97, 37.27),
    "retrain/sposgait_large_OUMVLP_retrain": (20.79, 22.88, 44.00),
    "retrain/sposgait_medium_GREW_20000id_retrain": (12.62, 20.75, 338.22),
    "retrain/sposgait_small_GREW_train20000id_retrain": (2.16, 3.21, 85.14),
    "retrain/sposgait_small_casiab_retrain": (2.47, 3.52, 3.83),
}


@pytest.mark.parametrize("name", sorted(FIXED_PATH_COUNTS))
def test_fixed_path_parameter_counts(name):
  got = _counts(name)
  for g, want in zip(got, FIXED_PATH_COUNTS[name]):
    assert round(g, 2) == pytest.approx(want, abs=0.011), (name, got)


@pytest.mark.parametrize("name,backbone", [
    ("sposgait_large_GREW_supertraining_2loss", 102.44),
    ("sposgait_medium_GREW_supertraining_triplet", 47.56),
    ("sposgait_small_GREW_supertraining_triplet", 11.26),
    ("sposgait_small_CASIAB_supertraining_2loss", 13.75),
])
def test_supernet_backbone_counts(name, backbone):
  assert round(_counts(name)[0], 2) == pytest.approx(backbone, abs=0.011)


def _all_configs():
  names = []
  for sub in ("", "retrain"):
    folder = os.path.join(REPO, "configs", sub)
    names += [os.path.join(sub, f[:-3]) if sub else f[:-3]
              for f in sorted(os.listdir(folder)) if f.endswith(".py")]
  return names


@pytest.mark.parametrize("name", _all_configs())
def test_output_shapes_of_every_config(name):
  config = load_config(name)
  bnneck = use_bnneck(config)
  model = build_model(config.model, bnneck=bnneck, fixed_path=model_path(config))
  variables = abstract_variables(model)
  parts = sum(config.model.bins)
  n_layers = len(layer_names(config.model.name))
  sils = jax.ShapeDtypeStruct((2, 30, 64, 44), jnp.float32)
  path = jnp.zeros((n_layers,), jnp.int32)
  out = jax.eval_shape(lambda v, s, p: model.apply(v, s, p), variables, sils, path)
  assert out["embeddings"].shape == (2, config.model.out_channels, parts)
  assert out["embeddings"].dtype == jnp.float32
  if bnneck:
    assert out["logits"].shape == (2, config.model.class_num, parts)
  else:
    assert "logits" not in out and "BNNecks" not in variables["params"]


def test_large_stage_shapes_follow_spec_table():
  """Large model: LTA gives floor(30/3) = 10 frames, two pools give 16×11 before GeM."""
  config = load_config("sposgait_large_GREW_supertraining_triplet")
  model = build_model(config.model, bnneck=False)
  variables = abstract_variables(model)
  sils = jax.ShapeDtypeStruct((1, 30, 64, 44), jnp.float32)
  _, state = jax.eval_shape(
      lambda v, s: model.apply(v, s, (0,) * 10, capture_intermediates=True,
                               mutable=["intermediates"]), variables, sils)
  inter = state["intermediates"]
  assert inter["LTA"]["__call__"][0][0].shape == (1, 10, 32, 22, 128)
  assert inter["conv3d_41"]["__call__"][0].shape == (1, 10, 16, 11, 512)
  assert inter["HPP"]["__call__"][0].shape == (1, 512, 31)
