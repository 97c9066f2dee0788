"""Reads a pickle a user handed over without running any of its code.

`pickle.load` resolves every global a file names and calls it (`os.system` included), so a
crafted `.pkl` runs code the moment it is read. OpenGait's pkls hold NumPy arrays (a silhouette
sequence, Gait3D's SMPL parameters), sometimes in a list, tuple or dict. The unpickler here
resolves only the names NumPy writes for those — the array, dtype and scalar rebuilders, and
`_codecs.encode` (bytes in protocol-2 files) — and refuses every other global with the file
named. What it returns is then checked to hold nothing but arrays of plain dtypes (bool,
integers, floats), plain scalars and strings, in lists, tuples and dicts.

Hand-written because neither pickle nor NumPy offers an allow-list reader (`np.load` refuses
pickles outright, which would refuse every OpenGait pkl).
"""
from __future__ import annotations

import collections
import io
import pickle
from typing import Any

import numpy as np

try:  # NumPy 2 names its internals numpy._core; files written by NumPy 1 say numpy.core
  from numpy._core import multiarray as _multiarray
  from numpy._core import numeric as _numeric
except ImportError:  # pragma: no cover - NumPy 1
  from numpy.core import multiarray as _multiarray  # type: ignore
  from numpy.core import numeric as _numeric  # type: ignore

_ALLOWED = {
    ("multiarray", "_reconstruct"): _multiarray._reconstruct,
    ("multiarray", "scalar"): _multiarray.scalar,
    ("numeric", "_frombuffer"): _numeric._frombuffer,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): __import__("codecs").encode,
    ("collections", "OrderedDict"): collections.OrderedDict,
}
# Where each allowed name may come from: NumPy 1 and 2 spell their modules differently.
_MODULES = {"numpy.core.multiarray": "multiarray", "numpy._core.multiarray": "multiarray",
            "numpy.core.numeric": "numeric", "numpy._core.numeric": "numeric",
            "numpy": "numpy", "_codecs": "_codecs", "collections": "collections"}
PLAIN_KINDS = "biuf"  # bool, signed and unsigned integers, floats
_MAX_DEPTH = 8


class UnsafePickle(ValueError):
  """A pickle that names something other than plain arrays; the message names the file."""


class _Unpickler(pickle.Unpickler):

  def __init__(self, data: bytes, where: str):
    super().__init__(io.BytesIO(data))
    self.where = where

  def find_class(self, module: str, name: str):
    found = _ALLOWED.get((_MODULES.get(module, ""), name))
    if found is None:
      raise UnsafePickle(f"{self.where}: refused: the pickle asks for {module}.{name}, which is "
                         "not part of a silhouette file (only NumPy arrays of plain dtypes, in "
                         "lists, tuples or dicts, are read; a pickle can run code, so nothing "
                         "else is)")
    return found

  def persistent_load(self, pid):
    raise UnsafePickle(f"{self.where}: refused: the pickle refers to external objects")


def _check(obj: Any, where: str, depth: int = 0) -> None:
  if depth > _MAX_DEPTH:
    raise UnsafePickle(f"{where}: refused: nested deeper than {_MAX_DEPTH} levels")
  if isinstance(obj, np.ndarray) or isinstance(obj, np.generic):
    if obj.dtype.kind not in PLAIN_KINDS or obj.dtype.fields is not None:
      raise UnsafePickle(f"{where}: refused: an array of dtype {obj.dtype} (expected bool, "
                         "integer or float arrays)")
  elif isinstance(obj, (list, tuple)):
    for v in obj:
      _check(v, where, depth + 1)
  elif isinstance(obj, dict):
    for k, v in obj.items():
      if not isinstance(k, (str, int)):
        raise UnsafePickle(f"{where}: refused: a dict key of type {type(k).__name__}")
      _check(v, where, depth + 1)
  elif not (obj is None or isinstance(obj, (bool, int, float, str, bytes))):
    raise UnsafePickle(f"{where}: refused: holds a {type(obj).__name__} (expected NumPy arrays)")


def _load(data: bytes, where: str) -> Any:
  try:
    return _Unpickler(data, where).load()
  except UnsafePickle:
    raise
  except Exception as e:  # pickle raises many types for damaged files
    raise ValueError(f"{where}: cannot unpickle ({type(e).__name__}: {e})") from None


def read_bytes(data: bytes, where: str) -> Any:
  """The object of pickle bytes `data` (from `where`, named in errors), read without running
  code. Damaged bytes are a ValueError; anything but plain arrays an UnsafePickle."""
  obj = _load(data, where)
  _check(obj, where)
  return obj


def read_object_array(data: bytes, where: str) -> Any:
  """The items of a pickled NumPy object array (what `np.save` writes for dicts, e.g. the
  per-frame `.npz` files of Gait3D's SMPL release), read without running code: the array's
  items must be what `read_bytes` accepts. A 0-d array gives its one item, others a list."""
  obj = _load(data, where)
  if isinstance(obj, np.ndarray) and obj.dtype == object:
    obj = obj.item() if obj.ndim == 0 else obj.tolist()
  _check(obj, where)
  return obj


def read(path: str) -> Any:
  """The object pickled in the file at `path`, read without running code (see `read_bytes`)."""
  try:
    with open(path, "rb") as f:
      data = f.read()
  except OSError as e:
    raise ValueError(f"{path}: cannot be read ({e.strerror or e})") from None
  return read_bytes(data, str(path))
