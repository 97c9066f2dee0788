"""`tools/benchmark.py reference` without PyTorch: its venv is made once from
requirements-bench.txt (and remade when that changes), and the table's ratios are gait_jax's
speed over the reference's."""
import argparse
import os
import subprocess

import pytest

from gait_jax.benchmarks import reference_speed


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
  args = argparse.Namespace(quick=False, widths="64,128,256;8,16,32", frames=30, steps=5,
                            sequences=24, lengths="40-90", rounds=3)
  s = reference_speed.settings(args)
  assert s["widths"] == [(64, 128, 256), (8, 16, 32)] and s["lengths"] == (40, 90)
  assert s["rounds"] == 3
  assert reference_speed.settings(argparse.Namespace(quick=True))["widths"] == [(4, 8, 8)]
  with pytest.raises(SystemExit, match="--rounds=0"):
    reference_speed.settings(argparse.Namespace(**dict(vars(args), rounds=0)))


def test_rounds_combine_into_medians_of_their_own_ratios():
  """A row's ratio is the median of each round's side-by-side ratio (not a ratio of medians
  taken from different rounds), with the range over the rounds."""
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
  assert row["reference"]["torch"] == "2.13.0+cpu" and len(row["rounds"]) == 3
  text = reference_speed.table([row])
  assert "2.00x (1.00-3.00)" in text and "2.00x (1.00-4.00)" in text
  one = reference_speed.combine((64, 128, 256), rounds[:1])
  assert "(" not in reference_speed.table([one]).split("\n")[1]


def test_rounds_alternate_who_goes_first_and_keep_each_sides_result():
  calls = []

  def side(name):
    def run():
      calls.append(name)
      return f"{name}{sum(c == name for c in calls)}"  # the side's own count of its runs
    return run

  pairs = reference_speed.alternating_rounds(side("ref"), side("ours"), 3)
  assert calls == ["ref", "ours", "ours", "ref", "ref", "ours"]
  assert pairs == [("ref1", "ours1"), ("ref2", "ours2"), ("ref3", "ours3")]
  assert reference_speed.alternating_rounds(side("ref"), side("ours"), 0) == []


@pytest.mark.parametrize("loss", ["NaN", "Infinity"])
def test_a_non_finite_reference_loss_is_refused(monkeypatch, loss):
  """Its timing would be of NaN arithmetic (tools/reference_torch.py once computed the triplet
  distances' square root with clamp, whose backward made every gradient NaN at step 1)."""
  out = '{"torch": "2.13.0+cpu", "threads": 2, "train_step_s": 1.0, "embed_seq_per_s": 5.0, ' \
        f'"loss": {loss}}}\n'
  monkeypatch.setattr(subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 0, out, ""))
  with pytest.raises(SystemExit, match="loss is .* not finite"):
    reference_speed.reference("python", {"steps": 5, "channels": [8, 16, 32]})
  finite = out.replace(loss, "0.19")
  monkeypatch.setattr(subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 0, finite, ""))
  assert reference_speed.reference("python", {"steps": 5, "channels": [8, 16, 32]})["loss"] == 0.19
  # The bfloat16 (autocast) training run is held to the same rule when it was asked for.
  half = finite.replace("}", f', "loss_bf16": {loss}}}')
  monkeypatch.setattr(subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(a, 0, half, ""))
  with pytest.raises(SystemExit, match="loss in bf16 is .* not finite"):
    reference_speed.reference("python", {"steps": 5, "channels": [8, 16, 32], "bf16": True})


def test_gait_jax_row_in_a_fresh_process_reports_every_figure(tmp_path, monkeypatch):
  """gait_jax's side of a row, run as the benchmark runs it (a child process), returns the
  figures the table divides: the median train steps and the embedding rate."""
  monkeypatch.delenv("XLA_FLAGS", raising=False)  # the child on one CPU device, as the benchmark
  from gait_jax.benchmarks import embed_speed
  from gait_jax.synthetic import walkers
  data = walkers.generate(str(tmp_path / "walk"), ids=4, seqs_per_id=2, views=("000",),
                          frames=12, seed=0)
  root = str(tmp_path / "embed")
  embed_tree = (root, embed_speed._write_tree(root, [8, 12, 9]))  # pylint: disable=protected-access
  args = argparse.Namespace(path="0,5,0,1", batch_p=2, batch_k=2)
  ours = reference_speed.gait_jax_process((4, 8, 8), {"frames": 6, "steps": 2}, args, data,
                                          embed_tree, bf16=False)
  assert set(ours) == {"traced_step_s", "static_step_s", "embed_seq_per_s"}
  assert all(0 < v < 600 for v in ours.values()), ours
