"""gait_jax against the reference's framework on this machine, in one run: the same train step
and embedding through PyTorch (tools/reference_torch.py: the reference's layout and ops), then
through gait_jax, back to back, and one table of the ratios.

PyTorch runs in its own venv (`--venv`, default .venv-bench), which this benchmark creates from
requirements-bench.txt on first use; the test command never installs it. Work, as the
reference's configs: SPOSGait_small at each `--widths` (default the GREW widths 64/128/256 and
the tiny 8/16/32 of the quickstart and recipes), path `--path`, a train step on P×K sequences of
`--frames` frames (forward, batch-all triplet loss, backward, SGD with momentum and weight
decay), and the embedding of `--sequences` whole sequences of `--lengths` frames (the
reference: one sequence per call, as its test loader; gait_jax: its packed rows). Both use
`--threads` threads (PyTorch) / every core (XLA); a train step's figure is the median of the
timed steps on both sides. Ratios are gait_jax's speed over the
reference's: above 1 means gait_jax is faster. Where the CPU has bfloat16 units, three more
rows: the train step in bfloat16 — PyTorch's CPU autocast (mixed precision), gait_jax's
`train.bf16` (bfloat16 products in the convolutions, forward and gradients), traced and static
— and the embedding in bfloat16 — the reference's network cast to bfloat16 in PyTorch,
gait_jax's `embed.bf16` — with how far gait_jax's embeddings are from its float32 ones (the
largest per-sequence relative L2 deviation). gait_jax runs as its commands do, with transparent
huge pages and the block cache where they set them (gait_jax/common/huge_pages.py,
block_cache.py; the machine line says so); the reference with the environment this benchmark
was launched with, as its users run it.

Both sides are timed in turn, one unit at a time (gait_jax/benchmarks/_served.py): each side of
a row runs in a process of its own that compiles and warms its work up, then one train step of
the reference, one of each of gait_jax's (traced, static), one embedding pass of each, and so
on, `--pairs` times, who goes first alternating, so that the machine's own wandering speed
falls on both sides alike; `--rounds` times (default 2) with fresh processes. The table shows
each figure's median and each ratio's median over the pairs' own ratios, with its range.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import subprocess
import sys
import tempfile

import numpy as np

from gait_jax.benchmarks import _machine, _served
from gait_jax.common import huge_pages

NAME = "reference"  # `python tools/benchmark.py reference`
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REQUIREMENTS = os.path.join(REPO, "requirements-bench.txt")
SCRIPT = os.path.join(REPO, "tools", "reference_torch.py")


def add_args(parser) -> None:
  parser.add_argument("--widths", default="64,128,256;8,16,32",
                      help="model.channels to compare, ';'-separated (default GREW and tiny)")
  parser.add_argument("--path", default="0,5,0,1", help="the path (default 0,5,0,1)")
  parser.add_argument("--batch-p", type=int, default=2, help="P (default 2)")
  parser.add_argument("--batch-k", type=int, default=4, help="K (default 4: 8 sequences)")
  parser.add_argument("--frames", type=int, default=30, help="frames per training sequence")
  parser.add_argument("--pairs", type=int, default=8,
                      help="timed pairs a round: one unit of each side (a train step, an "
                           "embedding pass), in turn (default 8)")
  parser.add_argument("--sequences", type=int, default=24, help="sequences to embed")
  parser.add_argument("--lengths", default="40-90", help="their frame counts MIN-MAX")
  parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                      help="PyTorch threads (default: every core, as XLA uses)")
  parser.add_argument("--venv", default=os.path.join(REPO, ".venv-bench"),
                      help="the PyTorch venv (made from requirements-bench.txt if missing)")
  parser.add_argument("--rounds", type=int, default=2,
                      help="rounds a row, each with both sides in fresh processes (default 2); "
                           "the table shows each ratio's median and range over all pairs")
  parser.add_argument("--quick", action="store_true",
                      help="widths 4,8,8, 6 frames, 2 pairs, 4 short sequences")
  parser.add_argument("--json", default="", help="also write the results to this file")


def bench_python(venv: str) -> str:
  """The venv's python, after installing requirements-bench.txt into it when it changed."""
  python = os.path.join(venv, "bin", "python")
  if not os.path.exists(python):
    print(f"[reference] creating {venv} (PyTorch, once)", flush=True)
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
  stamp = os.path.join(venv, ".requirements.sha")
  with open(REQUIREMENTS, "rb") as f:
    want = hashlib.sha256(f.read()).hexdigest()
  have = open(stamp).read().strip() if os.path.exists(stamp) else ""
  if have != want:
    print(f"[reference] installing {os.path.basename(REQUIREMENTS)} into {venv}", flush=True)
    subprocess.run([python, "-m", "pip", "install", "-q", "-r", REQUIREMENTS], check=True)
    with open(stamp, "w") as f:
      f.write(want)
  return python


def parse_widths(text: str):
  return [tuple(int(v) for v in w.split(",")) for w in text.split(";") if w.strip()]


def settings(args) -> dict:
  if args.quick:
    return dict(widths=[(4, 8, 8)], frames=6, pairs=2, sequences=4, lengths=(8, 12), rounds=1)
  for flag, value in (("--rounds", args.rounds), ("--pairs", args.pairs)):
    if value < 1:
      raise SystemExit(f"{flag}={value}: expected at least 1")
  lo, hi = (int(v) for v in args.lengths.split("-"))
  return dict(widths=parse_widths(args.widths), frames=args.frames, pairs=args.pairs,
              sequences=args.sequences, lengths=(lo, hi), rounds=args.rounds)


def units(bf16: bool) -> list:
  """The groups of work timed in turn: [(the reference's commands, gait_jax's)]."""
  groups = [(["train"], ["traced", "static"]), (["embed"], ["embed"])]
  if bf16:
    groups += [(["train_bf16"], ["traced_bf16", "static_bf16"]), (["embed_bf16"], ["embed_bf16"])]
  return groups


def start_reference(python: str, spec: dict) -> _served.Side:
  # The reference runs as its users run it: with the environment this benchmark was launched
  # with, not the huge-page tunable and block cache gait_jax's own commands add for themselves.
  return _served.Side([python, SCRIPT, json.dumps(spec)], "reference (PyTorch)",
                      env=huge_pages.user_environment(), cwd=REPO)


def start_gait_jax(widths, s: dict, args, data: dict, embed_tree, bf16: bool) -> _served.Side:
  """gait_jax's side of a row in a process of its own, as the reference's, so both start every
  round alike: no heap, pages or compiled programs carried over. It gets this process's
  environment: gait_jax's, huge pages and block cache included."""
  job = dict(widths=list(widths), frames=s["frames"], path=args.path, batch_p=args.batch_p,
             batch_k=args.batch_k, data=data, embed_tree=list(embed_tree), bf16=bool(bf16))
  return _served.Side([sys.executable, "-m", __name__, json.dumps(job)],
                      f"gait_jax at widths {list(widths)}", cwd=REPO)


def _serve(job: dict, commands=None) -> None:
  """The child's side of `start_gait_jax`: every unit compiled and warmed up, then served."""
  from gait_jax.benchmarks import embed_speed, train_speed  # pylint: disable=g-import-not-at-top
  common = dict(quick=False, batch_p=job["batch_p"], batch_k=job["batch_k"],
                frames=job["frames"], dtype="float32", workers=2, remat="off", path=job["path"],
                channels=",".join(map(str, job["widths"])))
  embed_args = dict(path=job["path"], batch=8, repeats=1, channels=common["channels"])
  served, embeddings = {}, {}
  for half in ((False, True) if job["bf16"] else (False,)):
    suffix = "_bf16" if half else ""
    for kind in ("traced", "static"):
      served[kind + suffix] = train_speed.prepare("small", argparse.Namespace(
          **dict(common, static=kind == "static", bf16=half)), job["data"])
    served["embed" + suffix], embeddings[half] = embed_speed.prepare(
        "small", argparse.Namespace(bf16=half, **embed_args), *job["embed_tree"])
  ready = {"ready": True}
  if job["bf16"]:
    ready["embed_bf16_deviation"] = embed_speed.relative_deviation(embeddings[False],
                                                                   embeddings[True])
  _served.answer_commands(served, ready, commands)


def figures(ref: dict, ours: dict, channels) -> tuple:
  """One pair's answers as the table's figures (train: seconds a step; embed: sequences per
  second). Timing a reference whose loss is not finite would time NaN arithmetic, and a
  gait_jax step that skipped its update is not a train step: both are errors."""
  n = ref["ready"]["sequences"]
  r = {"torch": ref["ready"]["torch"], "threads": ref["ready"]["threads"],
       "train_step_s": ref["train"]["seconds"], "loss": ref["train"]["loss"],
       "embed_seq_per_s": n / ref["embed"]["seconds"]}
  o = {"traced_step_s": ours["traced"]["seconds"], "static_step_s": ours["static"]["seconds"],
       "embed_seq_per_s": n / ours["embed"]["seconds"]}
  if "train_bf16" in ref:
    r.update(train_bf16_step_s=ref["train_bf16"]["seconds"], loss_bf16=ref["train_bf16"]["loss"],
             embed_bf16_seq_per_s=n / ref["embed_bf16"]["seconds"])
    o.update(traced_bf16_step_s=ours["traced_bf16"]["seconds"],
             static_bf16_step_s=ours["static_bf16"]["seconds"],
             embed_bf16_seq_per_s=n / ours["embed_bf16"]["seconds"],
             embed_bf16_deviation=ours["ready"]["embed_bf16_deviation"])
  for key in ("loss", "loss_bf16"):
    if key in r and not math.isfinite(r[key]):
      raise SystemExit(f"reference: PyTorch's training {key.replace('_', ' in ')} is {r[key]} "
                       f"at widths {list(channels)}, not finite")
  for name, answer in ours.items():
    if not answer.get("ok", True):
      raise SystemExit(f"gait_jax: a timed train step ({name}, widths {list(channels)}) had a "
                       "non-finite loss or gradient")
  return r, o


def ratios(ref: dict, ours: dict) -> dict:
  """gait_jax's speed over the reference's (> 1: gait_jax is faster)."""
  q = {"train_traced": ref["train_step_s"] / ours["traced_step_s"],
       "train_static": ref["train_step_s"] / ours["static_step_s"],
       "embed": ours["embed_seq_per_s"] / ref["embed_seq_per_s"]}
  if "train_bf16_step_s" in ref and "traced_bf16_step_s" in ours:
    q["train_bf16_traced"] = ref["train_bf16_step_s"] / ours["traced_bf16_step_s"]
    q["train_bf16_static"] = ref["train_bf16_step_s"] / ours["static_bf16_step_s"]
  if "embed_bf16_seq_per_s" in ours and "embed_bf16_seq_per_s" in ref:
    q["embed_bf16"] = ours["embed_bf16_seq_per_s"] / ref["embed_bf16_seq_per_s"]
  return q


def combine(widths, pairs) -> dict:
  """One table row from its pairs [(reference, gait_jax)]: every figure's median over the
  pairs, every ratio's median over the pairs' own ratios and its range, and the pairs."""
  def median(dicts):
    return {k: float(np.median([d[k] for d in dicts])) if isinstance(v, float) else v
            for k, v in dicts[0].items()}  # ints (threads) and strings are settings, not figures
  each = [ratios(ref, ours) for ref, ours in pairs]
  return {"widths": list(widths), "reference": median([ref for ref, _ in pairs]),
          "gait_jax": median([ours for _, ours in pairs]), "ratios": median(each),
          "ratio_range": {k: [min(q[k] for q in each), max(q[k] for q in each)] for k in each[0]},
          "pairs": [{"reference": ref, "gait_jax": ours, "ratios": q}
                    for (ref, ours), q in zip(pairs, each)]}


def table(rows) -> str:
  lines = [f"{'widths':>12} {'work':>22} {'reference':>14} {'gait_jax':>14} {'ratio':>7}"]
  for r in rows:
    w = "/".join(map(str, r["widths"]))
    ref, ours = r["reference"], r["gait_jax"]
    spans = r.get("ratio_range", {})
    q = {k: f"{v:>6.2f}x" + (f" ({spans[k][0]:.2f}-{spans[k][1]:.2f})"
                             if k in spans and len(r.get("pairs", ())) > 1 else "")
         for k, v in r["ratios"].items()}
    lines += [
        f"{w:>12} {'train step, traced path':>22} {ref['train_step_s']:>12.3f} s "
        f"{ours['traced_step_s']:>12.3f} s {q['train_traced']}",
        f"{'':>12} {'train step, static path':>22} {'same':>14} "
        f"{ours['static_step_s']:>12.3f} s {q['train_static']}",
        f"{'':>12} {'embed, seq/s':>22} {ref['embed_seq_per_s']:>14.2f} "
        f"{ours['embed_seq_per_s']:>14.2f} {q['embed']}"]
    if "train_bf16_traced" in q:
      lines += [
          f"{'':>12} {'train, bfloat16, traced':>22} {ref['train_bf16_step_s']:>12.3f} s "
          f"{ours['traced_bf16_step_s']:>12.3f} s {q['train_bf16_traced']}",
          f"{'':>12} {'train, bfloat16, static':>22} {'same':>14} "
          f"{ours['static_bf16_step_s']:>12.3f} s {q['train_bf16_static']}"]
    if "embed_bf16" in q:
      lines.append(f"{'':>12} {'embed, bfloat16, seq/s':>22} "
                   f"{ref['embed_bf16_seq_per_s']:>14.2f} "
                   f"{ours['embed_bf16_seq_per_s']:>14.2f} {q['embed_bf16']}"
                   f"   (embeddings within {ours['embed_bf16_deviation']:.1e} of float32's)")
  return "\n".join(lines)


def run(args) -> None:
  from gait_jax.benchmarks import embed_speed  # pylint: disable=g-import-not-at-top
  from gait_jax.benchmarks.train_speed import reference_config  # pylint: disable=g-import-not-at-top
  from gait_jax.synthetic import walkers  # pylint: disable=g-import-not-at-top
  s = settings(args)
  python = bench_python(args.venv)
  model = reference_config("small").model
  path = [int(v) for v in args.path.split(",")]
  lengths = [int(t) for t in np.random.default_rng(1).integers(
      s["lengths"][0], s["lengths"][1] + 1, s["sequences"])]
  from gait_jax.models import conv as conv_lib  # pylint: disable=g-import-not-at-top
  no_bf16 = conv_lib.bf16_available()  # why there is no bfloat16 row ("" where there is one)
  rows = []
  with tempfile.TemporaryDirectory() as tmp:
    data = walkers.generate(os.path.join(tmp, "walk"), ids=2 * max(args.batch_p, 2),
                            seqs_per_id=max(args.batch_k, 2), views=("000",),
                            frames=max(s["frames"], 12), seed=0)
    embed_tree = (os.path.join(tmp, "embed"),)
    embed_tree += (embed_speed._write_tree(embed_tree[0], lengths),)  # pylint: disable=protected-access
    for widths in s["widths"]:
      spec = dict(channels=list(widths), bins=list(model.bins), out=model.out_channels,
                  path=path, batch=args.batch_p * args.batch_k, batch_k=args.batch_k,
                  frames=s["frames"], lengths=lengths, threads=args.threads, bf16=not no_bf16)
      answers = _served.interleaved(
          lambda: start_reference(python, spec),
          lambda: start_gait_jax(widths, s, args, data, embed_tree, bf16=not no_bf16),
          s["rounds"], s["pairs"], units(bf16=not no_bf16))
      rows.append(combine(widths, [figures(ref, ours, widths) for ref, ours in answers]))
  convs = conv_lib.formulation()
  print(f"PyTorch {rows[0]['reference']['torch']} ({rows[0]['reference']['threads']} threads) vs "
        f"gait_jax ({convs} convolutions); SPOSGait_small path {args.path}, train {args.batch_p * args.batch_k} seq x "
        f"{s['frames']} frames, embed {s['sequences']} sequences of {s['lengths'][0]}-"
        f"{s['lengths'][1]} frames; {s['rounds']} round(s) x {s['pairs']} pairs a row, one unit of "
        f"each side in turn (median, range); machine: "
        f"{_machine.describe()}")
  print(table(rows))
  if no_bf16:
    print(f"(no bfloat16 rows: {no_bf16})")
  if args.json:
    with open(args.json, "w") as f:
      json.dump({"machine": _machine.describe(), "gait_jax_convolutions": convs, "rows": rows},
                f, indent=2)


if __name__ == "__main__":  # one row's gait_jax side, for `start_gait_jax`
  _serve(json.loads(sys.argv[1]))
