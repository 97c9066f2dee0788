#!/usr/bin/env python
"""A training workdir's newest step as a shippable model folder, and its provenance.

  python tools/ship_checkpoint.py --workdir runs/pretrained/train --out pretrained/walkers
  python tools/ship_checkpoint.py --workdir runs/pretrained/train --out pretrained/walkers \\
      --provenance runs/pretrained      # also writes OUT/PROVENANCE.md from that run
  python tools/ship_checkpoint.py --out runs/pretrained_gpu/model --provenance \\
      runs/pretrained_gpu --recipe "bash tools/gpu_pretrain.sh"  # a folder shipped elsewhere

OUT becomes a workdir-format model: its config.json and one checkpoint step (what
`--config.train.init_from=OUT` reads in test, embed, enroll and identify) holding the network's
variables only: no optimizer state, and no BN-neck (a classifier of the training ids: inference
never uses it, and a fine-tuning on other people starts a fresh one). It is replaced atomically
(a new folder renamed over the old) and refused above 20 MB. PROVENANCE.md records the
commands (tools/train_pretrained.sh), the walker settings and seed, the steps, the machine, each
stage's wall time, the validation curve on KTH TRAIN_SET people and the zero-shot KTH-walk
figures of RUN/zero_shot/metrics.json, each beside the flip-aware GEI baseline's
(RUN/gei_flip_{train,test}.json). The training machine is RUN/trained_on.txt where the run
recorded it (a GPU machine: tools/gpu_pretrain.sh), else this machine.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gait_jax.benchmarks import _machine  # noqa: E402
from gait_jax.common import checkpoint  # noqa: E402

MAX_BYTES = 20 * 2**20
DROPPED = ("BNNecks",)
GROUPS = ("d4", "d1", "d2", "d3", "mean")


def _size(path: str) -> int:
  return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def ship(workdir: str, out: str) -> int:
  """Writes config.json and the newest step's variables (less DROPPED); returns that step."""
  try:
    variables, step = checkpoint.restore_variables(workdir)
  except FileNotFoundError as e:
    raise SystemExit(f"ship_checkpoint: {workdir} has no checkpoint step ({e})") from None
  lean = {name: {k: v for k, v in tree.items() if k not in DROPPED}
          for name, tree in variables.items()}
  tmp = out.rstrip("/") + ".partial"
  shutil.rmtree(tmp, ignore_errors=True)
  os.makedirs(tmp)
  shutil.copy2(os.path.join(workdir, checkpoint.CONFIG_FILE), tmp)
  writer = checkpoint.Checkpointer(checkpoint.checkpoint_dir(tmp), keep=1)
  writer.save(step, lean, {"step": step, "optimizer": "none", "dropped": list(DROPPED),
                           "shipped_from": os.path.abspath(workdir)})
  writer.wait()
  writer.close()
  if _size(tmp) > MAX_BYTES:
    shutil.rmtree(tmp)
    raise SystemExit(f"ship_checkpoint: step {step} of {workdir} is over 20 MB")
  old = out.rstrip("/") + ".old"
  if os.path.exists(out):
    shutil.rmtree(old, ignore_errors=True)
    os.rename(out, old)
  os.rename(tmp, out)
  shutil.rmtree(old, ignore_errors=True)
  return step


def _shipped_step(out: str) -> int:
  try:
    return checkpoint.restore_variables(out)[1]
  except FileNotFoundError as e:
    raise SystemExit(f"ship_checkpoint: {out} holds no shipped step ({e})") from None


def _read(path: str, default=None):
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, ValueError):
    return default


def provenance(run: str, out: str, step: int, profile: str = "kth", seqs: int = 6,
               recipe: str = "bash tools/train_pretrained.sh") -> str:
  commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip() or "?"
  config = _read(os.path.join(run, "train", checkpoint.CONFIG_FILE), {})
  times = {}
  if os.path.exists(os.path.join(run, "stage_seconds.txt")):
    for line in open(os.path.join(run, "stage_seconds.txt")):
      name, seconds = line.split()
      times[name] = times.get(name, 0) + int(seconds)
  metrics = _read(os.path.join(run, "zero_shot", "metrics.json"), {})
  gei = _read(os.path.join(run, "gei_flip_test.json"), {})
  final = _read(os.path.join(run, "validation", "metrics.json"), {})
  gei_val = _read(os.path.join(run, "gei_flip_train.json"), {})
  curve = (_read(os.path.join(run, "train", "validation.json"), {}) or {}).get("points", [])
  walkers = _read(os.path.join(run, "walkers.json"), {})
  trained_on = os.path.join(run, "trained_on.txt")
  machine = (open(trained_on).read().strip() if os.path.exists(trained_on)
             else _machine.describe())
  lines = [
      "# pretrained/walkers: provenance", "",
      "Trained on generated walkers only (no licensed data). Reproduce with",
      f"`{recipe}` (`configs/pretrained_walkers.py`).", "",
      f"- code: commit `{commit}` (HEAD when this page was written); trained on: {machine}",
      f"- walkers: `python tools/make_walkers.py --out {run}/walkers --ids "
      f"{len(walkers.get('TRAIN_SET', []))} --seqs-per-id {seqs} --views 090 --frames 40 --profile {profile} "
      f"--train-ids {len(walkers.get('TRAIN_SET', []))} --seed 0 --workers 2`",
      f"- network: `{config.get('model', {}).get('name')}` path "
      f"`{config.get('model', {}).get('path')}`, widths {config.get('model', {}).get('channels')}, "
      f"{config.get('data', {}).get('frames')} frames per training sequence, "
      f"batch {config.get('data', {}).get('batch_p')}×{config.get('data', {}).get('batch_k')}, "
      f"lr {config.get('optim', {}).get('lr')} decayed at {config.get('optim', {}).get('milestones')}",
      f"- shipped step: {step} (seed {config.get('seed')})",
      "- wall time per stage (s): " + (", ".join(f"{k} {v}" for k, v in times.items()) or "?"),
      "", "Validation during training (KTH-walk on the 12 KTH TRAIN_SET people, Rank-1 %):", "",
      "| step | " + " | ".join(GROUPS) + " |", "|---" * (len(GROUPS) + 1) + "|"]
  row = lambda name, m: f"| {name} | " + " | ".join(  # noqa: E731
      f"{m.get(f'{g}/rank1', float('nan')):.2f}" for g in GROUPS) + " |"
  lines += [row(p["step"], p) for p in curve]
  lines += [row(f"{step} (shipped, `embed.flip` as configs/kth_walking.py)", final),
            row("flip-aware GEI + 1-NN", gei_val)]
  lines += ["", "Zero-shot on the 13 KTH TEST_SET people, with exactly", "",
            "    python -m gait_jax.main --config configs/kth_walking.py --workdir W "
            "--config.mode=test --config.train.init_from=pretrained/walkers", "",
            "| | " + " | ".join(GROUPS) + " |", "|---" * (len(GROUPS) + 1) + "|",
            row("Rank-1 %", metrics),
            row("flip-aware GEI + 1-NN (`tools/gei_baseline.py --protocol kth_walk --flip`)", gei),
            ""]
  text = "\n".join(lines)
  with open(os.path.join(out, "PROVENANCE.md"), "w") as f:
    f.write(text)
  return text


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--workdir", default="",
                      help="the training workdir (none: OUT is already shipped; only --provenance)")
  parser.add_argument("--out", required=True, help="the model folder to (re)write")
  parser.add_argument("--provenance", default="", help="the run folder: also write PROVENANCE.md")
  parser.add_argument("--walker-profile", default="kth",
                      help="the walkers' --profile, for PROVENANCE.md")
  parser.add_argument("--walker-seqs", type=int, default=6,
                      help="the walkers' --seqs-per-id, for PROVENANCE.md")
  parser.add_argument("--recipe", default="bash tools/train_pretrained.sh",
                      help="the command that reproduces it, for PROVENANCE.md")
  args = parser.parse_args(argv)
  if args.workdir:
    step = ship(args.workdir, args.out)
    print(f"{args.out}: step {step} of {args.workdir} ({_size(args.out) / 2**20:.1f} MB)")
  elif args.provenance:
    step = _shipped_step(args.out)
  else:
    parser.error("give --workdir (ship) or --provenance (describe a shipped folder), or both")
  if args.provenance:
    print(provenance(args.provenance, args.out, step, args.walker_profile, args.walker_seqs,
                     args.recipe))


if __name__ == "__main__":
  main()
