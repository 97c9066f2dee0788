"""Retrain SPOSGait medium path [0,0,4,3,0,3,0] on GREW (20000 ids) (reference retrain/sposgait_medium_GREW-20000id_retrain.yaml)."""
from gait_jax import config as cfg


def get_config(arg=None):
  del arg
  c = cfg.base_config()
  c.experiment = "SPOSGait_medium-GREW-train20000id_retrain"
  cfg.set_dataset(c, "GREW", num_train=20000)
  cfg.set_model(c, "sposgait_medium", (64, 128, 256, 512), (16, 8, 4, 2, 1), 512, 20000)
  c.model.path = "0,0,4,3,0,3,0"
  c.loss.triplet_weight, c.loss.ce_weight = 1.0, 0.1
  cfg.set_schedule(c, total_steps=200000, milestones=(50000, 100000, 150000), save_every=50000)
  c.data.transforms = "random_rotate_flip"
  c.optim.clip.type, c.optim.clip.value = "value", 0.1
  c.train.eval_every = 50000  # reference with_test: test at every save
  c.evaluate.protocol = "grew_submission"
  return c.lock()
