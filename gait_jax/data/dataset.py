"""Reads the OpenGait pkl tree `<root>/<id>/<type>/<view>/*.pkl` and its partition JSON.

The sequence order is the reference's: ids in partition-list order (kept only when their
directory exists), then types sorted, then views sorted; every `.pkl` of a view directory is
one input modality, in sorted file-name order. Class index k is the k-th id of the sorted
`label_set`, so cross-entropy classes match the reference.
"""
from __future__ import annotations

import concurrent.futures
import json
import logging
import os
import threading
from typing import Dict, Iterable, List, NamedTuple, Optional, Tuple

import numpy as np

from gait_jax.common import safe_pickle

log = logging.getLogger(__name__)

SPLIT_KEYS = {"train": "TRAIN_SET", "test": "TEST_SET"}


class SequenceInfo(NamedTuple):
  """One sequence: a `<view>` directory and its pkl files (one per modality)."""
  id: str
  type: str
  view: str
  files: Tuple[str, ...]

  @property
  def name(self) -> str:
    return f"{self.id}/{self.type}/{self.view}"


def read_partition(path) -> Dict[str, List[str]]:
  """The partition JSON as `{"TRAIN_SET": [...], "TEST_SET": [...], ["PROBE_SET": [...]]}`.

  Raises a ValueError naming the file and the key when the file is missing, is not JSON,
  or a required key is absent or not a list of strings.
  """
  path = os.fspath(path)
  if not path:
    raise ValueError("data.partition is empty: expected the path of a partition JSON file "
                     "with TRAIN_SET and TEST_SET lists")
  try:
    with open(path) as f:
      data = json.load(f)
  except FileNotFoundError:
    raise ValueError(f"partition file {path} does not exist") from None
  except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
    raise ValueError(f"partition file {path} is not readable JSON: {e}") from None
  if not isinstance(data, dict):
    raise ValueError(f"partition file {path}: expected a JSON object with TRAIN_SET and "
                     f"TEST_SET, got {type(data).__name__}")
  out = {}
  for key in ("TRAIN_SET", "TEST_SET", "PROBE_SET"):
    if key not in data:
      if key == "PROBE_SET":
        continue
      raise ValueError(f"partition file {path} has no key {key!r} (keys: {sorted(data)})")
    value = data[key]
    if not isinstance(value, list) or not all(isinstance(v, (str, int)) for v in value):
      raise ValueError(f"partition file {path}: {key} must be a list of id strings")
    # Ids are directory names; a JSON number would never match one, so be explicit.
    out[key] = [str(v) for v in value]
  return out


def load_pkl(path: str, frame_size: Optional[Tuple[int, int]] = (64, 64)) -> np.ndarray:
  """One modality of a sequence: a uint8 `[T, H, W]` array, T > 0, checked.

  `frame_size=(H, W)` also checks the frame size (None accepts any `[T, H, W]`).
  """
  data = safe_pickle.read(path)
  if not isinstance(data, np.ndarray):
    raise ValueError(f"{path}: expected a pickled numpy uint8 array [T, H, W], "
                     f"got {type(data).__name__}")
  if data.dtype != np.uint8:
    raise ValueError(f"{path}: expected dtype uint8 (silhouettes 0..255), got {data.dtype}")
  if data.ndim != 3:
    raise ValueError(f"{path}: expected shape [T, H, W] (e.g. [T, 64, 64]), got {data.shape}")
  if data.shape[0] == 0:
    raise ValueError(f"{path}: empty sequence (0 frames)")
  if data.max() == 1:
    # After the /255 of the transforms such frames are ~0: the model would train on blanks.
    raise ValueError(f"{path}: silhouette values are 0/1; expected 0..255 (foreground 255) as "
                     "OpenGait pkls store them: multiply by 255, or re-run tools/pretreat.py")
  if frame_size is not None and tuple(data.shape[1:]) != tuple(frame_size):
    raise ValueError(f"{path}: expected frames of {frame_size[0]}x{frame_size[1]} "
                     f"([T, {frame_size[0]}, {frame_size[1]}]), got shape {data.shape}; "
                     "re-run tools/pretreat.py or pass frame_size=None")
  return data


def load_modality(path: str) -> np.ndarray:
  """A further modality of a sequence (e.g. Gait3D's SMPL parameters, float [T, 85]): an
  array with one row per frame, T > 0."""
  data = safe_pickle.read(path)
  if not isinstance(data, np.ndarray) or data.ndim < 1 or data.shape[0] == 0:
    raise ValueError(f"{path}: expected a pickled numpy array with one row per frame "
                     f"[T, ...], got {getattr(data, 'shape', type(data).__name__)}")
  return data


def _subdirs(path: str) -> List[str]:
  return sorted(e.name for e in os.scandir(path) if e.is_dir())


def select_ids(partition: Dict[str, List[str]], split: str, available, where: str,
               num_train: int = 0, ids: Optional[Iterable[str]] = None,
               source: str = "the partition") -> List[str]:
  """The ids of `split` a dataset reads: the partition's list in its order (duplicates
  dropped), kept to those `available(id)` says are stored at `where`, the first `num_train`
  of them (train split), then restricted to `ids` (each must be among them)."""
  if split not in SPLIT_KEYS:
    raise ValueError(f"split={split!r}: expected one of {sorted(SPLIT_KEYS)}")
  key = SPLIT_KEYS[split]
  if key not in partition:
    raise ValueError(f"partition has no {key} (keys: {sorted(partition)})")
  listed = list(dict.fromkeys(partition[key]))  # keep order, drop duplicates
  if not listed:
    raise ValueError(f"{source}: {key} is empty (expected a list of ids)")
  present = [i for i in listed if available(i)]
  if len(present) < len(listed):
    present_set = set(present)
    missing = [i for i in listed if i not in present_set]
    log.warning("%s: %d of %d %s ids are not stored there (e.g. %s); using the %d present",
                where, len(missing), len(listed), key, ", ".join(missing[:3]), len(present))
  if num_train and split == "train":
    present = present[:int(num_train)]
  if ids is not None:
    wanted = [str(i) for i in ids]
    unknown = sorted(set(wanted) - set(present))
    if unknown:
      raise ValueError(f"ids={unknown[:5]}{'...' if len(unknown) > 5 else ''} are not "
                       f"among the {len(present)} {key} ids present under {where}")
    wanted_set = set(wanted)
    present = [i for i in present if i in wanted_set]
  if not present:
    raise ValueError(f"no {key} ids of the partition exist under {where}")
  return present


class SequenceSet:
  """The sequences of one split, whatever stores them: the interface the loader, the
  embedding and the search read (`sequences`, `labels`, `label_set`, `indices_by_label`,
  `load`, `lengths`). Subclasses list the sequences and read one (`_read`)."""

  root: str
  split: str
  frame_size: Optional[Tuple[int, int]]
  cache: bool

  def _index(self, present: List[str], sequences: List[SequenceInfo]) -> None:
    self.sequences = sequences
    self.label_set: List[str] = sorted(set(present))
    index = {pid: k for k, pid in enumerate(self.label_set)}
    self.labels = np.asarray([index[s.id] for s in self.sequences], np.int32)
    self.indices_by_label: Dict[str, List[int]] = {pid: [] for pid in self.label_set}
    for i, s in enumerate(self.sequences):
      self.indices_by_label[s.id].append(i)
    self._cache: Dict[int, List[np.ndarray]] = {}
    self._lengths: Optional[np.ndarray] = None
    self._lock = threading.Lock()

  def __len__(self) -> int:
    return len(self.sequences)

  def __repr__(self) -> str:
    return (f"{type(self).__name__}({self.root!r}, split={self.split!r}: "
            f"{len(self.label_set)} ids, "
            f"{len(self)} sequences)")

  @property
  def types(self) -> np.ndarray:
    return np.asarray([s.type for s in self.sequences], dtype=np.str_)

  @property
  def views(self) -> np.ndarray:
    return np.asarray([s.view for s in self.sequences], dtype=np.str_)

  @property
  def ids(self) -> np.ndarray:
    return np.asarray([s.id for s in self.sequences], dtype=np.str_)

  def load(self, i: int) -> List[np.ndarray]:
    """The modalities of sequence i, all of the same T > 0: the first (sorted file name) is the
    silhouettes, uint8 `[T, H, W]`; others (e.g. `smpls-*.pkl` after `sils-*.pkl`) any array
    with T rows.

    Safe to call from several threads; with `cache=True` each sequence is read once.
    The returned arrays are shared with the cache: treat them as read-only.
    """
    if self.cache:
      hit = self._cache.get(i)
      if hit is not None:
        return hit
    arrays = self._read(i)
    if self.cache:
      for a in arrays:
        a.setflags(write=False)
      with self._lock:
        self._cache[i] = arrays
    return arrays

  def lengths(self) -> np.ndarray:
    """Frame count of every sequence, int32 `[N]` (loads each sequence once; memoised)."""
    if self._lengths is None:
      # Reading is I/O- and unpickling-bound; a few threads overlap the file reads.
      with concurrent.futures.ThreadPoolExecutor(4) as pool:
        counts = list(pool.map(lambda i: self.load(i)[0].shape[0], range(len(self))))
      self._lengths = np.asarray(counts, np.int32)
    return self._lengths

  def _read(self, i: int) -> List[np.ndarray]:
    raise NotImplementedError


class GaitDataset(SequenceSet):
  """The sequences of one split of an OpenGait pkl tree.

  Args:
    root: the dataset root `<root>/<id>/<type>/<view>/*.pkl`.
    partition: a partition JSON path, or the dict `read_partition` returns.
    split: "train" (TRAIN_SET) or "test" (TEST_SET).
    num_train: keep only the first N TRAIN_SET ids present on disk (0 = all; train split only).
    cache: keep every loaded sequence in memory (loaded lazily, once).
    ids: restrict to these ids (e.g. search's held-out validation ids); each must be in the split.
    frame_size: expected `(H, W)` of the frames; None accepts any size.
  """

  def __init__(self, root, partition, split: str = "train", num_train: int = 0,
               cache: bool = False, ids: Optional[Iterable[str]] = None,
               frame_size: Optional[Tuple[int, int]] = (64, 64)):
    self.root = os.fspath(root)
    if not os.path.isdir(self.root):
      raise ValueError(f"dataset root {self.root} is not a directory")
    self.split = split
    self.partition = partition if isinstance(partition, dict) else read_partition(partition)
    self.frame_size = frame_size
    self.cache = bool(cache)
    source = partition if isinstance(partition, (str, os.PathLike)) else "the partition"
    present = select_ids(self.partition, split,
                         lambda i: os.path.isdir(os.path.join(self.root, i)), self.root,
                         num_train, ids, source)
    sequences: List[SequenceInfo] = []
    for pid in present:
      id_dir = os.path.join(self.root, pid)
      before = len(sequences)
      for typ in _subdirs(id_dir):
        for view in _subdirs(os.path.join(id_dir, typ)):
          seq_dir = os.path.join(id_dir, typ, view)
          files = sorted(f for f in os.listdir(seq_dir) if f.endswith(".pkl"))
          if files:
            sequences.append(SequenceInfo(
                pid, typ, view, tuple(os.path.join(seq_dir, f) for f in files)))
      if len(sequences) == before:
        raise ValueError(f"{id_dir}: id {pid!r} has no sequences (expected "
                         f"{id_dir}/<type>/<view>/*.pkl)")
    self._index(present, sequences)

  def _read(self, i: int) -> List[np.ndarray]:
    info = self.sequences[i]
    arrays = [load_pkl(info.files[0], self.frame_size)]
    arrays += [load_modality(f) for f in info.files[1:]]
    if len({a.shape[0] for a in arrays}) > 1:
      sizes = ", ".join(f"{os.path.basename(f)}: {a.shape[0]}" for f, a in zip(info.files, arrays))
      raise ValueError(f"{os.path.dirname(info.files[0])}: modalities have different frame "
                       f"counts ({sizes}); every pkl of a sequence must have the same length")
    return arrays
