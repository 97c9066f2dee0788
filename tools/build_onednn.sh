#!/usr/bin/env bash
# Builds gait_jax/models/_onednn_conv3d.so: oneDNN's 3-D convolutions as XLA:CPU custom calls
# (gait_jax/models/onednn_conv3d.cc), and the uninitialised buffers of the traced choice layers'
# switch residuals (gait_jax/models/uninitialized.cc), against the onednn-cpu-gomp wheels of
# requirements-onednn.txt and the XLA FFI headers jaxlib ships. Run by the set-up
# (tools/_venv.sh); rebuilds only when the source, the wheels or jaxlib change.
# Never fails the set-up: where it cannot build (not Linux x86-64, no C++ compiler, no wheels),
# it says so in one line and gait_jax uses XLA's convolutions (GAIT_JAX_CONV=auto -> fold).
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY=.venv/bin/python
SRCS=(gait_jax/models/onednn_conv3d.cc gait_jax/models/uninitialized.cc)
# The library, where onednn_conv.py loads it (GAIT_JAX_ONEDNN_LIB: another build, e.g. tests).
LIB="${GAIT_JAX_ONEDNN_LIB:-gait_jax/models/_onednn_conv3d.so}"
CXX="${CXX:-g++}"
skip() {
  echo "[setup] oneDNN convolutions not built ($1): gait_jax uses XLA's convolutions"
  exit 0
}

[ "$(uname -s)-$(uname -m)" = "Linux-x86_64" ] || skip "the wheels are for Linux x86-64"
[ -x "$PY" ] || skip "no .venv"
jaxlib="$("$PY" -c 'import jaxlib; print(jaxlib.__version__)' 2>/dev/null)" || skip "no jaxlib"
want="$(cat "${SRCS[@]}" requirements-onednn.txt | sha256sum | cut -d' ' -f1)-jaxlib-$jaxlib"
[ -f "$LIB" ] && [ "$(cat "$LIB.sha" 2>/dev/null)" = "$want" ] && exit 0
command -v "$CXX" >/dev/null 2>&1 || skip "no C++ compiler ($CXX)"

echo "[setup] building the oneDNN convolutions ($LIB)"
"$PY" -m pip install -q -r requirements-onednn.txt 2>/dev/null \
  || skip "pip could not install requirements-onednn.txt"
VENV_ROOT="$("$PY" -c 'import sys; print(sys.prefix)')"
FFI_INC="$("$PY" -c 'import jax.ffi; print(jax.ffi.include_dir())')" \
  || skip "jax has no FFI headers"
[ -f "$VENV_ROOT/include/oneapi/dnnl/dnnl.hpp" ] || skip "no oneDNN headers in $VENV_ROOT/include"
tmp="$LIB.tmp.$$"
# The headers are system headers (-isystem): their own warnings are not ours.
if ! log="$("$CXX" -O2 -std=c++17 -shared -fPIC -isystem "$FFI_INC" -isystem "$VENV_ROOT/include" \
    "${SRCS[@]}" -o "$tmp" -L"$VENV_ROOT/lib" -l:libdnnl.so.3 -Wl,-rpath,"$VENV_ROOT/lib" 2>&1)"; then
  rm -f "$tmp"
  echo "$log" | tail -5 >&2
  skip "the compiler failed"
fi
mv -f "$tmp" "$LIB"
echo "$want" > "$LIB.sha"
