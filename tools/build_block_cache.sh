#!/usr/bin/env bash
# Builds gait_jax/common/_block_cache.so (gait_jax/common/block_cache.c): the small library
# gait_jax's commands preload so that XLA's large CPU buffers stay mapped between executions
# (gait_jax/common/block_cache.py). Run by the set-up (tools/_venv.sh); rebuilds only when the
# source changes. Never fails the set-up: where it cannot build or load (not Linux with glibc,
# no C compiler), it says so in one line and the commands run without it.
source "$(dirname "${BASH_SOURCE[0]}")/_native_build.sh"
SRC=gait_jax/common/block_cache.c
LIB="${GAIT_JAX_BLOCK_CACHE_LIB:-gait_jax/common/_block_cache.so}"
CC="${CC:-cc}"
NATIVE_WHAT="block cache"
NATIVE_INSTEAD="XLA's large buffers are mapped afresh each call"

[ "$(uname -s)" = "Linux" ] || native_skip "it is for Linux"
getconf GNU_LIBC_VERSION >/dev/null 2>&1 || native_skip "the C library is not glibc"
native_current "$(sha256sum "$SRC" | cut -d' ' -f1)"
command -v "$CC" >/dev/null 2>&1 || native_skip "no C compiler ($CC)"

native_compile "$CC" -O2 -std=c11 -Wall -shared -fPIC "$SRC" -o "$NATIVE_TMP" -ldl
# Preloaded into every command: it must load cleanly (the loader prints an error otherwise).
if [ -n "$(LD_PRELOAD="$(cd "$(dirname "$NATIVE_TMP")" && pwd)/$(basename "$NATIVE_TMP")" true 2>&1)" ]; then
  native_reject "it does not preload"
fi
native_install
