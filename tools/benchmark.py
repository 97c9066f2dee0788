#!/usr/bin/env python
"""Benchmarks: `python tools/benchmark.py NAME [--quick] [options]`.

NAME is one of the modules in gait_jax/benchmarks/ (loader, walkers, train, rank, ...);
`python tools/benchmark.py NAME --help` lists its options. Figures depend on the machine:
report them with it (the script prints CPU/device information first).
"""
import argparse
import importlib
import os
import pkgutil
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import gait_jax.benchmarks as benchmarks  # noqa: E402
from gait_jax.benchmarks import _machine  # noqa: E402


def available():
  """Benchmark modules (helpers start with an underscore)."""
  return sorted(m.name for m in pkgutil.iter_modules(benchmarks.__path__)
                if not m.name.startswith("_"))


def main(argv=None):
  names = available()
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  sub = parser.add_subparsers(dest="name", required=True, metavar="NAME",
                              help="one of: " + ", ".join(names))
  modules = {}
  for name in names:
    module = importlib.import_module(f"gait_jax.benchmarks.{name}")
    modules[name] = module
    p = sub.add_parser(name, help=(module.__doc__ or "").strip().split("\n")[0])
    module.add_args(p)
  args = parser.parse_args(argv)
  print(f"machine: {_machine.describe()}")
  modules[args.name].run(args)


if __name__ == "__main__":
  main()
