#!/usr/bin/env bash
# The GPU check, ready to run on a machine with an NVIDIA GPU (about 8 minutes):
#   installs requirements-gpu.txt into .venv (or, on a machine without network, uses its own
#   CUDA JAX with the wheels of .whl/: tools/_gpu_env.sh), runs the model / train-step / embed
#   tests on the GPU,
#   then times small / medium / large, traced and static, float32 and bfloat16 (step time, seq/s,
#   XLA temp memory, achieved TFLOP/s, compile time) and embedding, and prints one table.
# Without a GPU it says so and exits 0. `--dry-run` rehearses the same pipeline on the CPU with
# tiny shapes (what CI runs; two of the four train kinds, which between them use every flag), so
# the commands and the table are known to work before a GPU is lent.
# Results are written to $GPU_CHECK_OUT (default runs/gpu_check).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
DRY=0
[ "${1:-}" = "--dry-run" ] && DRY=1
OUT="${GPU_CHECK_OUT:-runs/gpu_check}"
if [ "$DRY" = 0 ]; then
  if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
    echo "gpu_check: no NVIDIA GPU on this machine (nvidia-smi finds none): nothing to check."
    exit 0
  fi
  nvidia-smi -L
  source tools/_gpu_env.sh requirements-test.txt
  export JAX_PLATFORMS=cuda
  python -c "import jax; d = jax.devices(); assert d[0].platform == 'gpu', d; print('jax devices:', d)"
  MODELS=small,medium,large
  TRAIN=(--steps 3)
  EMBED=(--sequences 24 --lengths 40-90)
  RUNS="float32:traced float32:static bfloat16:traced bfloat16:static"
  # The tests whose subject is the device computation: network, train step, embedding.
  timeout 180 python -m pytest -q -x -p no:cacheprovider tests/models/test_sposgait.py \
    tests/training/test_step.py tests/evaluation/test_embed.py
else
  echo "gpu_check --dry-run: the GPU pipeline on the CPU with tiny shapes"
  source tools/_venv.sh requirements-test.txt
  export JAX_PLATFORMS=cpu
  # One device, as the GPU machine has (the test suite fakes 8); LLVM's fast-compile settings:
  # a step or two of tiny shapes, so compiling is most of the rehearsal's time.
  XLA_FLAGS="$(python -c 'from gait_jax.training import step; print(step.FAST_COMPILE_FLAGS)')"
  export XLA_FLAGS
  # The GPU's convolution formulation (XLA's own; the CPU default is the GEMM one), which also
  # compiles faster.
  export GAIT_JAX_CONV=xla
  MODELS=small
  # remat only changes memory, not the commands (it costs a third of the CPU compile); the
  # tiny widths the quickstart trains: the commands do not depend on them.
  TRAIN=(--quick --steps 1 --remat off --channels 8,16,32)
  EMBED=(--sequences 4 --lengths 8-12 --channels 8,16,32 --repeats 1)
  RUNS="float32:traced bfloat16:static"  # every flag once: the other two are these mixed
fi
mkdir -p "$OUT"
for run in $RUNS; do
  dtype="${run%:*}" kind="${run#*:}"
  flag=()
  [ "$kind" = static ] && flag=(--static)
  python tools/benchmark.py train --models "$MODELS" "${TRAIN[@]}" --dtype "$dtype" \
    --path "" "${flag[@]}" --json "$OUT/train_${dtype}_${kind}.json"
done
python tools/benchmark.py embed --models "$MODELS" --path "" "${EMBED[@]}" --json "$OUT/embed.json"
python tools/benchmark_table.py "$OUT"
