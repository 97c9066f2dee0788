"""Retrain SPOSGait large path [0,0,4,5,2,0,4,3,4,3] on Gait3D (reference retrain/sposgait_large_Gait3D_retrain.yaml)."""
from gait_jax import config as cfg


def get_config(arg=None):
  del arg
  c = cfg.base_config()
  c.experiment = "SPOSGait_large_t1s1_Gait3d_c128c256"
  cfg.set_dataset(c, "Gait3D")
  cfg.set_model(c, "sposgait_large", (128, 256, 256, 512), (16,), 256, 3000)
  c.model.path = "0,0,4,5,2,0,4,3,4,3"
  c.loss.triplet_weight, c.loss.ce_weight = 1.0, 1.0
  cfg.set_schedule(c, total_steps=61001, milestones=(20000, 40000, 50000, 60000), save_every=500)
  c.data.transforms = "random_perspective,base_sil_cutting,random_horizontal_flip,random_rotate"
  c.train.eval_every = 500  # reference with_test: test at every save
  return c.lock()
