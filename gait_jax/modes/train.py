"""`--config.mode=train`: supernet training (no `model.path`) or retraining of a fixed path,
until `train.total_steps` successful steps, resuming from WORKDIR/checkpoints."""
from __future__ import annotations

import os

from gait_jax.common import parallel
from gait_jax.common import workdir_lock
from gait_jax.training import loop
from gait_jax.training import optim
from gait_jax.training import setup


def run(config, workdir: str) -> None:
  workdir = os.path.abspath(workdir)
  if config.train.total_steps < 1:
    raise ValueError(f"train.total_steps={config.train.total_steps}: expected a positive number "
                     "of steps")
  mesh = parallel.make_mesh()
  parallel.check_batch_size(loop.global_batch(config), mesh)
  net = setup.build_network(config)
  optimizer = optim.SGD(config.optim, config.train.total_steps)
  with workdir_lock.hold(workdir, "train"):
    loop.train(config, workdir, net, optimizer, mesh)
