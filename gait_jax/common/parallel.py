"""Data parallelism: multi-process start-up and the device mesh, one "data" axis over every
device of every process.

The global batch is sharded over "data" and the train state replicated; with global arrays
BatchNorm statistics and the triplet loss are computed over the whole global batch (XLA
inserts the cross-device reductions), which is what the reference's SyncBN + all-gather do.
"""
from __future__ import annotations

import os
from typing import Mapping, Optional, Sequence

import jax
import numpy as np
from absl import logging
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"


def make_mesh(devices: Optional[Sequence[jax.Device]] = None) -> Mesh:
  """A 1-D mesh over `devices` (default: all), ordered by (process, device id), so process
  i owns a contiguous block of the global batch: rows [i*b/n, (i+1)*b/n)."""
  devices = list(jax.devices() if devices is None else devices)
  devices.sort(key=lambda d: (d.process_index, d.id))
  # Auto axes: host NumPy inputs and jit shardings mix freely (jax.make_mesh would default to
  # Explicit axes, which refuse unplaced host arrays).
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


def global_array(local: np.ndarray, sharding: NamedSharding, global_shape=None) -> jax.Array:
  """A global jax.Array from this process's part (the full array when replicated).

  `global_shape` equal to the local shape means every process holds the whole array (e.g. the
  same deterministic iteration over test sequences): each device then takes its slice."""
  local = np.asarray(local)
  if global_shape is not None and tuple(global_shape) == local.shape:
    return jax.make_array_from_callback(local.shape, sharding, lambda idx: local[idx])
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


def maybe_initialize(config) -> None:
  """Joins the multi-process job described by `config.dist` or the environment.

  Single-process runs (the default) do nothing, so importing jax devices stays cheap.
  """
  dist = config.dist
  if dist.num_processes > 1 or dist.coordinator_address:
    logging.info("jax.distributed.initialize(%s, num_processes=%d, process_id=%d)",
                 dist.coordinator_address, dist.num_processes, dist.process_id)
    jax.distributed.initialize(coordinator_address=dist.coordinator_address or None,
                               num_processes=dist.num_processes,
                               process_id=dist.process_id)
  elif os.environ.get("JAX_COORDINATOR_ADDRESS") or (
      int(os.environ.get("SLURM_NTASKS", "1")) > 1) or (
      int(os.environ.get("OMPI_COMM_WORLD_SIZE", "1")) > 1):
    logging.info("jax.distributed.initialize() from the environment")
    jax.distributed.initialize()
