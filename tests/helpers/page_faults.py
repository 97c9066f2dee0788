"""Page faults of XLA's large CPU buffers: a jitted function with a 64 MiB output (and small
temporaries), called in a fresh process with the environment a test gives it."""
import json
import os
import subprocess
import sys

OUTPUT_BYTES = 64 * 2**20

SCRIPT = """
import ctypes, json, resource, numpy as np, jax, jax.numpy as jnp
x = jnp.asarray(np.linspace(-3, 3, 1024 * 16384, dtype=np.float32).reshape(1024, 16384))
f = jax.jit(lambda x: jnp.tanh(x) * 2.0 + x.sum(0))
for _ in range(2):
  y = jax.block_until_ready(f(x))
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
  y = jax.block_until_ready(f(x))
faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 5
stats = None
try:  # the block cache's counters, where it is preloaded
  out = (ctypes.c_uint64 * 4)()
  ctypes.CDLL(None).gait_jax_block_cache_stats(out)
  stats = list(out)
except AttributeError:
  pass
print(json.dumps({"digest": float(np.asarray(y, np.float64).sum()), "first": float(y[3, 5]),
                  "faults": faults, "block_cache": stats}))
"""


def measure(**env) -> dict:
  """{"faults": minor page faults a call after two warm-up calls, "digest"/"first": the
  output's sum and one value, "block_cache": its counters or None}; `env` set (a None value
  removes the variable) over this process's environment, on the CPU, without XLA_FLAGS."""
  full = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  full["JAX_PLATFORMS"] = "cpu"
  for k, v in env.items():
    if v is None:
      full.pop(k, None)
    else:
      full[k] = v
  proc = subprocess.run([sys.executable, "-c", SCRIPT], env=full, capture_output=True,
                        text=True)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return json.loads(proc.stdout.strip().splitlines()[-1])
