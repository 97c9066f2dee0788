"""The suite's xdist scheduler: mesh tests only on the 8-device worker, nothing left waiting."""
import types

from conftest import MESH_WORKER, needs_mesh
from helpers.mesh_scheduling import MeshScheduling

COLLECTION = [
    "tests/models/test_shapes.py::test_a",
    "tests/training/test_step.py::test_b",
    "tests/models/test_shapes.py::test_c",
    "tests/training/test_loop.py::test_d",
    "tests/training/test_losses.py::test_triplet_sharded_equals_single_device",
    "tests/training/test_losses.py::test_triplet_hand_worked_line",
]


class Node:
  def __init__(self, name):
    self.gateway = types.SimpleNamespace(id=name)
    self.shutting_down = False
    self.received = []

  def send_runtest_some(self, indices):
    self.received.extend(COLLECTION[i] for i in indices)

  def shutdown(self):
    self.shutting_down = True


class Config:
  def __init__(self, workers):
    self.workers = workers

  def getvalue(self, name):
    return {"tx": [f"{self.workers}*popen"]}[name]

  def getoption(self, name):
    return {"maxschedchunk": 1}[name]


def _scheduler(*names):
  sched = MeshScheduling(Config(len(names)), None, needs_mesh, MESH_WORKER)
  nodes = [Node(n) for n in names]
  for node in nodes:
    sched.add_node(node)
    sched.add_node_collection(node, COLLECTION)
  sched.schedule()
  return sched, nodes


def _run_all(sched, nodes):
  """Completes each node's first pending test in turn until no test is left anywhere."""
  while sched.has_pending:
    for node in nodes:
      if sched.node2pending.get(node):
        sched.mark_test_complete(node, sched.node2pending[node][0], duration=1.0)


def test_mesh_tests_run_on_the_mesh_worker_only_and_it_takes_them_first():
  sched, (mesh, other) = _scheduler(MESH_WORKER, "gw1")
  _run_all(sched, [mesh, other])
  assert sorted(mesh.received + other.received) == sorted(COLLECTION)  # each test once
  assert not any(needs_mesh(t) for t in other.received)
  assert other.received  # the one-device worker is used
  ran_mesh = [needs_mesh(t) for t in mesh.received]
  assert ran_mesh == sorted(ran_mesh, reverse=True)  # mesh tests before any other
  assert mesh.shutting_down and other.shutting_down


def test_an_idle_one_device_worker_stops_while_only_mesh_tests_wait():
  sched, (mesh, other) = _scheduler(MESH_WORKER, "gw1")
  while any(not needs_mesh(COLLECTION[t]) for t in sched.pending) or sched.node2pending[other]:
    for t in list(sched.node2pending[other]):
      sched.mark_test_complete(other, t, duration=1.0)
  sched.check_schedule(mesh)
  assert sched.pending and other.shutting_down and not mesh.shutting_down


def test_without_the_mesh_worker_every_test_still_runs():
  sched, (node,) = _scheduler("gw3")  # the mesh worker crashed and was replaced
  _run_all(sched, [node])
  assert sorted(node.received) == sorted(COLLECTION)
