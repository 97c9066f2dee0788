"""Pickles a user hands over never run code: only NumPy arrays of plain dtypes (in lists,
tuples and dicts) are read, from every protocol and from NumPy 1's module names; everything
else is refused with the file named, by every reader of pkls."""
import os
import pickle

import numpy as np
import pytest

from gait_jax.common import safe_pickle
from gait_jax.data import dataset
from gait_jax.identify import sources


class _RunsCode:
  def __reduce__(self):
    return (os.system, ("touch PWNED",))


class _Evaluates:
  def __reduce__(self):
    return (eval, ("1+1",))


def _write(path, obj, protocol=4):
  with open(path, "wb") as f:
    pickle.dump(obj, f, protocol=protocol)
  return str(path)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_arrays_of_every_protocol_read_back(tmp_path, protocol):
  sils = (np.random.default_rng(0).random((5, 64, 64)) > 0.5).astype(np.uint8) * 255
  smpl = np.random.default_rng(1).standard_normal((5, 85)).astype(np.float32)
  obj = {"sils": sils, "smpl": [smpl, (np.int64(3), 2.5, "a", None)]}
  got = safe_pickle.read(_write(tmp_path / "x.pkl", obj, protocol))
  np.testing.assert_array_equal(got["sils"], sils)
  np.testing.assert_array_equal(got["smpl"][0], smpl)
  assert got["smpl"][1] == (3, 2.5, "a", None)


def test_numpy1_module_names_are_read(tmp_path):
  data = pickle.dumps(np.arange(6, dtype=np.uint8).reshape(2, 3), protocol=2)
  old = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
  assert b"numpy.core.multiarray" in old
  np.testing.assert_array_equal(safe_pickle.read_bytes(old, "old.pkl"),
                                np.arange(6, dtype=np.uint8).reshape(2, 3))


def test_code_is_never_run(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  path = _write(tmp_path / "evil.pkl", _RunsCode())
  for read in (safe_pickle.read, lambda p: dataset.load_pkl(p, None),
               lambda p: sources.read_pkl_folder(os.path.dirname(p))):
    with pytest.raises(ValueError, match=r"evil.pkl: refused: the pickle asks for "
                                         r"(posix|os)\.system"):
      read(path)
  assert not (tmp_path / "PWNED").exists()


def test_globals_hidden_in_containers_or_reduce_are_refused(tmp_path):
  for obj in ([np.zeros(3), _RunsCode()], {"a": _RunsCode()}, np.array([1, "x"], object),
              {"f": np.float32}, {(1, 2): np.zeros(2)}):
    with pytest.raises(safe_pickle.UnsafePickle, match="x.pkl: refused"):
      safe_pickle.read(_write(tmp_path / "x.pkl", obj))
  # builtins.eval reached through REDUCE is a global like any other
  crafted = pickle.dumps(_Evaluates(), protocol=2)
  with pytest.raises(safe_pickle.UnsafePickle, match=r"(__builtin__|builtins)\.eval"):
    safe_pickle.read_bytes(crafted, "crafted.pkl")


def test_damaged_files_are_a_clear_error(tmp_path):
  path = tmp_path / "bad.pkl"
  path.write_bytes(pickle.dumps(np.zeros((4, 64, 64), np.uint8))[:50])
  with pytest.raises(ValueError, match="bad.pkl: cannot unpickle"):
    safe_pickle.read(str(path))
  with pytest.raises(ValueError, match="missing.pkl: cannot be read"):
    safe_pickle.read(str(tmp_path / "missing.pkl"))
