"""tools/kth_search_study.py's report: mean ± sample standard deviation over seeds per kind of
path, and its refusal of arguments it would silently drop."""

import pytest

from conftest import load_tool

study = load_tool("kth_search_study")


def _run(kind, seed, path, mean, d4=50.0):
  return {"kind": kind, "seed": seed, "path": path, "mean/rank1": mean, "mean/rank5": mean + 20,
          "d4/rank1": d4, "d1/rank1": 10.0, "d2/rank1": 5.0, "d3/rank1": 0.0}


def test_summary_is_mean_and_sample_std_over_seeds():
  runs = [_run("searched", 0, "0,1,2,3", 30.0), _run("searched", 1, "0,1,2,3", 40.0),
          _run("hand-picked", 0, "0,5,5,4", 20.0), _run("hand-picked", 1, "0,5,5,4", 20.0),
          _run("random", 0, "1,1,1,1", 10.0, d4=0.0), _run("random", 1, "2,2,2,2", 20.0)]
  lines, table = study.summarise(runs, "0,1,2,3", 66.7, 2, 150)
  mean, std = table["searched"]["mean/rank1"]
  assert mean == pytest.approx(35.0) and std == pytest.approx(7.0710678)  # ddof=1
  assert table["hand-picked"]["mean/rank1"] == (20.0, 0.0)
  assert table["random"]["d4/rank1"][0] == pytest.approx(25.0)
  assert any(l.startswith("| random (1,1,1,1; 2,2,2,2) |") for l in lines)
  assert "**35.00 ± 7.07**" in "\n".join(lines)


def test_unknown_arguments_are_refused(tmp_path, capsys):
  for bad in (["--seed", "3"], ["--retrain", "5"], ["--steps=3"]):
    with pytest.raises(SystemExit):
      study.main(["--out", str(tmp_path / "run"), *bad])
  assert not (tmp_path / "run").exists()  # nothing was started
