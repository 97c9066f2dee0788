"""`--config.mode=train`: supernet training (no `model.path`) or retraining of a fixed path,
until `train.total_steps` successful steps, resuming from WORKDIR/checkpoints."""
from __future__ import annotations

import os

from gait_jax.common import parallel
from gait_jax.common import workdir_lock
from gait_jax.training import optim
from gait_jax.training import setup
from gait_jax.training import step as step_lib
from gait_jax.training.loop import Trainer


def run(config, workdir: str) -> None:
  workdir = os.path.abspath(workdir)
  dtype = step_lib.compute_dtype(config)
  total = int(config.train.total_steps)
  if total < 1:
    raise ValueError(f"train.total_steps={total}: expected a positive number of steps")
  mesh = parallel.make_mesh()
  parallel.check_batch_size(int(config.data.batch_p) * int(config.data.batch_k), mesh)
  net = setup.build_network(config, dtype)
  optimizer = optim.SGD(config.optim)
  with workdir_lock.hold(workdir, "train"):
    Trainer(config, workdir, net, optimizer, mesh, dtype).run()
