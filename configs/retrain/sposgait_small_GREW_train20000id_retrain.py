"""Retrain SPOSGait small path [0,5,5,4] on GREW (20000 ids) (reference retrain/sposgait_small_GREW-train20000id_retrain.yaml)."""
from gait_jax import config as cfg


def get_config(arg=None):
  del arg
  c = cfg.base_config()
  c.experiment = "SPOSGait_small_GREW-train20000id_retrain"
  cfg.set_dataset(c, "GREW", num_train=20000)
  cfg.set_model(c, "sposgait_small", (64, 128, 256), (16,), 256, 20000)
  c.model.path = "0,5,5,4"
  c.loss.triplet_weight, c.loss.ce_weight = 0.1, 1.0
  cfg.set_schedule(c, total_steps=200000, milestones=(50000, 100000, 150000), save_every=10000)
  c.data.transforms = "random_rotate_flip"
  c.optim.clip.type, c.optim.clip.value = "value", 0.1
  c.train.eval_every = 10000  # reference with_test: test at every save
  c.evaluate.protocol = "grew_submission"
  return c.lock()
