"""`Recognizer`: enrol people and identify walkers with a trained fixed-path model.

    from gait_jax.identify import Recognizer
    rec = Recognizer.from_workdir("runs/retrain")
    rec.enroll("alice", frames)          # uint8 [T, H, W] silhouettes of any size
    rec.identify(frames)                 # -> [("alice", 0.41), ("bob", 0.97), ...]
    rec.save_gallery("people.npz"); rec.load_gallery("people.npz")

Frames are aligned by the pretreatment rule (crop to the person, scale to 64 rows, centre),
cut to 64×44 and embedded whole, as `embed` does; distances are the configured
`evaluate.metric` between embeddings, one entry per enrolled id (its nearest sequence).
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from gait_jax import config as config_lib
from gait_jax import config_check
from gait_jax.data.dataset import SequenceInfo
from gait_jax.evaluation import distance as distance_lib
from gait_jax.evaluation import embed as embed_lib
from gait_jax.evaluation import embedding_checks
from gait_jax.identify import gallery as gallery_lib
from gait_jax.identify import sources
from gait_jax.models import weights


class InMemorySequences:
  """Aligned uint8 [T, 64, 64] frame sequences as an `embed.EmbedSource`."""

  def __init__(self, items: Sequence[Tuple[str, str, np.ndarray]]):
    self.sequences = [SequenceInfo(pid, "", name, ()) for pid, name, _ in items]
    self._frames = [frames for _, _, frames in items]

  def __len__(self):
    return len(self._frames)

  def load(self, i: int):
    return [self._frames[i]]


def _check_person(pid) -> None:
  if not isinstance(pid, str) or not pid.strip():
    raise ValueError(f"person id {pid!r}: expected a non-empty string")


class Recognizer:
  """A fixed-path model with its weights and an in-memory gallery."""

  def __init__(self, config, source: str):
    config_check.check(config)
    self.config, self.source = config, source
    self.path = path = config_lib.fixed_path(config, "identification")
    self.model, self.variables, self.step = weights.load_fixed(config.model, path, source)
    self.metric = distance_lib.check_metric(config.evaluate.metric)
    self.record = gallery_lib.model_record(config_lib.architecture(config),
                                           config_lib.format_path(path),
                                           config.embed.flip, self.step, source,
                                           gallery_lib.weights_digest(self.variables))
    self.gallery = gallery_lib.empty(self.record)

  @classmethod
  def from_workdir(cls, workdir: str, path: Optional[Sequence[int]] = None) -> "Recognizer":
    """The model of a workdir (its config.json and newest checkpoint); `path` for a supernet."""
    config = config_lib.saved_config(workdir)
    if path is not None:
      config.model.path = config_lib.format_path(path)
    return cls(config, workdir)

  # -- embedding --------------------------------------------------------------------------

  def embed_aligned(self, items: Sequence[Tuple[str, str, np.ndarray]]) -> np.ndarray:
    """Embeddings f32 [n, c, p] of (id, name, aligned uint8 [T, 64, 64]) items."""
    if not items:
      return np.zeros((0, 0, 0), np.float32)
    out = embed_lib.embed_dataset(self.model, self.variables, InMemorySequences(items), self.path,
                                  batch_per_device=self.config.embed.batch, workers=0,
                                  progress=len(items) > 20, flip=self.config.embed.flip,
                                  bf16=self.config.embed.bf16)
    embedding_checks.check_finite(out["embeddings"], out["labels"], out["types"], out["views"],
                                  f"identify: {len(items)} sequences from {items[0][1]}")
    return out["embeddings"]

  def embed(self, frames: np.ndarray, where: str = "frames") -> np.ndarray:
    """The embedding f32 [c, p] of one silhouette sequence uint8 [T, H, W] of any size."""
    return self.embed_aligned([("", where, sources.align_frames(frames, where))])[0]

  def embed_sequences(self, items: Sequence[Tuple[str, str, np.ndarray]]
                      ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(embeddings [n, c, p], halves [n, 2, c, p], has_halves [n]) of aligned sequences: each
    whole, and its two halves apart when each half has MIN_FRAMES frames (the threshold's
    same-person distances with one sequence per person)."""
    split = [len(f) >= 2 * sources.MIN_FRAMES for _, _, f in items]
    extra = []
    for (pid, name, frames), ok in zip(items, split):
      if ok:
        h = len(frames) // 2
        extra += [(pid, f"{name}[:{h}]", frames[:h]), (pid, f"{name}[{h}:]", frames[h:])]
    emb = self.embed_aligned(list(items) + extra)
    whole, parts = emb[:len(items)], emb[len(items):]
    halves = np.zeros((len(items), 2) + whole.shape[1:], np.float32)
    if parts.size:
      halves[np.asarray(split)] = parts.reshape((-1, 2) + whole.shape[1:])
    return whole, halves, np.asarray(split, bool)

  # -- gallery ----------------------------------------------------------------------------

  def add(self, ids: Sequence[str], names: Sequence[str], embeddings: np.ndarray,
          halves: Optional[np.ndarray] = None, has_halves: Optional[np.ndarray] = None,
          source_keys: Optional[Sequence[str]] = None) -> None:
    for pid in ids:
      _check_person(pid)
    g, n = self.gallery, len(ids)
    if halves is None:
      halves = np.zeros((n, 2) + embeddings.shape[1:], np.float32)
      has_halves = np.zeros((n,), bool)
    new = {"embeddings": embeddings.astype(np.float32), "ids": np.asarray(ids, np.str_),
           "names": np.asarray(names, np.str_), "halves": halves.astype(np.float32),
           "has_halves": np.asarray(has_halves, bool),
           "sources": np.asarray(source_keys if source_keys is not None else [""] * n, np.str_)}
    old_n = len(g["ids"])
    for key, value in new.items():
      old = g.get(key)
      if old_n == 0:
        g[key] = value
        continue
      if old is None or len(old) != old_n:  # a gallery enrolled before the key existed
        old = np.zeros((old_n,) + value.shape[1:], value.dtype)
      g[key] = np.concatenate([old, value])

  def enroll(self, person: str, frames: np.ndarray, name: Optional[str] = None) -> None:
    """Adds one sequence of `person` (a non-empty string id) to the gallery."""
    _check_person(person)  # before embedding anything
    name = name or f"{person}/{int(np.sum(self.gallery['ids'] == person))}"
    aligned = sources.align_frames(frames, name)
    self.add([person], [name], *self.embed_sequences([(person, name, aligned)]))

  def save_gallery(self, path: str) -> str:
    """Writes the gallery to `path` (.npz, atomically), tied to this model."""
    return gallery_lib.save(path, self.gallery)

  def load_gallery(self, path: str) -> bool:
    """Replaces the gallery by the one at `path` (False when there is none); another model's
    gallery, or a damaged one, is refused with the file named."""
    saved = gallery_lib.load(path)
    if saved is None:
      return False
    gallery_lib.check_same_model(saved, self.record, path)
    self.gallery = saved
    return True

  def distances(self, embeddings: np.ndarray) -> np.ndarray:
    self._require_gallery()
    return distance_lib.distance_matrix(embeddings, self.gallery["embeddings"], self.metric)

  def _require_gallery(self) -> None:
    if self.gallery["embeddings"].size == 0:
      raise ValueError("the gallery is empty: enrol people first")

  def rank(self, row: np.ndarray, top_k: Optional[int] = None) -> List[Tuple[str, float]]:
    """[(id, distance)] best first for one row of gallery distances: each id at its nearest
    sequence."""
    best: Dict[str, float] = {}
    for pid, d in zip(self.gallery["ids"].tolist(), row.tolist()):
      best[pid] = min(d, best.get(pid, float("inf")))
    ranked = sorted(best.items(), key=lambda kv: (kv[1], kv[0]))
    return ranked[:top_k] if top_k else ranked

  def identify(self, frames: np.ndarray, top_k: Optional[int] = None) -> List[Tuple[str, float]]:
    """[(id, distance)] of the enrolled people nearest to a silhouette sequence, best first."""
    row = self.distances(self.embed(frames, "probe")[None])[0]
    return self.rank(row, top_k)

  def calibrate(self) -> Tuple[float, Dict]:
    """The open-set threshold from the gallery itself (see gallery.calibrate)."""
    self._require_gallery()
    return gallery_lib.calibrate(
        self.gallery, lambda x, y: distance_lib.distance_matrix(x, y, self.metric))
