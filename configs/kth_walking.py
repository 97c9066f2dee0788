"""Real people: retrain a fixed small path on the KTH walking silhouettes, test with KTH-walk.

Data (../shared/data/README.md): 25 ids, side view, scenarios d1 outdoor, d2 zoom, d3 other
clothes, d4 indoor; TRAIN_SET person01–12, TEST_SET person13–25. Protocol "KTH-walk":
gallery = pass `d4-00` of every test id, probes = every other test sequence, reported per
scenario (d4 same condition, d1, d2, d3); chance Rank-1 is 1/13 = 7.7 %.

  python -m gait_jax.main --config configs/kth_walking.py --workdir runs/kth            # train
  python -m gait_jax.main --config configs/kth_walking.py --workdir runs/kth --config.mode=test
"""
from gait_jax import config as cfg


def get_config(arg=None):
  del arg
  c = cfg.base_config()
  c.experiment = "kth_walking"
  cfg.set_dataset(c, "CASIA-B")  # frame limit 720 at test time; the protocol is set below
  c.data.dataset_name = "KTH-walking"
  c.data.root = "../shared/data/kth_walking"
  c.data.partition = "../shared/data/kth_walking.json"
  c.data.cache = True  # 18,643 frames of 64×64 uint8: ~76 MB
  # 12 training ids: P = 8 ids × K = 2 sequences per batch (CPU-sized, as configs/quickstart.py).
  c.data.batch_p, c.data.batch_k = 8, 2
  c.data.frames = 20
  c.data.transforms = "base_sil_cutting"
  # CPU-sized small variant with the quickstart's widths (so a walkers-trained quickstart
  # model can be tested here too) and the reference small GREW path.
  cfg.set_model(c, "sposgait_small", (8, 16, 32), (16, 8, 4, 2, 1), 32, 12)
  c.model.path = "0,5,5,4"
  c.loss.triplet_weight, c.loss.ce_weight = 1.0, 1.0
  cfg.set_schedule(c, total_steps=400, milestones=(300, 360), save_every=100)
  c.train.log_every = 20
  c.embed.batch = 4
  c.evaluate.protocol = "kth_walk"
  return c.lock()
