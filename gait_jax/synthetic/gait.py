"""Who a generated walker is and how it walks: normative joint-angle curves perturbed per
person, per-person body proportions and gait style (identity), per-walk variation (session:
speed, posture, bag, coat) and per-view segmentation-noise settings.

Every draw comes from a generator seeded by names (`rng_for`), so a walker is the same whatever
process or order renders it.
"""
from __future__ import annotations

import zlib
from typing import Dict

import numpy as np


def rng_for(seed: int, *keys: str) -> np.random.Generator:
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
