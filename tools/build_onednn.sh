#!/usr/bin/env bash
# Builds gait_jax/models/_onednn_conv3d.so: oneDNN's 3-D convolutions as XLA:CPU custom calls
# (gait_jax/models/onednn_conv3d.cc), and the uninitialised buffers of the traced choice layers'
# switch residuals (gait_jax/models/uninitialized.cc) and the small network's first stage in one
# pass (gait_jax/models/first_stage.cc at inference, first_stage_train.cc in training), against
# the onednn-cpu-gomp wheels of requirements-onednn.txt and the XLA FFI headers jaxlib ships.
# Run by the set-up (tools/_venv.sh); rebuilds only when the source, the wheels or jaxlib change.
# Never fails the set-up: where it cannot build (not Linux x86-64, no C++ compiler, no wheels),
# it says so in one line and gait_jax uses XLA's convolutions (GAIT_JAX_CONV=auto -> fold).
source "$(dirname "${BASH_SOURCE[0]}")/_native_build.sh"
PY=.venv/bin/python
SRCS=(gait_jax/models/onednn_conv3d.cc gait_jax/models/uninitialized.cc)
# The library, where onednn_conv.py loads it (GAIT_JAX_ONEDNN_LIB: another build, e.g. tests).
LIB="${GAIT_JAX_ONEDNN_LIB:-gait_jax/models/_onednn_conv3d.so}"
CXX="${CXX:-g++}"
NATIVE_WHAT="oneDNN convolutions"
NATIVE_INSTEAD="gait_jax uses XLA's convolutions"

[ "$(uname -s)-$(uname -m)" = "Linux-x86_64" ] || native_skip "the wheels are for Linux x86-64"
[ -x "$PY" ] || native_skip "no .venv"
jaxlib="$("$PY" -c 'import jaxlib; print(jaxlib.__version__)' 2>/dev/null)" \
  || native_skip "no jaxlib"
FIRST_STAGE_SRCS=(gait_jax/models/first_stage.cc gait_jax/models/first_stage_train.cc
                  gait_jax/models/first_stage_simd.h)
native_current "$(cat "${SRCS[@]}" "${FIRST_STAGE_SRCS[@]}" requirements-onednn.txt | sha256sum | cut -d' ' -f1)-jaxlib-$jaxlib"
command -v "$CXX" >/dev/null 2>&1 || native_skip "no C++ compiler ($CXX)"

"$PY" -m pip install -q -r requirements-onednn.txt 2>/dev/null \
  || native_skip "pip could not install requirements-onednn.txt"
VENV_ROOT="$("$PY" -c 'import sys; print(sys.prefix)')"
FFI_INC="$("$PY" -c 'import jax.ffi; print(jax.ffi.include_dir())')" \
  || native_skip "jax has no FFI headers"
[ -f "$VENV_ROOT/include/oneapi/dnnl/dnnl.hpp" ] \
  || native_skip "no oneDNN headers in $VENV_ROOT/include"
# The first stage's kernels are AVX2 + FMA code with OpenMP (first_stage.py calls them only where
# the CPU lists both); everything else stays plain x86-64. A compiler that cannot build them costs
# only those kernels: the library is built without them, and the stage runs in XLA's ops.
FIRST_STAGE=("-fopenmp" "$NATIVE_TMP.o" "$NATIVE_TMP.train.o")
trap 'rm -f "$NATIVE_TMP.o" "$NATIVE_TMP.train.o"' EXIT  # objects never outlive the build
for src in first_stage:o first_stage_train:train.o; do
  if ! first_stage_log="$("$CXX" -O2 -std=c++17 -fopenmp -mavx2 -mfma -fPIC -isystem "$FFI_INC" \
      -c "gait_jax/models/${src%%:*}.cc" -o "$NATIVE_TMP.${src#*:}" 2>&1)"; then
    echo "$first_stage_log" | tail -5 >&2
    echo "[setup] the native first stage not built (the compiler failed): the stage runs in" \
      "XLA's ops"
    FIRST_STAGE=()
    break
  fi
done
# The headers are system headers (-isystem): their own warnings are not ours.
native_compile "$CXX" -O2 -std=c++17 -shared -fPIC -isystem "$FFI_INC" \
  -isystem "$VENV_ROOT/include" "${SRCS[@]}" "${FIRST_STAGE[@]}" -o "$NATIVE_TMP" \
  -L"$VENV_ROOT/lib" -l:libdnnl.so.3 -Wl,-rpath,"$VENV_ROOT/lib"
native_install
