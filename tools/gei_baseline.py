#!/usr/bin/env python
"""Gait-energy-image + nearest-neighbour baseline under a benchmark protocol.

  python tools/gei_baseline.py --root DIR --partition FILE --protocol casia_b|kth_walk|NAME
      [--split test] [--metric euc] [--out metrics.json]

Each sequence of the split becomes one gait-energy image: the mean of its frames cut to
64×44 (10 columns off each side, as base_sil_cutting), scaled to [0, 1]. The GEIs go to
the registered protocol (`gait_jax.evaluation.protocols`) as embeddings [N, 64*44, 1], so
the ranking, tie rule and reported figures are exactly those a trained model gets (Euclidean
distance by default). `kth_walk` is the KTH-walk protocol of ../shared/data/README.md (gallery
`d4-00`, probe groups d4/d1/d2/d3); `custom` takes --custom-gallery/--custom-probes.
"""
import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gait_jax import config as config_lib  # noqa: E402
from gait_jax.data.dataset import GaitDataset  # noqa: E402
from gait_jax.evaluation import protocols  # noqa: E402

CUT = 10  # columns removed on each side: 64 -> 44


def gei(seq: np.ndarray) -> np.ndarray:
  """uint8 [T, 64, 64] -> float32 [64, 44] mean silhouette in [0, 1]."""
  seq = np.asarray(seq)
  if seq.ndim != 3 or seq.shape[0] == 0 or seq.shape[2] <= 2 * CUT:
    raise ValueError(f"expected a silhouette sequence [T>0, H, W>{2 * CUT}], got {seq.shape}")
  return (seq[:, :, CUT:seq.shape[2] - CUT].astype(np.float32) / 255.0).mean(0)


def dataset_geis(dataset, flip: bool = False) -> dict:
  """GEIs of every sequence of a GaitDataset as protocol inputs. `flip`: the mean of each
  GEI and its mirror image, so both walking directions give the same GEI (as `embed.flip`
  does for the learned model)."""
  geis = [gei(dataset.load(i)[0]) for i in range(len(dataset))]
  if flip:
    geis = [(g + g[:, ::-1]) / 2 for g in geis]
  emb = np.stack([g.reshape(-1) for g in geis])
  return {"emb": emb[:, :, None].astype(np.float32), "labels": dataset.ids,
          "types": dataset.types, "views": dataset.views}


def eval_config(protocol: str, metric: str = "euc", custom_gallery: str = "",
                custom_probes: str = ""):
  """The evaluate config of a protocol name of this tool."""
  cfg = config_lib.base_config().evaluate
  cfg.metric = metric
  cfg.custom_gallery, cfg.custom_probes = custom_gallery, custom_probes
  cfg.protocol = protocol
  return cfg


def run(root: str, partition: str, protocol: str, split: str = "test", metric: str = "euc",
        custom_gallery: str = "", custom_probes: str = "", flip: bool = False):
  """-> (metrics dict, table text, number of sequences)."""
  cfg = eval_config(protocol, metric, custom_gallery, custom_probes)
  settings = {"partition": partition} if protocol == "gait3d" else {}
  dataset = GaitDataset(root, partition, split=split)
  g = dataset_geis(dataset, flip)
  metrics, table = protocols.evaluate(protocols.build(protocol, cfg, **settings), g["emb"],
                                      g["labels"], g["types"], g["views"])
  return metrics, table, len(dataset)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--root", required=True, help="OpenGait pkl tree <root>/<id>/<type>/<view>")
  parser.add_argument("--partition", required=True, help="partition JSON (TRAIN_SET/TEST_SET)")
  parser.add_argument("--protocol", required=True,
                      help=f"an evaluate.protocol name ({', '.join(protocols.NAMES)})")
  parser.add_argument("--split", default="test", choices=("train", "test"))
  parser.add_argument("--metric", default="euc", choices=("euc", "cos"))
  parser.add_argument("--custom-gallery", default="", help="custom protocol: globs on type/view")
  parser.add_argument("--custom-probes", default="", help="custom protocol: 'name=glob;...'")
  parser.add_argument("--flip", action="store_true",
                      help="direction-invariant GEIs: each the mean of the GEI and its mirror")
  parser.add_argument("--out", "--json", dest="out", default="",
                      help="also write the metrics (flat {name: value}) to this JSON file")
  args = parser.parse_args(argv)
  if args.protocol not in protocols.NAMES:
    parser.error(f"--protocol {args.protocol!r}: expected one of {', '.join(protocols.NAMES)}")
  if (args.custom_gallery or args.custom_probes) and args.protocol != "custom":
    parser.error("--custom-gallery / --custom-probes choose the groups of --protocol custom")
  start = time.time()
  metrics, table, n = run(args.root, args.partition, args.protocol, args.split, args.metric,
                          args.custom_gallery, args.custom_probes, args.flip)
  print(f"GEI{' (flip-aware)' if args.flip else ''} + 1-NN ({args.metric}), {n} {args.split} "
        f"sequences of {args.root}, "
        f"protocol {args.protocol} ({time.time() - start:.1f} s)")
  print(table)
  if args.out:
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
      json.dump(metrics, f, indent=1, sort_keys=True)
  return metrics


if __name__ == "__main__":
  main()
