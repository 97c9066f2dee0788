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
pretreatment (spec §5.8), so the output looks like real pkls to every later stage.

Determinism: a session is drawn from a generator seeded by (seed, id, type) and a view from
one seeded by (seed, id, type, view), so the bytes do not depend on worker count or order.
"""
from __future__ import annotations

import json
import math
import multiprocessing
import os
import pickle
import zlib
from concurrent.futures import ProcessPoolExecutor
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

FPS = 25.0  # frame rate of the simulated cameras (CASIA-B records at 25 fps)
RENDER_HEIGHT = 128  # body height in pixels before alignment to 64
SIZE = 64  # aligned frame size (spec §5.8 img_size)
DEFAULT_VIEWS = ("000", "045", "090")  # frontal, oblique, lateral
CASIA_TYPES = ("nm-01", "nm-02", "nm-03", "nm-04", "nm-05", "nm-06",
               "bg-01", "bg-02", "cl-01", "cl-02")
RASTER_CHUNK = 15  # frames rasterised together (see rasterise)
# Pretreatment drops frames whose pixel sum (0/255 values) is at most this (spec §5.8 step 1).
MIN_FRAME_SUM = 10000


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


def _rng(seed: int, *keys: str) -> np.random.Generator:
  # crc32 of the names (not Python's salted hash) keeps streams stable across processes.
  return np.random.default_rng([int(seed)] + [zlib.crc32(k.encode()) for k in keys])


# ----------------------------------------------------------------------------------------
# Normative sagittal joint-angle curves (degrees over one gait cycle, 0 = heel strike of
# that leg). Key points follow the familiar textbook shapes (e.g. Winter's normative data);
# they are fitted once by a small Fourier series so identities can perturb the harmonics.
# ----------------------------------------------------------------------------------------

_KEYPOINTS = {
    # hip flexion (+) / extension (-): flexed at heel strike, extended before toe-off.
    "hip": [(0, 30), (10, 27), (20, 19), (30, 10), (40, 1), (50, -7), (56, -10), (62, -5),
            (70, 8), (80, 23), (88, 31), (95, 31)],
    # knee flexion: loading-response bump, nearly straight in mid-stance, ~60° in swing.
    "knee": [(0, 4), (6, 12), (15, 18), (25, 12), (35, 6), (42, 5), (50, 10), (57, 25),
             (64, 45), (72, 61), (80, 52), (88, 28), (95, 8)],
    # ankle dorsiflexion (+): plantarflexion after heel strike and at push-off.
    "ankle": [(0, 0), (7, -6), (15, 2), (30, 8), (45, 10), (52, 5), (62, -17), (70, -10),
              (80, 0), (90, 2)],
}
HARMONICS = 4


def _fit_fourier(points, harmonics: int = HARMONICS) -> np.ndarray:
  """Least-squares Fourier coefficients [a0, a1, b1, ..., aH, bH] of a periodic curve given by
  key points (percent of cycle, value), linearly interpolated around the cycle."""
  pct = np.array([p for p, _ in points] + [points[0][0] + 100.0])
  val = np.array([v for _, v in points] + [points[0][1]])
  phase = np.linspace(0.0, 1.0, 200, endpoint=False)
  y = np.interp(phase * 100.0, pct, val)
  return np.linalg.lstsq(_fourier_basis(phase, harmonics), y, rcond=None)[0]


def _fourier_basis(phase: np.ndarray, harmonics: int) -> np.ndarray:
  cols = [np.ones_like(phase)]
  for h in range(1, harmonics + 1):
    cols += [np.cos(2 * np.pi * h * phase), np.sin(2 * np.pi * h * phase)]
  return np.stack(cols, axis=-1)


def fourier_eval(coeffs: np.ndarray, phase: np.ndarray) -> np.ndarray:
  """Evaluates a Fourier series (layout of `_fit_fourier`) at phases in cycles."""
  return _fourier_basis(np.asarray(phase, np.float64), (len(coeffs) - 1) // 2) @ coeffs


NORMATIVE = {name: _fit_fourier(pts) for name, pts in _KEYPOINTS.items()}


# ----------------------------------------------------------------------------------------
# Identity, session and view parameters
# ----------------------------------------------------------------------------------------

def _perturbed(rng, base: np.ndarray, amp_scale: float, sigma: float) -> np.ndarray:
  """A person's own version of a normative curve: scaled swing plus perturbed harmonics."""
  c = base.copy()
  c[1:] *= amp_scale
  c[0] += rng.normal(0, sigma)
  c[1:7] += rng.normal(0, sigma, 6)  # harmonics 1-3 carry the individual shape
  return c


def sample_identity(rng: np.random.Generator) -> Dict:
  """Persistent body proportions and gait style of one person (lengths in statures)."""
  g = lambda m, s: float(rng.normal(m, s))  # noqa: E731
  u = lambda a, b: float(rng.uniform(a, b))  # noqa: E731
  p = {
      "leg": g(0.53, 0.02),  # hip-joint height / stature
      "thigh_frac": g(0.52, 0.02),  # thigh / (thigh + shank)
      "head": g(0.13, 0.01),  # crown to chin
      "neck": g(0.045, 0.008),
      "shoulder_w": g(0.22, 0.015),  # biacromial breadth
      "hip_w": g(0.19, 0.015),
      "depth": g(0.15, 0.02),  # chest depth, clothed
      "belly": float(np.clip(rng.lognormal(0.0, 0.12), 0.8, 1.5)),
      "girth": float(np.clip(rng.lognormal(0.08, 0.13), 0.75, 1.6)),  # limb widths
      "upper_arm": g(0.186, 0.01),
      "forearm": g(0.146, 0.008),
      "head_r": g(0.062, 0.005),
      "foot": g(0.15, 0.01),
      "cycle_s": g(1.08, 0.08),  # seconds per gait cycle
      "arm_swing": u(8.0, 34.0),  # shoulder swing amplitude (deg)
      "arm_mean": g(-3.0, 5.0),
      "arm_abd": u(2.0, 12.0),  # elbows out (deg)
      "elbow_mean": u(8.0, 35.0),
      "elbow_gain": u(0.1, 0.8),  # extra elbow flexion per degree of shoulder flexion
      "lean": g(3.0, 3.0),  # trunk forward lean (deg)
      "lean_osc": u(0.0, 3.0),
      "head_tilt": g(5.0, 6.0),
      "bounce": u(0.015, 0.035),
      "toe_out": u(0.0, 15.0),
      "stance_w": u(-0.01, 0.03),  # knees/feet drift outwards (+) or inwards (-)
      "asym_leg": g(1.0, 0.05),  # right/left swing ratio
      "asym_arm": g(1.0, 0.15),
      "asym_phase": g(0.0, 0.012),
  }
  p["hip"] = _perturbed(rng, NORMATIVE["hip"], g(1.0, 0.12), 2.5)
  p["knee"] = _perturbed(rng, NORMATIVE["knee"], g(1.0, 0.12), 3.0)
  p["ankle"] = _perturbed(rng, NORMATIVE["ankle"], g(1.0, 0.15), 2.0)
  return p


def sample_session(rng: np.random.Generator, seq_type: str) -> Dict:
  """One walk of a person: speed, small posture/width changes, phase start and covariates."""
  s = {
      "speed": float(rng.normal(1.0, 0.06)),
      "lean": float(rng.normal(0.0, 1.5)),
      "width": float(rng.normal(1.0, 0.04)),
      "arm": float(rng.normal(1.0, 0.12)),
      "phase0": float(rng.uniform(0.0, 1.0)),
      "pitch": float(rng.uniform(0.0, 8.0)),  # camera looks slightly down
      "distance": float(rng.uniform(3.0, 7.0)),  # camera distance in statures
      "bag": None,
      "coat": None,
      "hat": False,
  }
  kind = seq_type.split("-")[0]
  if kind == "bg":
    s["bag"] = {
        "kind": str(rng.choice(["backpack", "shoulder", "hand"], p=[0.4, 0.35, 0.25])),
        "side": int(rng.choice([-1, 1])),
        "size": float(rng.uniform(0.8, 1.3)),
    }
  elif kind == "cl":
    s["coat"] = {
        "thick": float(rng.uniform(1.15, 1.4)),
        "length": float(rng.uniform(0.0, 0.25)),  # below the hip joints, statures
    }
    s["hat"] = bool(rng.random() < 0.3)
  return s


def sample_view_noise(rng: np.random.Generator) -> Dict:
  """Segmentation quality of one camera's sequence (background subtraction artefacts)."""
  return {
      "edge": float(rng.uniform(0.05, 0.35)),  # ragged-edge threshold jitter
      "holes": float(rng.uniform(0.0, 1.0) ** 2 * 0.18),  # fraction of body lost to holes
      "shadow": bool(rng.random() < 0.35),
      "shadow_len": float(rng.uniform(0.15, 0.5)),
      "shadow_side": int(rng.choice([-1, 1])),
      "fragment_p": float(rng.uniform(0.0, 0.08)),  # per-frame chance of a missing band
      "blob_p": float(rng.uniform(0.0, 0.05)),  # per-frame chance of a spurious blob
      "clip_p": float(rng.uniform(0.0, 0.03)),  # per-frame chance of a clipped frame
      "enter": bool(rng.random() < 0.15),  # first frames only partly in the field of view
  }


# ----------------------------------------------------------------------------------------
# Skeleton (3-D, metres; x forward, y up, z to the walker's left) and capsules
# ----------------------------------------------------------------------------------------

def _rot_sagittal(vec_len: float, angle_deg: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
  """(dx, dy) of a segment of length vec_len hanging at angle_deg from the downward
  vertical, positive = forward."""
  a = np.deg2rad(angle_deg)
  return vec_len * np.sin(a), -vec_len * np.cos(a)


def body_capsules(identity: Dict, session: Dict, n_frames: int, stature: float = 1.0
                  ) -> List[Tuple[np.ndarray, np.ndarray, float, float]]:
  """The walker as tapered capsules over time: list of (a [T,3], b [T,3], r_a, r_b)."""
  p, s = identity, session
  S = stature
  speed = s["speed"]
  cycle_frames = p["cycle_s"] / math.sqrt(speed) * FPS
  phase = s["phase0"] + np.arange(n_frames) / cycle_frames
  girth = p["girth"] * s["width"]
  T = n_frames

  def pt(x, y, z):
    return np.stack(np.broadcast_arrays(np.asarray(x, float) * np.ones(T),
                                        np.asarray(y, float) * np.ones(T),
                                        np.asarray(z, float) * np.ones(T)), -1)

  # Vertical layout: crown at S, everything else measured down from it.
  hip_h = p["leg"] * S
  ankle_h = 0.045 * S
  leg_len = hip_h - ankle_h
  thigh = leg_len * p["thigh_frac"]
  shank = leg_len - thigh
  chin = S - p["head"] * S
  neck_base = chin - p["neck"] * S
  torso_len = neck_base - hip_h
  bounce = p["bounce"] * S * -np.cos(4 * np.pi * phase)
  pelvis_y = hip_h + bounce

  # Trunk lean rotates the upper body about the pelvis (sagittal plane).
  lean = np.deg2rad(p["lean"] + s["lean"] + p["lean_osc"] * np.sin(4 * np.pi * phase))

  def trunk(x, y, z):
    # Trunk-local (x forward, y up from the pelvis) -> world.
    x = np.asarray(x, float) * np.ones(T)
    y = np.asarray(y, float) * np.ones(T)
    return pt(x * np.cos(lean) + y * np.sin(lean), pelvis_y - x * np.sin(lean) + y * np.cos(lean),
              z)

  caps = []
  sw = p["shoulder_w"] * S * s["width"]
  hw = p["hip_w"] * S * s["width"]
  coat = s["coat"]
  thick = coat["thick"] if coat else 1.0
  r_chest = p["depth"] * S / 2 * girth * thick
  r_waist = r_chest * 0.9 * p["belly"]

  # Torso: two side capsules (shoulder -> hip) and a central one give the right width from
  # the front (shoulders) and from the side (chest depth).
  zs = max(sw / 2 - r_chest, 0.0)
  zh = max(hw / 2 - r_waist * 0.8, 0.0)
  for side in (-1, 1):
    caps.append((trunk(0, torso_len - 0.03 * S, side * zs), trunk(0, 0.02 * S, side * zh),
                 r_chest, r_waist))
  caps.append((trunk(0.01 * S, torso_len, 0), trunk(0, 0, 0), r_chest * 0.9, r_waist))
  # Pelvis / buttocks.
  caps.append((trunk(-0.01 * S, -0.01 * S, -hw / 2), trunk(-0.01 * S, -0.01 * S, hw / 2),
               0.06 * S * girth * thick, 0.06 * S * girth * thick))
  # Neck and head (head tilted forward by head_tilt beyond the trunk lean).
  neck_a = trunk(0, torso_len - 0.01 * S, 0)
  tilt = lean + np.deg2rad(p["head_tilt"])
  neck_len = p["neck"] * S + 0.01 * S
  neck_b = neck_a + np.stack([neck_len * np.sin(tilt), neck_len * np.cos(tilt), 0 * tilt], -1)
  caps.append((neck_a, neck_b, 0.028 * S * girth, 0.026 * S * girth))
  head_r = p["head_r"] * S * (1.15 if s["hat"] else 1.0)
  head_len = max(p["head"] * S - 2 * head_r, 0.005 * S)
  up = np.stack([np.sin(tilt), np.cos(tilt), 0 * tilt], -1)
  fwd = np.stack([np.cos(tilt), -np.sin(tilt), 0 * tilt], -1)
  head_a = neck_b + up * head_r * 0.9 + fwd * 0.02 * S
  caps.append((head_a, head_a + up * head_len, head_r, head_r * 0.95))

  # Legs: right leg phase 0 = right heel strike; the left leg half a cycle later.
  # Clothed widths: trousers make knees and ankles wider than the bare limb.
  r_thigh = 0.058 * S * girth
  r_knee = 0.038 * S * girth
  r_ankle = 0.027 * S * girth
  amp = math.sqrt(speed)
  leg_side = {1: p["asym_leg"], -1: 1.0 / p["asym_leg"]}
  for side in (1, -1):  # +1 = right (z < 0), -1 = left
    ph = phase + (0.0 if side == 1 else 0.5 + p["asym_phase"])
    k = amp * leg_side[side]
    hip_a = (fourier_eval(p["hip"], ph) - NORMATIVE["hip"][0]) * k + NORMATIVE["hip"][0]
    knee_a = np.maximum(fourier_eval(p["knee"], ph) * k, 0.0)
    ankle_a = fourier_eval(p["ankle"], ph) * k
    z = -side * hw * 0.27  # hip joints sit well inside the hip breadth
    zk = z - side * p["stance_w"] * S
    hip = pt(0, pelvis_y, z)
    dx, dy = _rot_sagittal(thigh, hip_a)
    knee = hip + np.stack([dx, dy, zk - z + 0 * dx], -1)
    beta = hip_a - knee_a
    dx, dy = _rot_sagittal(shank, beta)
    ankle = knee + np.stack([dx, dy, 0 * dx], -1)
    # Foot: perpendicular to the shank, rotated by dorsiflexion, toes turned out.
    fa = np.deg2rad(beta + ankle_a)
    out = np.deg2rad(p["toe_out"]) * -side
    flen = p["foot"] * S
    fdir = np.stack([np.cos(fa) * np.cos(out), np.sin(fa), np.cos(fa) * np.sin(out)], -1)
    down = np.stack([np.sin(fa), -np.cos(fa), 0 * fa], -1)
    heel = ankle - fdir * 0.2 * flen + down * 0.025 * S
    toe = ankle + fdir * 0.7 * flen + down * 0.035 * S
    caps.append((hip, knee, r_thigh * thick ** 0.5, r_knee))
    caps.append((knee, ankle, r_knee, r_ankle))
    caps.append((heel, toe, 0.027 * S, 0.019 * S))
    if coat and coat["length"] > 0.01:
      # The coat's skirt follows each thigh down to the hem, wider than the leg.
      frac = min(coat["length"] * S / thigh, 1.0)
      caps.append((hip, hip + (knee - hip) * frac, r_thigh * thick * 1.1,
                   r_thigh * thick * (1.0 + 0.3 * frac)))
  # Arms: each swings against the leg on its side; angles are from the world vertical.
  bag = s["bag"]
  for side in (1, -1):
    ph = phase + (0.0 if side == 1 else 0.5 + p["asym_phase"])
    swing = p["arm_swing"] * s["arm"] * amp * (p["asym_arm"] if side == 1 else 1 / p["asym_arm"])
    holding = bag is not None and bag["kind"] == "hand" and bag["side"] == side
    if holding:
      swing *= 0.3
    shoulder_a = p["arm_mean"] - swing * np.cos(2 * np.pi * (ph - 0.92))
    elbow_a = (p["elbow_mean"] * (0.4 if holding else 1.0)
               + p["elbow_gain"] * np.maximum(shoulder_a, 0.0))
    zsh = -side * (sw / 2 - 0.025 * S)
    shoulder = trunk(0, torso_len - 0.035 * S, zsh)
    abd = math.sin(math.radians(p["arm_abd"]))
    ua, fa_len = p["upper_arm"] * S, p["forearm"] * S
    dx, dy = _rot_sagittal(ua, shoulder_a)
    elbow = shoulder + np.stack([dx, dy, 0 * dx - side * ua * abd], -1)
    dx, dy = _rot_sagittal(fa_len, shoulder_a + elbow_a)
    wrist = elbow + np.stack([dx, dy, 0 * dx - side * fa_len * abd * 0.5], -1)
    hand = wrist + np.stack([dx, dy, 0 * dx], -1) * (0.09 * S / fa_len)
    arm_k = thick if coat else 1.0
    caps.append((shoulder, elbow, 0.033 * S * girth * arm_k, 0.027 * S * girth * arm_k))
    caps.append((elbow, wrist, 0.025 * S * girth * arm_k ** 0.5, 0.02 * S * girth))
    caps.append((wrist, hand, 0.019 * S, 0.016 * S))
    if holding:
      size = bag["size"]
      top = hand + np.array([0.0, -0.02 * S, 0.0])
      caps.append((top, top + np.array([0.0, -0.12 * S * size, 0.0]),
                   0.05 * S * size, 0.06 * S * size))
  if bag is not None and bag["kind"] == "backpack":
    size = bag["size"]
    x = -(r_chest + 0.05 * S * size)
    r = 0.06 * S * size
    for z in (-0.05 * S, 0.05 * S):
      caps.append((trunk(x, torso_len - 0.06 * S, z), trunk(x, torso_len - 0.2 * S * size, z),
                   r, r * 1.1))
  elif bag is not None and bag["kind"] == "shoulder":
    size = bag["size"]
    z = -bag["side"] * (hw / 2 + 0.05 * S * size)
    sway = 0.015 * S * np.sin(2 * np.pi * phase)
    top = pt(-0.02 * S + sway, pelvis_y + 0.04 * S, z)
    caps.append((top, top + np.array([0.0, -0.09 * S * size, 0.0]),
                 0.055 * S * size, 0.06 * S * size))
    # Strap from the opposite shoulder to the bag.
    caps.append((trunk(0, torso_len - 0.02 * S, bag["side"] * sw / 4), top, 0.008 * S, 0.008 * S))
  if coat and coat["length"] > 0.05:
    # Between the legs the skirt hangs as one panel from the pelvis down to the hem.
    hem = pelvis_y - coat["length"] * S
    caps.append((trunk(0, 0, 0), pt(0, hem, 0), hw / 2 * thick, hw / 2 * thick * 1.1))
  return caps


def ground_level(caps) -> np.ndarray:
  """Per-frame height of the lowest point of the body (where its shadow starts)."""
  lows = [np.minimum(a[:, 1] - ra, b[:, 1] - rb) for a, b, ra, rb in caps]
  return np.min(np.stack(lows), axis=0)


# ----------------------------------------------------------------------------------------
# Camera and rasterisation
# ----------------------------------------------------------------------------------------

def project(points: np.ndarray, view_deg: float, pitch_deg: float,
            distance: Optional[float] = None, centre_v: float = 0.5) -> np.ndarray:
  """Camera at azimuth view_deg (0 = the walker comes towards it, 90 = it sees the walker's
  right side and the walk goes left to right), looking down by pitch_deg.

  Orthographic, or with `distance` (same units as points) weak perspective about the image
  point (0, centre_v): nearer body parts look bigger, which is what lets a frontal camera
  see the legs alternate. points [..., 3] -> [..., 2] image-plane (u right, v up).
  """
  th = math.radians(view_deg)
  pitch = math.radians(pitch_deg)
  x, y, z = points[..., 0], points[..., 1], points[..., 2]
  u = x * math.sin(th) - z * math.cos(th)
  toward = x * math.cos(th) + z * math.sin(th)  # towards the camera
  v = y * math.cos(pitch) - toward * math.sin(pitch)
  if distance:
    s = distance / np.maximum(distance - toward, 0.1 * distance)
    u, v = u * s, centre_v + (v - centre_v) * s
  return np.stack([u, v], -1)


def rasterise(caps2d, height: int, width: int) -> np.ndarray:
  """Binary union of 2-D tapered capsules, vectorised over frames.

  caps2d: list of (a [T,2], b [T,2], r_a, r_b) in pixel coordinates (col, row).
  Returns bool [height, width, T] (frames last, the layout cv2 filters take as channels).
  """
  T = caps2d[0][0].shape[0]
  canvas = np.zeros((height, width, T), bool)
  # Moving limbs sweep a large box over a whole sequence; boxes over ~half a stride are
  # smaller, which outweighs the extra loop overhead.
  for s in range(0, T, RASTER_CHUNK):
    canvas[..., s:s + RASTER_CHUNK] = _rasterise_frames(
        [(a[s:s + RASTER_CHUNK], b[s:s + RASTER_CHUNK], ra, rb) for a, b, ra, rb in caps2d],
        height, width)
  return canvas


def _rasterise_frames(caps2d, height: int, width: int) -> np.ndarray:
  T = caps2d[0][0].shape[0]
  canvas = np.zeros((height, width, T), bool)
  for a, b, ra, rb in caps2d:
    rmax = max(ra, rb)
    lo = np.floor(np.minimum(a, b).min(0) - rmax).astype(int)
    hi = np.ceil(np.maximum(a, b).max(0) + rmax).astype(int) + 1
    x0, y0 = max(lo[0], 0), max(lo[1], 0)
    x1, y1 = min(hi[0], width), min(hi[1], height)
    if x1 <= x0 or y1 <= y0:
      continue
    px = np.arange(x0, x1, dtype=np.float32) + 0.5
    py = np.arange(y0, y1, dtype=np.float32) + 0.5
    d = (b - a).astype(np.float32)
    inv = 1.0 / np.maximum((d * d).sum(-1), 1e-6)
    dx = px[None, :, None] - a[:, 0].astype(np.float32)  # [1, w, T]
    dy = py[:, None, None] - a[:, 1].astype(np.float32)  # [h, 1, T]
    t = np.clip((dx * (d[:, 0] * inv) + dy * (d[:, 1] * inv)), 0.0, 1.0)
    ex = dx - t * d[:, 0]
    ey = dy - t * d[:, 1]
    r = ra + (rb - ra) * t
    canvas[y0:y1, x0:x1] |= ex * ex + ey * ey <= r * r
  return canvas


def _smooth_noise(rng, height: int, width: int, frames: int, cell: int) -> np.ndarray:
  """Random uint8 field [height, width, frames] (0..255) with features about `cell` pixels."""
  small = rng.integers(0, 256, (height // cell + 2, width // cell + 2, frames), dtype=np.uint8)
  return _resize_frames(small, width, height)


def _resize_frames(stack: np.ndarray, width: int, height: int) -> np.ndarray:
  # cv2 takes at most 512 channels; pictures are [H, W, T].
  parts = [_as3d(cv2.resize(stack[..., i:i + 512], (width, height),
                            interpolation=cv2.INTER_LINEAR))
           for i in range(0, stack.shape[-1], 512)]
  return parts[0] if len(parts) == 1 else np.concatenate(parts, -1)


def corrupt(mask: np.ndarray, rng: np.random.Generator, noise: Dict, ground_row: np.ndarray,
            scale: float) -> np.ndarray:
  """Background-subtraction artefacts on bool [H, W, T] silhouettes.

  ground_row: per-frame image row of the feet (shadow anchor); scale: pixels per stature.
  """
  H, W, T = mask.shape
  # Ragged edges: threshold a blurred mask at a noisy level.
  # Everything in uint8 (0..255): a quarter of float32's memory traffic.
  m = mask.view(np.uint8) * np.uint8(255)
  blur = [_as3d(cv2.blur(m[..., i:i + 512], (5, 5))) for i in range(0, T, 512)]
  blur = blur[0] if len(blur) == 1 else np.concatenate(blur, -1)
  # Threshold 0.5 ± edge, looked up per noise value.
  lut = np.clip(np.round(127.5 + (np.arange(256) - 127.5) * 2 * noise["edge"]), 0, 255)
  level = _as3d(cv2.LUT(_smooth_noise(rng, H, W, T, 4), lut.astype(np.uint8)))
  out = blur > level
  # Holes where clothing happens to match the background.
  if noise["holes"] > 0.01:
    out &= _smooth_noise(rng, H, W, T, 10) > min(int(noise["holes"] * 1.5 * 255), 255)
  # Per-frame body boxes, vectorised over frames (empty frames get a dummy box).
  rows_any, cols_any = mask.any(1), mask.any(0)  # [H, T], [W, T]
  present = rows_any.any(0)
  top = np.argmax(rows_any, 0)
  bottom = H - 1 - np.argmax(rows_any[::-1], 0)
  left = np.argmax(cols_any, 0)
  right = W - 1 - np.argmax(cols_any[::-1], 0)
  cols = np.arange(W, dtype=np.float32)
  if noise["shadow"]:
    # A flat band on the ground beside the feet that background subtraction keeps.
    length = noise["shadow_len"] * scale
    half_h = max(1.5, 0.015 * scale)
    cx = (left + right) / 2 + noise["shadow_side"] * length / 2
    y0 = max(int(np.floor(ground_row.min() - half_h)), 0)
    y1 = min(int(np.ceil(ground_row.max() + half_h)) + 1, H)
    if y1 > y0:
      ry = (np.arange(y0, y1, dtype=np.float32)[:, None, None] - ground_row) / half_h
      rx = (cols[None, :, None] - cx) / (length / 2 + 1)
      out[y0:y1] |= (rx * rx + ry * ry <= 1.0) & present
  rows = np.arange(H, dtype=np.float32)[:, None]
  for t in np.nonzero((rng.random(T) < noise["fragment_p"]) & present)[0]:
    # A band of the body lost (e.g. the torso matching a wall).
    h = int(rng.uniform(0.05, 0.2) * (bottom[t] - top[t] + 1)) + 1
    y = int(rng.uniform(top[t], max(bottom[t] - h + 1, top[t] + 1)))
    out[y:y + h, :, t] = False
  for t in np.nonzero((rng.random(T) < noise["blob_p"]) & present)[0]:
    r = rng.uniform(0.02, 0.05) * scale
    cy = rng.uniform(top[t], bottom[t])
    cx = left[t] - r * 0.8 if rng.random() < 0.5 else right[t] + r * 0.8
    out[..., t] |= (cols[None, :] - cx) ** 2 + (rows - cy) ** 2 <= r * r
  for t in np.nonzero((rng.random(T) < noise["clip_p"]) & present)[0]:
    # The picture edge cuts the person (feet or head outside the frame).
    cut = int(rng.uniform(0.05, 0.25) * (bottom[t] - top[t]))
    if rng.random() < 0.7:
      out[bottom[t] - cut + 1:, :, t] = False
    else:
      out[:top[t] + cut, :, t] = False
  if noise["enter"]:
    # The walker enters the field of view: early frames show only the leading part.
    n = int(rng.integers(1, 5))
    for t in range(min(n, T)):
      if present[t]:
        keep = 0.4 + 0.6 * (t + 1) / (n + 1)
        cut = int(right[t] - keep * (right[t] - left[t]))
        out[:, :cut, t] = False
  return out


def _as3d(a: np.ndarray) -> np.ndarray:
  # cv2 drops a single channel axis.
  return a if a.ndim == 3 else a[..., None]


# ----------------------------------------------------------------------------------------
# Alignment (spec §5.8)
# ----------------------------------------------------------------------------------------

def align_frame(frame: np.ndarray, size: int = SIZE) -> Optional[np.ndarray]:
  """One raw silhouette (uint8, 0/255) -> uint8 [size, size] 0/255, or None when the
  reference pretreatment would drop it (too few pixels, or no usable centre)."""
  frame = np.asarray(frame)
  if frame.dtype == bool:
    frame = frame.astype(np.uint8) * 255
  if int(frame.sum(dtype=np.int64)) <= MIN_FRAME_SUM:
    return None
  rows = np.nonzero(frame.any(1))[0]
  crop = frame[rows[0]:rows[-1] + 1]
  h, w = crop.shape
  new_w = int(size * w / h)
  if new_w < 1:
    return None
  img = cv2.resize(np.ascontiguousarray(crop), (new_w, size), interpolation=cv2.INTER_CUBIC)
  # The reference keeps the cubic grey levels; these data stay strictly binary like real pkls.
  img = np.where(img > 127, 255, 0).astype(np.uint8)
  col = img.sum(0, dtype=np.int64)
  total = col.sum()
  above = np.nonzero(np.cumsum(col) > total / 2)[0]
  if total == 0 or len(above) == 0 or above[0] == 0:
    return None
  x = int(above[0])
  half = size // 2
  left, right = x - half, x + half
  if left <= 0 or right >= img.shape[1]:
    pad = np.zeros((size, half), np.uint8)
    img = np.concatenate([pad, img, pad], 1)
    left, right = left + half, right + half
  return img[:, left:right]


def align_frames(frames: np.ndarray, size: int = SIZE) -> np.ndarray:
  """Stack of raw frames [T, H, W] (uint8 0/255 or bool) -> uint8 [T', size, size]
  (dropped frames removed)."""
  frames = np.asarray(frames)
  if frames.dtype == bool:
    frames = frames.view(np.uint8) * np.uint8(255)
  # Cheap per-frame checks first, vectorised; align_frame repeats them for the survivors.
  keep = frames.sum((1, 2), dtype=np.int64) > MIN_FRAME_SUM
  out = [f for f in (align_frame(fr, size) for fr in frames[keep]) if f is not None]
  if not out:
    return np.zeros((0, size, size), np.uint8)
  return np.stack(out)


# ----------------------------------------------------------------------------------------
# Sequences
# ----------------------------------------------------------------------------------------

def identity_params(seed: int, sid: str) -> Dict:
  return sample_identity(_rng(seed, "identity", sid))


def render_views(seed: int, sid: str, seq_type: str, views: Sequence[str], frames: int,
                 identity: Optional[Dict] = None) -> Dict[str, np.ndarray]:
  """All camera views of one walk: {view: uint8 [T, 64, 64]}; T varies (frames ± 25 %)."""
  if frames < 1:
    raise ValueError(f"frames={frames}: expected a positive frame count")
  identity = identity if identity is not None else identity_params(seed, sid)
  session = sample_session(_rng(seed, "session", sid, seq_type), seq_type)
  t_max = int(math.ceil(frames * 1.25)) + 1
  caps3d = body_capsules(identity, session, t_max)
  scale = RENDER_HEIGHT / 1.0  # pixels per stature
  out = {}
  for view in views:
    rng = _rng(seed, "view", sid, seq_type, view)
    n = max(1, int(round(frames * rng.uniform(0.75, 1.25))))
    start = int(rng.integers(0, t_max - n + 1))
    noise = sample_view_noise(rng)
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
    out[view] = align_frames(np.ascontiguousarray(np.moveaxis(noisy, -1, 0)))
  return out


def _write_pkl(path: str, seq: np.ndarray) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  tmp = path + ".tmp"
  with open(tmp, "wb") as f:
    pickle.dump(seq, f, protocol=4)
  os.replace(tmp, path)


def _generate_id(args) -> Tuple[str, int, int]:
  out, seed, sid, types, views, frames = args
  identity = identity_params(seed, sid)
  n_seq = n_frames = 0
  for seq_type in types:
    for view, seq in render_views(seed, sid, seq_type, views, frames, identity).items():
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
             progress=None) -> Dict:
  """Writes `ids` walkers × `seqs_per_id` types × views to `out` and the partition file
  `<out>.json` (TRAIN_SET = the first `train_ids` ids, default half rounded up).

  Returns a summary {"root", "partition", "ids", "sequences", "frames"}.
  """
  if ids < 1:
    raise ValueError(f"ids={ids}: expected at least 1 walker")
  views = parse_views(views)
  types = sequence_types(seqs_per_id)
  if frames < 1:
    raise ValueError(f"frames={frames}: expected a positive frame count")
  train_ids = (ids + 1) // 2 if train_ids is None else int(train_ids)
  if not 0 <= train_ids <= ids:
    raise ValueError(f"train_ids={train_ids}: expected 0..{ids} (the number of ids)")
  names = id_names(ids)
  os.makedirs(out, exist_ok=True)
  jobs = [(out, int(seed), sid, types, views, int(frames)) for sid in names]
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


# ----------------------------------------------------------------------------------------
# Contact sheet
# ----------------------------------------------------------------------------------------

def _load_seq(path: str) -> np.ndarray:
  with open(path, "rb") as f:
    return np.asarray(pickle.load(f))


def _strip(seq: np.ndarray, n: int, step: int) -> np.ndarray:
  """n frames (every step-th) side by side, padded with black if the sequence is short."""
  out = np.zeros((SIZE, SIZE * n), np.uint8)
  for i, f in enumerate(seq[::step][:n]):
    out[:, i * SIZE:(i + 1) * SIZE] = f
  out[:, ::SIZE] = np.maximum(out[:, ::SIZE], 60)  # faint frame separators
  return out


def contact_sheet(root: str, out_png: str, real_root: Optional[str] = None, ids: int = 3,
                  types=("nm-01", "bg-01", "cl-01"), n_frames: int = 10, step: int = 2,
                  real_rows: int = 6) -> str:
  """A PNG of generated sequences (first `ids` ids × types × every view, a strip of frames
  each) above real KTH silhouettes from `real_root` (when it exists), rows labelled."""
  from PIL import Image, ImageDraw  # pillow is only needed for previews

  rows: List[Tuple[str, np.ndarray]] = []
  for sid in sorted(os.listdir(root))[:ids]:
    for t in types:
      tdir = os.path.join(root, sid, t)
      if not os.path.isdir(tdir):
        continue
      for view in sorted(os.listdir(tdir)):
        seq = _load_seq(os.path.join(tdir, view, f"{view}.pkl"))
        rows.append((f"gen {sid} {t} {view}", _strip(seq, n_frames, step)))
  if real_root and os.path.isdir(real_root):
    seqs = []
    for pid in sorted(os.listdir(real_root)):
      pdir = os.path.join(real_root, pid)
      if os.path.isdir(pdir):
        for t in sorted(os.listdir(pdir)):
          if t.endswith("-00"):
            seqs.append((pid, t))
    # Spread the picks over people and scenarios.
    for pid, t in seqs[::max(1, len(seqs) // real_rows)][:real_rows]:
      vdir = os.path.join(real_root, pid, t)
      view = sorted(os.listdir(vdir))[0]
      seq = _load_seq(os.path.join(vdir, view, f"{view}.pkl"))
      rows.append((f"REAL {pid} {t}", _strip(seq, n_frames, step)))
  if not rows:
    raise ValueError(f"contact_sheet: no sequences under {root}")
  label_w = 150
  sheet = Image.new("L", (label_w + SIZE * n_frames, SIZE * len(rows)), 0)
  draw = ImageDraw.Draw(sheet)
  for r, (label, strip) in enumerate(rows):
    sheet.paste(Image.fromarray(strip), (label_w, r * SIZE))
    draw.text((4, r * SIZE + SIZE // 2 - 6), label, fill=200)
  os.makedirs(os.path.dirname(os.path.abspath(out_png)), exist_ok=True)
  sheet.save(out_png, optimize=True)
  return out_png
