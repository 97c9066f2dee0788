"""Procedurally generated walking-person silhouettes: the project's embedded default data.

Real gait benchmarks need licences, so the quickstart, tests and benchmarks run on sequences
drawn here and written in the OpenGait layout `<out>/<id>/<type>/<view>/<view>.pkl`
(uint8 [T, 64, 64], values 0/255) with a partition file `<out>.json` beside the folder.

A walker is an articulated 3-D body made of tapered capsules. Its *identity* is a persistent
set of body proportions and gait-style parameters; each *session* (one CASIA-B-style type such
as `nm-01`, `bg-02`, `cl-01`) varies speed, posture and clothing and may add a bag or a coat;
each *view* is the same walk seen by another camera (yaw about the vertical axis, orthographic
projection with a slight downward pitch) and gets its own length and segmentation noise.
Frames are rendered at RENDER_HEIGHT pixels and aligned exactly like the reference
pretreatment (`data/pretreat.align_frame`), so the output looks like real pkls to every
later stage.

Determinism: a session is drawn from a generator seeded by (seed, id, type) and a view from
one seeded by (seed, id, type, view), so the bytes do not depend on worker count or order.
"""
from __future__ import annotations

import json
import math
import multiprocessing
import os
import pickle
from concurrent.futures import ProcessPoolExecutor
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from gait_jax.common import io
from gait_jax.data import pretreat
from gait_jax.synthetic import degrade
from gait_jax.synthetic.body import body_capsules, ground_level, project
from gait_jax.synthetic.gait import rng_for, sample_identity, sample_session, sample_view_noise
from gait_jax.synthetic.preview import contact_sheet  # noqa: F401  (part of the API)
from gait_jax.synthetic.render import corrupt, rasterise

RENDER_HEIGHT = 128  # body height in pixels before alignment to 64
SIZE = 64  # aligned frame size (the pretreatment's img_size)
DEFAULT_VIEWS = ("000", "045", "090")  # frontal, oblique, lateral
CASIA_TYPES = ("nm-01", "nm-02", "nm-03", "nm-04", "nm-05", "nm-06",
               "bg-01", "bg-02", "cl-01", "cl-02")


# ----------------------------------------------------------------------------------------
# Names: types, views, ids
# ----------------------------------------------------------------------------------------

def sequence_types(k: int) -> List[str]:
  """The first k CASIA-B type names; beyond the 10 CASIA-B types, extra `nm-07`, `nm-08`..."""
  if k < 1:
    raise ValueError(f"seqs_per_id={k}: expected at least 1 sequence per id")
  names = list(CASIA_TYPES[:k])
  names += [f"nm-{i:02d}" for i in range(7, 7 + k - len(names))]
  return names


def parse_views(views) -> List[str]:
  """'000,090' or a list -> ['000', '090'] (3-digit azimuths in degrees, 0 = walking towards
  the camera, 90 = side view, 180 = walking away)."""
  items = views.split(",") if isinstance(views, str) else list(views)
  out = []
  for v in items:
    v = str(v).strip()
    if not v:
      continue
    if not v.isdigit() or not 0 <= int(v) < 360:
      raise ValueError(f"views: {v!r} is not an azimuth in degrees 0..359 (e.g. '000,045,090')")
    out.append(f"{int(v):03d}")
  if not out:
    raise ValueError(f"views={views!r}: expected at least one view such as '090'")
  if len(set(out)) != len(out):
    raise ValueError(f"views={views!r}: a view is repeated")
  return out


def id_names(n: int) -> List[str]:
  return [f"{i:05d}" for i in range(1, n + 1)]


def align_frame(frame: np.ndarray, size: int = SIZE) -> Optional[np.ndarray]:
  """One raw silhouette (uint8 0/255 or bool) -> uint8 [size, size] 0/255, or None when the
  reference pretreatment would drop it. The pretreatment's rule, thresholded back to 0/255 after
  its cubic resize (these data stay binary like real pkls)."""
  frame = np.asarray(frame)
  if frame.dtype == bool:
    frame = frame.astype(np.uint8) * 255
  return pretreat.align_frame(frame, size, binarize=True)[0]


def align_frames(frames: np.ndarray, size: int = SIZE) -> np.ndarray:
  """Stack of raw frames [T, H, W] (uint8 0/255 or bool) -> uint8 [T', size, size]
  (dropped frames removed)."""
  frames = np.asarray(frames)
  if frames.dtype == bool:
    frames = frames.view(np.uint8) * np.uint8(255)
  # Cheap per-frame checks first, vectorised; align_frame repeats them for the survivors.
  keep = frames.sum((1, 2), dtype=np.int64) > pretreat.MIN_PIXEL_SUM
  out = [f for f in (align_frame(fr, size) for fr in frames[keep]) if f is not None]
  if not out:
    return np.zeros((0, size, size), np.uint8)
  return np.stack(out)


def identity_params(seed: int, sid: str) -> Dict:
  return sample_identity(rng_for(seed, "identity", sid))


def render_views(seed: int, sid: str, seq_type: str, views: Sequence[str], frames: int,
                 identity: Optional[Dict] = None, profile: str = "clean"
                 ) -> Dict[str, np.ndarray]:
  """All camera views of one walk: {view: uint8 [T, 64, 64]}; T varies (frames ± 25 %).
  `profile` "kth" adds the degradations of real low-resolution footage, "footage" those and
  the coarser segmentation faults of real silhouettes (`degrade`)."""
  degrade.check_profile(profile)
  if frames < 1:
    raise ValueError(f"frames={frames}: expected a positive frame count")
  identity = identity if identity is not None else identity_params(seed, sid)
  session = sample_session(rng_for(seed, "session", sid, seq_type), seq_type)
  t_max = int(math.ceil(frames * 1.25)) + 1
  caps3d = body_capsules(identity, session, t_max)
  scale = RENDER_HEIGHT / 1.0  # pixels per stature
  out = {}
  for view in views:
    rng = rng_for(seed, "view", sid, seq_type, view)
    n = max(1, int(round(frames * rng.uniform(0.75, 1.25))))
    start = int(rng.integers(0, t_max - n + 1))
    noise = sample_view_noise(rng)
    footage = None
    if profile != "clean":  # drawn after the clean settings: the clean bytes stay as they were
      noise = degrade.strengthen_noise(noise, rng)
      kth = degrade.sample(rng)
      if profile == "footage":
        footage = degrade.sample_footage(rng)
    sel = slice(start, start + n)
    caps2d = []
    cam = dict(view_deg=float(view), pitch_deg=session["pitch"], distance=session["distance"])
    for a, b, ra, rb in caps3d:
      caps2d.append((project(a[sel], **cam), project(b[sel], **cam), ra, rb))
    pts = np.concatenate([np.concatenate([a, b], 0) for a, b, _, _ in caps2d], 0)
    margin = 0.12  # statures: radii, shadow and blobs around the skeleton
    lo = pts.min(0) - margin - (noise["shadow_len"] if noise["shadow"] else 0)
    hi = pts.max(0) + margin + (noise["shadow_len"] if noise["shadow"] else 0)
    width = int(math.ceil((hi[0] - lo[0]) * scale))
    height = int(math.ceil((hi[1] - lo[1]) * scale))
    # Image rows grow downwards.
    to_px = lambda q: np.stack([(q[:, 0] - lo[0]) * scale, (hi[1] - q[:, 1]) * scale], -1)  # noqa
    px = [(to_px(a), to_px(b), ra * scale, rb * scale) for a, b, ra, rb in caps2d]
    mask = rasterise(px, height, width)
    ground_v = ground_level([(a, b, ra, rb) for a, b, ra, rb in caps2d])
    ground_row = (hi[1] - ground_v) * scale
    noisy = corrupt(mask, rng, noise, ground_row, scale)
    if footage is not None:
      noisy = degrade.apply_footage(noisy, footage, rng)
    if profile != "clean":
      noisy = degrade.apply(noisy, kth, rng)
    out[view] = align_frames(np.ascontiguousarray(np.moveaxis(noisy, -1, 0)))
  return out


def _write_pkl(path: str, seq: np.ndarray) -> None:
  with io.atomic_open(path, "wb") as f:
    pickle.dump(seq, f, protocol=4)


def _generate_id(args) -> Tuple[str, int, int]:
  out, seed, sid, types, views, frames, profile = args
  identity = identity_params(seed, sid)
  n_seq = n_frames = 0
  for seq_type in types:
    for view, seq in render_views(seed, sid, seq_type, views, frames, identity,
                                  profile).items():
      if len(seq) == 0:
        continue  # the reference pretreatment writes nothing for an empty sequence
      _write_pkl(os.path.join(out, sid, seq_type, view, f"{view}.pkl"), seq)
      n_seq += 1
      n_frames += len(seq)
  return sid, n_seq, n_frames


def partition_path(out: str) -> str:
  return os.path.normpath(out) + ".json"


def generate(out: str, ids: int, seqs_per_id: int, views=DEFAULT_VIEWS, frames: int = 40,
             seed: int = 0, workers: int = 1, train_ids: Optional[int] = None,
             progress=None, profile: str = "clean") -> Dict:
  """Writes `ids` walkers × `seqs_per_id` types × views to `out` and the partition file
  `<out>.json` (TRAIN_SET = the first `train_ids` ids, default half rounded up).
  `profile`: "clean", "kth" (the degradations of real low-resolution footage) or "footage"
  (kth's and real segmentation's coarser faults), see `degrade`.

  Returns a summary {"root", "partition", "ids", "sequences", "frames"}.
  """
  if ids < 1:
    raise ValueError(f"ids={ids}: expected at least 1 walker")
  views = parse_views(views)
  types = sequence_types(seqs_per_id)
  degrade.check_profile(profile)
  if frames < 1:
    raise ValueError(f"frames={frames}: expected a positive frame count")
  train_ids = (ids + 1) // 2 if train_ids is None else int(train_ids)
  if not 0 <= train_ids <= ids:
    raise ValueError(f"train_ids={train_ids}: expected 0..{ids} (the number of ids)")
  names = id_names(ids)
  os.makedirs(out, exist_ok=True)
  jobs = [(out, int(seed), sid, types, views, int(frames), profile) for sid in names]
  n_seq = n_frames = 0
  if workers <= 1:
    results = map(_generate_id, jobs)
    pool = None
  else:
    # spawn, not fork: callers may have started threads (JAX, loaders) that fork would copy
    # in an arbitrary state.
    pool = ProcessPoolExecutor(max_workers=int(workers),
                               mp_context=multiprocessing.get_context("spawn"))
    results = pool.map(_generate_id, jobs, chunksize=1)
  try:
    for done, (sid, s, f) in enumerate(results, 1):
      n_seq += s
      n_frames += f
      if progress is not None:
        progress(done, len(names))
  finally:
    if pool is not None:
      pool.shutdown()
  partition = {"TRAIN_SET": names[:train_ids], "TEST_SET": names[train_ids:]}
  ppath = partition_path(out)
  with open(ppath, "w") as f:
    json.dump(partition, f, indent=1)
  return {"root": out, "partition": ppath, "ids": ids, "sequences": n_seq, "frames": n_frames}
