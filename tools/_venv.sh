# Sourced by tools/quickstart.sh and tools/test.sh: creates .venv if missing and installs
# the pinned requirements (with uv, else pip; what is already satisfied is skipped).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# One set-up at a time: quickstart.sh and test.sh started together must not both build .venv.
HAVE_FLOCK=0
if command -v flock >/dev/null 2>&1; then
  HAVE_FLOCK=1
  exec 9>"$ROOT/.venv.lock"
  flock 9
fi
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv with $($PY --version)"
  "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
fi
# Arguments: extra requirement files; one written "nodeps:FILE" is installed with --no-deps
# (requirements-export.txt: its packages' own pins would downgrade ours).
# The stamp lists what is installed, one line per file, each tied to requirements.txt and
# pyproject.toml as they were: a script needing fewer extras than the last (the quickstart or
# the GPU check after the tests) installs nothing, and none reinstalls into a .venv that a
# running test suite is importing from.
stamp=.venv/.requirements.sha
_venv_sha() { { sha256sum "$@" 2>/dev/null || echo missing; } | cut -d' ' -f1; }
base="$(cat requirements.txt pyproject.toml 2>/dev/null | sha256sum | cut -d' ' -f1)"
need=("base@$base")
for extra in "$@"; do need+=("$extra:$(_venv_sha "${extra#nodeps:}")@$base"); done
installed=1
for line in "${need[@]}"; do grep -qxF -- "$line" "$stamp" 2>/dev/null || installed=0; done
if [ "$installed" = 0 ]; then
  echo "[setup] installing requirements"
  reqs=(-r requirements.txt)
  nodeps=()
  for extra in "$@"; do
    case "$extra" in
      nodeps:*) nodeps+=(-r "${extra#nodeps:}") ;;
      *) reqs+=(-r "$extra") ;;
    esac
  done
  # uv, resolving as pip would here (tools/_uv_install.py), takes seconds where pip takes a
  # minute; pip is the fallback.
  install() {
    .venv/bin/python tools/_uv_install.py "$@" || .venv/bin/python -m pip install -q "$@"
  }
  install "${reqs[@]}"
  if [ ${#nodeps[@]} -gt 0 ]; then install --no-deps "${nodeps[@]}"; fi
  # gait_jax itself, editable: `from gait_jax.identify import Recognizer` works from any folder.
  # (setuptools' editable-install banner is shown only when the install fails.)
  if ! log="$(.venv/bin/python -m pip install -q --no-deps -e . 2>&1)"; then
    echo "$log" >&2
    exit 1
  fi
  { grep -F -- "@$base" "$stamp" 2>/dev/null || true; printf '%s\n' "${need[@]}"; } \
    | sort -u > "$stamp.tmp"
  mv -f "$stamp.tmp" "$stamp"
fi
# oneDNN's convolutions for the CPU (rebuilt only when they change; never fails the set-up).
bash "$ROOT/tools/build_onednn.sh"
# The block cache that keeps XLA's large CPU buffers mapped between calls (idem).
bash "$ROOT/tools/build_block_cache.sh"
export PATH="$ROOT/.venv/bin:$PATH"
if [ "$HAVE_FLOCK" = 1 ]; then flock -u 9; exec 9>&-; fi
