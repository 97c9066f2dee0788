"""Test set-up: 8 fake CPU devices (one on xdist's other workers), set before jax is imported;
where the mesh tests run; shared fixtures."""
import os
import re
import sys

# Under xdist the tests that need the mesh (MESH below) run on worker MESH_WORKER, which has the
# MESH_DEVICES devices; every other worker has one (tests/helpers/mesh_scheduling.py says why).
MESH_WORKER, MESH_DEVICES = "gw0", 8
os.environ.setdefault("XLA_FLAGS", f"--xla_force_host_platform_device_count={MESH_DEVICES}")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Only in the worker itself, which pytest has imported: a process that a test starts and that
# imports this file (helpers/multihost_worker.py) keeps the devices the test gave it.
if os.environ.get("PYTEST_XDIST_WORKER", MESH_WORKER) != MESH_WORKER and "pytest" in sys.modules:
  os.environ["XLA_FLAGS"] = re.sub(r"(--xla_force_host_platform_device_count=)\d+", r"\g<1>1",
                                   os.environ["XLA_FLAGS"])

import pytest  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.path.join(os.path.dirname(REPO), "shared", "data")
sys.path.insert(0, REPO)

from gait_jax.training import step as step_lib  # noqa: E402  (after the device flags above)


@pytest.fixture
def shared_data():
  """Path to ../shared/data; skips the test with a clear message when it is absent."""
  if not os.path.isdir(SHARED_DATA):
    pytest.skip(f"real silhouettes not found at {SHARED_DATA} (../shared/data is absent)")
  return SHARED_DATA


def load_module(relpath: str, name: str = ""):
  """A repository file that is not a package module (a tool, a config) as a module."""
  import importlib.util
  spec = importlib.util.spec_from_file_location(
      name or os.path.basename(relpath)[:-3], os.path.join(REPO, relpath))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def load_tool(name: str):
  """tools/NAME.py as a module, e.g. load_tool('gei_baseline')."""
  return load_module(os.path.join("tools", name + ".py"))


def load_config(name: str):
  """A config from configs/ by file name, e.g. load_config('test_tiny')."""
  path = os.path.join("configs", name if name.endswith(".py") else name + ".py")
  return load_module(path, "cfg_" + os.path.basename(name)).get_config()


def fast_cli_env(devices: int = 1, **extra) -> dict:
  """The environment of a command-line smoke test's subprocess: the CPU with `devices` devices
  and XLA:CPU's fast-compile backend options (the ones training uses for its init program) —
  tiny networks run a step or two, so compiling is most of their time, and what they check does
  not depend on LLVM's optimisation level. `extra` adds or replaces variables."""
  flags = step_lib.FAST_COMPILE_FLAGS
  if devices > 1:
    flags = f"--xla_force_host_platform_device_count={devices} {flags}"
  return dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=flags, **extra)


# The minutes-long tests (mostly subprocesses that compile real networks) start first, and
# tools/test.sh hands tests to the xdist workers a few at a time (--maxschedchunk=1): the short
# tests then fill in around the long ones, and no worker is left running one long test alone
# at the end (that tail was minutes of the suite's wall time). Longest first, as `--durations`
# measured them. The identify test builds the model its module shares between the workers
# (helpers.shared_files): started here, the other worker never waits for it.
LONG_FIRST = (
    "tests/tools/test_ranking_study.py::test_smoke_study_records_the_ranking_and_resumes",
    "tests/tools/test_kth_recipe.py::test_recipe_smoke",
    "tests/modes/test_train_mode.py::test_train_writes_checkpoints_and_resumes",
    "tests/common/test_multihost.py::test_two_processes_match_one",
    "tests/identify/test_identify.py::test_every_input_kind_enrols_and_identifies",
    "tests/search/test_search.py::test_finetune_moves_only_the_candidates_ops",
    "tests/training/test_step.py::test_real_sposgait_masked_update",
    "tests/tools/test_gpu_check.py::test_dry_run_produces_the_table",
    "tests/training/test_loop.py::test_resume_matches_uninterrupted_run",
    "tests/training/test_loop.py::test_a_run_moves_between_pkl_and_tfds_and_resumes",
    "tests/models/test_conv.py::test_traced_choice_backward_has_only_canonical_convs",
    "tests/models/test_conv.py::test_onednn_train_steps_run_with_concurrent_custom_calls",
    "tests/models/test_sposgait.py::test_remat_same_variables_outputs_stats_and_gradients",
    "tests/models/test_sposgait.py::test_static_equals_traced_for_20_paths_with_one_compile",
    "tests/search/test_search.py::test_recalibrated_eval_matches_train_mode_statistics",
)


# The tests that run on the 8-device mesh (node-id prefixes): those whose subject it is (sharded
# steps, losses and embeddings, replicated checkpoints, runs that resume on it), and those that
# train the same stand-in supernet on it (they reuse the others' compiled programs).
MESH = (
    "tests/training/test_step.py",
    "tests/training/test_loop.py",
    "tests/training/test_finetune.py",
    "tests/training/test_losses.py::test_triplet_sharded_equals_single_device",
    "tests/search/test_search.py",
    "tests/search/test_weight_angle.py",
    "tests/evaluation/test_embed.py",
    "tests/common/test_checkpoint.py",
    "tests/interop/test_reference_checkpoint.py",
    ("tests/models/test_switch_residuals.py::"
     "test_the_gradient_holds_the_custom_call_only_where_asked"),
)


def needs_mesh(nodeid: str) -> bool:
  return nodeid.startswith(MESH)


@pytest.hookimpl(optionalhook=True)  # xdist's hook: unknown when it is not loaded
def pytest_xdist_make_scheduler(config, log):
  if config.getvalue("dist") != "load":
    return None  # another --dist: xdist's own
  from helpers.mesh_scheduling import MeshScheduling
  return MeshScheduling(config, log, needs_mesh, MESH_WORKER)


def pytest_runtest_setup(item):
  import jax
  if needs_mesh(item.nodeid) and jax.device_count() < MESH_DEVICES:
    pytest.fail(f"{item.nodeid} needs the {MESH_DEVICES}-device mesh; this process has "
                f"{jax.device_count()} (XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r})")


def pytest_collection_modifyitems(config, items):
  del config
  rank = {nodeid: i for i, nodeid in enumerate(LONG_FIRST)}
  items.sort(key=lambda item: rank.get(item.nodeid, len(rank)))  # stable: the rest keep order
