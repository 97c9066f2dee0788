#!/usr/bin/env bash
# Real people on the CPU: the KTH-walk recipe, one command, resumable (rerunning continues each
# stage; a finished stage is skipped):
#   KTH-like walkers -> GEI baselines -> pretraining on the walkers -> the walkers-only model on
#   KTH-walk -> a validation fine-tune (3 training people held out: the curve the settings were
#   chosen by) -> fine-tuning on the 12 TRAIN_SET people -> KTH-walk test with example figures
#   -> the same network trained on KTH only, for comparison -> one summary table.
# configs/kth_recipe.py holds the settings; docs/results.md the measured rows.
# Environment: KTH_RECIPE_DIR (runs/kth_recipe), KTH_ROOT / KTH_PARTITION (../shared/data/
# kth_walking[.json]), WALKER_IDS (200), PRETRAIN_STEPS (600), FINETUNE_STEPS (300),
# KTH_ONLY_LR (0.1),
# RECIPE_ARGS (extra --config.* overrides for every run; the test suite's smoke run shrinks
# the network with it).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
export JAX_PLATFORMS="${JAX_PLATFORMS:-cpu}"
RUN="${KTH_RECIPE_DIR:-runs/kth_recipe}"
KTH_ROOT="${KTH_ROOT:-../shared/data/kth_walking}"
KTH_PARTITION="${KTH_PARTITION:-../shared/data/kth_walking.json}"
WALKER_IDS="${WALKER_IDS:-200}"
PRETRAIN_STEPS="${PRETRAIN_STEPS:-600}"
FINETUNE_STEPS="${FINETUNE_STEPS:-300}"
KTH_ONLY_LR="${KTH_ONLY_LR:-0.1}"  # from scratch: the pretraining's rate, not the fine-tuning's
TOOL=kth_recipe
TIMES="$RUN/stage_seconds.txt"
source "$(dirname "${BASH_SOURCE[0]}")/_stages.sh"
whole_numbers WALKER_IDS PRETRAIN_STEPS FINETUNE_STEPS
if ! [[ "$KTH_ONLY_LR" =~ ^[0-9]*\.?[0-9]+([eE]-?[0-9]+)?$ ]]; then
  echo "kth_recipe: KTH_ONLY_LR=$KTH_ONLY_LR: expected a positive number (e.g. 0.1)" >&2
  exit 2
fi
read -r -a EXTRA <<< "${RECIPE_ARGS:-}"
CFG=configs/kth_recipe.py
kth_data "$KTH_ROOT" "$KTH_PARTITION"
mkdir -p "$RUN"
KTH=(--config.data.root="$KTH_ROOT" --config.data.partition="$KTH_PARTITION")
WALK=(--config.data.root="$RUN/walkers" --config.data.partition="$RUN/walkers.json"
      --config.model.class_num="$WALKER_IDS")
gj() { python -m gait_jax.main "$@" "${EXTRA[@]}"; }
# A test is redone only when its checkpoints are newer than its metrics.
stale() { [ ! -f "$1/metrics.json" ] || [ "$2/checkpoints" -nt "$1/metrics.json" ]; }
ft_steps=(--config.train.total_steps="$FINETUNE_STEPS"
          --config.optim.milestones="($((FINETUNE_STEPS * 2 / 3)),$((FINETUNE_STEPS * 13 / 15)))")
VAL_EVERY=$((FINETUNE_STEPS / 6 > 0 ? FINETUNE_STEPS / 6 : 1))

echo "== 1/8 KTH-like walkers ($WALKER_IDS ids) -> $RUN/walkers"
kth_walkers "$RUN/walkers" "$WALKER_IDS" 10

echo "== 2/8 GEI + 1-NN baselines on KTH-walk, plain and flip-aware"
for flip in plain flip; do
  if [ ! -f "$RUN/gei_$flip.json" ]; then
    stage "gei_$flip" python tools/gei_baseline.py --root "$KTH_ROOT" --partition "$KTH_PARTITION" \
      --protocol kth_walk $([ "$flip" = flip ] && echo --flip) --out "$RUN/gei_$flip.json"
  fi
done

echo "== 3/8 pretraining on the walkers ($PRETRAIN_STEPS steps) -> $RUN/pretrain"
stage pretrain gj --config "$CFG:pretrain" --workdir "$RUN/pretrain" "${WALK[@]}" \
  --config.train.total_steps="$PRETRAIN_STEPS" \
  --config.optim.milestones="($((PRETRAIN_STEPS * 3 / 4)),$((PRETRAIN_STEPS * 11 / 12)))"

echo "== 4/8 the walkers-only model on KTH-walk (zero-shot) -> $RUN/walkers_only"
if stale "$RUN/walkers_only" "$RUN/pretrain"; then
  # Its BN-neck classifies walkers: embeddings come before it, so the neck is left out.
  stage walkers_only gj --config "$CFG:finetune" --workdir "$RUN/walkers_only" "${KTH[@]}" \
    --config.mode=test --config.train.init_from="$RUN/pretrain" \
    --config.loss.ce_weight=0 --config.model.class_num=0
fi

echo "== 5/8 validation fine-tune: 3 training people held out -> $RUN/finetune_val/validation.png"
stage finetune_val gj --config "$CFG:finetune_val" --workdir "$RUN/finetune_val" "${KTH[@]}" \
  --config.train.init_from="$RUN/pretrain" "${ft_steps[@]}" --config.train.eval_every="$VAL_EVERY"

echo "== 6/8 fine-tuning on the 12 KTH TRAIN_SET people -> $RUN/finetune"
stage finetune gj --config "$CFG:finetune" --workdir "$RUN/finetune" "${KTH[@]}" \
  --config.train.init_from="$RUN/pretrain" "${ft_steps[@]}"

echo "== 7/8 KTH-walk test of the fine-tuned model, with example figures"
if stale "$RUN/finetune" "$RUN/finetune"; then
  stage test gj --config "$CFG:finetune" --workdir "$RUN/finetune" "${KTH[@]}" \
    --config.mode=test --config.evaluate.examples=4
fi

echo "== 8/8 the same network and fine-tuning schedule on KTH only (no pretraining) -> $RUN/kth_only"
stage kth_only gj --config "$CFG:finetune" --workdir "$RUN/kth_only" "${KTH[@]}" \
  "${ft_steps[@]}" --config.optim.lr="$KTH_ONLY_LR"
if stale "$RUN/kth_only" "$RUN/kth_only"; then
  stage kth_only_test gj --config "$CFG:finetune" --workdir "$RUN/kth_only" "${KTH[@]}" \
    --config.mode=test
fi

python tools/kth_recipe_summary.py --run "$RUN"
