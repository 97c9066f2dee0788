"""The one place a split of the configured data is opened, in either stored form:
`data.format="pkl"` (the OpenGait tree at data.root with the partition at data.partition) or
"tfds" (the dataset tools/to_tfds.py wrote under data.root, its partition inside)."""
from __future__ import annotations

from gait_jax.data.dataset import GaitDataset, SequenceSet

FORMATS = ("pkl", "tfds")


def open_split(data_cfg, split: str, root: str = "", partition="", **kwargs) -> SequenceSet:
  """Split `split` of `root` (default data.root) in data.format; kwargs as GaitDataset's
  (num_train, cache, ids, frame_size). `partition` (default data.partition; a path or dict)
  is required for pkl; with tfds it may be empty and, when given, must match the stored one."""
  root = root or data_cfg.root
  partition = partition or data_cfg.partition
  if data_cfg.format == "tfds":
    if not root:
      raise ValueError("data.format=tfds: set data.root to the folder tools/to_tfds.py --out "
                       "wrote")
    from gait_jax.data import tfds_format  # pylint: disable=g-import-not-at-top
    return tfds_format.TfdsDataset(root, split, partition=partition, **kwargs)
  if not root or not partition:
    raise ValueError("set data.root and data.partition to the silhouette root and its "
                     f"partition JSON (got root={root!r}, partition={partition!r}), or "
                     "data.format=tfds with data.root")
  return GaitDataset(root, partition, split, **kwargs)


