#!/usr/bin/env bash
# Installs everything into .venv (if needed) and runs the test suite on the CPU.
# Extra arguments go to pytest, e.g. `bash tools/test.sh -k loader -x`.
# The export extras too: the ONNX tests run in CI.
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh" requirements-test.txt nodeps:requirements-export.txt
# The fake CPU devices (8, so the multi-device tests exercise real sharding) are set by
# tests/conftest.py (MESH_DEVICES): under xdist one worker has them and runs those tests, the
# others have one device (tests/helpers/mesh_scheduling.py).
export JAX_PLATFORMS=cpu
# One persistent compilation cache for the run: the many tests (and their subprocesses) that
# build the same tiny networks compile each program once. Fresh per run unless set.
CACHE_ROOT="$(mktemp -d)"
trap 'rm -rf "$CACHE_ROOT"' EXIT
export JAX_COMPILATION_CACHE_DIR="${JAX_COMPILATION_CACHE_DIR:-$CACHE_ROOT/jax_cache}"
export JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="${JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS:-1}"
set +e
python -m pytest -n "${PYTEST_WORKERS:-2}" --maxschedchunk=1 --durations=15 "$@" tests
rc=$?
set -e
# pytest's 5 = "no tests collected": a real failure for CI, not a pass.
exit $rc
