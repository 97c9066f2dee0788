"""Retrain SPOSGait small path [0,5,0,1] on CASIA-B (reference retrain/sposgait_small_casiab_retrain.yaml).

The reference reuses the supernet's save name, so its retrain checkpoints overwrite
the supernet's; give this run its own --workdir."""
from gait_jax import config as cfg


def get_config(arg=None):
  del arg
  c = cfg.base_config()
  c.experiment = "SPOSGait_small-casiab-supertraining_2loss"
  cfg.set_dataset(c, "CASIA-B")
  cfg.set_model(c, "sposgait_small", (96, 192, 256), (16,), 256, 74)
  c.model.path = "0,5,0,1"
  c.loss.triplet_weight, c.loss.ce_weight = 1.0, 1.0
  cfg.set_schedule(c, total_steps=100000, milestones=(40000, 60000, 80000), save_every=10000)
  return c.lock()
