"""The `.pt` reader and writer on the byte layouts PyTorch writes (fixture files made once by
PyTorch, see fixtures/make_fixtures.py) and on hostile files; no PyTorch needed."""
import collections
import io
import os
import pickle
import zipfile

import numpy as np
import pytest

from gait_jax.interop import torch_file

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")


def test_reads_pytorch_strides_offsets_shared_storages_and_dtypes():
  obj = torch_file.load(os.path.join(FIXTURES, "tensor_layouts.pt"))
  base = np.arange(60, dtype=np.float32).reshape(3, 4, 5)
  np.testing.assert_array_equal(obj["shared"], base)
  np.testing.assert_array_equal(obj["transposed"], base.transpose(2, 1, 0))  # strided view
  np.testing.assert_array_equal(obj["offset_slice"], base[1:, 2])  # storage offset 25
  assert obj["half"].dtype == np.float16 and obj["double"].dtype == np.float64
  # torch.linspace rounds its float16 steps its own way: within one float16 ulp (2^-10 here).
  np.testing.assert_allclose(obj["half"].astype(np.float64), np.linspace(-2, 2, 7), rtol=0,
                             atol=2.0**-10)
  np.testing.assert_array_equal(obj["double"], np.linspace(-1, 1, 5))
  assert obj["long"].dtype == np.int64 and obj["long"][1, 1] == 2**40
  assert obj["scalar"].shape == () and obj["scalar"] == 7
  assert obj["milestones"] == collections.Counter([2, 2, 5])
  assert obj["nested"] == [1.5, None, "text", (1, 2)]
  # Views of one storage are independent arrays here.
  obj["shared"][0, 0, 0] = -1
  assert obj["transposed"][0, 0, 0] == 0


def test_reference_checkpoint_structure():
  ckpt = torch_file.load(os.path.join(FIXTURES, "sposgait_small_tiny_2loss.pt"))
  assert set(ckpt) == {"model", "optimizer", "scheduler", "iteration"}
  assert isinstance(ckpt["model"], collections.OrderedDict) and ckpt["iteration"] == 3
  assert ckpt["model"]["conv3d_00.0.0.conv3d.weight"].shape == (4, 1, 3, 3, 3)
  assert ckpt["model"]["conv3d_00.0.1.num_batches_tracked"].dtype == np.int64
  assert ckpt["optimizer"]["param_groups"][0]["momentum"] == 0.9
  assert ckpt["scheduler"]["milestones"] == collections.Counter([2])


def test_round_trip_is_bit_exact_and_laid_out_like_torch(tmp_path):
  rng = np.random.default_rng(0)
  obj = {"model": collections.OrderedDict(
      w=rng.normal(size=(3, 2, 3, 3, 3)).astype(np.float32), scalar=np.array(4, np.int64),
      half=rng.normal(size=5).astype(np.float16), empty=np.zeros((0, 3), np.float32),
      fortran=np.asfortranarray(rng.normal(size=(4, 3)))),
      "iteration": 12, "extra": [None, True, "x", (1.5,)]}
  path = str(tmp_path / "x.pt")
  torch_file.save(obj, path)
  back = torch_file.load(path)
  assert list(back["model"]) == list(obj["model"]) and back["iteration"] == 12
  for k, v in obj["model"].items():
    assert back["model"][k].dtype == v.dtype and back["model"][k].shape == v.shape, k
    np.testing.assert_array_equal(back["model"][k], v)
  assert back["extra"] == [None, True, "x", (1.5,)]
  with zipfile.ZipFile(path) as z:
    names = z.namelist()
    assert "archive/data.pkl" in names and "archive/version" in names
    assert z.read("archive/byteorder") == b"little"
    for info in z.infolist():
      assert info.compress_type == zipfile.ZIP_STORED
      start = info.header_offset + 30 + len(info.filename) + len(info.extra)
      assert start % torch_file.ALIGNMENT == 0, info.filename


def _zip(path, records):
  with zipfile.ZipFile(path, "w") as z:
    for name, data in records.items():
      z.writestr(name, data)
  return str(path)


def test_hostile_and_broken_files_are_refused_by_name(tmp_path):
  with pytest.raises(torch_file.TorchFileError, match="legacy.*re-save"):
    torch_file.load(os.path.join(FIXTURES, "legacy_format.pt"))
  junk = tmp_path / "junk.pt"
  junk.write_bytes(b"hello")
  with pytest.raises(torch_file.TorchFileError, match="junk.pt is not a PyTorch checkpoint"):
    torch_file.load(str(junk))
  with pytest.raises(FileNotFoundError, match="missing.pt"):
    torch_file.load(str(tmp_path / "missing.pt"))
  with pytest.raises(torch_file.TorchFileError, match="data.pkl"):
    torch_file.load(_zip(tmp_path / "nopkl.pt", {"a/other": b"1"}))

  class Evil:
    def __reduce__(self):
      return (os.system, ("echo pwned",))
  evil = _zip(tmp_path / "evil.pt", {"archive/data.pkl": pickle.dumps(Evil(), protocol=2)})
  with pytest.raises(torch_file.TorchFileError, match=r"refusing to load posix\.system"):
    torch_file.load(evil)

  good = str(tmp_path / "good.pt")
  torch_file.save({"w": np.arange(6, dtype=np.float32)}, good)
  with zipfile.ZipFile(good) as z:
    records = {n: z.read(n) for n in z.namelist()}
  short = dict(records, **{"archive/data/0": records["archive/data/0"][:-4]})
  with pytest.raises(torch_file.TorchFileError, match="has 20 bytes, expected 6"):
    torch_file.load(_zip(tmp_path / "short.pt", short))
  big = dict(records, **{"archive/byteorder": b"big"})
  with pytest.raises(torch_file.TorchFileError, match="big"):
    torch_file.load(_zip(tmp_path / "big.pt", big))
  # A tensor whose size/stride reads past its storage.
  class PastTheEnd(torch_file._Tensor):
    def __reduce_ex__(self, protocol):
      return torch_file._REBUILD, (self.storage, 0, (3,), (3,), False, collections.OrderedDict())
  buffer = io.BytesIO()
  storage = torch_file._Storage("0", np.arange(6, dtype=np.float32))
  torch_file._Pickler(buffer, protocol=2).dump({"w": PastTheEnd(storage)})
  pkl = buffer.getvalue()
  with pytest.raises(torch_file.TorchFileError, match="reads element 6 of a storage of 6"):
    torch_file.load(_zip(tmp_path / "oob.pt", dict(records, **{"archive/data.pkl": pkl})))


def _crafted(tmp_path, name, size, stride, numel=6):
  """A .pt whose one tensor declares `size`/`stride` over a storage declared `numel` long."""
  good = str(tmp_path / "good.pt")
  torch_file.save({"w": np.arange(6, dtype=np.float32)}, good)
  with zipfile.ZipFile(good) as z:
    records = {n: z.read(n) for n in z.namelist()}

  class Declared(torch_file._Tensor):
    def __reduce_ex__(self, protocol):
      return torch_file._REBUILD, (self.storage, 0, size, stride, False,
                                   collections.OrderedDict())
  buffer = io.BytesIO()
  # A broadcast view declares `numel` elements without holding them.
  storage = torch_file._Storage("0", np.broadcast_to(np.float32(0), (numel,)))
  torch_file._Pickler(buffer, protocol=2).dump({"w": Declared(storage)})
  return _zip(tmp_path / name, dict(records, **{"archive/data.pkl": buffer.getvalue()}))


def test_declared_sizes_are_checked_before_anything_is_allocated(tmp_path):
  """A 4 TiB tensor over a 6-element storage (stride 0), or a storage declared 2^40 elements
  long, is refused from the file's own sizes: no MemoryError, no allocation."""
  huge = _crafted(tmp_path, "huge.pt", (1 << 20, 1 << 20), (0, 0))
  with pytest.raises(torch_file.TorchFileError, match=r"larger than its storage of 6 elements"):
    torch_file.load(huge)
  long_storage = _crafted(tmp_path, "long.pt", (6,), (1,), numel=1 << 40)
  with pytest.raises(torch_file.TorchFileError, match="has 24 bytes, expected 1099511627776"):
    torch_file.load(long_storage)
