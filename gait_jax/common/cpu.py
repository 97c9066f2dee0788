"""What this CPU offers: /proc/cpuinfo's fields and the instruction sets speed depends on."""
from __future__ import annotations

import functools
from typing import Dict, Optional


@functools.cache
def cpuinfo() -> Dict[str, str]:
  """The first processor's /proc/cpuinfo fields ({} where there is none)."""
  info = {}
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if ":" in line:
          key, value = (s.strip() for s in line.split(":", 1))
          info.setdefault(key, value)
  except OSError:
    pass
  return info


def flags(info: Optional[Dict[str, str]] = None) -> frozenset:
  """The CPU's feature flags (of `info`, default this machine's /proc/cpuinfo)."""
  return frozenset((cpuinfo() if info is None else info).get("flags", "").split())


def has_bf16_units() -> bool:
  """bfloat16 products in hardware (AMX-BF16 or AVX-512-BF16). gait_jax multiplies in bfloat16
  only where they exist: on AVX2 (AMD Zen 3) oneDNN has no bfloat16 convolution at all."""
  return bool({"amx_bf16", "avx512_bf16"} & flags())
