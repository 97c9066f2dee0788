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

import hashlib
import json
import math
import os
from typing import Dict, List, Tuple

import numpy as np
from absl import logging

from gait_jax.common import io
from gait_jax.common import workdir_lock
from gait_jax.evaluation import match_figures as figures
from gait_jax import config as config_lib
from gait_jax.identify import gallery as gallery_lib
from gait_jax.identify import sources
from gait_jax.identify import video_tracks
from gait_jax.identify.recognizer import Recognizer


def _recognizer(config, workdir: str) -> Recognizer:
  config, source = config_lib.inference_weights(config, workdir, shipped_default=True)
  return Recognizer(config, source)


def _gallery_path(workdir: str) -> str:
  return os.path.join(workdir, gallery_lib.GALLERY_FILE)


def load_gallery(rec: Recognizer, workdir: str) -> bool:
  """Puts WORKDIR/gallery.npz (when there is one) into `rec`, refusing another model's."""
  return rec.load_gallery(_gallery_path(workdir))


def video_options(config) -> video_tracks.Options:
  """The segmentation settings `identify.video.*` (checked)."""
  v = config.identify.video
  return video_tracks.Options(method=str(v.method), min_area=float(v.min_area),
                       min_height=float(v.min_height), max_gap=int(v.max_gap))


def _print_skipped(skipped) -> None:
  if skipped:
    print(sources.skipped_report(skipped), flush=True)


def run_enroll(config, workdir: str) -> None:
  if not config.identify.gallery:
    raise ValueError("mode=enroll needs identify.gallery (a folder of the people to enrol)")
  opts = video_options(config)
  rec = _recognizer(config, workdir)
  # Two enrolments into one workdir would each write the gallery they read: one run's
  # sequences would be lost. The lock makes the read-modify-write one at a time.
  with workdir_lock.hold(workdir, "enroll"):
    load_gallery(rec, workdir)
    known = set(rec.gallery["names"].tolist())
    found = sources.gallery_sequences(config.identify.gallery, opts,
                                      known_sources=set(rec.gallery["sources"].tolist()))
    new = [s for s in found.sequences if s.name not in known]
    usable, skipped = sources.load_usable(sources.Found(new, found.skipped))
    if usable:
      items = [(s.id, s.name, frames) for s, frames in usable]
      rec.add([s.id for s, _ in usable], [s.name for s, _ in usable],
              *rec.embed_sequences(items), source_keys=[s.source for s, _ in usable])
      geis = np.stack([figures.gei(frames) for _, frames in usable])
      old = rec.gallery.get("geis")
      rec.gallery["geis"] = geis if old is None or old.size == 0 else np.concatenate([old, geis])
      gallery_lib.save(_gallery_path(workdir), rec.gallery)
  ids = sorted(set(rec.gallery["ids"].tolist()))
  print(f"enrolled {len(usable)} new sequences ({len(found.sequences) - len(new)} already "
        f"there, {len(skipped)} skipped); gallery: {len(rec.gallery['ids'])} sequences of "
        f"{len(ids)} ids -> {_gallery_path(workdir)}", flush=True)
  _print_skipped(skipped)


def _threshold(rec: Recognizer, value) -> Tuple[float, Dict]:
  if str(value).strip().lower() == "auto":
    return rec.calibrate()
  try:
    t = float(value)
  except ValueError:
    raise ValueError(f"identify.threshold={value!r}: expected 'auto' or a number") from None
  if not math.isfinite(t) or t < 0:
    raise ValueError(f"identify.threshold={value!r}: expected 'auto' or a distance >= 0 (in "
                     f"evaluate.metric's units)")
  return t, {"method": "fixed", "threshold": t}


def _top_k(value) -> int:
  try:
    k = int(value)
  except (TypeError, ValueError):
    k = 0
  if isinstance(value, bool) or k < 1 or str(k) != str(value).strip():
    raise ValueError(f"identify.top_k={value!r}: expected a whole number >= 1")
  return k


def _table(results: List[Dict], calibration: Dict) -> str:
  lines = [f"{'probe':<28} {'decision':<14} {'best':>8}  top ids (distance)"]
  for r in results:
    top = ", ".join(f"{m['id']} ({m['distance']:.3f})" for m in r["top"][:3])
    lines.append(f"{r['probe'][:28]:<28} {r['decision'][:14]:<14} "
                 f"{r['top'][0]['distance']:>8.3f}  {top}")
  line = f"threshold {calibration['threshold']:.4f} ({calibration['method']})"
  if "false_accept_rate" in calibration:
    line += (f": estimated false-accept rate {100 * calibration['false_accept_rate']:.1f} %, "
             f"false-reject rate {100 * calibration['false_reject_rate']:.1f} %")
  if "computed_from" in calibration:
    line += f"; computed from {calibration['computed_from']}"
  return "\n".join(lines + [line])


def run_identify(config, workdir: str) -> None:
  if not config.identify.probes:
    raise ValueError("mode=identify needs identify.probes (a probe folder, video or pkl tree)")
  top_k = _top_k(config.identify.top_k)
  opts = video_options(config)
  rec = _recognizer(config, workdir)
  with workdir_lock.hold(workdir, "identify"):
    if not load_gallery(rec, workdir):
      raise FileNotFoundError(f"no gallery at {_gallery_path(workdir)}: run "
                              "--config.mode=enroll with identify.gallery first")
    threshold, calibration = _threshold(rec, config.identify.threshold)
    found = sources.probe_sequences(config.identify.probes, opts)
    usable, skipped = sources.load_usable(found)
    if not usable:
      _print_skipped(skipped)
      raise ValueError(f"identify.probes={config.identify.probes}: no probe has enough usable "
                       f"frames (at least {sources.MIN_FRAMES})")
    emb = rec.embed_aligned([("", s.name, frames) for s, frames in usable])
    dist = rec.distances(emb)
    results = []
    for (seq, frames), row in zip(usable, dist):
      ranked = rec.rank(row, top_k)
      best_id, best_d = ranked[0]
      decision = best_id if best_d <= threshold else "unknown"
      results.append({"probe": seq.name, "decision": decision, "frames": int(frames.shape[0]),
                      "top": [{"id": i, "distance": float(d)} for i, d in ranked]})
    # The results reach the screen before any file is written: a read-only or full workdir
    # loses nothing the user can read.
    print(_table(results, calibration), flush=True)
    _print_skipped(skipped)
    report = {"gallery": _gallery_path(workdir), "metric": rec.metric,
              "threshold": calibration, "probes": results,
              "skipped": [{"path": p, "why": w} for p, w in skipped]}
    out = os.path.join(workdir, "identify.json")
    try:
      io.write_json(out, report, indent=1)
      if config.identify.figures:
        _figures(rec, usable, dist, results, os.path.join(workdir, "identify_figures"))
    except OSError as e:
      raise OSError(f"could not write the results to {workdir} ({e.strerror or e}); they are "
                    "printed above") from None
  logging.info("identify: %d probes -> %s", len(results), out)


def _safe(name: str) -> str:
  return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def figure_names(names: List[str]) -> List[str]:
  """A distinct file name per probe name: names that read the same once made file-safe
  (`p a`, `p_a`) get a short digest of the original appended."""
  safe = [_safe(n) for n in names]
  seen: Dict[str, int] = {}
  for s in safe:
    seen[s] = seen.get(s, 0) + 1
  return [f"{s}-{hashlib.sha1(n.encode()).hexdigest()[:8]}.png" if seen[s] > 1 else f"{s}.png"
          for s, n in zip(safe, names)]


def _figures(rec: Recognizer, usable, dist, results, fig_dir: str) -> None:
  geis = rec.gallery.get("geis")
  if geis is None or len(geis) != len(rec.gallery["ids"]):
    logging.warning("identify.figures: the gallery has no GEIs (enrolled by an older version); "
                    "re-enrol to draw figures")
    return
  os.makedirs(fig_dir, exist_ok=True)
  files = figure_names([seq.name for seq, _ in usable])
  for (seq, frames), row, result, file in zip(usable, dist, results, files):
    decision = result["decision"]
    order = np.argsort(row, kind="stable")[:3]
    matches = [(geis[j], str(rec.gallery["ids"][j]), float(row[j]),
                None if decision == "unknown" else bool(rec.gallery["ids"][j] == decision))
               for j in order]
    figures.match_figure(os.path.join(fig_dir, file), figures.gei(frames),
                         f"{seq.name}\n→ {decision}", matches)


def read_report(workdir: str) -> Dict:
  with open(os.path.join(workdir, "identify.json")) as f:
    return json.load(f)
