#!/usr/bin/env python
"""Benchmarks: `python tools/benchmark.py NAME [--quick] [options]`.

NAME is a benchmark module's `NAME` (gait_jax/benchmarks/: loader, walkers, train, rank, ...);
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
from gait_jax.common import huge_pages  # noqa: E402


def available():
  """{benchmark name: module} (helper modules start with an underscore; a module's command
  name is its `NAME`, else the module name)."""
  modules = {}
  for m in pkgutil.iter_modules(benchmarks.__path__):
    if not m.name.startswith("_"):
      module = importlib.import_module(f"gait_jax.benchmarks.{m.name}")
      modules[getattr(module, "NAME", m.name)] = module
  return dict(sorted(modules.items()))


def main(argv=None):
  modules = available()
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  sub = parser.add_subparsers(dest="name", required=True, metavar="NAME",
                              help="one of: " + ", ".join(modules))
  for name, module in modules.items():
    p = sub.add_parser(name, help=(module.__doc__ or "").strip().split("\n")[0])
    module.add_args(p)
  args = parser.parse_args(argv)
  print(f"machine: {_machine.describe()}")
  modules[args.name].run(args)


if __name__ == "__main__":
  huge_pages.ensure()
  main()
