"""The device mesh for data parallelism: one "data" axis over every device of every process.

The global batch is sharded over "data" and the train state replicated; with global arrays
BatchNorm statistics and the triplet loss are computed over the whole global batch (XLA
inserts the cross-device reductions), which is what the reference's SyncBN + all-gather do.
"""
from __future__ import annotations

from typing import Mapping, Optional, Sequence

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"


def make_mesh(devices: Optional[Sequence[jax.Device]] = None) -> Mesh:
  """A 1-D mesh over `devices` (default: all), ordered by (process, device id), so process
  i owns a contiguous block of the global batch: rows [i*b/n, (i+1)*b/n)."""
  devices = list(jax.devices() if devices is None else devices)
  devices.sort(key=lambda d: (d.process_index, d.id))
  # Auto axes: host NumPy inputs and jit shardings mix freely (STACK_NOTES: make_mesh
  # defaults to Explicit).
  return Mesh(np.asarray(devices), (DATA_AXIS,), axis_types=(AxisType.Auto,))


def data_sharding(mesh: Mesh) -> NamedSharding:
  """Leading (batch) dimension split over the data axis."""
  return NamedSharding(mesh, P(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def check_batch_size(global_batch: int, mesh: Mesh, key: str = "data.batch_p*data.batch_k"):
  n = mesh.devices.size
  if global_batch % n:
    raise ValueError(f"{key}={global_batch} must be divisible by the {n} devices of the mesh "
                     "(the global batch is split evenly over devices)")
  if global_batch % jax.process_count():
    raise ValueError(f"{key}={global_batch} must be divisible by the {jax.process_count()} "
                     "processes")


def local_rows(global_batch: int, mesh: Mesh) -> slice:
  """The rows of the global batch whose data this process must supply."""
  sharding = data_sharding(mesh)
  starts = set()
  stops = set()
  for index in sharding.addressable_devices_indices_map((global_batch,)).values():
    sl = index[0]
    starts.add(sl.start or 0)
    stops.add(global_batch if sl.stop is None else sl.stop)
  rows = slice(min(starts), max(stops))
  per_process = global_batch // jax.process_count()
  if rows.stop - rows.start != per_process:
    raise RuntimeError(f"process {jax.process_index()} owns rows {rows.start}:{rows.stop} of "
                       f"the global batch, expected a contiguous block of {per_process}")
  return rows


def global_array(local: np.ndarray, sharding: NamedSharding, global_shape=None) -> jax.Array:
  """A global jax.Array from this process's part (the full array when replicated)."""
  local = np.asarray(local)
  if global_shape is None:
    if sharding.spec == P():
      global_shape = local.shape
    else:
      global_shape = (local.shape[0] * jax.process_count(),) + local.shape[1:]
  return jax.make_array_from_process_local_data(sharding, local, tuple(global_shape))


def global_batch(local: Mapping[str, np.ndarray], mesh: Mesh, keys: Sequence[str]) -> dict:
  """{key: global array sharded over "data"} for the numeric `keys` of a local batch."""
  sharding = data_sharding(mesh)
  return {k: global_array(local[k], sharding) for k in keys}
