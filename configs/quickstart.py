"""The embedded default: a small supernet on generated walkers, sized for a CPU.

Data: `python tools/make_walkers.py --out data/walkers` (tools/quickstart.sh does it).
The walkers use CASIA-B's type names (nm-01..06, bg-01/02, cl-01/02), so the CASIA-B
protocol (NM/BG/CL, cross-view) evaluates them.
"""
from gait_jax import config as cfg


def get_config(arg=None):
  del arg
  c = cfg.base_config()
  c.experiment = "quickstart"
  cfg.set_dataset(c, "CASIA-B")
  c.data.dataset_name = "walkers"
  c.data.root = "data/walkers"
  c.data.partition = "data/walkers.json"
  c.data.cache = True
  # Sized for 2 CPU cores (tools/quickstart.sh runs the whole pipeline in ~15 minutes):
  # 16 sequences x 20 frames per step, channels 8/16/32 instead of 64/128/256.
  c.data.batch_p, c.data.batch_k = 4, 4
  c.data.frames = 20
  cfg.set_model(c, "sposgait_small", (8, 16, 32), (16, 8, 4, 2, 1), 32, 0)
  c.loss.triplet_weight, c.loss.ce_weight = 1.0, 0.0
  cfg.set_schedule(c, total_steps=150, milestones=(100, 130), save_every=50)
  c.train.log_every = 10
  c.search.val_ids = "4"
  c.search.epochs = 1
  c.search.population = 8
  c.search.select_num = 3
  c.search.mutation_num = 4
  c.search.crossover_num = 4
  c.search.bn_batches = 2
  return c.lock()
