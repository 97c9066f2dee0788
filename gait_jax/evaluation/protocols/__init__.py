"""Every benchmark protocol, one module each, found by name.

A module of this package that defines `PROTOCOL` (a `gait_jax.evaluation.protocol.Protocol`
subclass) is a protocol: adding one is adding a file (docs/ARCHITECTURE.md shows one). Names:
casia_b, oumvlp, grew, grew_submission, gait3d, custom, kth_walk, holdout.

    protocol = protocols.from_config(config, workdir)     # or build(name, config.evaluate)
    metrics, table = protocols.evaluate(protocol, emb, labels, types, views)

Percentages are in [0, 100]; an empty probe set gives NaN (the reference divides by zero); an
empty gallery gives NaN or an error naming the selection, never a crash deep in NumPy; ranks
beyond the gallery size repeat the |gallery| figure.
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Dict, Tuple, Type

from gait_jax.evaluation import distance as dist_lib
from gait_jax.evaluation import embedding_checks
from gait_jax.evaluation.protocol import Metrics, Protocol, Sequences


def _discover() -> Dict[str, Type[Protocol]]:
  found = {}
  for info in pkgutil.iter_modules(__path__):
    cls = getattr(importlib.import_module(f"{__name__}.{info.name}"), "PROTOCOL", None)
    if cls is not None:
      if cls.name in found:
        raise RuntimeError(f"protocol name {cls.name!r} is declared twice")
      found[cls.name] = cls
  return found


REGISTRY = _discover()
NAMES = tuple(sorted(REGISTRY))


def get(name: str) -> Type[Protocol]:
  if name not in REGISTRY:
    raise ValueError(f"evaluate.protocol={name!r}: expected one of {', '.join(NAMES)}")
  return REGISTRY[name]


def build(name: str, eval_cfg, **settings) -> Protocol:
  """Protocol `name` on `eval_cfg` (Gait3D also takes `partition`, the submission `workdir`)."""
  return get(name)(eval_cfg, **settings)


def from_config(config, workdir: str = "") -> Protocol:
  """`evaluate.protocol` with everything it reads from the experiment config."""
  return get(config.evaluate.protocol).from_config(config, workdir)


def for_holdout(config, seqs: Sequences) -> Protocol:
  """How held-out training ids are scored (search fitness, `train.eval_on=holdout`):
  `search.protocol` (or `evaluate.protocol`) when it can rank them, else `holdout`."""
  chosen = get(config.search.protocol or config.evaluate.protocol)
  protocol = chosen.from_config(config)
  return protocol if protocol.scores_holdout(seqs) else build("holdout", config.evaluate)


def evaluate(protocol: Protocol, emb, labels, types, views) -> Tuple[Metrics, str]:
  """(flat metrics, printable table) of embeddings `[N, c, p]` and their id/type/view."""
  emb = dist_lib.check_embeddings(emb)
  seqs = Sequences.of(labels, types, views, emb.shape[0])
  embedding_checks.check_usable(emb, *seqs, f"evaluate.protocol={protocol.name}")
  dist_lib.check_metric(protocol.cfg.metric)
  if protocol.cfg.rerank and not protocol.rerank:
    raise ValueError(f"evaluate.rerank=True is not supported for protocol {protocol.name!r}")
  return protocol.evaluate(emb, seqs)


def run_protocol(name: str, emb, labels, types, views, eval_cfg) -> Tuple[Metrics, str]:
  """`evaluate(build(name, eval_cfg), ...)`: a protocol that needs nothing but its config."""
  return evaluate(build(name, eval_cfg), emb, labels, types, views)
