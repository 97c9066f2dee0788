"""checkpoint.py: save/restore, keep-N, unfinished saves, restore_variables, config checks."""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from gait_jax import config as config_lib
from gait_jax.common import checkpoint


def _state(scale=1.0):
  return {
      "params": {"conv": {"kernel": jnp.full((3, 4), scale)}, "fc": jnp.arange(5.0) * scale},
      "batch_stats": {"bn": {"mean": jnp.full((2,), 2.0 * scale)}},
      "opt_state": {"momentum": {"conv": {"kernel": jnp.full((3, 4), -scale)},
                                 "fc": jnp.zeros(5)}},
      "step": jnp.int32(int(scale)),
  }


def _replicated(tree):
  mesh = jax.make_mesh((jax.device_count(),), ("data",),
                       axis_types=(jax.sharding.AxisType.Auto,))
  return jax.device_put(tree, NamedSharding(mesh, P()))


def test_save_restore_is_exact_and_keeps_n(tmp_path):
  ck = checkpoint.Checkpointer(str(tmp_path / "checkpoints"), keep=2)
  for s in (1, 2, 3):
    ck.save(s, _replicated(_state(float(s))), {"step": s, "path": [0, 1]})
  ck.wait()
  assert sorted(ck.all_steps()) == [2, 3]
  assert ck.latest_step() == 3
  restored, meta = ck.restore(3, _replicated(_state(0.0)))
  assert meta == {"step": 3, "path": [0, 1]}
  jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)),
               restored, _state(3.0))
  ck.close()


def test_replicated_arrays_are_saved_whole_from_one_device(tmp_path, monkeypatch):
  # orbax's replica-parallel saving would slice each array once per device, a dispatch each.
  assert jax.device_count() > 1, "the suite runs with several CPU devices (tools/test.sh)"
  sliced = []
  real = jax.lax.slice_in_dim
  monkeypatch.setattr(jax.lax, "slice_in_dim", lambda *a, **k: sliced.append(1) or real(*a, **k))
  ck = checkpoint.Checkpointer(str(tmp_path / "checkpoints"))
  state = dict(_state(1.0), wide=jnp.arange(16.0 * jax.device_count()))  # splits per device
  ck.save(1, _replicated(state), {"step": 1})
  ck.wait()
  assert sliced == []
  # The files orbax's default handler writes, array metadata included.
  state_dir = tmp_path / "checkpoints" / "1" / "state"
  assert (state_dir / "array_metadatas").is_dir() and (state_dir / "_METADATA").is_file()
  restored, _ = ck.restore(1, _replicated(jax.tree.map(jnp.zeros_like, state)))
  jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)),
               restored, state)
  ck.close()


def test_unfinished_save_is_ignored(tmp_path):
  ck = checkpoint.Checkpointer(str(tmp_path / "checkpoints"), keep=3)
  ck.save(2, _replicated(_state(2.0)), {"step": 2})
  ck.close()
  # What a save killed half-way leaves behind: a tmp directory with partial content.
  tmp = tmp_path / "checkpoints" / "4.orbax-checkpoint-tmp-1234567"
  (tmp / "state").mkdir(parents=True)
  (tmp / "state" / "garbage").write_bytes(b"\x00" * 10)
  ck = checkpoint.Checkpointer(str(tmp_path / "checkpoints"), keep=3)
  assert ck.latest_step() == 2
  ck.close()
  variables, step = checkpoint.restore_variables(str(tmp_path))
  assert step == 2
  np.testing.assert_array_equal(variables["params"]["fc"], np.arange(5.0) * 2)


def test_restore_variables_sources(tmp_path):
  ck = checkpoint.Checkpointer(str(tmp_path / "w" / "checkpoints"), keep=5)
  ck.save(5, _replicated(_state(5.0)), {})
  ck.save(7, _replicated(_state(7.0)), {})
  ck.close()
  for source, want in ((tmp_path / "w", 7), (tmp_path / "w" / "checkpoints", 7),
                       (tmp_path / "w" / "checkpoints" / "5", 5)):
    variables, step = checkpoint.restore_variables(str(source))
    assert step == want
    assert set(variables) == {"params", "batch_stats"}  # no optimizer state
    assert isinstance(variables["params"]["conv"]["kernel"], np.ndarray)
    np.testing.assert_array_equal(variables["batch_stats"]["bn"]["mean"], np.full(2, 2.0 * want))
  variables, step = checkpoint.restore_variables(str(tmp_path / "w"), step=5)
  assert step == 5
  with pytest.raises(FileNotFoundError, match="step 6 not found"):
    checkpoint.restore_variables(str(tmp_path / "w"), step=6)
  with pytest.raises(FileNotFoundError, match="does not exist"):
    checkpoint.restore_variables(str(tmp_path / "nowhere"))
  (tmp_path / "empty").mkdir()
  with pytest.raises(FileNotFoundError, match="no finished checkpoint"):
    checkpoint.restore_variables(str(tmp_path / "empty"))


def test_config_roundtrip_and_architecture_differences(tmp_path):
  from conftest import load_config
  config = load_config("test_tiny")
  checkpoint.write_config(str(tmp_path), config)
  saved = checkpoint.read_config(str(tmp_path))
  assert saved["model"]["channels"] == list(config.model.channels)
  assert config_lib.architecture_differences(saved, config) == {}
  other = config.unlock()
  other.model.channels = (4, 8, 16)
  other.loss.ce_weight = 0.0
  other.optim.lr = 1.0  # not architecture
  other.model.remat = not config.model.remat  # compute/memory trade only
  diff = config_lib.architecture_differences(saved, other)
  assert set(diff) == {"model.channels", "loss.ce_weight>0 (BN-neck)"}
  assert diff["model.channels"] == ([4, 8, 8], [4, 8, 16])
  assert not os.path.exists(tmp_path / "config.json.tmp")
  # A config.json written before model.remat existed still matches.
  del saved["model"]["remat"]
  assert config_lib.architecture_differences(saved, load_config("test_tiny")) == {}


def test_a_pytorch_file_as_checkpoint_source_points_to_the_import(tmp_path):
  pt = tmp_path / "model.pt"
  pt.write_bytes(b"PK")
  with pytest.raises(FileNotFoundError, match="is a file: a PyTorch checkpoint: import it first "
                                              "with `python tools/import_torch.py"):
    checkpoint.restore_variables(str(pt))
