"""The config is checked once, where it enters: every shipped config passes, and each kind of
bad value is refused with the key and what it expects."""
import glob
import os

import pytest

from conftest import REPO, load_config, load_module
from gait_jax import config_check
from gait_jax.config import base_config


def _names():
  root = os.path.join(REPO, "configs")
  return sorted(os.path.relpath(p, root)[:-3] for p in glob.glob(f"{root}/**/*.py", recursive=True))


@pytest.mark.parametrize("name", _names())
def test_every_shipped_config_passes(name):
  config_check.check(load_config(name))


def _variants():
  """(config, variant) for the configs that take one, from their own lists."""
  return [(name, variant) for name, attr in (("kth_recipe", "STAGES"),
                                             ("pretrained_walkers", "VARIANTS"))
          for variant in getattr(load_module(f"configs/{name}.py", f"cfg_{name}"), attr)]


@pytest.mark.parametrize("name,variant", _variants())
def test_every_config_variant_passes(name, variant):
  """The `configs/NAME.py:VARIANT` forms the recipes run (tools/kth_recipe.sh,
  tools/gpu_pretrain.sh)."""
  c = load_module(f"configs/{name}.py", f"cfg_{name}").get_config(variant)
  config_check.check(c)
  assert c.experiment.startswith(name)


@pytest.mark.parametrize("key,value,match", [
    ("seed", -1, "seed=-1: expected at least 0"),
    ("data.sample_type", "all_ordered", "data.sample_type='all_ordered': expected one of"),
    ("data.batch_p", 0, "data.batch_p=0: expected at least 1"),
    ("data.frames_max", 3, "data.frames_max=3: expected at least data.frames_min"),
    ("optim.lr", 0.0, "optim.lr=0.0: expected a positive number"),
    ("optim.momentum", 1.0, r"optim.momentum=1.0: expected in \[0, 1\)"),
    ("optim.milestones", (30, 20), "optim.milestones=.*ascending"),
    ("optim.clip.type", "max", "optim.clip.type='max': expected one of"),
    ("optim.schedule", "linear", "optim.schedule='linear': expected one of 'multistep'"),
    ("train.dtype", "float64", "train.dtype='float64'"),
    ("train.eval_on", "val", "train.eval_on='val'"),
    ("evaluate.protocol", "casiab", "evaluate.protocol='casiab': expected one of .*'casia_b'"),
    ("evaluate.metric", "l2", "evaluate.metric='l2'"),
    ("evaluate.lambda_value", 1.5, "evaluate.lambda_value=1.5"),
    ("model.channels", (8, 0, 32), "model.channels=.*positive integers"),
    ("model.parts", 30, r"model.parts=30: expected sum\(model.bins\)"),
    ("model.path", "0,0,9", "model.path"),
    ("optim.weight_decay", float("nan"), "finite"),
])
def test_bad_values_name_the_key(key, value, match):
  c = load_config("test_tiny").unlock()
  section, _, leaf = key.rpartition(".")
  node = c
  for part in filter(None, section.split(".")):
    node = node[part]
  node[leaf] = value
  with pytest.raises(config_check.ConfigError, match=match):
    config_check.check(c)


def test_bf16_products_are_an_option_of_float32_training():
  c = load_config("test_tiny").unlock()
  c.train.bf16 = True
  config_check.check(c)
  c.train.dtype = "bfloat16"
  with pytest.raises(config_check.ConfigError,
                     match="train.bf16=True: expected False with train.dtype='bfloat16'"):
    config_check.check(c)


def test_class_num_matters_only_with_a_bn_neck():
  c = load_config("test_tiny").unlock()
  c.loss.ce_weight, c.model.class_num = 0.0, 0
  config_check.check(c)
  c.loss.ce_weight = 1.0
  with pytest.raises(config_check.ConfigError, match="model.class_num=0"):
    config_check.check(c)


def test_unknown_missing_and_mistyped_keys():
  c = base_config()
  c.data.extra = 1
  with pytest.raises(config_check.ConfigError, match="data.extra: not a config key"):
    config_check.check(c)
  c = base_config()
  del c.train["dtype"]
  with pytest.raises(config_check.ConfigError, match="train.dtype: missing"):
    config_check.check(c)
  c = base_config()
  c.evaluate = {"protocol": "grew"}
  with pytest.raises(config_check.ConfigError, match="evaluate"):
    config_check.check(c)
