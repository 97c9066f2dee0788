"""The walker's body: an articulated 3-D skeleton of tapered capsules moving through a gait
cycle (metres; x forward, y up, z to the walker's left), and its camera projection."""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Tuple

import numpy as np

from gait_jax.synthetic.gait import NORMATIVE, fourier_eval

FPS = 25.0  # frame rate of the simulated cameras (CASIA-B records at 25 fps)


# ----------------------------------------------------------------------------------------
# Skeleton (3-D, metres; x forward, y up, z to the walker's left) and capsules
# ----------------------------------------------------------------------------------------

def _rot_sagittal(vec_len: float, angle_deg: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
  """(dx, dy) of a segment of length vec_len hanging at angle_deg from the downward
  vertical, positive = forward."""
  a = np.deg2rad(angle_deg)
  return vec_len * np.sin(a), -vec_len * np.cos(a)


class _Walker:
  """A walker's measurements and per-frame trunk pose, shared by the body parts below."""

  def __init__(self, identity: Dict, session: Dict, n_frames: int, stature: float):
    p, s, S = identity, session, stature
    self.p, self.s, self.S, self.T = p, s, S, n_frames
    self.amp = math.sqrt(s["speed"])
    cycle_frames = p["cycle_s"] / self.amp * FPS
    self.phase = s["phase0"] + np.arange(n_frames) / cycle_frames
    self.girth = p["girth"] * s["width"]
    # Vertical layout: crown at S, everything else measured down from it.
    hip_h = p["leg"] * S
    ankle_h = 0.045 * S
    leg_len = hip_h - ankle_h
    self.thigh = leg_len * p["thigh_frac"]
    self.shank = leg_len - self.thigh
    chin = S - p["head"] * S
    neck_base = chin - p["neck"] * S
    self.torso_len = neck_base - hip_h
    bounce = p["bounce"] * S * -np.cos(4 * np.pi * self.phase)
    self.pelvis_y = hip_h + bounce
    # Trunk lean rotates the upper body about the pelvis (sagittal plane).
    self.lean = np.deg2rad(p["lean"] + s["lean"] + p["lean_osc"] * np.sin(4 * np.pi * self.phase))
    self.sw = p["shoulder_w"] * S * s["width"]
    self.hw = p["hip_w"] * S * s["width"]
    self.coat = s["coat"]
    self.thick = self.coat["thick"] if self.coat else 1.0
    self.r_chest = p["depth"] * S / 2 * self.girth * self.thick
    self.r_waist = self.r_chest * 0.9 * p["belly"]

  def pt(self, x, y, z):
    T = self.T
    return np.stack(np.broadcast_arrays(np.asarray(x, float) * np.ones(T),
                                        np.asarray(y, float) * np.ones(T),
                                        np.asarray(z, float) * np.ones(T)), -1)

  def trunk(self, x, y, z):
    """Trunk-local (x forward, y up from the pelvis) -> world."""
    x = np.asarray(x, float) * np.ones(self.T)
    y = np.asarray(y, float) * np.ones(self.T)
    lean = self.lean
    return self.pt(x * np.cos(lean) + y * np.sin(lean),
                   self.pelvis_y - x * np.sin(lean) + y * np.cos(lean), z)


Capsule = Tuple[np.ndarray, np.ndarray, float, float]


def body_capsules(identity: Dict, session: Dict, n_frames: int, stature: float = 1.0
                  ) -> List[Capsule]:
  """The walker as tapered capsules over time: list of (a [T,3], b [T,3], r_a, r_b)."""
  w = _Walker(identity, session, n_frames, stature)
  return _torso_and_head(w) + _legs(w) + _arms(w) + _carried(w) + _coat_panel(w)


def _torso_and_head(w: _Walker) -> List[Capsule]:
  p, s, S, trunk = w.p, w.s, w.S, w.trunk
  caps = []
  # Torso: two side capsules (shoulder -> hip) and a central one give the right width from
  # the front (shoulders) and from the side (chest depth).
  zs = max(w.sw / 2 - w.r_chest, 0.0)
  zh = max(w.hw / 2 - w.r_waist * 0.8, 0.0)
  for side in (-1, 1):
    caps.append((trunk(0, w.torso_len - 0.03 * S, side * zs), trunk(0, 0.02 * S, side * zh),
                 w.r_chest, w.r_waist))
  caps.append((trunk(0.01 * S, w.torso_len, 0), trunk(0, 0, 0), w.r_chest * 0.9, w.r_waist))
  # Pelvis / buttocks.
  caps.append((trunk(-0.01 * S, -0.01 * S, -w.hw / 2), trunk(-0.01 * S, -0.01 * S, w.hw / 2),
               0.06 * S * w.girth * w.thick, 0.06 * S * w.girth * w.thick))
  # Neck and head (head tilted forward by head_tilt beyond the trunk lean).
  neck_a = trunk(0, w.torso_len - 0.01 * S, 0)
  tilt = w.lean + np.deg2rad(p["head_tilt"])
  neck_len = p["neck"] * S + 0.01 * S
  neck_b = neck_a + np.stack([neck_len * np.sin(tilt), neck_len * np.cos(tilt), 0 * tilt], -1)
  caps.append((neck_a, neck_b, 0.028 * S * w.girth, 0.026 * S * w.girth))
  head_r = p["head_r"] * S * (1.15 if s["hat"] else 1.0)
  head_len = max(p["head"] * S - 2 * head_r, 0.005 * S)
  up = np.stack([np.sin(tilt), np.cos(tilt), 0 * tilt], -1)
  fwd = np.stack([np.cos(tilt), -np.sin(tilt), 0 * tilt], -1)
  head_a = neck_b + up * head_r * 0.9 + fwd * 0.02 * S
  caps.append((head_a, head_a + up * head_len, head_r, head_r * 0.95))
  return caps


def _legs(w: _Walker) -> List[Capsule]:
  """Right leg phase 0 = right heel strike; the left leg half a cycle later. Clothed widths:
  trousers make knees and ankles wider than the bare limb."""
  p, S, coat, thick = w.p, w.S, w.coat, w.thick
  r_thigh = 0.058 * S * w.girth
  r_knee = 0.038 * S * w.girth
  r_ankle = 0.027 * S * w.girth
  leg_side = {1: p["asym_leg"], -1: 1.0 / p["asym_leg"]}
  caps = []
  for side in (1, -1):  # +1 = right (z < 0), -1 = left
    ph = w.phase + (0.0 if side == 1 else 0.5 + p["asym_phase"])
    k = w.amp * leg_side[side]
    hip_a = (fourier_eval(p["hip"], ph) - NORMATIVE["hip"][0]) * k + NORMATIVE["hip"][0]
    knee_a = np.maximum(fourier_eval(p["knee"], ph) * k, 0.0)
    ankle_a = fourier_eval(p["ankle"], ph) * k
    z = -side * w.hw * 0.27  # hip joints sit well inside the hip breadth
    zk = z - side * p["stance_w"] * S
    hip = w.pt(0, w.pelvis_y, z)
    dx, dy = _rot_sagittal(w.thigh, hip_a)
    knee = hip + np.stack([dx, dy, zk - z + 0 * dx], -1)
    beta = hip_a - knee_a
    dx, dy = _rot_sagittal(w.shank, beta)
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
      frac = min(coat["length"] * S / w.thigh, 1.0)
      caps.append((hip, hip + (knee - hip) * frac, r_thigh * thick * 1.1,
                   r_thigh * thick * (1.0 + 0.3 * frac)))
  return caps


def _arms(w: _Walker) -> List[Capsule]:
  """Each arm swings against the leg on its side; angles are from the world vertical."""
  p, S, bag = w.p, w.S, w.s["bag"]
  caps = []
  for side in (1, -1):
    ph = w.phase + (0.0 if side == 1 else 0.5 + p["asym_phase"])
    swing = (p["arm_swing"] * w.s["arm"] * w.amp
             * (p["asym_arm"] if side == 1 else 1 / p["asym_arm"]))
    holding = bag is not None and bag["kind"] == "hand" and bag["side"] == side
    if holding:
      swing *= 0.3
    shoulder_a = p["arm_mean"] - swing * np.cos(2 * np.pi * (ph - 0.92))
    elbow_a = (p["elbow_mean"] * (0.4 if holding else 1.0)
               + p["elbow_gain"] * np.maximum(shoulder_a, 0.0))
    zsh = -side * (w.sw / 2 - 0.025 * S)
    shoulder = w.trunk(0, w.torso_len - 0.035 * S, zsh)
    abd = math.sin(math.radians(p["arm_abd"]))
    ua, fa_len = p["upper_arm"] * S, p["forearm"] * S
    dx, dy = _rot_sagittal(ua, shoulder_a)
    elbow = shoulder + np.stack([dx, dy, 0 * dx - side * ua * abd], -1)
    dx, dy = _rot_sagittal(fa_len, shoulder_a + elbow_a)
    wrist = elbow + np.stack([dx, dy, 0 * dx - side * fa_len * abd * 0.5], -1)
    hand = wrist + np.stack([dx, dy, 0 * dx], -1) * (0.09 * S / fa_len)
    arm_k = w.thick if w.coat else 1.0
    caps.append((shoulder, elbow, 0.033 * S * w.girth * arm_k, 0.027 * S * w.girth * arm_k))
    caps.append((elbow, wrist, 0.025 * S * w.girth * arm_k ** 0.5, 0.02 * S * w.girth))
    caps.append((wrist, hand, 0.019 * S, 0.016 * S))
    if holding:
      size = bag["size"]
      top = hand + np.array([0.0, -0.02 * S, 0.0])
      caps.append((top, top + np.array([0.0, -0.12 * S * size, 0.0]),
                   0.05 * S * size, 0.06 * S * size))
  return caps


def _carried(w: _Walker) -> List[Capsule]:
  """A backpack or a shoulder bag (a bag in the hand is drawn with its arm)."""
  S, bag = w.S, w.s["bag"]
  caps = []
  if bag is not None and bag["kind"] == "backpack":
    size = bag["size"]
    x = -(w.r_chest + 0.05 * S * size)
    r = 0.06 * S * size
    for z in (-0.05 * S, 0.05 * S):
      caps.append((w.trunk(x, w.torso_len - 0.06 * S, z),
                   w.trunk(x, w.torso_len - 0.2 * S * size, z), r, r * 1.1))
  elif bag is not None and bag["kind"] == "shoulder":
    size = bag["size"]
    z = -bag["side"] * (w.hw / 2 + 0.05 * S * size)
    sway = 0.015 * S * np.sin(2 * np.pi * w.phase)
    top = w.pt(-0.02 * S + sway, w.pelvis_y + 0.04 * S, z)
    caps.append((top, top + np.array([0.0, -0.09 * S * size, 0.0]),
                 0.055 * S * size, 0.06 * S * size))
    # Strap from the opposite shoulder to the bag.
    caps.append((w.trunk(0, w.torso_len - 0.02 * S, bag["side"] * w.sw / 4), top,
                 0.008 * S, 0.008 * S))
  return caps


def _coat_panel(w: _Walker) -> List[Capsule]:
  """Between the legs a coat's skirt hangs as one panel from the pelvis down to the hem."""
  if not (w.coat and w.coat["length"] > 0.05):
    return []
  hem = w.pelvis_y - w.coat["length"] * w.S
  return [(w.trunk(0, 0, 0), w.pt(0, hem, 0), w.hw / 2 * w.thick, w.hw / 2 * w.thick * 1.1)]


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
