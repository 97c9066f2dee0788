"""Every config file builds, has the full schema, and a consistent model/path."""
import glob
import os
import subprocess
import sys

import pytest

from conftest import REPO, load_config
from gait_jax import config as config_lib

CONFIGS = sorted(os.path.relpath(p, os.path.join(REPO, "configs"))
                 for p in glob.glob(os.path.join(REPO, "configs", "**", "*.py"), recursive=True))


def test_there_is_a_config_per_reference_experiment():
  retrain = [c for c in CONFIGS if c.startswith("retrain/")]
  supernet = [c for c in CONFIGS if c.startswith("sposgait_")]
  assert len(retrain) == 13 and len(supernet) == 5


@pytest.mark.parametrize("name", CONFIGS)
def test_config_builds_with_full_schema(name):
  c = load_config(name)
  base = config_lib.base_config()
  assert set(c.keys()) == set(base.keys()), name
  for section in base.keys():
    if hasattr(base[section], "keys"):
      assert set(c[section].keys()) == set(base[section].keys()), (name, section)
  assert c.model.parts == sum(c.model.bins)
  assert len(c.model.choice_max_num) == {"sposgait_large": 10, "sposgait_medium": 7,
                                         "sposgait_small": 4}[c.model.name]
  path = config_lib.model_path(c)
  if name.startswith("retrain/"):
    assert path is not None and len(path) == len(c.model.choice_max_num)
    assert c.loss.ce_weight > 0 and c.model.class_num > 0
  elif name.startswith("sposgait_"):
    assert path is None


def test_reference_hyperparameters_spot_checks():
  c = load_config("retrain/sposgait_large_OUMVLP_retrain")
  assert c.optim.lr == 0.05 and (c.data.batch_p, c.data.batch_k) == (32, 8)
  assert c.model.bins == (16,) and c.model.out_channels == 256 and c.model.class_num == 5153
  c = load_config("retrain/sposgait_small_GREW_train20000id_retrain")
  assert (c.loss.triplet_weight, c.loss.ce_weight) == (0.1, 1.0)
  assert c.optim.clip.type == "value" and c.optim.clip.value == 0.1
  c = load_config("retrain/sposgait_large_Gait3D_retrain")
  assert c.model.channels == (128, 256, 256, 512) and c.train.total_steps == 61001
  assert c.data.transforms.split(",")[0] == "random_perspective"


@pytest.mark.parametrize("text,expected", [
    ("0,0,4,5,2,0,4,3,4,3", (0, 0, 4, 5, 2, 0, 4, 3, 4, 3)),
    ("[0, 5, 5, 4]", (0, 5, 5, 4)),
    ("", None),
])
def test_parse_path(text, expected):
  assert config_lib.parse_path(text) == expected


def test_bad_path_names_the_key():
  with pytest.raises(ValueError, match="model.path"):
    config_lib.parse_path("0,a,1")
  with pytest.raises(ValueError, match="expected 4 entries"):
    config_lib.check_path((0, 1), (1, 6, 6, 6))
  with pytest.raises(ValueError, match=r"position 2 is 7; the search space allows 0\.\.5"):
    config_lib.check_path((0, 1, 7, 0), (1, 6, 6, 6))


def test_path_outside_the_search_space_is_refused_at_every_entry():
  # Position 0 of the small model has one candidate: 3 there would run weights supernet
  # training never touched.
  config = load_config("test_tiny")
  config.model.path = "3,0,0,0"
  with pytest.raises(ValueError, match=r"position 0 \(conv3d_00\) is 3; .*allows only 0"):
    config_lib.model_path(config)
  from gait_jax.models import cost
  with pytest.raises(ValueError, match="position 0"):
    cost.count(config.model, (3, 0, 0, 0), 30, bnneck=False)
  config.model.path = "0,6,0,0"
  with pytest.raises(ValueError, match=r"position 1 \(conv3d_20\) is 6; .*0\.\.5"):
    config_lib.model_path(config)
  config.model.path = ""
  config.model.choice_max_num = (1, 7, 6, 6)
  with pytest.raises(ValueError, match="model.choice_max_num: position 1"):
    config_lib.model_path(config)


def test_cli_refuses_an_untrained_candidate(tmp_path):
  for mode in ("flops", "embed"):
    r = _cli("--config", "configs/test_tiny.py", "--workdir", str(tmp_path / mode),
             f"--config.mode={mode}", "--config.model.path=3,0,0,0")
    assert r.returncode != 0
    assert "position 0 (conv3d_00) is 3" in r.stderr, r.stderr[-2000:]


def _cli(*args):
  return subprocess.run([sys.executable, "-m", "gait_jax.main", *args], cwd=REPO,
                        capture_output=True, text=True, timeout=120)


def test_cli_misspelt_override_is_an_error(tmp_path):
  r = _cli("--config", "configs/test_tiny.py", "--workdir", str(tmp_path),
           "--config.model.chanels=1,2")
  assert r.returncode != 0
  assert "chanels" in r.stderr


def test_cli_unknown_mode_is_an_error(tmp_path):
  r = _cli("--config", "configs/test_tiny.py", "--workdir", str(tmp_path), "--config.mode=dance")
  assert r.returncode != 0 and "not a mode" in r.stderr


def test_cli_help_lists_modes():
  r = _cli("--help")
  assert r.returncode == 0
  for mode in ("train", "search", "embed", "evaluate", "test", "flops"):
    assert mode in r.stdout
