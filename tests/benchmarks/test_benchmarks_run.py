"""Every benchmark of `tools/benchmark.py` runs with a quick setting (train and embed run in
the GPU check's dry run, tests/tools/test_gpu_check.py; gradients in
tests/models/test_gradient_accuracy.py) and prints its table."""
import os
import sys

import pytest

from conftest import REPO

sys.path.insert(0, os.path.join(REPO, "tools"))
import benchmark  # noqa: E402

QUICK = {
    "loader": (["--quick", "--workers", "1,2"], "tfds"),
    "tfds_write": (["--sequences", "12,24", "--frames", "10"], "peak RSS MiB"),
    "walkers": (["--quick", "--ids", "10", "--sample-ids", "1", "--seqs-per-id", "2"], "frames/s"),
    "rank": (["--probes", "64", "--gallery", "64"], "probes/s"),
    "conv": (["--channels", "4,8,8", "--batch", "1", "--frames", "4", "--repeats", "1",
              "--path", "0,5,0,1"], "GFLOP/s"),
}
# gradients: run through this command line by tests/models/test_gradient_accuracy.py;
# reference: needs PyTorch, which the test command never installs (its parts without PyTorch:
# tests/benchmarks/test_reference_speed.py).


def test_every_benchmark_has_a_quick_setting_here_or_in_the_gpu_check():
  assert set(benchmark.available()) == set(QUICK) | {"train", "embed", "gradients", "reference"}


@pytest.mark.parametrize("name", sorted(QUICK))
def test_benchmark_runs(name, capsys):
  args, expect = QUICK[name]
  benchmark.main([name, *args])
  out = capsys.readouterr().out
  assert out.startswith("machine: ") and expect in out, out[-2000:]
