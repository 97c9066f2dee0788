#!/usr/bin/env bash
# The whole pipeline on generated walkers, on the CPU:
#   walkers -> GEI baseline -> supernet training -> search -> retrain of the best path -> test.
# Creates .venv and installs requirements.txt if needed. Rerunning resumes every stage.
# Environment: QUICKSTART_DIR (default runs/quickstart), SUPERNET_STEPS (300), RETRAIN_STEPS (150).
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh"
export JAX_PLATFORMS="${JAX_PLATFORMS:-cpu}"
RUN="${QUICKSTART_DIR:-runs/quickstart}"
SUPERNET_STEPS="${SUPERNET_STEPS:-300}"
RETRAIN_STEPS="${RETRAIN_STEPS:-150}"
DATA=data/walkers
CFG=configs/quickstart.py
mkdir -p "$RUN"
gj() { python -m gait_jax.main --config "$CFG" "$@"; }

echo "== 1/6 generated walkers -> $DATA (OpenGait layout, partition $DATA.json)"
if [ ! -f "$DATA.json" ]; then
  python tools/make_walkers.py --out "$DATA" --ids 60 --seqs-per-id 10 --views 072,090,108 --frames 40 \
    --seed 0 --workers 2 --preview "$RUN/walkers_preview.png"
else
  echo "   (exists; delete $DATA and $DATA.json to regenerate)"
fi

echo "== 2/6 GEI + nearest-neighbour baseline (CASIA-B-style protocol on the walkers' test ids)"
python tools/gei_baseline.py --root "$DATA" --partition "$DATA.json" --protocol casia_b \
  --out "$RUN/gei_baseline.json"

echo "== 3/6 supernet training ($SUPERNET_STEPS steps) -> $RUN/supernet"
gj --workdir "$RUN/supernet" --config.mode=train --config.train.total_steps="$SUPERNET_STEPS" \
  --config.optim.milestones="($((SUPERNET_STEPS * 3 / 4)),)"

echo "== 4/6 evolutionary search on held-out training ids -> $RUN/search"
gj --workdir "$RUN/search" --config.mode=search --config.train.init_from="$RUN/supernet"
BEST=$(python -c "import json;print(','.join(map(str,json.load(open('$RUN/search/search/result.json'))['best_path'])))")
echo "   best path: $BEST"

echo "== 5/6 retrain the best path from scratch -> $RUN/retrain"
gj --workdir "$RUN/retrain" --config.mode=train --config.model.path="$BEST" \
  --config.train.total_steps="$RETRAIN_STEPS" \
  --config.optim.milestones="($((RETRAIN_STEPS * 2 / 3)),$((RETRAIN_STEPS * 13 / 15)))"

echo "== 6/6 test: embed the test ids and evaluate"
gj --workdir "$RUN/retrain" --config.mode=test --config.model.path="$BEST"

python tools/quickstart_summary.py --run "$RUN"
