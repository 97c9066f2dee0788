"""Two benchmark sides timed one unit of work at a time, in turn, each in a process of its own.

Why not each side's whole run back to back: a shared machine's own speed wanders by a third
within seconds (docs/benchmarks.md), so figures taken a minute apart divide that wander into
the ratio. A side here is a process that sets its work up (compiling, warming up), says it is
ready, then runs one unit (a train step, an embedding pass) per command and answers with its
time: one line `@@ {json}` on stdout each (the marker keeps answers apart from what libraries
print). The other side waits, idle, while one is timed.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time

MARKER = "@@ "
# Between units: OpenMP and XLA worker threads spin a little after their work before they
# sleep; neither side's should still be spinning when the other's unit starts.
PAUSE_S = 0.05


def say(record: dict) -> None:
  """A side's answer to the benchmark (the reference's side loads this file by its path)."""
  print(MARKER + json.dumps(record), flush=True)


def answer_commands(units: dict, ready: dict, commands=None) -> None:
  """The side's loop: says `ready`, then runs `units[name]()` for each command line."""
  say(ready)
  for line in commands if commands is not None else sys.stdin:
    name = line.strip()
    if name not in units:
      raise SystemExit(f"unknown command {name!r} (expected one of {sorted(units)})")
    say(units[name]())


class Side:
  """A side's process: `Side(argv, what)` starts it and waits until it is ready (`.ready`);
  `side(command)` runs one unit and returns its answer. A side that dies is one clear error
  with the end of its stderr."""

  def __init__(self, argv, what: str, env=None, cwd=None):
    self.what = what
    # Its stderr to a file: a pipe nobody reads could fill and stall it.
    self._log = tempfile.TemporaryFile("w+")
    self._proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=self._log, text=True, env=env, cwd=cwd)
    self.ready = self._answer()

  def __call__(self, command: str) -> dict:
    try:
      self._proc.stdin.write(command + "\n")
      self._proc.stdin.flush()
    except BrokenPipeError:
      pass  # it has ended; _answer says how
    return self._answer()

  def _answer(self) -> dict:
    for line in self._proc.stdout:
      if line.startswith(MARKER):
        return json.loads(line[len(MARKER):])
    self._proc.wait()
    self._log.seek(0)
    raise SystemExit(f"{self.what}: its process ended (exit status {self._proc.returncode}) "
                     f"without an answer:\n{self._log.read()[-2000:]}")

  def close(self) -> None:
    if self._proc.poll() is None:
      self._proc.stdin.close()  # the end of its commands: it exits
      try:
        self._proc.wait(timeout=60)
      except subprocess.TimeoutExpired:
        self._proc.kill()
        self._proc.wait()
    self._log.close()

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()


def interleaved(start_a, start_b, rounds: int, pairs: int, units) -> list:
  """[(a's answers, b's answers)], `rounds` × `pairs` of them: each round starts both sides
  afresh (`start_a()`, `start_b()`: Sides), then per pair and per group of `units`
  ([(a's commands, b's commands)]) runs a's commands, then b's — or b's first, alternating from
  pair to pair — a pause before each. Answers are keyed by command, with each side's ready
  line under "ready"."""
  out = []
  for r in range(rounds):
    with start_a() as a, start_b() as b:
      for i in range(pairs):
        answers = ({"ready": a.ready}, {"ready": b.ready})
        order = (0, 1) if (r * pairs + i) % 2 == 0 else (1, 0)
        for group in units:
          for k in order:
            for command in group[k]:
              time.sleep(PAUSE_S)
              answers[k][command] = (a, b)[k](command)
        out.append(answers)
  return out
