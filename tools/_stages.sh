# Sourced by the multi-stage recipes (kth_recipe.sh, train_pretrained.sh): their shared checks
# and the per-stage wall-time record. Set TOOL (the recipe's name) and TIMES (the record) first.

# whole_numbers NAME...: each variable a whole number >= 1 ("08" or "1e3" would reach bash
# arithmetic or the config as something else); whole_numbers_from_zero: >= 0 (a seed).
whole_numbers() { _whole_numbers_from 1 300 "$@"; }
whole_numbers_from_zero() { _whole_numbers_from 0 1 "$@"; }

# _whole_numbers_from LEAST EXAMPLE NAME...: the check, with a one-line refusal.
_whole_numbers_from() {
  local least="$1" example="$2" name pattern='^[1-9][0-9]*$'
  shift 2
  [ "$least" != 0 ] || pattern='^(0|[1-9][0-9]*)$'
  for name in "$@"; do
    if ! [[ "${!name}" =~ $pattern ]]; then
      echo "$TOOL: $name=${!name}: expected a whole number >= $least (e.g. $name=$example)" >&2
      exit 2
    fi
  done
}

# with_defaults NAME=DEFAULT...: each variable as the environment sets it, else its default
# (the one list of a recipe's settings, which changed_settings compares against).
with_defaults() {
  local pair name
  for pair in "$@"; do
    name="${pair%%=*}"
    printf -v "$name" '%s' "${!name:-${pair#*=}}"
  done
}

# changed_settings NAME=DEFAULT...: "NAME=value " for each variable that differs from its
# default (quoted where it holds spaces): the environment that makes a run, for PROVENANCE.md.
changed_settings() {
  local pair name
  for pair in "$@"; do
    name="${pair%%=*}"
    if [ "${!name}" != "${pair#*=}" ]; then
      case "${!name}" in
        *" "*) printf "%s='%s' " "$name" "${!name}" ;;
        *) printf "%s=%s " "$name" "${!name}" ;;
      esac
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

# kth_figures MODEL KTH_ROOT KTH_PARTITION: a shipped model folder on KTH-walk beside the
# flip-aware GEI baseline: validation (TRAIN_SET people) into $RUN/validation, zero-shot on the
# test people into $RUN/zero_shot, GEI into $RUN/gei_flip_{train,test}.json. Set RUN first.
kth_figures() {
  local split
  for split in train test; do
    if [ ! -f "$RUN/gei_flip_$split.json" ]; then
      python tools/gei_baseline.py --root "$2" --partition "$3" \
        --protocol kth_walk --split "$split" --flip --out "$RUN/gei_flip_$split.json"
    fi
  done
  stage validation python -m gait_jax.main --config configs/kth_walking.py \
    --workdir "$RUN/validation" --config.data.root="$2" --config.data.partition="$3" \
    --config.mode=test --config.embed.split=train --config.train.init_from="$1"
  stage zero_shot python -m gait_jax.main --config configs/kth_walking.py \
    --workdir "$RUN/zero_shot" --config.data.root="$2" --config.data.partition="$3" \
    --config.mode=test --config.train.init_from="$1"
}
