"""The evolutionary path search of SPOSGait, with the reference's bugs fixed.

Pure Python/NumPy: the caller supplies `evaluate(path) -> fitness` (higher is better) and
`constraints(path) -> (ok, info)`; this module decides which paths to try.

Differences from the reference, on purpose:
- constraints are real (`constraints` is checked before any evaluation; a rejected path costs none);
- the last generation is ranked too;
- when no unseen legal path is left (the small space has 216), the search ends cleanly;
- every evaluation is recorded as it happens (`on_result`), and a rerun *replays* the
  algorithm with those recorded fitness values: the random stream depends only on the seed
  and on fitness values, so a resumed search takes exactly the same decisions and evaluates
  nothing twice.
- one NumPy generator (seed `seed`) drives every draw instead of Python's and NumPy's globals.
"""
from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

Path = Tuple[int, ...]

# Enumerate the unseen legal paths when the space is at most this large (exact random fill,
# exact exhaustion); larger spaces draw at random with a bounded number of attempts.
_ENUMERATE_LIMIT = 200_000
_RANDOM_FILL_ATTEMPTS = 10_000


@dataclasses.dataclass
class Result:
  path: Path
  fitness: float
  generation: int
  info: Dict[str, float] = dataclasses.field(default_factory=dict)

  def to_json(self) -> dict:
    return {"path": list(self.path), "fitness": self.fitness, "generation": self.generation,
            **self.info}


@dataclasses.dataclass
class SearchSettings:
  epochs: int = 20
  population: int = 50
  select_num: int = 10
  mutation_num: int = 25
  crossover_num: int = 25
  m_prob: float = 0.1
  seed: int = 0
  max_attempts: int = 250  # per mutation / crossover phase, as the reference

  @classmethod
  def from_config(cls, search_cfg) -> "SearchSettings":
    return cls(epochs=search_cfg.epochs, population=search_cfg.population,
               select_num=search_cfg.select_num, mutation_num=search_cfg.mutation_num,
               crossover_num=search_cfg.crossover_num, m_prob=search_cfg.m_prob,
               seed=search_cfg.seed)


def _rank_key(r: Result):
  """Best first; equal fitness → the cheaper path (fewer MACs), then the earlier-evaluated one
  (the sort is stable)."""
  return (-r.fitness, r.info.get("macs", 0))


class EvolutionarySearch:
  """Population search over paths of a space given by `choice_max_num`."""

  def __init__(self, choice_max_num: Sequence[int], settings: SearchSettings,
               evaluate: Callable[[Path], Tuple[float, Dict[str, float]]],
               constraints: Callable[[Path], Tuple[bool, Dict[str, float]]] = lambda p: (True, {}),
               known: Optional[Dict[Path, Result]] = None,
               on_result: Callable[[Result, bool], None] = lambda r, cached: None,
               on_generation: Callable[[int, List[Result]], None] = lambda g, top: None):
    self.space = tuple(int(m) for m in choice_max_num)
    if not self.space or min(self.space) < 1:
      raise ValueError(f"choice_max_num={self.space}: expected positive entries")
    self.settings = settings
    self._evaluate = evaluate
    self._constraints = constraints
    self._known = dict(known or {})  # recorded fitness values (resume)
    self._on_result = on_result
    self._on_generation = on_generation
    self.rng = np.random.default_rng(settings.seed)
    self.results: Dict[Path, Result] = {}  # evaluated this run (incl. replayed)
    self.rejected: Dict[Path, Dict[str, float]] = {}
    self.generation = 0
    self.top: List[Result] = []
    self.exhausted = False

  # ---- legality and evaluation -------------------------------------------------------
  def _seen(self, path: Path) -> bool:
    return path in self.results or path in self.rejected

  def _try(self, path: Path) -> bool:
    """Evaluates `path` if it is new and within the constraints; True if it was evaluated."""
    if self._seen(path):
      return False
    ok, info = self._constraints(path)
    if not ok:
      self.rejected[path] = info
      return False
    cached = path in self._known
    if cached:
      result = dataclasses.replace(self._known[path], generation=self.generation)
    else:
      fitness, extra = self._evaluate(path)
      result = Result(path, float(fitness), self.generation, {**info, **extra})
    self.results[path] = result
    self._on_result(result, cached)
    return True

  # ---- operators -----------------------------------------------------------------------
  def _random_path(self) -> Path:
    return tuple(int(self.rng.integers(m)) for m in self.space)

  def _unseen_legal(self) -> List[Path]:
    out = []
    for p in itertools.product(*(range(m) for m in self.space)):
      if not self._seen(p):
        ok, info = self._constraints(p)
        if ok:
          out.append(p)
        else:
          self.rejected[p] = info
    return out

  def _random_fill(self, candidates: List[Path]) -> List[Path]:
    target = self.settings.population
    if math.prod(self.space) <= _ENUMERATE_LIMIT:
      pool = self._unseen_legal()
      need = target - len(candidates)
      if need > len(pool):
        self.exhausted = True
      picks = self.rng.permutation(len(pool))[:max(need, 0)]
      for i in sorted(picks):  # sorted: evaluation order independent of permutation layout
        if self._try(pool[i]):
          candidates.append(pool[i])
      return candidates
    attempts = 0
    while len(candidates) < target and attempts < _RANDOM_FILL_ATTEMPTS:
      attempts += 1
      p = self._random_path()
      if self._try(p):
        candidates.append(p)
    if len(candidates) < target:
      self.exhausted = True
    return candidates

  def _breed(self, count: int, parents: List[Path], make_child) -> List[Path]:
    """Up to `count` new legal children of `make_child(pick)`, within the reference's
    attempt budget; `pick()` draws a parent uniformly."""
    children: List[Path] = []
    pick = lambda: parents[int(self.rng.integers(len(parents)))]
    for _ in range(self.settings.max_attempts):
      if len(children) >= count or not parents:
        break
      child = make_child(pick)
      if self._try(child):
        children.append(child)
    return children

  def _mutation(self, parents: List[Path]) -> List[Path]:
    def mutate(pick):
      return tuple(int(self.rng.integers(m)) if self.rng.random() < self.settings.m_prob else g
                   for g, m in zip(pick(), self.space))
    return self._breed(self.settings.mutation_num, parents, mutate)

  def _crossover(self, parents: List[Path]) -> List[Path]:
    def cross(pick):
      a, b = pick(), pick()
      return tuple(x if self.rng.random() < 0.5 else y for x, y in zip(a, b))
    return self._breed(self.settings.crossover_num, parents, cross)

  def _update_top(self, candidates: List[Path], k: int) -> None:
    pool = {r.path: r for r in self.top}
    pool.update({p: self.results[p] for p in candidates})
    self.top = sorted(pool.values(), key=_rank_key)[:k]

  # ---- the loop ------------------------------------------------------------------------
  def run(self) -> List[Result]:
    """Runs every generation; returns all results sorted by fitness (best first)."""
    s = self.settings
    keep = max(s.population, s.select_num)
    self.generation = 0
    candidates = self._random_fill([])
    for epoch in range(s.epochs):
      self._update_top(candidates, keep)
      self._on_generation(epoch, self.top)
      if self.exhausted:
        break
      parents = [r.path for r in self.top[:s.select_num]]
      self.generation = epoch + 1
      candidates = self._mutation(parents) + self._crossover(parents)
      candidates = self._random_fill(candidates)
    else:
      # The reference never ranks the last generation; we do.
      self._update_top(candidates, keep)
      self._on_generation(s.epochs, self.top)
    return sorted(self.results.values(), key=_rank_key)
