"""The evolutionary search algorithm on synthetic fitness functions (no network needed)."""
import itertools

import pytest

from gait_jax.search.evolution import EvolutionarySearch, SearchSettings

SMALL = (1, 6, 6, 6)  # 216 paths
LARGE = (1, 1, 6, 6, 6, 6, 6, 6, 6, 6)


def peak_fitness(target):
  # A smooth landscape with a unique optimum at `target`.
  return lambda p: (-float(sum((a - b) ** 2 for a, b in zip(p, target))), {})


def test_reference_evaluation_count_and_no_repeats():
  calls = []

  def evaluate(p):
    calls.append(p)
    return peak_fitness((0, 0, 4, 5, 2, 0, 4, 3, 4, 3))(p)

  s = SearchSettings(epochs=3, population=20, select_num=5, mutation_num=8, crossover_num=8)
  results = EvolutionarySearch(LARGE, s, evaluate).run()
  # population × (epochs + 1) evaluations, as the reference; never the same path twice.
  assert len(calls) == 20 * 4
  assert len(set(calls)) == len(calls)
  assert all(p[0] == 0 and p[1] == 0 for p in calls)  # frozen stem positions
  assert results[0].fitness == max(r.fitness for r in results)


def test_search_improves_over_random_on_a_peaked_landscape():
  target = (0, 0, 4, 5, 2, 0, 4, 3, 4, 3)
  s = SearchSettings(epochs=8, population=30, select_num=8, mutation_num=12, crossover_num=12)
  search = EvolutionarySearch(LARGE, s, peak_fitness(target))
  search.run()
  gen0 = [r.fitness for r in search.results.values() if r.generation == 0]
  assert search.top[0].fitness > max(gen0)
  # The last generation is ranked too (the reference drops it).
  last = max(r.generation for r in search.results.values())
  assert last == 8
  assert search.top[0].fitness == max(r.fitness for r in search.results.values())
  ranked = {r.path for r in search.top}
  last_gen = [r for r in search.results.values() if r.generation == last]
  worst_kept = min(r.fitness for r in search.top)
  assert all(r.path in ranked for r in last_gen if r.fitness > worst_kept)


def test_small_space_is_exhausted_cleanly():
  s = SearchSettings(epochs=20, population=50, select_num=10, mutation_num=25, crossover_num=25)
  search = EvolutionarySearch(SMALL, s, peak_fitness((0, 5, 5, 4)))
  results = search.run()
  assert search.exhausted
  assert len(results) == 216
  assert results[0].path == (0, 5, 5, 4)


def test_constraints_reject_without_evaluating():
  evaluated = []

  def evaluate(p):
    evaluated.append(p)
    return 1.0, {}

  def constraints(p):
    macs = sum(p)
    return macs <= 6, {"macs": macs}

  s = SearchSettings(epochs=5, population=10, select_num=3, mutation_num=4, crossover_num=4)
  search = EvolutionarySearch(SMALL, s, evaluate, constraints)
  search.run()
  assert evaluated and all(sum(p) <= 6 for p in evaluated)
  assert search.rejected and all(info["macs"] > 6 for info in search.rejected.values())
  legal = sum(1 for p in itertools.product(*(range(m) for m in SMALL)) if sum(p) <= 6)
  assert len(evaluated) <= legal
  assert all(r.info["macs"] == sum(r.path) for r in search.results.values())


def test_resume_replays_without_reevaluating():
  target = (0, 0, 1, 2, 3, 4, 5, 0, 1, 2)
  s = SearchSettings(epochs=3, population=12, select_num=4, mutation_num=5, crossover_num=5, seed=7)
  full = EvolutionarySearch(LARGE, s, peak_fitness(target))
  full_results = full.run()

  # An interrupted run: the evaluator dies after 20 evaluations.
  recorded = {}

  class Killed(Exception):
    pass

  def dying(p):
    if len(recorded) >= 20:
      raise Killed
    return peak_fitness(target)(p)

  with pytest.raises(Killed):
    EvolutionarySearch(LARGE, s, dying,
                       on_result=lambda r, cached: recorded.__setitem__(r.path, r)).run()
  assert len(recorded) == 20

  fresh_calls = []

  def counting(p):
    fresh_calls.append(p)
    return peak_fitness(target)(p)

  resumed = EvolutionarySearch(LARGE, s, counting, known=recorded).run()
  assert not set(fresh_calls) & set(recorded)
  assert len(fresh_calls) == len(full_results) - 20
  assert [r.path for r in resumed] == [r.path for r in full_results]


def test_seed_changes_the_search():
  s0 = SearchSettings(epochs=1, population=10, seed=0)
  s1 = SearchSettings(epochs=1, population=10, seed=1)
  a = EvolutionarySearch(LARGE, s0, peak_fitness((0,) * 10)).run()
  b = EvolutionarySearch(LARGE, s1, peak_fitness((0,) * 10)).run()
  assert {r.path for r in a} != {r.path for r in b}


def test_bad_space_is_an_error():
  with pytest.raises(ValueError, match="choice_max_num"):
    EvolutionarySearch((1, 0, 6), SearchSettings(), peak_fitness((0, 0, 0)))


def test_ties_prefer_the_cheaper_path():
  s = SearchSettings(epochs=0, population=20, seed=0)
  # Every path has the same fitness; cost = sum of genes.
  search = EvolutionarySearch(SMALL, s, lambda p: (50.0, {}),
                              lambda p: (True, {"macs": sum(p)}))
  ranked = search.run()
  assert [r.info["macs"] for r in ranked] == sorted(r.info["macs"] for r in ranked)
  assert search.top[0].info["macs"] == min(r.info["macs"] for r in ranked)
