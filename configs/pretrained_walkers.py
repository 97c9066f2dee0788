"""The shipped walkers-only model (pretrained/walkers): trained on generated walkers only, no
licensed data, validated on KTH TRAIN_SET people (never the test ids).

`bash tools/train_pretrained.sh` runs it (resumable) and copies the final step into
pretrained/walkers with its PROVENANCE.md. The network is the KTH recipe's small path 0,5,5,4
at widths 8/16/32 (configs/kth_recipe.py:pretrain), trained on ten times as many walkers
(2000 ids) for four times as long; `embed.flip` averages each sequence with its mirror.

Validation (`train.eval_every`): KTH-walk on the 12 KTH TRAIN_SET people (embed.split=train of
the KTH tree), the curve in WORKDIR/validation.png. Zero-shot on the test people:

  python -m gait_jax.main --config configs/kth_walking.py --workdir W --config.mode=test \\
      --config.train.init_from=pretrained/walkers
"""
from gait_jax import config as cfg

WALKER_IDS = 2000
STEPS = 2400


def get_config(arg=None):
  del arg
  c = cfg.base_config()
  c.experiment = "pretrained_walkers"
  cfg.set_dataset(c, "CASIA-B")  # frame limit 720 at test time
  c.data.dataset_name = "walkers-kth"
  c.data.root = "runs/pretrained/walkers"
  c.data.partition = "runs/pretrained/walkers.json"
  c.data.cache = True
  c.data.batch_p, c.data.batch_k = 8, 4
  c.data.frames = 20
  c.data.transforms = "random_horizontal_flip,base_sil_cutting"  # KTH passes alternate direction
  cfg.set_model(c, "sposgait_small", (8, 16, 32), (16, 8, 4, 2, 1), 32, WALKER_IDS)
  c.model.path = "0,5,5,4"
  c.loss.triplet_weight, c.loss.ce_weight = 1.0, 1.0
  cfg.set_schedule(c, total_steps=STEPS, milestones=(STEPS * 3 // 4, STEPS * 11 // 12),
                   save_every=250)
  c.train.log_every = 50
  c.train.keep_checkpoints = 2
  c.train.eval_every = 500
  c.embed.root = "../shared/data/kth_walking"
  c.embed.partition = "../shared/data/kth_walking.json"
  c.embed.split = "train"  # validation people: KTH TRAIN_SET, never the test ids
  c.embed.flip = True
  c.embed.batch = 4
  c.evaluate.protocol = "kth_walk"
  return c.lock()
