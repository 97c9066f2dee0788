"""`search.fitness_metric`: rank1 is the protocol's headline; map and margin score the same
cells (cross-view: identical views excluded) with finer steps, free of the embedding's scale."""
import numpy as np
import pytest

from gait_jax import config as config_lib
from gait_jax import config_check
from gait_jax.evaluation import protocols
from gait_jax.evaluation import ranking
from gait_jax.evaluation.protocol import Sequences
from gait_jax.evaluation.protocols.casia_b import CasiaB
from gait_jax.search import fitness_metrics

CASIA_TYPES = ("nm-01", "nm-02", "nm-03", "nm-04", "nm-05", "nm-06", "bg-01", "bg-02",
               "cl-01", "cl-02")


def _eval_cfg(metric="euc"):
  cfg = config_lib.base_config().evaluate
  with cfg.unlocked():
    cfg.metric = metric
  return cfg


def _casia(ids=5, views=("000", "090"), noise=0.3, seed=0):
  """Embeddings [N, 4, 2]: an id's point plus noise; every CASIA-B type in every view."""
  rng = np.random.default_rng(seed)
  centres = rng.normal(size=(ids, 4, 2))
  labels, types, vs, emb = [], [], [], []
  for i in range(ids):
    for t in CASIA_TYPES:
      for v in views:
        labels.append(f"{i:03d}")
        types.append(t)
        vs.append(v)
        emb.append(centres[i] + noise * rng.normal(size=(4, 2)))
  return np.asarray(emb, np.float32), Sequences.of(labels, types, vs)


def test_rank1_is_the_protocols_headline():
  emb, seqs = _casia(noise=1.0)
  protocol = protocols.build("casia_b", _eval_cfg())
  metrics, _ = protocols.evaluate(protocol, emb, *seqs)
  assert fitness_metrics.fitness(protocol, emb, seqs, "rank1") == metrics["mean/rank1_exclude"]


def test_map_of_a_grouped_protocol_is_its_mean_map():
  emb, seqs = _casia(noise=1.0, seed=1)
  protocol = protocols.build("holdout", _eval_cfg())
  metrics, _ = protocols.evaluate(protocol, emb, *seqs)
  assert fitness_metrics.fitness(protocol, emb, seqs, "map") == pytest.approx(
      metrics["mean/mAP"], abs=1e-9)
  assert 0 < metrics["mean/mAP"] < 100


def test_margin_hand_worked():
  # gallery a, b, a. probe a: own nearest 1, other 3 -> (3-1)/(3+1) = 0.5; probe b: own 5,
  # other nearest 3 -> (3-5)/8 = -0.25; probe z: its id not in the gallery -> skipped.
  dist = np.array([[1.0, 3.0, 5.0], [4.0, 5.0, 3.0], [1.0, 1.0, 1.0]])
  margin = fitness_metrics.mean_margin(dist, ["a", "b", "z"], ["a", "b", "a"])
  assert margin == pytest.approx((0.5 - 0.25) / 2 * 100)
  assert np.isnan(fitness_metrics.mean_margin(dist, ["z", "z", "z"], ["a", "b", "a"]))


@pytest.mark.parametrize("metric", ["euc", "cos"])
def test_margin_and_map_are_free_of_the_embeddings_scale(metric):
  emb, seqs = _casia(noise=0.8, seed=2)
  protocol = protocols.build("casia_b", _eval_cfg(metric))
  for name in ("map", "margin"):
    a = fitness_metrics.fitness(protocol, emb, seqs, name)
    b = fitness_metrics.fitness(protocol, emb * 7.0, seqs, name)
    assert np.isfinite(a) and a == pytest.approx(b, rel=1e-4, abs=1e-3)


def test_margin_moves_where_rank1_cannot():
  # Well separated ids: every probe ranked right (rank1 100) whether or not each probe is
  # pulled a little towards the others; the margin sees the difference.
  emb, seqs = _casia(noise=0.05, seed=3)
  protocol = protocols.build("casia_b", _eval_cfg())
  pulled = emb * 0.6 + emb.mean(0, keepdims=True) * 0.4 + 0.03 * np.random.default_rng(
      4).normal(size=emb.shape).astype(np.float32)
  assert fitness_metrics.fitness(protocol, emb, seqs, "rank1") == 100.0
  assert fitness_metrics.fitness(protocol, pulled, seqs, "rank1") == 100.0
  assert (fitness_metrics.fitness(protocol, pulled, seqs, "margin")
          < fitness_metrics.fitness(protocol, emb, seqs, "margin") - 3.0)


def test_cross_view_cells_exclude_identical_views():
  # Each sequence matches its own id only within its view (view-specific centres): scored
  # across views, as the headline is, nothing matches better than chance.
  rng = np.random.default_rng(5)
  emb, seqs = _casia(ids=6, noise=0.01, seed=5)
  view_centre = {v: rng.normal(size=(6, 4, 2)) * 3 for v in ("000", "090")}
  for n, (label, view) in enumerate(zip(seqs.labels, seqs.views)):
    emb[n] = view_centre[view][int(label)] + 0.01 * rng.normal(size=(4, 2))
  protocol = protocols.build("casia_b", _eval_cfg())
  assert fitness_metrics.fitness(protocol, emb, seqs, "margin") < 20
  assert fitness_metrics.fitness(protocol, emb, seqs, "map") < 60
  # Within one view the same embeddings are nearly perfect.
  probe = np.isin(seqs.types, ("nm-05", "nm-06")) & (seqs.views == "000")
  gallery = np.isin(seqs.types, CasiaB.GALLERY) & (seqs.views == "000")
  dist = ranking.probe_gallery_dist(emb[probe], emb[gallery], _eval_cfg())
  assert fitness_metrics.mean_margin(dist, seqs.labels[probe], seqs.labels[gallery]) > 90


def test_unknown_metric_is_refused_by_name():
  emb, seqs = _casia()
  with pytest.raises(ValueError, match="search.fitness_metric='top1'"):
    fitness_metrics.fitness(protocols.build("casia_b", _eval_cfg()), emb, seqs, "top1")
  config = config_lib.base_config()
  with config.unlocked():
    config.search.fitness_metric = "top1"
  with pytest.raises(config_check.ConfigError, match="search.fitness_metric"):
    config_check.check(config)


def test_each_protocol_names_its_own_cells():
  emb, seqs = _casia(ids=3, views=("000", "090", "180"))
  cross = protocols.build("casia_b", _eval_cfg()).fitness_cells(seqs)
  assert len(cross) == 3 and all(len(cells) == 6 for cells in cross)  # 3 x 2 other views
  for cells in cross:
    for probe, gallery in cells:
      assert len(set(seqs.views[probe])) == 1 and len(set(seqs.views[gallery])) == 1
      assert set(seqs.views[probe]) != set(seqs.views[gallery])
  grouped = protocols.build("holdout", _eval_cfg()).fitness_cells(seqs)
  sel = protocols.build("holdout", _eval_cfg()).select(seqs)
  assert len(grouped) == 1 and len(grouped[0]) == 1
  np.testing.assert_array_equal(grouped[0][0][1], sel.gallery)
