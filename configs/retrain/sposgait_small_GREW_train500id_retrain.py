"""Retrain SPOSGait small path [0,5,5,4] on GREW (500 ids) (reference retrain/sposgait_small_GREW-train500id_retrain.yaml).

The reference evaluator restores step 100000 although training stops at 50000; here test mode uses the workdir's latest checkpoint."""
from gait_jax import config as cfg


def get_config(arg=None):
  del arg
  c = cfg.base_config()
  c.experiment = "SPOSGait_small_GREW-train500id_retrain"
  cfg.set_dataset(c, "GREW", num_train=500)
  cfg.set_model(c, "sposgait_small", (64, 128, 256), (16,), 256, 500)
  c.model.path = "0,5,5,4"
  c.loss.triplet_weight, c.loss.ce_weight = 1.0, 0.1
  cfg.set_schedule(c, total_steps=50000, milestones=(20000, 40000), save_every=10000)
  c.data.transforms = "random_rotate_flip"
  c.train.eval_every = 10000  # reference with_test: test at every save
  c.evaluate.protocol = "grew_submission"
  return c.lock()
