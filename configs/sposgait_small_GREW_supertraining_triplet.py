"""Small supernet on GREW (500 ids), triplet only (reference
sposgait_small_GREW_supertraining_triplet.yaml)."""
from gait_jax import config as cfg


def get_config(arg=None):
  del arg
  c = cfg.base_config()
  c.experiment = "SPOSGait_small_trainid500"
  cfg.set_dataset(c, "GREW", num_train=500)
  cfg.set_model(c, "sposgait_small", (64, 128, 256), (16,), 256, 500)
  c.loss.triplet_weight, c.loss.ce_weight = 1.0, 0.0
  cfg.set_schedule(c, total_steps=100000, milestones=(40000, 60000, 80000), save_every=10000)
  c.search.epochs = 2
  # A traced-path step otherwise keeps every candidate's activations (README, Benchmarks).
  c.model.remat = True
  return c.lock()
