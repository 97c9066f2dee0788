# Sourced by the set-up's native builds (tools/build_onednn.sh, tools/build_block_cache.sh):
# the rules they share. A native build never fails the set-up — where it cannot build, one line
# says why and what runs instead; it rebuilds only when its stamp (what it was built from)
# changes; and its library appears whole or not at all (built beside, then moved into place).
# The caller sets NATIVE_WHAT ("block cache"), NATIVE_INSTEAD (what runs without it) and
# LIB (the library's path), then calls these in order.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# The one line, and success: the commands run without the library.
native_skip() {
  echo "[setup] $NATIVE_WHAT not built ($1): $NATIVE_INSTEAD"
  exit 0
}

# Ends the build (success) when LIB was built from stamp $1; otherwise sets NATIVE_TMP, the
# file the compiler writes.
native_current() {
  NATIVE_STAMP="$1"
  [ -f "$LIB" ] && [ "$(cat "$LIB.sha" 2>/dev/null)" = "$NATIVE_STAMP" ] && exit 0
  NATIVE_TMP="$LIB.tmp.$$"
}

# Runs the compiler command "$@" (writing NATIVE_TMP); on failure, its last lines to stderr and
# the one line.
native_compile() {
  echo "[setup] building the $NATIVE_WHAT ($LIB)"
  local log
  if ! log="$("$@" 2>&1)"; then
    native_reject "the compiler failed" "$log"
  fi
}

# Drops what was built (why: $1; the tool's output to show, if any: $2), then the one line.
native_reject() {
  rm -f "$NATIVE_TMP"
  if [ -n "${2:-}" ]; then echo "$2" | tail -5 >&2; fi
  native_skip "$1"
}

# Moves the built library into place with its stamp.
native_install() {
  mv -f "$NATIVE_TMP" "$LIB"
  echo "$NATIVE_STAMP" > "$LIB.sha"
}
