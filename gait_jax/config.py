"""The config schema every experiment file builds on, and helpers to read it.

Experiment files in `configs/` call `base_config()` and change what differs from the
reference defaults, so every config has every key (the CLI override of a key that a
file forgot would otherwise fail with "key not found").
"""
from __future__ import annotations

import os
from typing import Optional, Tuple

import ml_collections
from absl import logging

from gait_jax.common import checkpoint
from gait_jax.models.space import (CHOICE_MAX_NUM, check_path, check_space, format_path,  # noqa: F401
                                   parse_path)


def base_config() -> ml_collections.ConfigDict:
  """Every key with the reference defaults."""
  c = ml_collections.ConfigDict()
  c.mode = "train"  # train | search | embed | evaluate | test | flops | enroll | identify
  c.seed = 0
  c.experiment = ""  # the reference save_name, for bookkeeping only

  c.data = _data()
  c.model = _model()
  c.loss = _loss()
  c.optim = _optim()
  c.train = _train()
  c.embed = _embed()
  c.evaluate = _evaluate()
  c.search = _search()
  c.flops = _flops()
  c.identify = _identify()
  c.dist = _dist()
  return c


def _data() -> ml_collections.ConfigDict:
  s = ml_collections.ConfigDict()
  s.dataset_name = "GREW"
  # "pkl": the OpenGait tree at root + the partition JSON; "tfds": the dataset
  # tools/to_tfds.py wrote under root (its splits and partition inside: partition may be "").
  s.format = "pkl"
  s.root = ""
  s.partition = ""
  s.num_train = 0  # 0 = every TRAIN_SET id; N = the first N ids
  s.cache = False
  s.batch_p = 32
  s.batch_k = 4
  s.batch_shuffle = True
  s.sample_type = "fixed_ordered"
  s.frames = 30  # frames_num_fixed
  s.frames_skip = 0  # frames_skip_num
  s.frames_min = 25  # unfixed_* samplers
  s.frames_max = 50
  # Training transform: comma-separated names applied in order (a Compose). Test time is
  # always base_sil_cutting, as in every reference config.
  s.transforms = "base_sil_cutting"
  s.workers = 2  # background loader threads
  s.prefetch = 2  # batches prepared ahead
  s.test_frames_all_limit = 0  # all_ordered at test time; 0 = no limit
  # Ship the cut uint8 frames to the device (divided by 255 there): 4x less host-to-device
  # traffic; only with data.transforms="base_sil_cutting".
  s.uint8 = False
  return s


def _model() -> ml_collections.ConfigDict:
  s = ml_collections.ConfigDict()
  s.name = "sposgait_large"
  s.channels = (64, 128, 256, 512)
  s.bins = (16, 8, 4, 2, 1)
  s.parts = 31
  s.out_channels = 512  # SeparateFCs output width (= embedding width c)
  s.class_num = 20000  # BN-neck classes; the neck exists only when loss.ce_weight > 0
  s.choice_max_num = CHOICE_MAX_NUM["sposgait_large"]
  s.path = ""  # "" = supernet (path sampled per step); "0,0,4,..." = fixed path
  # Recompute the searchable layers' activations in the backward pass: a supernet step then
  # needs less memory than its heaviest static path instead of ~1.35x more (README, Benchmarks).
  s.remat = False
  return s


def _loss() -> ml_collections.ConfigDict:
  s = ml_collections.ConfigDict()
  s.triplet_weight = 1.0
  s.margin = 0.2
  s.ce_weight = 0.0  # 0 = triplet only (no BN-neck, as the reference)
  s.ce_scale = 16.0
  s.label_smooth = 0.1
  return s


def _optim() -> ml_collections.ConfigDict:
  s = ml_collections.ConfigDict()
  s.lr = 0.1
  s.momentum = 0.9
  s.weight_decay = 5e-4
  s.gamma = 0.1
  s.milestones = (20000, 40000, 60000)
  # "multistep" (the reference: lr × gamma at each of the milestones) or "cosine" (from lr to 0
  # at train.total_steps; milestones and gamma unused).
  s.schedule = "multistep"
  s.clip = ml_collections.ConfigDict()
  s.clip.type = "none"  # none | value | norm (reference clip_grad_cfg)
  s.clip.value = 0.1
  s.clip.max_norm = 35.0
  s.clip.norm_type = 2.0
  return s


def _train() -> ml_collections.ConfigDict:
  s = ml_collections.ConfigDict()
  s.total_steps = 80000
  s.save_every = 2000
  s.log_every = 100
  s.eval_every = 0  # reference with_test: evaluate every N steps (0 = never)
  # What eval_every evaluates on: "test" = embed.split with evaluate.protocol (the reference's
  # with_test); "holdout" = training ids held out of this run (search.val_ids, recorded in
  # WORKDIR/holdout.json) with the search's fitness protocol, for choosing hyperparameters
  # without looking at the test ids. Each evaluation is appended to WORKDIR/validation.json
  # and drawn in WORKDIR/validation.png.
  s.eval_on = "test"
  # How a supernet picks the path of each step: "uniform" (the reference: one random path per
  # step) or "fair" (FairNAS strict fairness: every candidate of every layer trained equally
  # often within each group of steps; models/space.py).
  s.path_sampler = "uniform"
  s.init_from = ""  # workdir or checkpoint dir to load weights from
  # With init_from: also take its SGD momentum and step counter (the schedule and the path
  # sequence continue), e.g. to continue an imported reference run in a new workdir.
  s.resume_optimizer = False
  s.dtype = "float32"  # compute dtype: float32 | bfloat16 | float16
  # With dtype float32: the wide convolutions multiply in bfloat16, forward and gradients
  # (float32 sums, activations, BN and weights), where the CPU has bfloat16 units (AMX or
  # AVX-512-BF16) and oneDNN runs them: a ~1.3x faster step at the GREW widths, the worst
  # parameter's gradient within ~1e-1 of float64's (float32: ~3e-3; docs/benchmarks.md);
  # elsewhere float32, with one log line. Off in the reference.
  s.bf16 = False
  s.keep_checkpoints = 3
  s.max_bad_steps = 20  # consecutive non-finite steps before training stops
  s.image_every = 0  # silhouette grid to TensorBoard every N steps (0 = log_every*10)
  return s


def _embed() -> ml_collections.ConfigDict:
  s = ml_collections.ConfigDict()
  s.root = ""  # "" = data.root
  s.partition = ""  # "" = data.partition
  s.split = "test"
  s.batch = 8  # a device's row per step: this many buckets of the longest sequence's frames
  s.frames_all_limit = 0  # 0 = data.test_frames_all_limit
  # Embed each sequence and its horizontal mirror and average: invariant to the walking
  # direction (side views of opposite directions are mirror images). Off in the reference.
  s.flip = False
  # Convolutions multiply in bfloat16 (float32 sums) where the CPU has bfloat16 units (AMX or
  # AVX-512-BF16) and oneDNN runs them: faster at wide layers, embeddings to ~1e-2 of
  # float32's (docs/benchmarks.md); elsewhere float32, with one log line.
  s.bf16 = False
  return s


def _evaluate() -> ml_collections.ConfigDict:
  s = ml_collections.ConfigDict()
  s.protocol = "grew"  # casia_b | oumvlp | grew | grew_submission | gait3d | custom
  s.embeddings = ""  # npz for mode=evaluate ("" = WORKDIR/embeddings.npz)
  s.metric = "euc"  # euc | cos
  s.rerank = False
  s.k1 = 20
  s.k2 = 6
  s.lambda_value = 0.3
  s.chunk = 1024  # probes per ranking chunk
  s.custom_gallery = ""  # custom protocol: glob on "type/view", comma-separated
  s.custom_probes = ""  # "name=glob,glob;name2=glob"
  # test / evaluate: N > 0 also writes WORKDIR/examples/<probe group>.png, N probes per group
  # with their top-3 gallery matches (custom, casia_b, oumvlp, grew)
  s.examples = 0
  return s


def _search() -> ml_collections.ConfigDict:
  s = ml_collections.ConfigDict()
  s.epochs = 20
  s.population = 50
  s.select_num = 10
  s.mutation_num = 25
  s.crossover_num = 25
  s.m_prob = 0.1
  s.max_macs = 0  # 0 = no limit
  s.max_params = 0  # 0 = no limit
  # TRAIN_SET ids held out for the search fitness (and from supernet training):
  # "" = a seeded 10 % (at least 2), "N" = a seeded N ids, "id,id,..." = exactly these
  # (one id: "id,"). A search scores on the ids its supernet held out (its holdout.json).
  s.val_ids = ""
  s.bn_batches = 8  # BN recalibration batches per candidate (0 = off)
  # N > 0: each candidate's weights trained N steps on its own path (the same N training
  # batches for every candidate, constant lr finetune_lr) before BN recalibration and scoring;
  # 0 = the reference (the supernet's weights as they are). gait_jax/search/path_finetune.py
  s.finetune_steps = 0
  s.finetune_lr = 0.01
  # More supernets to average the fitness over ("dir,dir": the same space, trained with other
  # seeds; each scores on the ids it held out): gait_jax/search/ensemble.py. "" = one.
  s.ensemble = ""
  s.protocol = ""  # "" = evaluate.protocol
  # What a candidate's held-out embeddings score: "rank1" (the reference: the protocol's
  # headline), "map" or "margin" (less quantised; gait_jax/search/fitness_metrics.py); or
  # "angle": from the weights, how far training turned the path's kernels from the supernet's
  # seeded initialisation (ABS; gait_jax/search/weight_angle.py).
  s.fitness_metric = "rank1"
  s.seed = 0
  return s


def _identify() -> ml_collections.ConfigDict:
  s = ml_collections.ConfigDict()
  # enroll: <id>/<seq>/*.png, <id>/*.mp4|avi or an OpenGait pkl tree <id>/<type>/<view>/
  s.gallery = ""
  # identify: PNG folders / videos directly under it, a pkl tree, or one PNG folder / video
  s.probes = ""
  s.top_k = 5
  # Best distance above it -> "unknown". "auto": the equal-error point of the gallery's own
  # same-id / other-id pairs; or a number (in evaluate.metric's units).
  s.threshold = "auto"
  s.figures = False  # a PNG per probe: its GEI beside its top-3 gallery GEIs
  # Videos: background-subtraction settings (as tools/video_to_silhouettes.py's flags).
  s.video = ml_collections.ConfigDict()
  s.video.method = "mog2"  # mog2 | knn
  s.video.min_area = 0.004  # smallest person blob, as a fraction of the frame area
  s.video.min_height = 0.2  # shortest person, as a fraction of the frame height
  s.video.max_gap = 5  # frames without a person that end a track
  return s


def _flops() -> ml_collections.ConfigDict:
  s = ml_collections.ConfigDict()
  s.frames = 30
  return s


def _dist() -> ml_collections.ConfigDict:
  s = ml_collections.ConfigDict()
  s.coordinator_address = ""  # "" = single process unless the env says otherwise
  s.num_processes = 1
  s.process_id = 0
  return s

def model_path(config) -> Optional[Tuple[int, ...]]:
  """The config's fixed path, checked against the config's search space (position by position:
  a candidate the supernet never trained is refused), or None for a supernet config."""
  space = check_space(config.model.name, config.model.choice_max_num)
  path = parse_path(config.model.path)
  if path is not None:
    check_path(path, space, model_name=config.model.name)
  return path


def fixed_path(config, what: str) -> Tuple[int, ...]:
  """`model_path`, for what needs one network (a supernet has none)."""
  path = model_path(config)
  if path is None:
    raise ValueError(f"{what} needs a fixed architecture: set model.path "
                     "(e.g. --config.model.path=0,5,5,4); the supernet has no single network")
  return path


def saved_config(source: str) -> ml_collections.ConfigDict:
  """The typed config of the workdir a checkpoint source belongs to (its config.json on the
  schema of `base_config`: lists back to tuples, keys of other versions left out); an error
  naming the directory when there is none."""
  workdir = checkpoint.source_workdir(source)
  saved = checkpoint.read_config(workdir)
  if saved is None:
    raise FileNotFoundError(f"{workdir} has no {checkpoint.CONFIG_FILE}: it is not a gait_jax "
                            "workdir")
  config = base_config()
  _update_typed(config, saved)
  return config


def _update_typed(node: ml_collections.ConfigDict, values: dict) -> None:
  for key, value in values.items():
    if key not in node:
      continue
    if isinstance(node[key], ml_collections.ConfigDict) and isinstance(value, dict):
      _update_typed(node[key], value)
    else:
      node[key] = tuple(value) if isinstance(value, list) else value


# The model shipped with the repository (trained on generated walkers only): enroll / identify
# use it when neither train.init_from nor the workdir names weights.
SHIPPED_MODEL = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                             "pretrained", "walkers")


def inference_weights(config, workdir: str, shipped_default: bool = False):
  """(config, weights source) for embedding: `train.init_from` with its own network (below),
  else the workdir's checkpoints, else — `shipped_default` (enroll / identify) and none there —
  the shipped model, said on the console."""
  source = config.train.init_from
  if not source and shipped_default and not os.path.isdir(checkpoint.checkpoint_dir(workdir)) \
      and os.path.isdir(SHIPPED_MODEL):
    source = SHIPPED_MODEL
    print(f"using the shipped walkers-only model {SHIPPED_MODEL} (set train.init_from to use "
          "your own)", flush=True)
  if not source:
    return config, workdir
  return with_source_architecture(config, source), source


def with_source_architecture(config, source: str) -> ml_collections.ConfigDict:
  """The config to load `source`'s weights with for inference: the checkpoint's own network
  (model.* as its config.json records them, and its path when it is a fixed network) whatever
  the experiment config says; a supernet source keeps the experiment's path (it serves any of
  its trained paths). `config` unchanged when the source records no config."""
  saved = checkpoint.read_config(checkpoint.source_workdir(source))
  if not saved or "model" not in saved:
    return config
  out = config.copy_and_resolve_references()
  own = base_config().model
  _update_typed(own, saved["model"])
  changed = []
  with out.unlocked():
    for key in saved["model"]:
      value = own[key] if key in own else None
      if key == "path" and not value:
        continue  # a supernet serves the config's path
      if value is not None and key not in NOT_ARCHITECTURE and out.model[key] != value:
        changed.append(f"model.{key}={value!r}")
        out.model[key] = value
  if changed:
    logging.info("weights from %s: its own network (%s) instead of the config's", source,
                 ", ".join(changed))
  return out


def use_bnneck(config) -> bool:
  """The reference builds SeparateBNNecks only when CE is among the losses."""
  return config.loss.ce_weight > 0


# model.* keys that change how a step computes, never the parameter tree: a run may resume or
# load weights with another value (and configs written before the key existed lack it).
NOT_ARCHITECTURE = ("remat",)


def architecture(config) -> dict:
  """The keys that decide the parameter tree of a config (a ConfigDict or its saved JSON
  dict): every model.* key (but NOT_ARCHITECTURE) and whether the BN-neck exists."""
  if not isinstance(config, ml_collections.ConfigDict):
    config = ml_collections.ConfigDict(config)
  model = {f"model.{k}": (list(v) if isinstance(v, (list, tuple)) else v)
           for k, v in config.model.to_dict().items() if k not in NOT_ARCHITECTURE}
  loss = config.get("loss", ml_collections.ConfigDict({"ce_weight": 0.0}))
  model["loss.ce_weight>0 (BN-neck)"] = use_bnneck(ml_collections.ConfigDict({"loss": loss}))
  return model


def architecture_differences(saved, current) -> dict:
  """{key: (saved, current)} for every architecture key that differs."""
  a, b = architecture(saved), architecture(current)
  return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}


# Model shapes per reference experiment family.
def set_model(c, name: str, channels, bins, out_channels: int, class_num: int) -> None:
  c.model.name = name
  c.model.channels = tuple(channels)
  c.model.bins = tuple(bins)
  c.model.parts = int(sum(bins))
  c.model.out_channels = int(out_channels)
  c.model.class_num = int(class_num)
  c.model.choice_max_num = CHOICE_MAX_NUM[name]


def set_schedule(c, *, total_steps: int, milestones, save_every: int, lr: float = 0.1) -> None:
  c.train.total_steps = int(total_steps)
  c.train.save_every = int(save_every)
  c.optim.milestones = tuple(int(m) for m in milestones)
  c.optim.lr = float(lr)


# Evaluation defaults per benchmark.
_DATASETS = {
    "GREW": dict(protocol="grew", limit=0),
    "CASIA-B": dict(protocol="casia_b", limit=720),
    "OUMVLP": dict(protocol="oumvlp", limit=720),
    "Gait3D": dict(protocol="gait3d", limit=720),
}


def set_dataset(c, name: str, *, num_train: int = 0) -> None:
  """Benchmark name, its evaluation protocol and test frame limit. Root/partition come
  from the command line (licensed data is never shipped)."""
  c.data.dataset_name = name
  c.data.num_train = int(num_train)
  c.evaluate.protocol = _DATASETS[name]["protocol"]
  c.data.test_frames_all_limit = _DATASETS[name]["limit"]
