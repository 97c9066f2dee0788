"""CPU-fast configuration for tests: a tiny small-variant supernet on a tiny generated set.

Tests point data.root/data.partition at a temporary walkers set."""
from gait_jax import config as cfg


def get_config(arg=None):
  del arg
  c = cfg.base_config()
  c.experiment = "test_tiny"
  cfg.set_dataset(c, "CASIA-B")
  c.data.dataset_name = "walkers"
  c.data.batch_p, c.data.batch_k = 4, 2
  c.data.frames = 6
  c.data.workers = 1
  c.data.test_frames_all_limit = 12
  cfg.set_model(c, "sposgait_small", (4, 8, 8), (4, 2, 1), 8, 8)
  c.loss.triplet_weight, c.loss.ce_weight = 1.0, 1.0
  cfg.set_schedule(c, total_steps=4, milestones=(2,), save_every=2)
  c.train.log_every = 1
  c.embed.batch = 2
  c.search.epochs = 1
  c.search.population = 4
  c.search.select_num = 2
  c.search.mutation_num = 2
  c.search.crossover_num = 2
  c.search.bn_batches = 1
  return c.lock()
