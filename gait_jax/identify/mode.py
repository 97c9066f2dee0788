"""`--config.mode=enroll` and `--config.mode=identify`.

enroll    embeds every sequence under `identify.gallery` with the fixed `model.path` and the
          weights of `train.init_from` (or the workdir) → WORKDIR/gallery.npz. A rerun adds
          only sequences not enrolled yet; a gallery another model made is refused.
identify  embeds every probe under `identify.probes`, ranks it against the gallery
          (`evaluate.metric`) → WORKDIR/identify.json and a printed table: per probe its
          top-`identify.top_k` ids with distances and a decision, the best id or `unknown`
          when the best distance is above `identify.threshold`.
"""
from __future__ import annotations

import json
import math
import os
from typing import Dict, List, Tuple

import numpy as np
from absl import logging

from gait_jax.common import io
from gait_jax.evaluation import match_figures as figures
from gait_jax.identify import gallery as gallery_lib
from gait_jax.identify import sources
from gait_jax.identify.recognizer import Recognizer


def _recognizer(config, workdir: str) -> Recognizer:
  return Recognizer(config, config.train.init_from or workdir)


def _gallery_path(workdir: str) -> str:
  return os.path.join(workdir, gallery_lib.GALLERY_FILE)


def load_gallery(rec: Recognizer, workdir: str) -> bool:
  """Puts WORKDIR/gallery.npz (when there is one) into `rec`, refusing another model's."""
  path = _gallery_path(workdir)
  saved = gallery_lib.load(path)
  if saved is None:
    return False
  gallery_lib.check_same_model(saved, rec.record, path)
  rec.gallery = saved
  return True


def run_enroll(config, workdir: str) -> None:
  if not config.identify.gallery:
    raise ValueError("mode=enroll needs identify.gallery (a folder of the people to enrol)")
  rec = _recognizer(config, workdir)
  load_gallery(rec, workdir)
  known = set(rec.gallery["names"].tolist())
  found = sources.gallery_sequences(str(config.identify.gallery))
  new = [s for s in found if s.name not in known]
  usable = sources.load_usable(new)
  if usable:
    items = [(s.id, s.name, frames) for s, frames in usable]
    rec.add([s.id for s, _ in usable], [s.name for s, _ in usable], rec.embed_aligned(items))
    geis = np.stack([figures.gei(frames) for _, frames in usable])
    old = rec.gallery.get("geis")
    rec.gallery["geis"] = geis if old is None or old.size == 0 else np.concatenate([old, geis])
    gallery_lib.save(_gallery_path(workdir), rec.gallery)
  ids = sorted(set(rec.gallery["ids"].tolist()))
  print(f"enrolled {len(usable)} new sequences ({len(found) - len(new)} already there, "
        f"{len(new) - len(usable)} skipped); gallery: {len(rec.gallery['ids'])} sequences of "
        f"{len(ids)} ids -> {_gallery_path(workdir)}", flush=True)


def _threshold(rec: Recognizer, value) -> Tuple[float, Dict]:
  if str(value).strip().lower() == "auto":
    return rec.calibrate()
  try:
    t = float(value)
  except ValueError:
    raise ValueError(f"identify.threshold={value!r}: expected 'auto' or a number") from None
  if math.isnan(t):
    raise ValueError("identify.threshold=nan: expected 'auto' or a number")
  return t, {"method": "fixed", "threshold": t}


def _table(results: List[Dict], calibration: Dict) -> str:
  lines = [f"{'probe':<28} {'decision':<14} {'best':>8}  top ids (distance)"]
  for r in results:
    top = ", ".join(f"{m['id']} ({m['distance']:.3f})" for m in r["top"][:3])
    lines.append(f"{r['probe'][:28]:<28} {r['decision'][:14]:<14} "
                 f"{r['top'][0]['distance']:>8.3f}  {top}")
  t = calibration["threshold"]
  line = f"threshold {t:.4f} ({calibration['method']})"
  if "false_accept_rate" in calibration:
    line += (f": estimated false-accept rate {100 * calibration['false_accept_rate']:.1f} %, "
             f"false-reject rate {100 * calibration['false_reject_rate']:.1f} %")
  return "\n".join(lines + [line])


def run_identify(config, workdir: str) -> None:
  if not config.identify.probes:
    raise ValueError("mode=identify needs identify.probes (a probe folder, video or pkl tree)")
  rec = _recognizer(config, workdir)
  if not load_gallery(rec, workdir):
    raise FileNotFoundError(f"no gallery at {_gallery_path(workdir)}: run --config.mode=enroll "
                            "with identify.gallery first")
  threshold, calibration = _threshold(rec, config.identify.threshold)
  usable = sources.load_usable(sources.probe_sequences(str(config.identify.probes)))
  if not usable:
    raise ValueError(f"identify.probes={config.identify.probes}: no probe has enough usable "
                     f"frames (at least {sources.MIN_FRAMES})")
  emb = rec.embed_aligned([("", s.name, frames) for s, frames in usable])
  dist = rec.distances(emb)
  top_k = max(1, int(config.identify.top_k))
  results = []
  fig_dir = os.path.join(workdir, "identify_figures")
  for (seq, frames), row in zip(usable, dist):
    ranked = rec.rank(row, top_k)
    best_id, best_d = ranked[0]
    decision = best_id if best_d <= threshold else "unknown"
    results.append({"probe": seq.name, "decision": decision, "frames": int(frames.shape[0]),
                    "top": [{"id": i, "distance": float(d)} for i, d in ranked]})
    if config.identify.figures:
      _figure(rec, seq.name, frames, row, os.path.join(fig_dir, f"{_safe(seq.name)}.png"),
              decision)
  # JSON has no infinity: a threshold that accepts everything is written as null.
  saved = dict(calibration, threshold=None if math.isinf(threshold) else threshold)
  report = {"gallery": _gallery_path(workdir), "metric": rec.metric,
            "threshold": saved, "probes": results}
  io.write_json(os.path.join(workdir, "identify.json"), report, indent=1)
  print(_table(results, calibration), flush=True)
  logging.info("identify: %d probes -> %s", len(results), os.path.join(workdir, "identify.json"))


def _safe(name: str) -> str:
  return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def _figure(rec: Recognizer, name: str, frames, row, path: str, decision: str) -> None:
  geis = rec.gallery.get("geis")
  if geis is None or len(geis) != len(rec.gallery["ids"]):
    logging.warning("identify.figures: the gallery has no GEIs (enrolled by an older version); "
                    "re-enrol to draw figures")
    return
  order = np.argsort(row, kind="stable")[:3]
  matches = [(geis[j], str(rec.gallery["ids"][j]), float(row[j]),
              None if decision == "unknown" else bool(rec.gallery["ids"][j] == decision))
             for j in order]
  os.makedirs(os.path.dirname(path), exist_ok=True)
  figures.match_figure(path, figures.gei(frames), f"{name}\n→ {decision}", matches)


def read_report(workdir: str) -> Dict:
  with open(os.path.join(workdir, "identify.json")) as f:
    return json.load(f)
