# Sourced by the GPU scripts (gpu_check.sh, gpu_pretrain.sh) on a machine with an NVIDIA GPU:
# makes `python` the interpreter that runs gait_jax there. Arguments: extra requirement files.
# - Wheels in .whl/ (`bash tools/gpu_pretrain.sh --wheels`, run where pip reaches PyPI): for a
#   machine that cannot fetch packages but whose python3 already has JAX with CUDA (the tool
#   library's device machines). The pinned pure-Python packages go into a private folder on that
#   python3's path; JAX, jaxlib and the CUDA libraries stay the machine's own.
# - Otherwise .venv with requirements-gpu.txt (jax[cuda12]) and the extra files, from PyPI.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if compgen -G "$ROOT/.whl/*.whl" >/dev/null; then
  GPU_SITE="${TMPDIR:-/tmp}/gait_jax_gpu_site"
  system_python="$(command -v python3)"
  echo "[setup] the machine's $("$system_python" --version) with the wheels of .whl/ (no network)"
  "$system_python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$GPU_SITE" "$ROOT"/.whl/*.whl
  # A wrapper, not a link: a link to a venv's python would lose that venv's site-packages.
  mkdir -p "$GPU_SITE/bin"
  printf '#!/bin/sh\nexec "%s" "$@"\n' "$system_python" > "$GPU_SITE/bin/python"
  chmod +x "$GPU_SITE/bin/python"
  export PATH="$GPU_SITE/bin:$PATH"
  export PYTHONPATH="$GPU_SITE:$ROOT${PYTHONPATH:+:$PYTHONPATH}"
  python -c "import jax, flax, optax, orbax.checkpoint; print('[setup] jax', jax.__version__, \
'flax', flax.__version__, 'optax', optax.__version__)"
else
  source "$ROOT/tools/_venv.sh" "$@" requirements-gpu.txt
fi
