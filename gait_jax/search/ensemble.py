"""A candidate's fitness averaged over several supernets (`search.ensemble`).

A supernet's ranking of paths carries the noise of its own training (which paths the sampler
drew when): on the ranking study, supernets that differ only in seed ranked 16 paths with τ
0.12 to 0.46 against stand-alone accuracy. The mean of their fitness is meant to average that
noise out, as more seeds average out the stand-alone side's; measured (tools/ranking_study.py's
`ens<K>` variants, docs/results.md) two supernets gave τ 0.47–0.50, three 0.38–0.39, and five
0.50 where one alone gave 0.31 ± 0.27 over five seeds: the most reliable lever measured, at K
times the cost, so an option, off by default. Each supernet scores a candidate on the ids it
held out.
"""
from __future__ import annotations

from typing import List, Sequence

import numpy as np

from gait_jax.search.fitness import CandidateScorer


def sources(config, source: str) -> List[str]:
  """The supernet `source` and the workdirs search.ensemble names after it."""
  return [source] + [s.strip() for s in config.search.ensemble.split(",") if s.strip()]


class EnsembleScorer:
  """`score(path)`: the mean of the path's fitness on each supernet; the first one's held-out
  ids, protocol and step are what the search reports."""

  def __init__(self, config, supernets: Sequence[str]):
    self.scorers = [CandidateScorer(config, s) for s in supernets]
    first = self.scorers[0]
    self.val_ids, self.val_set, self.protocol = first.val_ids, first.val_set, first.protocol
    self.step, self.bnneck, self.source = first.step, first.bnneck, first.source

  def score(self, path) -> float:
    return float(np.mean([s.score(path) for s in self.scorers]))

  def fingerprint(self) -> dict:
    return {**self.scorers[0].fingerprint(),
            "ensemble": [s.fingerprint() for s in self.scorers[1:]]}


def make_scorer(config, source: str):
  """A CandidateScorer of `source`, or an EnsembleScorer when search.ensemble names more."""
  supernets = sources(config, source)
  return EnsembleScorer(config, supernets) if len(supernets) > 1 else CandidateScorer(
      config, source)
