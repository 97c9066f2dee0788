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

`configs/pretrained_walkers.py:gpu` is the same model at the reference's small GREW widths
(64/128/256, one 16-strip scale, 256-wide embedding: 3.2 M parameters, 12 MB) with 30-frame
sequences, 16×4 batches, bfloat16 compute and 4000 steps — what `bash tools/gpu_pretrain.sh`
trains on an NVIDIA GPU in a few minutes (not affordable on the 2-core CPU).
"""
from gait_jax import config as cfg

WALKER_IDS = 2000
STEPS = 2400
GPU_STEPS = 4000
VARIANTS = ("cpu", "gpu")


def get_config(arg=None):
  variant = arg or "cpu"
  if variant not in VARIANTS:
    raise ValueError(f"configs/pretrained_walkers.py:{variant}: expected one of "
                     f"{', '.join(VARIANTS)}")
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
  if variant == "gpu":
    c.experiment = "pretrained_walkers_gpu"
    cfg.set_model(c, "sposgait_small", (64, 128, 256), (16,), 256, WALKER_IDS)
    c.model.path = "0,5,5,4"
    c.data.batch_p, c.data.batch_k = 16, 4
    c.data.frames = 30
    c.data.workers = 8
    c.train.dtype = "bfloat16"
    cfg.set_schedule(c, total_steps=GPU_STEPS,
                     milestones=(GPU_STEPS * 3 // 4, GPU_STEPS * 11 // 12), save_every=250)
  return c.lock()
