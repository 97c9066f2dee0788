"""Multi-process start-up: `jax.distributed.initialize` when the run spans several processes."""
import os

import jax
from absl import logging

_ENV_HINTS = ("JAX_COORDINATOR_ADDRESS", "SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE")


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
