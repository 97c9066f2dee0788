#!/usr/bin/env bash
# The walkers-only model at the reference's small GREW widths, trained on an NVIDIA GPU in about
# 8 minutes of machine time (configs/pretrained_walkers.py:gpu), brought back as one archive.
#   bash tools/gpu_pretrain.sh --wheels           here, with PyPI: the pinned pure-Python packages
#                                                 a GPU machine without network lacks -> .whl/
#   bash tools/gpu_pretrain.sh                    on the GPU machine: 2000 KTH-like walkers (every
#                                                 core) -> training (at most GPU_TRAIN_SECONDS) ->
#                                                 $GPU_PRETRAIN_OUT/gpu_pretrained.tar.gz
#   bash tools/gpu_pretrain.sh --finish ARCHIVE   here: unpacked into $PRETRAIN_DIR, then the
#                                                 KTH-walk validation and zero-shot figures and
#                                                 PROVENANCE.md
#                                                 (KTH data: not on the GPU machine)
#   bash tools/gpu_pretrain.sh --dry-run          the GPU machine's pipeline on the CPU with tiny
#                                                 settings (what CI runs)
# Without a GPU the plain form says so and exits 0. Training stops at GPU_TRAIN_SECONDS (default
# 240) even if its 4000 steps are not done: the newest checkpoint (every 250 steps) is shipped and
# the log's seq/s says how many steps the time allows next time (GPU_STEPS).
# Environment: GPU_PRETRAIN_OUT (runs/pretrained_gpu/out), GPU_TRAIN_SECONDS (240), GPU_STEPS
# (4000), PRETRAIN_DIR (runs/pretrained_gpu), KTH_ROOT / KTH_PARTITION as train_pretrained.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
TOOL=gpu_pretrain
MODE="${1:-}"
ARCHIVE="${2:-}"
set --  # the set-up scripts sourced below take their own arguments
RUN="${PRETRAIN_DIR:-runs/pretrained_gpu}"
OUT="${GPU_PRETRAIN_OUT:-$RUN/out}"
GPU_TRAIN_SECONDS="${GPU_TRAIN_SECONDS:-240}"
GPU_STEPS="${GPU_STEPS:-4000}"
TIMES="$RUN/stage_seconds.txt"
source tools/_stages.sh
whole_numbers GPU_TRAIN_SECONDS GPU_STEPS
# The pure-Python pins of requirements.txt (one place for the versions); JAX and jaxlib are the
# GPU machine's own (their CUDA builds are hundreds of MB).
CARRIED="flax|optax|orbax-checkpoint|ml-collections|clu|tensorboardX"

case "$MODE" in
  --wheels)
    rm -rf .whl && mkdir -p .whl
    grep -E "^($CARRIED)==" requirements.txt | xargs python3 -m pip download -q --no-deps \
      --only-binary=:all: --python-version 3.12 --implementation cp --platform any -d .whl
    ls .whl
    exit 0 ;;
  --finish)
    if [ ! -f "$ARCHIVE" ]; then
      echo "$TOOL: --finish needs the archive the GPU run wrote (got '$ARCHIVE')" >&2
      exit 2
    fi
    source tools/_venv.sh
    KTH_ROOT="${KTH_ROOT:-../shared/data/kth_walking}"
    KTH_PARTITION="${KTH_PARTITION:-../shared/data/kth_walking.json}"
    kth_data "$KTH_ROOT" "$KTH_PARTITION"
    mkdir -p "$RUN"
    tar -xzf "$ARCHIVE" -C "$RUN"
    kth_figures "$RUN/model" "$KTH_ROOT" "$KTH_PARTITION"
    python tools/ship_checkpoint.py --out "$RUN/model" --provenance "$RUN" \
      --recipe "bash tools/gpu_pretrain.sh"
    exit 0 ;;
  --dry-run)
    echo "gpu_pretrain --dry-run: the GPU machine's pipeline on the CPU with tiny settings"
    source tools/_venv.sh
    export JAX_PLATFORMS=cpu
    XLA_FLAGS="$(python -c 'from gait_jax.training import step; print(step.FAST_COMPILE_FLAGS)')"
    export XLA_FLAGS GAIT_JAX_CONV=xla  # the GPU's convolution formulation
    DRY=1 IDS=6 SEQS=2 FRAMES=12 GPU_STEPS=3
    TINY=(--config.model.channels="(4,8,8)" --config.model.out_channels=8
          --config.data.batch_p=2 --config.data.batch_k=2 --config.data.frames=6
          --config.train.dtype=float32 --config.data.cache=False) ;;
  "")
    if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
      echo "gpu_pretrain: no NVIDIA GPU on this machine (nvidia-smi finds none): nothing to train."
      exit 0
    fi
    nvidia-smi -L
    source tools/_gpu_env.sh
    export JAX_PLATFORMS=cuda
    DRY=0 IDS=2000 SEQS=6 FRAMES=40
    TINY=() ;;
  *) echo "$TOOL: unknown argument $MODE (expected --wheels, --finish ARCHIVE or --dry-run)" >&2
     exit 2 ;;
esac

rm -rf "$RUN/walkers" "$RUN/walkers.json" "$RUN/train" "$RUN/model" "$OUT" "$TIMES"
mkdir -p "$RUN" "$OUT"
if [ "$DRY" = 1 ]; then gpu="the CPU (a dry run):"; else gpu="$(nvidia-smi -L | head -1);"; fi
echo "$gpu $(python -c 'from gait_jax.benchmarks import _machine; print(_machine.describe())')" \
  > "$RUN/trained_on.txt"
echo "== 1/3 KTH-like walkers ($IDS ids x $SEQS sequences, side view, kth, $(nproc) workers)"
stage walkers python tools/make_walkers.py --out "$RUN/walkers" --ids "$IDS" --seqs-per-id "$SEQS" \
  --views 090 --frames "$FRAMES" --profile kth --train-ids "$IDS" --seed 0 --workers "$(nproc)"
echo "== 2/3 training ($GPU_STEPS steps, at most $GPU_TRAIN_SECONDS s) -> $RUN/train"
start=$SECONDS
set +e
timeout "$GPU_TRAIN_SECONDS" python -m gait_jax.main \
  --config configs/pretrained_walkers.py:gpu --workdir "$RUN/train" \
  --config.data.root="$RUN/walkers" --config.data.partition="$RUN/walkers.json" \
  --config.model.class_num="$IDS" --config.train.eval_every=0 \
  --config.train.total_steps="$GPU_STEPS" \
  --config.optim.milestones="($((GPU_STEPS * 3 / 4)),$((GPU_STEPS * 11 / 12)))" "${TINY[@]}" \
  2>&1 | tee "$RUN/train.log"
rc=${PIPESTATUS[0]}
set -e
echo "train $((SECONDS - start))" >> "$TIMES"
if [ "$rc" = 124 ]; then
  echo "   stopped at GPU_TRAIN_SECONDS=$GPU_TRAIN_SECONDS: the newest checkpoint is shipped"
elif [ "$rc" != 0 ]; then
  echo "$TOOL: training failed (exit $rc); its log: $RUN/train.log" >&2
  exit "$rc"
fi
echo "== 3/3 the newest step -> $OUT/gpu_pretrained.tar.gz"
python tools/ship_checkpoint.py --workdir "$RUN/train" --out "$RUN/model"
# What --finish and PROVENANCE.md read: the model, the training config (train/config.json),
# the walkers' partition, the stages' times, the machine and the log.
tar -czf "$OUT/gpu_pretrained.tar.gz" -C "$RUN" model train/config.json walkers.json \
  stage_seconds.txt trained_on.txt train.log
ls -l "$OUT"
