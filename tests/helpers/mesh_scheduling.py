"""xdist's load scheduling with one worker that owns the 8-device tests.

XLA:CPU sizes its intra-op thread pool to at least the device count, so 8 fake devices on a
2-core machine run (and compile) a one-device program 20-40 % slower than one device does: 8
threads split each loop 8 ways and spin for 2 cores. tests/conftest.py therefore gives one
worker the suite's 8 devices and every other worker one; this scheduler sends the tests that
need the mesh to that worker only (before anything else it runs), and the rest to whichever
worker is free, in collection order. (Another `--dist` keeps xdist's own scheduling: a mesh
test that lands on a one-device worker fails saying so.)
"""
from typing import Callable

from xdist.scheduler import LoadScheduling


class MeshScheduling(LoadScheduling):
  """LoadScheduling where `needs_mesh(nodeid)` tests run on worker `mesh_worker` only."""

  def __init__(self, config, log, needs_mesh: Callable[[str], bool], mesh_worker: str):
    super().__init__(config, log)
    self._needs_mesh = needs_mesh
    self._mesh_worker = mesh_worker

  def _order(self, node):
    """Positions in `self.pending` that `node` may run, in the order it should take them."""
    if not any(n.gateway.id == self._mesh_worker for n in self.nodes):
      # The mesh worker is gone (crashed): the mesh tests run anywhere and fail their
      # device-count check there, instead of waiting for a worker that never comes.
      return list(range(len(self.pending)))
    mesh = [self._needs_mesh(self.collection[t]) for t in self.pending]
    own = [i for i, m in enumerate(mesh) if m]
    rest = [i for i, m in enumerate(mesh) if not m]
    return own + rest if node.gateway.id == self._mesh_worker else rest

  def _send_tests(self, node, num: int) -> None:
    chosen = self._order(node)[:num]
    tests = [self.pending[i] for i in chosen]
    for i in sorted(chosen, reverse=True):
      del self.pending[i]
    if tests:
      self.node2pending[node].extend(tests)
      node.send_runtest_some(tests)

  def check_schedule(self, node, duration: float = 0) -> None:
    super().check_schedule(node, duration)
    # LoadScheduling stops a worker only once nothing at all is pending; a one-device worker
    # that is idle while only mesh tests wait would never be called again.
    for other in self.nodes:
      if (not other.shutting_down and not self.node2pending[other]
          and self.pending and not self._order(other)):
        other.shutdown()
