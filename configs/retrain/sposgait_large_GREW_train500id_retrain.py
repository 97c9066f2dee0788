"""Retrain SPOSGait large path [0,0,4,5,2,0,4,3,4,3] on GREW (500 ids) (reference retrain/sposgait_large_GREW-train500id_retrain.yaml)."""
from gait_jax import config as cfg


def get_config(arg=None):
  del arg
  c = cfg.base_config()
  c.experiment = "SPOSGait_large_GREW-train500id_retrain"
  cfg.set_dataset(c, "GREW", num_train=500)
  cfg.set_model(c, "sposgait_large", (64, 128, 256, 512), (16, 8, 4, 2, 1), 512, 500)
  c.model.path = "0,0,4,5,2,0,4,3,4,3"
  c.loss.triplet_weight, c.loss.ce_weight = 1.0, 0.1
  cfg.set_schedule(c, total_steps=100000, milestones=(20000, 40000, 80000), save_every=10000)
  c.data.transforms = "random_rotate_flip"
  c.evaluate.protocol = "grew_submission"
  return c.lock()
