#!/usr/bin/env bash
# The shipped walkers-only model, reproducibly (rerunning resumes; finished stages are skipped):
#   KTH-like walkers -> training (configs/pretrained_walkers.py, validated on KTH TRAIN_SET
#   people) -> its final step copied to pretrained/walkers (config.json + one checkpoint step)
#   -> zero-shot KTH-walk on the test people -> pretrained/walkers/PROVENANCE.md.
# Environment: PRETRAIN_DIR (runs/pretrained), PRETRAINED_OUT (pretrained/walkers),
# WALKER_IDS (2000), WALKER_SEQS (6 sequences per id: CASIA-B's nm-01..06; 10 adds bg-01/02
# and cl-01/02, the same walker carrying a bag or wearing a coat), WALKER_PROFILE (kth; or
# footage), STEPS (2400), SEED (0: config.seed, the initialisation and the order of batches),
# TRAIN_ARGS (more --config.KEY=VALUE overrides for the training stage, space-separated: a lever
# to measure, e.g. "--config.loss.ce_weight=0"; a lever is judged over several SEEDs, as one seed
# alone moves validation by ~10 points: docs/results.md),
# KTH_ROOT / KTH_PARTITION (../shared/data/kth_walking[.json]).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
export JAX_PLATFORMS="${JAX_PLATFORMS:-cpu}"
RUN="${PRETRAIN_DIR:-runs/pretrained}"
OUT="${PRETRAINED_OUT:-pretrained/walkers}"
KTH_ROOT="${KTH_ROOT:-../shared/data/kth_walking}"
KTH_PARTITION="${KTH_PARTITION:-../shared/data/kth_walking.json}"
TOOL=train_pretrained
TIMES="$RUN/stage_seconds.txt"
source "$(dirname "${BASH_SOURCE[0]}")/_stages.sh"
# What makes the run, with the defaults: RUN/settings.txt and PROVENANCE.md name what differs.
RUN_SETTINGS=(WALKER_IDS=2000 WALKER_SEQS=6 WALKER_PROFILE=kth STEPS=2400 SEED=0 TRAIN_ARGS=)
with_defaults "${RUN_SETTINGS[@]}"
whole_numbers WALKER_IDS WALKER_SEQS STEPS
whole_numbers_from_zero SEED
read -ra EXTRA <<< "$TRAIN_ARGS"
for arg in "${EXTRA[@]}"; do
  if ! [[ "$arg" =~ ^--config\.[a-z_][a-z0-9_.]*=. ]]; then
    echo "$TOOL: TRAIN_ARGS=$TRAIN_ARGS: expected --config.KEY=VALUE overrides," \
      "space-separated ($arg is not one)" >&2
    exit 2
  fi
done
case "$WALKER_PROFILE" in
  kth|footage) ;;
  *) echo "$TOOL: WALKER_PROFILE=$WALKER_PROFILE: expected kth or footage" >&2; exit 2 ;;
esac
# A rerun resumes, so it must have the run's settings: else its finished stages would be kept
# under other ones.
SETTINGS="$(changed_settings "${RUN_SETTINGS[@]}")"
if [ -f "$RUN/settings.txt" ] && [ "$(cat "$RUN/settings.txt")" != "$SETTINGS" ]; then
  echo "$TOOL: PRETRAIN_DIR=$RUN was made with the settings '$(cat "$RUN/settings.txt")'," \
    "not '$SETTINGS' (the defaults: ''): rerun with those or use another PRETRAIN_DIR" >&2
  exit 2
fi
kth_data "$KTH_ROOT" "$KTH_PARTITION"
mkdir -p "$RUN"
printf '%s' "$SETTINGS" > "$RUN/settings.txt"
KTH=(--config.embed.root="$KTH_ROOT" --config.embed.partition="$KTH_PARTITION")

echo "== 1/4 KTH-like walkers ($WALKER_IDS ids x $WALKER_SEQS sequences, side view, $WALKER_PROFILE) -> $RUN/walkers"
kth_walkers "$RUN/walkers" "$WALKER_IDS" "$WALKER_SEQS" "$WALKER_PROFILE"

echo "== 2/4 training ($STEPS steps; validation on KTH TRAIN_SET every 500) -> $RUN/train"
stage train python -m gait_jax.main --config configs/pretrained_walkers.py --workdir "$RUN/train" \
  --config.data.root="$RUN/walkers" --config.data.partition="$RUN/walkers.json" "${KTH[@]}" \
  --config.model.class_num="$WALKER_IDS" --config.train.total_steps="$STEPS" \
  --config.optim.milestones="($((STEPS * 3 / 4)),$((STEPS * 11 / 12)))" \
  --config.seed="$SEED" ${EXTRA[@]+"${EXTRA[@]}"}

echo "== 3/4 the final step -> $OUT"
python tools/ship_checkpoint.py --workdir "$RUN/train" --out "$OUT"

echo "== 4/4 the shipped step on KTH-walk: validation people, then zero-shot on the test people"
kth_figures "$OUT" "$KTH_ROOT" "$KTH_PARTITION"
python tools/ship_checkpoint.py --workdir "$RUN/train" --out "$OUT" --provenance "$RUN" \
  --walker-profile "$WALKER_PROFILE" --walker-seqs "$WALKER_SEQS" \
  --recipe "${SETTINGS}bash tools/train_pretrained.sh"
