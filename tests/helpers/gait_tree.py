"""Test helper: tiny OpenGait trees of random 0/255 uint8 silhouettes written to a tmp dir."""
import json
import os
import pickle

import numpy as np


def write_pkl(path, obj):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "wb") as f:
    pickle.dump(obj, f)


def random_sils(rng, frames, h=64, w=64):
  return ((rng.random((frames, h, w)) < 0.3) * 255).astype(np.uint8)


def make_tree(base, ids=("001", "002", "003"), types=("nm-01", "nm-02"), views=("000", "090"),
              frames=8, train=None, test=None, seed=0, name="tree"):
  """Writes `<base>/<name>/<id>/<type>/<view>/<view>.pkl` and `<base>/<name>.json`.

  `frames` is an int or a function (id, type, view) -> frame count. TRAIN_SET defaults to all
  ids, TEST_SET to none. Returns (root, partition_path).
  """
  rng = np.random.default_rng(seed)
  root = os.path.join(str(base), name)
  for pid in ids:
    for typ in types:
      for view in views:
        t = frames(pid, typ, view) if callable(frames) else frames
        write_pkl(os.path.join(root, pid, typ, view, f"{view}.pkl"), random_sils(rng, t))
  partition = os.path.join(str(base), f"{name}.json")
  with open(partition, "w") as f:
    json.dump({"TRAIN_SET": list(ids if train is None else train),
               "TEST_SET": list([] if test is None else test)}, f)
  return root, partition
