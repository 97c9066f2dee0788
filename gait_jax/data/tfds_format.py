"""A prepared pkl tree as a TensorFlow Datasets dataset (ArrayRecord: random access), and the
reader the loader and the embedding use instead of the tree (`data.format=tfds`).

The writer streams the sequences of each split straight into ArrayRecord shards and writes
the TFDS metadata beside them. TFDS's own `download_and_prepare` is not used: its shuffler
spills splits over ~1 GB through `tf.io.gfile`, which needs TensorFlow, and a sequence
dataset gains nothing from shuffling on disk (the sampler draws at random). Records are the
sequences in the pkl reader's order (partition order, then types, then views sorted), so the
same config draws the same batch at every step from either form, and a run can move between
them and resume.

Each record: `sils` uint8 [T, H, W] (zlib), `id`, `type`, `view`, and `modality_<k>` for a
sequence's further pkls (e.g. Gait3D's SMPL [T, 85]). The metadata holds the partition and an
index (id, type, view, frames of every record), so a split is listed without decoding it.
"""
from __future__ import annotations

import concurrent.futures
import os
import shutil
from typing import Dict, Iterable, List, Optional, Tuple

import numpy as np

from gait_jax.data.dataset import (SPLIT_KEYS, GaitDataset, SequenceInfo, SequenceSet,
                                   read_partition, select_ids)

NAME, VERSION = "gait_sequences", "1.0.0"
TEMPLATE = "{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}"
SHARD_BYTES = 256 << 20  # serialized bytes per shard before starting the next


def dataset_dir(root: str) -> str:
  return os.path.join(os.fspath(root), NAME, VERSION)


def _tfds():
  try:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ValueError(f"data.format=tfds needs tensorflow-datasets ({e}); it is in "
                     "requirements.txt: bash tools/quickstart.sh installs it") from None
  return tfds


def _features(frame_shape: Tuple[int, int], extra: List[Tuple[tuple, np.dtype]]):
  tfds = _tfds()
  spec = {"sils": tfds.features.Tensor(shape=(None,) + tuple(frame_shape), dtype=np.uint8,
                                       encoding="zlib"),
          "id": tfds.features.Text(), "type": tfds.features.Text(), "view": tfds.features.Text()}
  for k, (rest, dtype) in enumerate(extra, 1):
    spec[f"modality_{k}"] = tfds.features.Tensor(shape=(None,) + tuple(rest), dtype=dtype)
  return tfds.features.FeaturesDict(spec)


def _layout(dataset: GaitDataset) -> Tuple[Tuple[int, int], List[Tuple[tuple, np.dtype]]]:
  """The frame size and further modalities of a split, from its first sequence."""
  first = dataset.load(0)
  return tuple(first[0].shape[1:]), [(a.shape[1:], a.dtype) for a in first[1:]]


def write(root: str, partition: str, out: str, workers: int = 4, progress: bool = True) -> dict:
  """Writes `out/gait_sequences/1.0.0` from the pkl tree `root` and its partition; returns
  {split: {"sequences", "bytes", "shards"}}. An existing dataset there is refused (nothing
  already written is replaced); an interrupted write leaves only a `.partial` folder."""
  tfds = _tfds()
  final = dataset_dir(out)
  if os.path.exists(final):
    raise ValueError(f"{final} exists already: choose another --out or remove it first")
  parts = read_partition(partition)
  splits = {s: GaitDataset(root, parts, s, frame_size=None) for s in SPLIT_KEYS
            if parts.get(SPLIT_KEYS[s])}
  if not splits:
    raise ValueError(f"{partition}: TRAIN_SET and TEST_SET are both empty")
  layouts = {s: _layout(d) for s, d in splits.items()}
  shape, extra = next(iter(layouts.values()))
  for s, lay in layouts.items():
    if lay[0] != shape or [(r, str(t)) for r, t in lay[1]] != [(r, str(t)) for r, t in extra]:
      raise ValueError(f"{root}: the {s} split's sequences have frames {lay[0]} and modalities "
                       f"{lay[1]}, the others {shape} and {extra}: one dataset needs one layout")
  features = _features(shape, extra)
  serializer = tfds.core.example_serializer.ExampleSerializer(features.get_serialized_info())

  def encode(dataset, i) -> Tuple[bytes, int]:
    arrays, info = dataset.load(i), dataset.sequences[i]
    if tuple(arrays[0].shape[1:]) != tuple(shape) or len(arrays) != 1 + len(extra):
      raise ValueError(f"{os.path.dirname(info.files[0])}: frames {arrays[0].shape[1:]} with "
                       f"{len(arrays) - 1} further modalities; the dataset's first sequence "
                       f"has {shape} and {len(extra)}")
    example = {"sils": arrays[0], "id": info.id, "type": info.type, "view": info.view}
    example.update({f"modality_{k}": a for k, a in enumerate(arrays[1:], 1)})
    return serializer.serialize_example(features.encode_example(example)), len(arrays[0])

  partial = final + ".partial"
  shutil.rmtree(partial, ignore_errors=True)
  os.makedirs(partial)
  summary, split_infos, index, frames = {}, [], {}, {}
  for split, dataset in splits.items():
    with concurrent.futures.ThreadPoolExecutor(max(1, workers)) as pool:
      # map keeps the order; pickle and zlib release the GIL, so threads overlap the work.
      records = pool.map(lambda i, d=dataset: encode(d, i), range(len(dataset)))
      shards, frames[split] = _write_shards(records, len(dataset), split, partial, progress)
    split_infos.append(tfds.core.SplitInfo(
        name=split, shard_lengths=[n for _, n, _ in shards],
        num_bytes=sum(b for _, _, b in shards),
        filename_template=tfds.core.ShardedFileTemplate(
            data_dir=final, template=TEMPLATE, dataset_name=NAME, split=split,
            filetype_suffix="array_record")))
    for k, (path, _, _) in enumerate(shards):  # the final names need the shard count
      os.replace(path, os.path.join(
          partial, f"{NAME}-{split}.array_record-{k:05d}-of-{len(shards):05d}"))
    index[split] = [[s.id, s.type, s.view] for s in dataset.sequences]
    summary[split] = {"sequences": len(dataset), "bytes": sum(b for _, _, b in shards),
                      "shards": len(shards)}
  tfds.folder_dataset.write_metadata(
      data_dir=partial, features=features, split_infos=split_infos, filename_template=TEMPLATE,
      check_data=False,  # its check reads back through as_dataset, which needs TensorFlow
      description="OpenGait silhouette sequences written by gait_jax tools/to_tfds.py",
      metadata=tfds.core.MetadataDict(partition=parts, index=index, frames=frames,
                                      source=os.path.abspath(root)))
  os.replace(partial, final)
  return summary


def _write_shards(records, count: int, split: str, folder: str, progress: bool):
  """Writes (record, frames) pairs in order into shards of about SHARD_BYTES; returns
  ([(path, records, bytes)], [frames of each record])."""
  from array_record.python import array_record_module  # pylint: disable=g-import-not-at-top
  bar = None
  if progress:
    from tqdm import tqdm  # pylint: disable=g-import-not-at-top
    bar = tqdm(total=count, unit="seq", desc=f"tfds {split}")
  shards, frames, writer = [], [], None
  for record, length in records:
    if writer is None:
      shards.append([os.path.join(folder, f"{split}-{len(shards):05d}.tmp"), 0, 0])
      writer = array_record_module.ArrayRecordWriter(shards[-1][0], "group_size:1")
    writer.write(record)
    frames.append(length)
    shards[-1][1] += 1
    shards[-1][2] += len(record)
    if shards[-1][2] >= SHARD_BYTES:
      writer.close()
      writer = None
    if bar is not None:
      bar.update()
  if writer is not None:
    writer.close()
  if bar is not None:
    bar.close()
  return [tuple(s) for s in shards], frames


class TfdsDataset(SequenceSet):
  """One split of a dataset `write` made, read through `tfds.data_source` (no TensorFlow).

  The same selection as GaitDataset (partition order, num_train, ids) over the partition
  stored in the dataset; `partition`, when given, must equal it (a config written for the
  pkl tree runs unchanged)."""

  def __init__(self, root, split: str = "train", num_train: int = 0, cache: bool = False,
               ids: Optional[Iterable[str]] = None,
               frame_size: Optional[Tuple[int, int]] = (64, 64), partition=None):
    tfds = _tfds()
    self.root, self.split = os.fspath(root), split
    self.frame_size, self.cache = frame_size, bool(cache)
    where = dataset_dir(self.root)
    if not os.path.isfile(os.path.join(where, "dataset_info.json")):
      raise ValueError(f"data.root={self.root} (data.format=tfds) holds no dataset: expected "
                       f"{where}/dataset_info.json, as tools/to_tfds.py --out {self.root} writes")
    info = tfds.builder_from_directory(where).info
    meta = info.metadata
    self._modalities = [k for k in sorted(info.features.keys()) if k.startswith("modality_")]
    self.partition = {k: list(v) for k, v in meta["partition"].items()}
    if partition:
      given = partition if isinstance(partition, dict) else read_partition(partition)
      for key in SPLIT_KEYS.values():
        if list(given.get(key, [])) != self.partition.get(key, []):
          raise ValueError(f"data.partition={partition if isinstance(partition, str) else '(dict)'}"
                           f": its {key} differs from the one stored in {where} (leave "
                           "data.partition empty with data.format=tfds)")
    records = meta["index"].get(split, [])
    frames = meta["frames"].get(split, [])
    by_id: Dict[str, List[int]] = {}
    for k, (pid, _, _) in enumerate(records):
      by_id.setdefault(pid, []).append(k)
    present = select_ids(self.partition, split, lambda i: i in by_id, where, num_train, ids)
    self._records = [k for pid in present for k in by_id[pid]]
    self._source = tfds.data_source(NAME, data_dir=self.root, split=split)
    sequences = [SequenceInfo(*records[k], (f"{where}[{split}][{k}]",)) for k in self._records]
    self._index(present, sequences)
    self._lengths = np.asarray([frames[k] for k in self._records], np.int32)

  def _read(self, i: int) -> List[np.ndarray]:
    record = self._source[self._records[i]]
    info = self.sequences[i]
    arrays = [np.asarray(record["sils"])]
    arrays += [np.asarray(record[k]) for k in self._modalities]
    if record["id"].decode() != info.id or arrays[0].shape[0] == 0:
      raise ValueError(f"{info.files[0]}: record of {record['id'].decode()!r} with "
                       f"{arrays[0].shape[0]} frames; the index says {info.id!r}")
    if self.frame_size is not None and tuple(arrays[0].shape[1:]) != tuple(self.frame_size):
      raise ValueError(f"{info.files[0]}: frames of {arrays[0].shape[1:]}, expected "
                       f"{tuple(self.frame_size)}")
    return arrays
