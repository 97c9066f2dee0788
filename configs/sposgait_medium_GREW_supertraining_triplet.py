"""Medium supernet on GREW, triplet only (reference
sposgait_medium_GREW_supertraining_triplet.yaml).

The reference file omits num_train and then fails its own GREW assertion;
its save name says 5000 ids, which is what this config uses."""
from gait_jax import config as cfg


def get_config(arg=None):
  del arg
  c = cfg.base_config()
  c.experiment = "SPOSGait_medium-GREW-train5000id_supertraining"
  cfg.set_dataset(c, "GREW", num_train=5000)
  cfg.set_model(c, "sposgait_medium", (64, 128, 256, 512), (16, 8, 4, 2, 1), 512, 5000)
  c.loss.triplet_weight, c.loss.ce_weight = 1.0, 0.0
  cfg.set_schedule(c, total_steps=500000, milestones=(250000, 350000), save_every=10000)
  c.search.epochs = 10
  # A traced-path step otherwise keeps every candidate's activations (README, Benchmarks).
  c.model.remat = True
  return c.lock()
