"""Small supernet on CASIA-B (74 ids), triplet 1.0 + CE 1.0 (reference
sposgait_small_CASIAB_supertraining_2loss.yaml)."""
from gait_jax import config as cfg


def get_config(arg=None):
  del arg
  c = cfg.base_config()
  c.experiment = "SPOSGait_small-casiab-supertraining_2loss"
  cfg.set_dataset(c, "CASIA-B")
  cfg.set_model(c, "sposgait_small", (96, 192, 256), (16,), 256, 74)
  c.loss.triplet_weight, c.loss.ce_weight = 1.0, 1.0
  cfg.set_schedule(c, total_steps=100000, milestones=(40000, 60000, 80000), save_every=10000)
  c.search.epochs = 2
  # A traced-path step otherwise keeps every candidate's activations (README, Benchmarks).
  c.model.remat = True
  return c.lock()
