"""The experiment config, checked once where it enters (the command line, the Recognizer):
every key of `config.base_config()` is there with its type and nothing else is, every value is
in range, and the path is one the search space holds. Inside the package the values are
trusted as typed: no module casts or re-checks a config value."""
from __future__ import annotations

import math

import ml_collections

from gait_jax import config as config_lib
from gait_jax.data import samplers
from gait_jax.data import splits
from gait_jax.evaluation import distance
from gait_jax.evaluation import protocols
from gait_jax.models import space
from gait_jax.search import fitness_metrics
from gait_jax.training import optim
from gait_jax.training import setup
from gait_jax.training import step

AT_LEAST = {  # key: smallest value
    "seed": 0, "data.num_train": 0, "data.batch_p": 1, "data.batch_k": 1, "data.frames": 1,
    "data.frames_skip": 0, "data.frames_min": 1, "data.frames_max": 1, "data.workers": 0,
    "data.prefetch": 1, "data.test_frames_all_limit": 0, "model.out_channels": 1,
    "model.class_num": 0, "loss.triplet_weight": 0, "loss.margin": 0, "loss.ce_weight": 0,
    "optim.weight_decay": 0, "train.total_steps": 0, "train.save_every": 0,
    "train.log_every": 0, "train.eval_every": 0, "train.keep_checkpoints": 1,
    "train.max_bad_steps": 1, "train.image_every": 0, "embed.batch": 1,
    "embed.frames_all_limit": 0, "evaluate.k1": 1, "evaluate.k2": 1, "evaluate.chunk": 1,
    "evaluate.examples": 0, "search.epochs": 0, "search.population": 1, "search.select_num": 1,
    "search.mutation_num": 0, "search.crossover_num": 0, "search.max_macs": 0,
    "search.max_params": 0, "search.bn_batches": 0, "search.finetune_steps": 0,
    "search.seed": 0, "identify.top_k": 1,
    "flops.frames": 1, "dist.num_processes": 1, "dist.process_id": 0,
}
POSITIVE = ("optim.lr", "optim.gamma", "loss.ce_scale", "optim.clip.value", "optim.clip.max_norm",
            "optim.clip.norm_type", "search.finetune_lr")
BELOW_ONE = ("optim.momentum", "loss.label_smooth")  # in [0, 1)
UP_TO_ONE = ("evaluate.lambda_value", "search.m_prob")  # in [0, 1]
CHOICES = {
    "data.sample_type": tuple(t for t in samplers.SAMPLE_TYPES if not t.startswith("all")),
    "train.dtype": tuple(step.DTYPES), "train.eval_on": setup.EVAL_ON,
    "evaluate.metric": distance.METRICS, "evaluate.protocol": protocols.NAMES,
    "search.protocol": ("",) + protocols.NAMES, "optim.clip.type": optim.CLIP_TYPES,
    "optim.schedule": optim.SCHEDULES,
    "embed.split": ("train", "test"), "data.format": splits.FORMATS,
    "train.path_sampler": tuple(space.PATH_SAMPLERS),
    "search.fitness_metric": fitness_metrics.FITNESS_METRICS,
}
POSITIVE_INTS = ("model.channels", "model.bins")


class ConfigError(ValueError):
  pass


def check(config) -> ml_collections.ConfigDict:
  """`config` when every key and value is as described above, else a ConfigError naming the
  key and what it expects."""
  _check_keys(config, config_lib.base_config(), "")
  for key, low in AT_LEAST.items():
    _expect(key, _get(config, key) >= low, f"at least {low}", config)
  for key in POSITIVE:
    _expect(key, _get(config, key) > 0, "a positive number", config)
  for key in BELOW_ONE:
    _expect(key, 0 <= _get(config, key) < 1, "in [0, 1)", config)
  for key in UP_TO_ONE:
    _expect(key, 0 <= _get(config, key) <= 1, "in [0, 1]", config)
  for key, choices in CHOICES.items():
    _expect(key, _get(config, key) in choices, f"one of {', '.join(map(repr, choices))}", config)
  for key in POSITIVE_INTS:
    value = _get(config, key)
    _expect(key, len(value) > 0 and all(_is_int(v) and v > 0 for v in value),
            "a tuple of positive integers", config)
  milestones = config.optim.milestones
  _expect("optim.milestones", all(_is_int(m) and m >= 0 for m in milestones)
          and list(milestones) == sorted(milestones), "ascending non-negative steps", config)
  _expect("data.frames_max", config.data.frames_max >= config.data.frames_min,
          f"at least data.frames_min={config.data.frames_min}", config)
  _expect("model.class_num", config.model.class_num > 0 or not config_lib.use_bnneck(config),
          "at least 1 with loss.ce_weight > 0 (the BN-neck classifies that many ids)", config)
  # bfloat16 products are an option of float32 compute: under train.dtype=bfloat16|float16 the
  # convolutions take no oneDNN route, so the key would do nothing without a word.
  _expect("train.bf16", not config.train.bf16 or config.train.dtype == "float32",
          f"False with train.dtype={config.train.dtype!r} (it applies to train.dtype='float32')",
          config)
  _expect("model.parts", config.model.parts == sum(config.model.bins),
          f"sum(model.bins) = {sum(config.model.bins)}", config)
  try:
    config_lib.model_path(config)  # the search space, and the path against it
  except ValueError as e:
    raise ConfigError(str(e)) from None
  return config


def _get(config, key: str):
  node = config
  for part in key.split("."):
    node = node[part]
  return node


def _is_int(v) -> bool:
  return isinstance(v, int) and not isinstance(v, bool)


def _expect(key: str, ok: bool, expected: str, config) -> None:
  if not ok:
    value = _get(config, key)
    raise ConfigError(f"{key}={value!r}: expected {expected}")


def _check_keys(config, schema, prefix: str) -> None:
  """Every schema key present with the schema's type (an int where a float is expected is
  fine; a finite float); no key the schema lacks."""
  for key in config.keys():
    if key not in schema:
      raise ConfigError(f"{prefix}{key}: not a config key (a config file may only set the keys "
                        "of gait_jax.config.base_config)")
  for key, want in schema.items():
    name = f"{prefix}{key}"
    if key not in config:
      raise ConfigError(f"{name}: missing (build configs on gait_jax.config.base_config())")
    got = config[key]
    if isinstance(want, ml_collections.ConfigDict):
      if not isinstance(got, ml_collections.ConfigDict):
        raise ConfigError(f"{name}: expected a section of keys, got {got!r}")
      _check_keys(got, want, name + ".")
    elif isinstance(want, float) and not isinstance(got, bool) and isinstance(got, (int, float)):
      if not math.isfinite(got):
        raise ConfigError(f"{name}={got!r}: expected a finite number")
    elif type(got) is not type(want):
      raise ConfigError(f"{name}={got!r}: expected a {type(want).__name__}")
