"""Large supernet on GREW (20000 ids), triplet 0.1 + CE 1.0 (reference
sposgait_large_GREW_supertraining_2loss.yaml)."""
from gait_jax import config as cfg


def get_config(arg=None):
  del arg
  c = cfg.base_config()
  c.experiment = "sposgait_large_GREW-train20000id_2loss"
  cfg.set_dataset(c, "GREW", num_train=20000)
  cfg.set_model(c, "sposgait_large", (64, 128, 256, 512), (16, 8, 4, 2, 1), 512, 20000)
  c.loss.triplet_weight, c.loss.ce_weight = 0.1, 1.0
  cfg.set_schedule(c, total_steps=500000, milestones=(250000, 350000), save_every=10000)
  # A traced-path step otherwise keeps every candidate's activations (README, Benchmarks).
  c.model.remat = True
  return c.lock()
