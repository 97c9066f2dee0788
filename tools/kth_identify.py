#!/usr/bin/env python
"""Enrol / identify on the real KTH walkers, from PNG folders as a user would have them.

  python tools/kth_identify.py --model runs/kth --out runs/kth_identify \
      [--config configs/kth_walking.py] [--holdout 3] [--flip]

The TEST_SET people's pkls are written as PNG folders (`--out/png`); the gallery is pass
`d4-00` of each test id, the probes every other test sequence (the KTH-walk split).
Closed set: all 13 ids enrolled, top-1 accuracy per probe group (d4 same conditions, d1
outdoor, d2 zoom, d3 other clothes). Open set: the last `--holdout` test ids are not enrolled;
with `identify.threshold=auto` the false-accept rate is the share of those strangers' probes
given an enrolled name, and the enrolled people's probes are counted as correct, wrong or
rejected. Writes `--out/kth_identify.json` and prints the table.
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _write_pngs(root, partition, out):
  import cv2  # noqa: E402
  from gait_jax.data import dataset as dataset_lib  # noqa: E402
  test_ids = dataset_lib.read_partition(partition)["TEST_SET"]
  for pid in test_ids:
    for seq in sorted(os.listdir(os.path.join(root, pid))):
      for view in sorted(os.listdir(os.path.join(root, pid, seq))):
        pkl = sorted(f for f in os.listdir(os.path.join(root, pid, seq, view))
                     if f.endswith(".pkl"))[0]
        frames = dataset_lib.load_pkl(os.path.join(root, pid, seq, view, pkl))
        folder = (os.path.join(out, "gallery", pid, seq) if seq == "d4-00"
                  else os.path.join(out, "probes", f"{pid}_{seq}"))
        os.makedirs(folder, exist_ok=True)
        for i, f in enumerate(frames):
          cv2.imwrite(os.path.join(folder, f"{i:04d}.png"), f)
  return sorted(test_ids)


def _identify(config, workdir, gallery, probes):
  from gait_jax.identify import mode  # noqa: E402
  c = config.unlock()
  c.identify.gallery, c.identify.probes = gallery, probes
  mode.run_enroll(c.lock(), workdir)
  mode.run_identify(c, workdir)
  return mode.read_report(workdir)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--model", required=True, help="workdir of a trained fixed-path model")
  parser.add_argument("--out", required=True)
  parser.add_argument("--config", default="configs/kth_walking.py")
  parser.add_argument("--holdout", type=int, default=3)
  parser.add_argument("--flip", action="store_true", help="embed.flip (direction-invariant)")
  args = parser.parse_args(argv)
  import importlib.util  # noqa: E402
  from gait_jax.common import console  # noqa: E402
  console.quiet_libraries()
  spec = importlib.util.spec_from_file_location("cfg", args.config)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config().unlock()
  config.train.init_from = args.model
  config.embed.flip = bool(args.flip)
  config.identify.top_k = 5
  png = os.path.join(args.out, "png")
  ids = _write_pngs(config.data.root, config.data.partition, png)
  closed = _identify(config, os.path.join(args.out, "closed"), os.path.join(png, "gallery"),
                     os.path.join(png, "probes"))
  groups = {}
  for p in closed["probes"]:
    pid, seq = p["probe"].split("_", 1)
    groups.setdefault(seq[:2], []).append(p["top"][0]["id"] == pid)
  known = set(ids[:-args.holdout])
  partial = os.path.join(args.out, "gallery_open")
  for pid in known:
    src = os.path.join(png, "gallery", pid)
    dest = os.path.join(partial, pid)
    if not os.path.exists(dest):
      import shutil  # noqa: E402
      shutil.copytree(src, dest)
  opened = _identify(config, os.path.join(args.out, "open"), partial,
                     os.path.join(png, "probes"))
  strangers = [p for p in opened["probes"] if p["probe"].split("_")[0] not in known]
  members = [p for p in opened["probes"] if p["probe"].split("_")[0] in known]
  result = {
      "closed_set_top1": {g: 100 * float(np.mean(v)) for g, v in sorted(groups.items())},
      "closed_set_top1_all": 100 * float(np.mean([x for v in groups.values() for x in v])),
      "closed_set_probes": {g: len(v) for g, v in sorted(groups.items())},
      "open_set": {
          "threshold": opened["threshold"], "held_out_ids": sorted(set(ids) - known),
          "false_accept_rate": 100 * float(np.mean([p["decision"] != "unknown"
                                                   for p in strangers])),
          "stranger_probes": len(strangers), "member_probes": len(members),
          "members_correct": 100 * float(np.mean([p["decision"] == p["probe"].split("_")[0]
                                                 for p in members])),
          "members_rejected": 100 * float(np.mean([p["decision"] == "unknown"
                                                  for p in members]))}}
  with open(os.path.join(args.out, "kth_identify.json"), "w") as f:
    json.dump(result, f, indent=1)
  print(json.dumps(result, indent=1))


if __name__ == "__main__":
  main()
