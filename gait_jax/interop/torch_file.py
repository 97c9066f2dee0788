"""PyTorch's `.pt` file format, read and written without PyTorch.

A `torch.save` file (PyTorch >= 1.6) is a zip archive with one top folder (`archive/` or the
file's stem): `data.pkl` is a protocol-2 pickle of the saved object in which every tensor is
`torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks)` and
every storage a persistent id `("storage", torch.FloatStorage, key, location, numel)` whose
raw bytes are the record `data/<key>`; `byteorder` says "little" (absent in old files: little),
`version` the format version.

Hand-written because the only library that reads this format is PyTorch itself, which
gait_jax users need not install (and `pickle.load` of an untrusted file runs arbitrary code):
the unpickler here resolves only the tensor-rebuild function, the storage types below and
`collections.OrderedDict`/`Counter` (state dicts, MultiStepLR milestones). Anything else in
the pickle is refused with its name. Tensors come back as NumPy arrays.
"""
from __future__ import annotations

import collections
import io
import os
import pickle
import struct
import zipfile
from typing import Any, Dict, Mapping, Tuple

import numpy as np

from gait_jax.common import io as io_lib

# torch storage class -> NumPy dtype (little-endian).
STORAGE_DTYPES: Dict[str, np.dtype] = {
    "FloatStorage": np.dtype("<f4"), "HalfStorage": np.dtype("<f2"),
    "DoubleStorage": np.dtype("<f8"), "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"), "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"), "ByteStorage": np.dtype("u1"), "BoolStorage": np.dtype("?"),
}
_STORAGE_NAMES = {v: k for k, v in STORAGE_DTYPES.items()}
# torch.save aligns every storage record to 64 bytes (for mmap); the reader does not need it.
ALIGNMENT = 64
FORMAT_VERSION = b"3\n"


class TorchFileError(ValueError):
  """A file that is not a readable PyTorch checkpoint; the message names the file."""


class _StorageType:
  def __init__(self, name: str):
    self.name, self.dtype = name, STORAGE_DTYPES[name]


def _rebuild_tensor(storage, offset, size, stride, requires_grad=False, hooks=None,
                    metadata=None):
  del requires_grad, hooks, metadata
  size, stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)
  offset = int(offset)
  if len(size) != len(stride) or any(s < 0 for s in size + stride) or offset < 0:
    raise TorchFileError(f"tensor with size {size}, stride {stride}, offset {offset}: not a "
                         "valid layout")
  if 0 in size:
    return np.zeros(size, storage.dtype)
  # A tensor holds no more elements than its storage unless its strides repeat elements (an
  # expanded view, which checkpoints do not hold): a declared size beyond the storage would
  # allocate memory the file does not back (a crafted 4 TiB tensor).
  numel = int(np.prod(size, dtype=np.float64))
  if numel > storage.size:
    raise TorchFileError(f"tensor with size {size} ({numel} elements) is larger than its "
                         f"storage of {storage.size} elements: not a checkpoint's tensor")
  last = offset + sum((n - 1) * s for n, s in zip(size, stride))
  if last >= storage.size:
    raise TorchFileError(f"tensor with size {size}, stride {stride}, offset {offset} reads "
                         f"element {last} of a storage of {storage.size}")
  item = storage.dtype.itemsize
  view = np.lib.stride_tricks.as_strided(storage[offset:], size, tuple(s * item for s in stride))
  return np.array(view, dtype=storage.dtype.newbyteorder("="))


def _rebuild_parameter(data, requires_grad=False, hooks=None):
  del requires_grad, hooks
  return data


class _Unpickler(pickle.Unpickler):
  """Resolves only what a checkpoint of tensors, dicts and numbers needs."""

  ALLOWED = {("collections", "OrderedDict"): collections.OrderedDict,
             ("collections", "Counter"): collections.Counter,
             ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
             ("torch._utils", "_rebuild_parameter"): _rebuild_parameter}

  def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str, where: str):
    super().__init__(io.BytesIO(data))
    self.archive, self.prefix, self.where = archive, prefix, where
    self.storages: Dict[str, np.ndarray] = {}

  def find_class(self, module, name):
    if (module, name) in self.ALLOWED:
      return self.ALLOWED[(module, name)]
    if module == "torch" and name in STORAGE_DTYPES:
      return _StorageType(name)
    raise TorchFileError(f"{self.where}: refusing to load {module}.{name} (only tensors, "
                         "dicts, lists and numbers are read from a checkpoint)")

  def persistent_load(self, pid):
    if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"
            and isinstance(pid[1], _StorageType)):
      raise TorchFileError(f"{self.where}: unsupported persistent id {str(pid)[:80]} (expected "
                           "a tensor storage of a supported dtype: "
                           f"{', '.join(STORAGE_DTYPES)})")
    _, kind, key, _, numel = pid
    key = str(key)
    if key not in self.storages:
      record = f"{self.prefix}data/{key}"
      try:
        info = self.archive.getinfo(record)
      except KeyError:
        raise TorchFileError(f"{self.where}: storage record {record} is missing") from None
      # Sizes are checked against the file before anything is allocated: PyTorch stores
      # records uncompressed, so a record cannot unpack to more bytes than the file holds.
      if info.file_size != int(numel) * kind.dtype.itemsize:
        raise TorchFileError(f"{self.where}: storage {record} has {info.file_size} bytes, "
                             f"expected {numel} {kind.name} elements")
      if info.file_size > max(os.path.getsize(self.where), 100 * info.compress_size):
        raise TorchFileError(f"{self.where}: storage {record} declares {info.file_size} bytes, "
                             "more than the file can hold: a damaged or crafted file")
      raw = self.archive.read(record)
      self.storages[key] = np.frombuffer(raw, kind.dtype)
    storage = self.storages[key]
    if storage.dtype != kind.dtype:
      raise TorchFileError(f"{self.where}: storage {key} is read as two dtypes")
    return storage


def _data_prefix(archive: zipfile.ZipFile, where: str) -> str:
  pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
  if len(pickles) != 1:
    raise TorchFileError(f"{where}: a zip file without exactly one <folder>/data.pkl is not a "
                         "PyTorch checkpoint")
  return pickles[0][:-len("data.pkl")]


def load(path: str) -> Any:
  """The object saved in the `.pt` file at `path`, tensors as NumPy arrays."""
  where = os.path.abspath(path)
  if not os.path.isfile(where):
    raise FileNotFoundError(f"{where}: no such file (expected a PyTorch .pt checkpoint)")
  if not zipfile.is_zipfile(where):
    with open(where, "rb") as f:
      head = f.read(2)
    if head[:1] == b"\x80":
      raise TorchFileError(
          f"{where} is a legacy (pre-1.6, non-zip) PyTorch file, which is not read here: "
          "re-save it with a current PyTorch: torch.save(torch.load(OLD, weights_only=False), NEW)")
    raise TorchFileError(f"{where} is not a PyTorch checkpoint (expected the zip file that "
                         "torch.save writes)")
  try:
    with zipfile.ZipFile(where) as archive:
      prefix = _data_prefix(archive, where)
      names = set(archive.namelist())
      if f"{prefix}byteorder" in names:
        order = archive.read(f"{prefix}byteorder").decode(errors="replace").strip()
        if order != "little":
          raise TorchFileError(f"{where}: byte order {order!r}; only little-endian files "
                               "are read")
      return _Unpickler(archive.read(f"{prefix}data.pkl"), archive, prefix, where).load()
  except TorchFileError:
    raise
  except (zipfile.BadZipFile, pickle.UnpicklingError, EOFError, struct.error, ValueError,
          TypeError, AttributeError, IndexError, KeyError) as e:
    raise TorchFileError(f"{where}: damaged PyTorch checkpoint ({type(e).__name__}: "
                         f"{str(e)[:200]})") from None


# -- writing --------------------------------------------------------------------------------

class _Global:
  """A reference to a PyTorch global (pickled by name, never resolved here)."""
  _cache: Dict[Tuple[str, str], "_Global"] = {}

  def __new__(cls, module: str, name: str):
    key = (module, name)
    if key not in cls._cache:
      obj = super().__new__(cls)
      obj.module, obj.name = key
      cls._cache[key] = obj
    return cls._cache[key]

  def __call__(self, *args):  # pickle's REDUCE needs a callable; never called here
    raise TypeError(f"{self.module}.{self.name} is a PyTorch function")


_REBUILD = _Global("torch._utils", "_rebuild_tensor_v2")


class _Storage:
  def __init__(self, key: str, array: np.ndarray):
    self.key, self.array = key, array


class _Tensor:
  def __init__(self, storage: _Storage):
    self.storage = storage

  def __reduce_ex__(self, protocol):
    shape = self.storage.array.shape
    strides = tuple(s // self.storage.array.itemsize for s in self.storage.array.strides)
    return _REBUILD, (self.storage, 0, shape, strides, False, collections.OrderedDict())


class _Pickler(pickle._Pickler):  # the pure-Python pickler: its dispatch table is extensible
  dispatch = dict(pickle._Pickler.dispatch)

  def _save_global_ref(self, obj):
    self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
    self.memoize(obj)

  dispatch[_Global] = _save_global_ref

  def persistent_id(self, obj):
    if isinstance(obj, _Storage):
      array = obj.array
      return ("storage", _Global("torch", _STORAGE_NAMES[array.dtype]), obj.key, "cpu",
              int(array.size))
    return None


def _tensors(obj, storages: list):
  """`obj` with every NumPy array (and NumPy scalar) replaced by a tensor reference."""
  if isinstance(obj, np.generic):
    obj = np.asarray(obj)
  if isinstance(obj, np.ndarray):
    # np.array, not ascontiguousarray: that one turns a 0-d array into shape (1,).
    array = np.array(obj, dtype=obj.dtype.newbyteorder("<"), order="C")
    if array.dtype not in _STORAGE_NAMES:
      raise TypeError(f"cannot save an array of dtype {obj.dtype} as a PyTorch tensor")
    storage = _Storage(str(len(storages)), array)
    storages.append(storage)
    return _Tensor(storage)
  if isinstance(obj, collections.OrderedDict):
    return collections.OrderedDict((k, _tensors(v, storages)) for k, v in obj.items())
  if isinstance(obj, dict):
    return {k: _tensors(v, storages) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return type(obj)(_tensors(v, storages) for v in obj)
  if obj is None or isinstance(obj, (bool, int, float, str)):
    return obj
  raise TypeError(f"cannot save {type(obj).__name__} in a PyTorch checkpoint")


def _aligned(archive: zipfile.ZipFile, name: str, data: bytes) -> None:
  """Writes a stored (uncompressed) record whose data starts at a multiple of ALIGNMENT, with
  the padding in an extra field as torch.save does."""
  info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
  info.compress_type = zipfile.ZIP_STORED
  start = archive.fp.tell() + 30 + len(name.encode()) + 4  # local header + extra header
  pad = -start % ALIGNMENT
  info.extra = struct.pack("<HH", 0x4246, pad) + b"Z" * pad  # id "FB", as PyTorch writes
  archive.writestr(info, data)


def save(obj: Any, path: str, archive_name: str = "archive") -> str:
  """Writes `obj` (dicts, lists, numbers, strings, NumPy arrays) as a `.pt` file that
  `torch.load` reads (also with `weights_only=True`), atomically."""
  storages: list = []
  tree = _tensors(obj, storages)
  buffer = io.BytesIO()
  _Pickler(buffer, protocol=2).dump(tree)
  with io_lib.atomic_open(path, "wb") as f:
    with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as archive:
      _aligned(archive, f"{archive_name}/data.pkl", buffer.getvalue())
      _aligned(archive, f"{archive_name}/byteorder", b"little")
      for storage in storages:
        _aligned(archive, f"{archive_name}/data/{storage.key}", storage.array.tobytes())
      _aligned(archive, f"{archive_name}/version", FORMAT_VERSION)
      _aligned(archive, f"{archive_name}/.data/serialization_id", b"0" * 40)
  return os.path.abspath(path)


def is_mapping_of_arrays(obj: Any) -> bool:
  return isinstance(obj, Mapping) and bool(obj) and all(
      isinstance(k, str) and isinstance(v, np.ndarray) for k, v in obj.items())
