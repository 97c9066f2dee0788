"""`tools/benchmark.py reference` without PyTorch: its venv is made once from
requirements-bench.txt (and remade when that changes), the two sides are timed one unit at a
time in turn, and the table's ratios are gait_jax's speed over the reference's."""
import argparse
import os
import subprocess
import sys

import pytest

from gait_jax.benchmarks import _served, reference_speed
from gait_jax.training import step as step_lib


def test_bench_venv_is_made_once_and_follows_requirements(tmp_path, monkeypatch):
  calls = []

  def fake_run(cmd, check):
    calls.append(cmd)
    if cmd[1:3] == ["-m", "venv"]:
      os.makedirs(os.path.join(cmd[3], "bin"))
      open(os.path.join(cmd[3], "bin", "python"), "w").close()
    return subprocess.CompletedProcess(cmd, 0)

  requirements = tmp_path / "requirements-bench.txt"
  requirements.write_text("torch==2.13.0+cpu\n")
  monkeypatch.setattr(reference_speed, "REQUIREMENTS", str(requirements))
  monkeypatch.setattr(subprocess, "run", fake_run)
  venv = str(tmp_path / "venv")
  python = reference_speed.bench_python(venv)
  assert python == os.path.join(venv, "bin", "python")
  assert [c[1:3] for c in calls] == [["-m", "venv"], ["-m", "pip"]]
  assert calls[1][-2:] == ["-r", str(requirements)]
  reference_speed.bench_python(venv)
  assert len(calls) == 2  # nothing to do
  requirements.write_text("torch==2.14.0+cpu\n")
  reference_speed.bench_python(venv)
  assert len(calls) == 3 and calls[2][1:3] == ["-m", "pip"]


def test_ratios_are_our_speed_over_the_reference():
  ref = {"train_step_s": 1.8, "embed_seq_per_s": 7.0, "torch": "2.13.0+cpu", "threads": 2}
  ours = {"traced_step_s": 2.4, "static_step_s": 1.2, "embed_seq_per_s": 21.0}
  q = reference_speed.ratios(ref, ours)
  assert q == pytest.approx({"train_traced": 0.75, "train_static": 1.5, "embed": 3.0})
  text = reference_speed.table([{"widths": [64, 128, 256], "reference": ref, "gait_jax": ours,
                                 "ratios": q}])
  assert "64/128/256" in text and "0.75x" in text and "1.50x" in text and "3.00x" in text


def test_bf16_rows_divide_bfloat16_by_bfloat16():
  """The bfloat16 rows compare gait_jax's train.bf16 / embed.bf16 with the reference in
  bfloat16 (autocast train step, network cast for the embedding), never with its float32;
  without reference bfloat16 figures there are no such ratios."""
  ref = {"train_step_s": 1.8, "embed_seq_per_s": 7.0, "embed_bf16_seq_per_s": 10.0,
         "train_bf16_step_s": 1.6}
  ours = {"traced_step_s": 2.4, "static_step_s": 1.2, "embed_seq_per_s": 21.0,
          "traced_bf16_step_s": 2.0, "static_bf16_step_s": 0.64,
          "embed_bf16_seq_per_s": 40.0, "embed_bf16_deviation": 1.2e-3}
  q = reference_speed.ratios(ref, ours)
  assert q["embed_bf16"] == pytest.approx(4.0) and q["embed"] == pytest.approx(3.0)
  assert q["train_bf16_traced"] == pytest.approx(0.8)
  assert q["train_bf16_static"] == pytest.approx(2.5) and q["train_static"] == pytest.approx(1.5)
  text = reference_speed.table([{"widths": [64, 128, 256], "reference": ref, "gait_jax": ours,
                                 "ratios": q}])
  assert "4.00x" in text and "1.2e-03" in text and "0.80x" in text and "2.50x" in text
  del ref["embed_bf16_seq_per_s"], ref["train_bf16_step_s"]
  q = reference_speed.ratios(ref, ours)
  assert not {"embed_bf16", "train_bf16_traced", "train_bf16_static"} & set(q)


def test_settings():
  args = argparse.Namespace(quick=False, widths="64,128,256;8,16,32", frames=30, pairs=8,
                            sequences=24, lengths="40-90", rounds=3)
  s = reference_speed.settings(args)
  assert s["widths"] == [(64, 128, 256), (8, 16, 32)] and s["lengths"] == (40, 90)
  assert s["rounds"] == 3 and s["pairs"] == 8
  assert reference_speed.settings(argparse.Namespace(quick=True))["widths"] == [(4, 8, 8)]
  for flag in ("rounds", "pairs"):
    with pytest.raises(SystemExit, match=f"--{flag}=0"):
      reference_speed.settings(argparse.Namespace(**dict(vars(args), **{flag: 0})))


def test_pairs_combine_into_medians_of_their_own_ratios():
  """A row's ratio is the median of each pair's side-by-side ratio (not a ratio of medians
  taken at different times), with the range over the pairs."""
  def ref(t, e):
    return {"train_step_s": t, "embed_seq_per_s": e, "torch": "2.13.0+cpu", "threads": 2}

  def ours(t, s, e):
    return {"traced_step_s": t, "static_step_s": s, "embed_seq_per_s": e}

  rounds = [(ref(2.0, 6.0), ours(1.0, 1.0, 12.0)), (ref(1.0, 6.0), ours(1.0, 0.5, 6.0)),
            (ref(3.0, 4.0), ours(1.0, 2.0, 16.0))]
  row = reference_speed.combine((64, 128, 256), rounds)
  assert row["ratios"]["train_traced"] == pytest.approx(2.0)
  assert row["ratio_range"]["train_traced"] == pytest.approx([1.0, 3.0])
  assert row["ratios"]["train_static"] == pytest.approx(2.0)  # 2, 2, 1.5
  assert row["ratio_range"]["embed"] == pytest.approx([1.0, 4.0])
  assert row["ratios"]["embed"] == pytest.approx(2.0)  # 2, 1, 4
  assert row["reference"]["train_step_s"] == pytest.approx(2.0)
  assert row["reference"]["torch"] == "2.13.0+cpu" and len(row["pairs"]) == 3
  text = reference_speed.table([row])
  assert "2.00x (1.00-3.00)" in text and "2.00x (1.00-4.00)" in text
  one = reference_speed.combine((64, 128, 256), rounds[:1])
  assert "(" not in reference_speed.table([one]).split("\n")[1]


class _FakeSide:
  """A side that records the commands it was given, in one log shared by both sides."""

  def __init__(self, name, log):
    self.name, self.log, self.ready = name, log, {"side": name}

  def __call__(self, command):
    self.log.append((self.name, command))
    return {"seconds": float(len(self.log))}

  def __enter__(self):
    self.log.append((self.name, "start"))
    return self

  def __exit__(self, *exc):
    self.log.append((self.name, "end"))


def test_sides_take_turns_one_unit_at_a_time_and_rounds_start_them_afresh(monkeypatch):
  monkeypatch.setattr(_served, "PAUSE_S", 0.0)
  log = []
  units = [(["train"], ["traced", "static"]), (["embed"], ["embed"])]
  answers = _served.interleaved(lambda: _FakeSide("ref", log), lambda: _FakeSide("ours", log),
                                rounds=2, pairs=2, units=units)
  assert log == [
      ("ref", "start"), ("ours", "start"),
      ("ref", "train"), ("ours", "traced"), ("ours", "static"), ("ref", "embed"), ("ours", "embed"),
      ("ours", "traced"), ("ours", "static"), ("ref", "train"), ("ours", "embed"), ("ref", "embed"),
      ("ours", "end"), ("ref", "end"),
      ("ref", "start"), ("ours", "start"),
      ("ref", "train"), ("ours", "traced"), ("ours", "static"), ("ref", "embed"), ("ours", "embed"),
      ("ours", "traced"), ("ours", "static"), ("ref", "train"), ("ours", "embed"), ("ref", "embed"),
      ("ours", "end"), ("ref", "end")]
  assert len(answers) == 4
  ref, ours = answers[1]
  assert ref["ready"] == {"side": "ref"} and ours["ready"] == {"side": "ours"}
  assert set(ref) == {"ready", "train", "embed"} and set(ours) == {"ready", "traced", "static",
                                                                   "embed"}
  assert ref["train"]["seconds"] == 10.0 and ours["traced"]["seconds"] == 8.0  # the log's count


def _answers(loss=0.19, ok=True, bf16=False):
  ref = {"ready": {"torch": "2.13.0+cpu", "threads": 2, "sequences": 24},
         "train": {"seconds": 2.0, "loss": loss}, "embed": {"seconds": 4.0}}
  ours = {"ready": {}, "traced": {"seconds": 1.0, "ok": ok}, "static": {"seconds": 0.8, "ok": True},
          "embed": {"seconds": 2.0}}
  if bf16:
    ref.update(train_bf16={"seconds": 1.5, "loss": loss}, embed_bf16={"seconds": 3.0})
    ours.update(traced_bf16={"seconds": 0.75, "ok": True}, static_bf16={"seconds": 0.5, "ok": True},
                embed_bf16={"seconds": 1.0})
    ours["ready"]["embed_bf16_deviation"] = 1.5e-3
  return ref, ours


def test_a_pairs_answers_become_the_tables_figures():
  ref, ours = reference_speed.figures(*_answers(bf16=True), (8, 16, 32))
  assert ref == {"torch": "2.13.0+cpu", "threads": 2, "train_step_s": 2.0, "loss": 0.19,
                 "embed_seq_per_s": 6.0, "train_bf16_step_s": 1.5, "loss_bf16": 0.19,
                 "embed_bf16_seq_per_s": 8.0}
  assert ours == {"traced_step_s": 1.0, "static_step_s": 0.8, "embed_seq_per_s": 12.0,
                  "traced_bf16_step_s": 0.75, "static_bf16_step_s": 0.5,
                  "embed_bf16_seq_per_s": 24.0, "embed_bf16_deviation": 1.5e-3}
  assert reference_speed.ratios(ref, ours)["train_static"] == pytest.approx(2.5)


@pytest.mark.parametrize("loss", [float("nan"), float("inf")])
def test_a_non_finite_reference_loss_is_refused(loss):
  """Its timing would be of NaN arithmetic (tools/reference_torch.py once computed the triplet
  distances' square root with clamp, whose backward made every gradient NaN at step 1)."""
  with pytest.raises(SystemExit, match="loss is .* not finite"):
    reference_speed.figures(*_answers(loss=loss), (8, 16, 32))
  # The bfloat16 (autocast) training run is held to the same rule when it was asked for.
  ref, ours = _answers(bf16=True)
  ref["train_bf16"]["loss"] = loss
  with pytest.raises(SystemExit, match="loss in bf16 is .* not finite"):
    reference_speed.figures(ref, ours, (8, 16, 32))


def test_a_skipped_gait_jax_step_is_refused():
  with pytest.raises(SystemExit, match="traced.*non-finite loss or gradient"):
    reference_speed.figures(*_answers(ok=False), (8, 16, 32))


_CHILD = """
import sys
sys.path.insert(0, {repo!r})
from gait_jax.benchmarks import _served
print("a library's own line on stdout")
_served.answer_commands({{"unit": lambda: {{"seconds": 0.5}},
                          "die": lambda: sys.exit(3)}}, {{"ready": True}})
"""


def test_a_side_skips_other_output_and_a_dying_side_is_one_clear_error(tmp_path):
  from conftest import REPO
  argv = [sys.executable, "-c", _CHILD.format(repo=REPO)]
  with _served.Side(argv, "the test side") as side:
    assert side.ready == {"ready": True}
    assert side("unit") == {"seconds": 0.5} and side("unit") == {"seconds": 0.5}
    with pytest.raises(SystemExit, match="the test side: its process ended .*exit status 3"):
      side("die")
  with _served.Side(argv, "the test side") as side:
    with pytest.raises(SystemExit, match="unknown command 'nope'"):
      side("nope")


def test_gait_jax_side_in_a_fresh_process_answers_every_unit(tmp_path, monkeypatch):
  """gait_jax's side of a row, run as the benchmark runs it (a child process), answers each
  unit the table divides: the train steps (finite) and the embedding pass."""
  # The child on one CPU device, as the benchmark, compiled fast (what is checked here is the
  # protocol, not the speed; compiling is most of the test's time).
  monkeypatch.setenv("XLA_FLAGS", step_lib.FAST_COMPILE_FLAGS)
  from gait_jax.benchmarks import embed_speed
  from gait_jax.synthetic import walkers
  data = walkers.generate(str(tmp_path / "walk"), ids=4, seqs_per_id=2, views=("000",),
                          frames=12, seed=0)
  root = str(tmp_path / "embed")
  embed_tree = (root, embed_speed._write_tree(root, [8, 12, 9]))  # pylint: disable=protected-access
  args = argparse.Namespace(path="0,5,0,1", batch_p=2, batch_k=2)
  with reference_speed.start_gait_jax((4, 8, 8), {"frames": 6}, args, data, embed_tree,
                                      bf16=False) as side:
    assert side.ready == {"ready": True}
    for _ in range(2):
      for kind in ("traced", "static"):
        answer = side(kind)
        assert answer["ok"] is True and 0 < answer["seconds"] < 600, answer
      assert 0 < side("embed")["seconds"] < 600
