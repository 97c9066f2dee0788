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
was launched with, as its users run it. Each
side of a row runs in a fresh process, `--rounds` times (default 3), the two sides taking turns
to go first; the table shows each figure's median and each ratio's median over the rounds' own
ratios with its range (on a shared 2-core machine one round's tiny train step can take twice
another's).
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

from gait_jax.benchmarks import _machine
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
  parser.add_argument("--steps", type=int, default=5, help="timed train steps (after a warm-up)")
  parser.add_argument("--sequences", type=int, default=24, help="sequences to embed")
  parser.add_argument("--lengths", default="40-90", help="their frame counts MIN-MAX")
  parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                      help="PyTorch threads (default: every core, as XLA uses)")
  parser.add_argument("--venv", default=os.path.join(REPO, ".venv-bench"),
                      help="the PyTorch venv (made from requirements-bench.txt if missing)")
  parser.add_argument("--rounds", type=int, default=3,
                      help="rounds per row, each side in a fresh process, the order alternating;"
                           " the table shows each ratio's median and range (default 3)")
  parser.add_argument("--quick", action="store_true",
                      help="widths 4,8,8, 6 frames, 2 steps, 4 short sequences")
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
    return dict(widths=[(4, 8, 8)], frames=6, steps=2, sequences=4, lengths=(8, 12), rounds=1)
  if args.rounds < 1:
    raise SystemExit(f"--rounds={args.rounds}: expected at least 1")
  lo, hi = (int(v) for v in args.lengths.split("-"))
  return dict(widths=parse_widths(args.widths), frames=args.frames, steps=args.steps,
              sequences=args.sequences, lengths=(lo, hi), rounds=args.rounds)


def reference(python: str, spec: dict) -> dict:
  # The reference runs as its users run it: with the environment this benchmark was launched
  # with, not the huge-page tunable and block cache gait_jax's own commands add for themselves.
  proc = subprocess.run([python, SCRIPT, json.dumps(spec)], capture_output=True, text=True,
                        env=huge_pages.user_environment())
  if proc.returncode:
    raise SystemExit(f"reference: PyTorch run failed:\n{proc.stderr[-2000:]}")
  result = json.loads(proc.stdout.strip().splitlines()[-1])
  for key in ("loss",) + (("loss_bf16",) if spec.get("bf16") else ()):
    if not math.isfinite(result.get(key, math.nan)):
      # Timing NaN arithmetic is not timing the reference's training.
      raise SystemExit(f"reference: PyTorch's training {key.replace('_', ' in ')} is "
                       f"{result.get(key)} after {spec['steps'] + 1} steps at widths "
                       f"{spec['channels']}, not finite")
  return result


def gait_jax(widths, s: dict, args, data, embed_tree, bf16: bool) -> dict:
  """gait_jax's side; `bf16`: also the train steps with `train.bf16` and the embedding with
  `embed.bf16`."""
  from gait_jax.benchmarks import embed_speed, train_speed  # pylint: disable=g-import-not-at-top
  common = dict(quick=False, models="small", batch_p=args.batch_p, batch_k=args.batch_k,
                frames=s["frames"], steps=s["steps"], dtype="float32", workers=2, remat="off",
                path=args.path, peak_gflops=0.0, channels=",".join(map(str, widths)))
  runs = {f"{kind}{'_bf16' if half else ''}_step_s": train_speed.bench_one(
      "small", argparse.Namespace(**dict(common, static=kind == "static", bf16=half)), data)
      for half in ((False, True) if bf16 else (False,)) for kind in ("traced", "static")}
  embed_args = dict(path=args.path, batch=8, repeats=2, channels=common["channels"])
  embed, emb32 = embed_speed.bench_one("small", argparse.Namespace(bf16=False, **embed_args),
                                       *embed_tree, with_embeddings=True)
  for run in runs.values():
    if run["skipped_steps"]:
      raise SystemExit(f"gait_jax: {run['skipped_steps']} of the timed train steps ({run['path']}"
                       f"{', bfloat16' if run['bf16'] else ''}) had a non-finite loss or gradient")
  ours = {name: run["step_median_s"] for name, run in runs.items()}  # the median, as the reference's
  ours["embed_seq_per_s"] = embed["seq_per_s"]
  if bf16:
    half, emb16 = embed_speed.bench_one("small", argparse.Namespace(bf16=True, **embed_args),
                                        *embed_tree, with_embeddings=True)
    ours.update(embed_bf16_seq_per_s=half["seq_per_s"],
                embed_bf16_deviation=embed_speed.relative_deviation(emb32, emb16))
  return ours


def gait_jax_process(widths, s: dict, args, data: dict, embed_tree, bf16: bool) -> dict:
  """`gait_jax(...)` in a process of its own, as each row's reference runs in its own, so both
  sides start every row alike: no heap, pages or compiled programs carried over from another
  row. The process gets this one's environment: gait_jax's, huge pages included."""
  job = dict(widths=list(widths), settings=dict(frames=s["frames"], steps=s["steps"]),
             path=args.path, batch_p=args.batch_p, batch_k=args.batch_k, data=data,
             embed_tree=list(embed_tree), bf16=bool(bf16))
  proc = subprocess.run([sys.executable, "-m", __name__, json.dumps(job)], cwd=REPO,
                        capture_output=True, text=True)
  if proc.returncode:
    raise SystemExit(f"gait_jax: the row at widths {widths} failed:\n{proc.stderr[-2000:]}")
  return json.loads(proc.stdout.strip().splitlines()[-1])


def _run_job(job: dict) -> dict:
  """The child's side of `gait_jax_process`."""
  args = argparse.Namespace(path=job["path"], batch_p=job["batch_p"], batch_k=job["batch_k"])
  return gait_jax(tuple(job["widths"]), job["settings"], args, job["data"],
                  tuple(job["embed_tree"]), job["bf16"])


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


def alternating_rounds(reference_side, gait_jax_side, rounds: int) -> list:
  """`rounds` pairs (reference result, gait_jax result), the two sides run back to back with
  who goes first alternating (round 0: the reference), so neither always runs on a machine the
  other has just warmed or left busy."""
  pairs = []
  for i in range(rounds):
    if i % 2 == 0:
      ref = reference_side()
      ours = gait_jax_side()
    else:
      ours = gait_jax_side()
      ref = reference_side()
    pairs.append((ref, ours))
  return pairs


def combine(widths, rounds) -> dict:
  """One table row from its rounds [(reference, gait_jax)]: every figure's median over the
  rounds, every ratio's median over the rounds' own ratios and its range, and the rounds."""
  def median(dicts):
    return {k: float(np.median([d[k] for d in dicts])) if isinstance(v, float) else v
            for k, v in dicts[0].items()}  # ints (threads) and strings are settings, not figures
  each = [ratios(ref, ours) for ref, ours in rounds]
  return {"widths": list(widths), "reference": median([ref for ref, _ in rounds]),
          "gait_jax": median([ours for _, ours in rounds]), "ratios": median(each),
          "ratio_range": {k: [min(q[k] for q in each), max(q[k] for q in each)] for k in each[0]},
          "rounds": [{"reference": ref, "gait_jax": ours, "ratios": q}
                     for (ref, ours), q in zip(rounds, each)]}


def table(rows) -> str:
  lines = [f"{'widths':>12} {'work':>22} {'reference':>14} {'gait_jax':>14} {'ratio':>7}"]
  for r in rows:
    w = "/".join(map(str, r["widths"]))
    ref, ours = r["reference"], r["gait_jax"]
    spans = r.get("ratio_range", {})
    q = {k: f"{v:>6.2f}x" + (f" ({spans[k][0]:.2f}-{spans[k][1]:.2f})"
                             if k in spans and len(r.get("rounds", ())) > 1 else "")
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
                  frames=s["frames"], steps=s["steps"], lengths=lengths,
                  threads=args.threads, bf16=not no_bf16)
      rounds = alternating_rounds(
          lambda: reference(python, spec),
          lambda: gait_jax_process(widths, s, args, data, embed_tree, bf16=not no_bf16),
          s["rounds"])
      rows.append(combine(widths, rounds))
  convs = conv_lib.formulation()
  print(f"PyTorch {rows[0]['reference']['torch']} ({rows[0]['reference']['threads']} threads) vs "
        f"gait_jax ({convs} convolutions); SPOSGait_small path {args.path}, train {args.batch_p * args.batch_k} seq x "
        f"{s['frames']} frames, embed {s['sequences']} sequences of {s['lengths'][0]}-"
        f"{s['lengths'][1]} frames; {s['rounds']} round(s) a row (median, range); machine: "
        f"{_machine.describe()}")
  print(table(rows))
  if no_bf16:
    print(f"(no bfloat16 rows: {no_bf16})")
  if args.json:
    with open(args.json, "w") as f:
      json.dump({"machine": _machine.describe(), "gait_jax_convolutions": convs, "rows": rows},
                f, indent=2)


if __name__ == "__main__":  # one row's gait_jax side, for `gait_jax_process`
  print(json.dumps(_run_job(json.loads(sys.argv[1]))))
