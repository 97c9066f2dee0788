"""Files a module fixture builds once per test run, whichever xdist worker asks first.

A module-scoped fixture runs once per worker that collects a test of the module, so two
workers each build (e.g. train) the same thing. Here the first one builds under an OS lock in
the run's shared temporary directory and the others wait for it and reuse the result."""
import fcntl
import os
import shutil


def built_once(tmp_path_factory, name: str, build):
  """The directory `build(path)` filled, shared by every worker of this pytest run."""
  base = tmp_path_factory.getbasetemp()
  # Under xdist each worker's basetemp is <run>/popen-gwN; their parent is the run's.
  root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
  path = root / f"shared-{name}"
  with open(root / f"shared-{name}.lock", "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
    if not (path / ".built").exists():
      shutil.rmtree(path, ignore_errors=True)  # a build that failed part-way
      path.mkdir()
      build(path)
      (path / ".built").write_text("")
  return path
