# Sourced by the multi-stage recipes (kth_recipe.sh, train_pretrained.sh): their shared checks
# and the per-stage wall-time record. Set TOOL (the recipe's name) and TIMES (the record) first.

# whole_numbers NAME...: each variable a whole number >= 1 ("08" or "1e3" would reach bash
# arithmetic or the config as something else).
whole_numbers() {
  local name
  for name in "$@"; do
    if ! [[ "${!name}" =~ ^[1-9][0-9]*$ ]]; then
      echo "$TOOL: $name=${!name}: expected a whole number >= 1 (e.g. $name=300)" >&2
      exit 2
    fi
  done
}

# kth_data ROOT PARTITION: the KTH silhouettes are there, or a one-line refusal.
kth_data() {
  if [ ! -d "$1" ] || [ ! -f "$2" ]; then
    echo "$TOOL: KTH silhouettes not found at $1 with partition $2" \
      "(set KTH_ROOT / KTH_PARTITION; the data's README says how they are laid out)" >&2
    exit 2
  fi
}

# kth_walkers OUT IDS SEQS_PER_ID [PROFILE]: KTH-like walkers (side view, seed 0, profile kth
# unless given) at OUT, all in TRAIN_SET, made once.
kth_walkers() {
  if [ ! -f "$1.json" ]; then
    stage walkers python tools/make_walkers.py --out "$1" --ids "$2" --seqs-per-id "$3" \
      --views 090 --frames 40 --profile "${4:-kth}" --train-ids "$2" --seed 0 --workers 2
  else
    echo "   (exists)"
  fi
}

# stage NAME COMMAND...: runs it and records its wall time.
stage() {
  local name="$1" start=$SECONDS
  shift
  "$@"
  echo "$name $((SECONDS - start))" >> "$TIMES"
}
