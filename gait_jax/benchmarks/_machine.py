"""What the benchmarks run on: a one-line description and the fp32 FMA peak of the CPU, so a
step time can be read as achieved GFLOP/s and a share of what the machine could do.

Peak = cores × clock × fp32 FLOPs per cycle per core, where one FMA unit does 2 FLOPs on each
vector lane (16 fp32 lanes with AVX-512, 8 with AVX2, 4 with SSE) and current x86 server cores
have two FMA units. It is the textbook upper bound, not a promise: a different unit count or
clock (turbo) changes it, hence `--peak-gflops` everywhere.
"""
from __future__ import annotations

import os
import platform
import re
from typing import Dict, Optional

from gait_jax.common.cpu import cpuinfo as _cpuinfo
from gait_jax.common.cpu import flags as _flags
from gait_jax.common import block_cache, huge_pages

FMA_UNITS = 2
BALLOON = "/sys/bus/virtio/drivers/virtio_balloon"
_REPORTING_BIT = 5  # VIRTIO_BALLOON_F_REPORTING (virtio 1.2, the balloon's feature bits)


def vector_isa(info: Optional[Dict[str, str]] = None) -> str:
  """The CPU's widest vector instructions, e.g. "AVX-512 + AMX-BF16" or "AVX2": kernels,
  summation orders and speed differ between them, so every figure names them."""
  flags = _flags(info)
  isa = ("AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags
         else "SSE" if flags else "unknown ISA")
  if "amx_tile" in flags:
    isa += " + AMX" + ("-BF16" if "amx_bf16" in flags else "")
  return isa


def free_page_reporting(root: str = BALLOON) -> bool:
  """Whether this is a VM whose balloon device reports freed memory to the host, which takes
  it back: there huge pages faulted again after a pause of seconds cost 50–80× more
  (docs/benchmarks.md), so step times spread in ways bare metal does not show. A device's
  sysfs `features` is one '0'/'1' character per feature bit."""
  try:
    devices = os.listdir(root)
  except OSError:
    return False
  for device in devices:
    try:
      with open(os.path.join(root, device, "features")) as f:
        bits = f.read().strip()
    except OSError:
      continue
    if bits[_REPORTING_BIT:_REPORTING_BIT + 1] == "1":
      return True
  return False


def describe() -> str:
  info = _cpuinfo()
  cpu = info.get("model name") or platform.processor() or platform.machine()
  return (f"{cpu} ({vector_isa(info)}), {os.cpu_count()} cores, "
          f"Python {platform.python_version()}"
          + (f", huge pages ({huge_pages.TUNABLE})" if huge_pages.active() else "")
          + (", XLA's large buffers kept mapped (block cache)" if block_cache.active() else "")
          + (", a VM whose freed memory goes back to the host (free page reporting)"
             if free_page_reporting() else ""))


def cpu_peak_gflops(info: Optional[Dict[str, str]] = None, cores: Optional[int] = None) -> dict:
  """{"gflops", "lanes", "ghz", "cores", "source"}: the fp32 FMA peak of this CPU (0 when it
  cannot be worked out, e.g. no /proc/cpuinfo)."""
  info = _cpuinfo() if info is None else info
  cores = cores or os.cpu_count() or 1
  flags = _flags(info)
  lanes = 16 if "avx512f" in flags else 8 if {"avx2", "fma"} <= flags else 4
  nominal = re.search(r"@\s*([\d.]+)\s*GHz", info.get("model name", ""))
  if nominal:
    ghz, source = float(nominal.group(1)), "nominal clock of the model name"
  elif info.get("cpu MHz"):
    ghz, source = float(info["cpu MHz"]) / 1000, "current clock (cpu MHz)"
  else:
    return {"gflops": 0.0, "lanes": lanes, "ghz": 0.0, "cores": cores, "source": "unknown"}
  gflops = cores * ghz * lanes * 2 * FMA_UNITS
  return {"gflops": round(gflops, 1), "lanes": lanes, "ghz": ghz, "cores": cores,
          "source": source}
