"""Retrain SPOSGait large path [0,0,4,5,2,0,4,3,4,3] on OUMVLP (reference retrain/sposgait_large_OUMVLP_retrain.yaml)."""
from gait_jax import config as cfg


def get_config(arg=None):
  del arg
  c = cfg.base_config()
  c.experiment = "SPOSGait_large_MVLP_retrain"
  cfg.set_dataset(c, "OUMVLP")
  cfg.set_model(c, "sposgait_large", (64, 128, 256, 512), (16,), 256, 5153)
  c.model.path = "0,0,4,5,2,0,4,3,4,3"
  c.loss.triplet_weight, c.loss.ce_weight = 1.0, 1.0
  cfg.set_schedule(c, total_steps=120000, milestones=(60000, 80000, 100000), save_every=10000, lr=0.05)
  c.data.batch_p, c.data.batch_k = (32, 8)
  return c.lock()
