#!/usr/bin/env bash
# Builds gait_jax/common/_block_cache.so (gait_jax/common/block_cache.c): the small library
# gait_jax's commands preload so that XLA's large CPU buffers stay mapped between executions
# (gait_jax/common/block_cache.py). Run by the set-up (tools/_venv.sh); rebuilds only when the
# source changes. Never fails the set-up: where it cannot build or load (not Linux with glibc,
# no C compiler), it says so in one line and the commands run without it.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SRC=gait_jax/common/block_cache.c
LIB="${GAIT_JAX_BLOCK_CACHE_LIB:-gait_jax/common/_block_cache.so}"
CC="${CC:-cc}"
skip() {
  echo "[setup] block cache not built ($1): XLA's large buffers are mapped afresh each call"
  exit 0
}

[ "$(uname -s)" = "Linux" ] || skip "it is for Linux"
getconf GNU_LIBC_VERSION >/dev/null 2>&1 || skip "the C library is not glibc"
want="$(sha256sum "$SRC" | cut -d' ' -f1)"
[ -f "$LIB" ] && [ "$(cat "$LIB.sha" 2>/dev/null)" = "$want" ] && exit 0
command -v "$CC" >/dev/null 2>&1 || skip "no C compiler ($CC)"

echo "[setup] building the block cache ($LIB)"
tmp="$LIB.tmp.$$"
if ! log="$("$CC" -O2 -std=c11 -Wall -shared -fPIC "$SRC" -o "$tmp" -ldl 2>&1)"; then
  rm -f "$tmp"
  echo "$log" | tail -5 >&2
  skip "the compiler failed"
fi
# Preloaded into every command: it must load cleanly (the loader prints an error otherwise).
if [ -n "$(LD_PRELOAD="$(cd "$(dirname "$tmp")" && pwd)/$(basename "$tmp")" true 2>&1)" ]; then
  rm -f "$tmp"
  skip "it does not preload"
fi
mv -f "$tmp" "$LIB"
echo "$want" > "$LIB.sha"
