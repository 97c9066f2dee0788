"""Every protocol on tiny hand-built embedding sets with hand-worked answers.

Embeddings are mostly 1-D (c = p = 1) so distances are |a − b| and the expected rankings can
be read off a number line.
"""
import csv
import json
import os
import zipfile

import numpy as np
import pytest

from gait_jax.config import base_config
from gait_jax.evaluation import protocols
from gait_jax.evaluation import ranking
from gait_jax.evaluation.protocol import Sequences
from helpers.embeddings import casia_set, line

def _cfg(**overrides):
  c = base_config().evaluate
  c.update(overrides)
  return c


CFG = _cfg()


def test_casia_b_hand_worked():
  emb, labels, types, views = casia_set()
  m, table = protocols.run_protocol("casia_b", emb, labels, types, views, CFG)
  for kind in ("include", "exclude"):
    assert m[f"NM/rank1_{kind}"] == 100.0
    assert m[f"BG/rank1_{kind}"] == 50.0 and m[f"BG/rank4_{kind}"] == 50.0
    assert m[f"BG/rank5_{kind}"] == 100.0
    assert m[f"CL/rank1_{kind}"] == 0.0 and m[f"CL/rank5_{kind}"] == 100.0
    assert m[f"mean/rank1_{kind}"] == pytest.approx(50.0)
  assert m["CL/rank1_exclude/090"] == 0.0 and m["NM/rank1_exclude/000"] == 100.0
  assert "exclude identical views" in table


def test_casia_b_identical_view_exclusion_and_rounding():
  """View 000 probes of id A are only right against the 000 gallery: the diagonal differs."""
  emb, labels, types, views = casia_set(("000", "090", "180"))
  emb = emb.copy()
  labels, types, views = map(np.array, (labels, types, views))
  # Move id A's 000 gallery next to A's NM probes of 000 only: A nm-05/06 in 000 at 30,
  # A's gallery in 000 at 30 too. In 090/180 A's gallery stays at 0, B's at 10: 30 is nearer B.
  sel_g = (labels == "A") & (views == "000") & np.isin(types, ["nm-01", "nm-02", "nm-03", "nm-04"])
  sel_p = (labels == "A") & (views == "000") & np.isin(types, ["nm-05", "nm-06"])
  emb[sel_g] = 30.0
  emb[sel_p] = 30.0
  m, _ = protocols.run_protocol("casia_b", emb, labels, types, views, CFG)
  # NM matrix (rows probe view, cols gallery view): 000 row = [100, 50, 50]; B's 000 probes at
  # 11 now see A's 000 gallery at 30 and B's at 10: still right. Rows 090/180: A probes at 1
  # against the 000 gallery see B (10) before A (30): 50; other cells 100.
  acc = np.array([[100, 50, 50], [50, 100, 100], [50, 100, 100]], float)
  assert m["NM/rank1_include"] == pytest.approx(acc.mean())
  per_view = (acc.sum(1) - np.diag(acc)) / 2
  assert m["NM/rank1_exclude"] == pytest.approx(per_view.mean())
  assert m["NM/rank1_exclude/000"] == 50.0 and m["NM/rank1_exclude/090"] == 75.0
  # round(100 * 2 / 3, 2) per cell when one of three probes misses.
  keep = ~((labels == "B") & (types == "nm-06"))
  m2, _ = protocols.run_protocol("casia_b", emb[keep], labels[keep], types[keep], views[keep], CFG)
  # 090 → 090 cell: probes A nm-05, A nm-06, B nm-05 → all right; 090 → 000: A's two miss → 33.33.
  assert m2["NM/rank1_exclude/090"] == pytest.approx((33.33 + 100) / 2)


def test_de_diag_hand_worked():
  acc = np.array([[100.0, 50.0], [20.0, 90.0]])
  assert ranking.de_diag(acc) == pytest.approx(35.0)
  np.testing.assert_allclose(ranking.de_diag(acc, each_view=True), [50.0, 20.0])


def test_casia_b_empty_probe_group_is_nan():
  emb, labels, types, views = casia_set()
  keep = [not t.startswith("cl") for t in types]
  sub = lambda a: [v for v, k in zip(a, keep) if k]
  m, _ = protocols.run_protocol("casia_b", emb[np.array(keep)], sub(labels), sub(types), sub(views), CFG)
  assert np.isnan(m["CL/rank1_exclude"]) and m["NM/rank1_exclude"] == 100.0


def test_oumvlp_probe_without_gallery_id_is_a_miss():
  # Ids A, B, C; gallery '01' only for A and B; every probe equals its own gallery value.
  vals = {"A": 0.0, "B": 5.0, "C": 20.0}
  emb, labels, types, views = [], [], [], []
  for v in ("000", "015"):
    for ident, x in vals.items():
      for t in ("00", "01"):
        if t == "01" and ident == "C":
          continue
        emb.append(x); labels.append(ident); types.append(t); views.append(v)
  m, _ = protocols.run_protocol("oumvlp", line(emb), labels, types, views, CFG)
  assert m["NM/rank1_exclude"] == pytest.approx(66.67)
  assert m["NM/rank5_include"] == pytest.approx(66.67)
  assert "BG/rank1_exclude" not in m


def grew_set():
  """25 gallery ids (type 01) at 0, 10, ..., 240; probe of id 00003 (at 30) exactly on its
  match; probe of id 00007 at 35, whose match (70) is 8th nearest: 30/40 (d 5), 20/50 (15),
  10/60 (25), then 0 and 70 tie at d 35 and the lower gallery index (id 00000) comes first.
  A type-03 probe must be ignored."""
  ids = [f"{i:05d}" for i in range(25)]
  emb = [10.0 * i for i in range(25)] + [30.0, 35.0, 1000.0]
  labels = ids + ["00003", "00007", "probe"]
  types = ["01"] * 25 + ["02", "02", "03"]
  views = [f"seq{i}" for i in range(28)]
  return line(emb), labels, types, views


def test_grew_rank_k():
  m, table = protocols.run_protocol("grew", *grew_set(), CFG)
  assert m == {"rank1": 50.0, "rank5": 50.0, "rank10": 100.0, "rank20": 100.0}
  assert "2 probes" in table


@pytest.mark.parametrize("true_first", [True, False])
def test_grew_tie_goes_to_lower_gallery_index(true_first):
  # Probe of id Y at 0; gallery items at +1 and −1 are equidistant.
  gallery_ids = ["Y", "X"] if true_first else ["X", "Y"]
  emb = line([1.0, -1.0, 0.0])
  m, _ = protocols.run_protocol("grew", emb, gallery_ids + ["Y"], ["01", "01", "02"], ["a", "b", "c"], CFG)
  assert m["rank1"] == (100.0 if true_first else 0.0)
  assert m["rank5"] == 100.0


def test_grew_small_gallery_caps_ranks():
  emb = line([0.0, 10.0, 1.0, 9.0])
  m, _ = protocols.run_protocol("grew", emb, ["a", "b", "b", "b"], ["01", "01", "02", "02"],
                                ["1", "2", "3", "4"], CFG)
  assert m == {"rank1": 50.0, "rank5": 100.0, "rank10": 100.0, "rank20": 100.0}


def test_grew_submission_csv_and_zip(tmp_path):
  ids = [f"{i:05d}" for i in range(12)]
  emb = [10.0 * i for i in range(12)] + [10.0 * i + 3 for i in range(12)] + [61.0, 500.0, 2.0]
  labels = ids + ids + ["99999", "probe", "probe"]
  types = ["01"] * 12 + ["02"] * 12 + ["04", "03", "03"]
  views = [f"g{i}" for i in range(25)] + ["vidX", "vidY"]
  submission = protocols.build("grew_submission", CFG, workdir=str(tmp_path))
  m, table = protocols.evaluate(submission, line(emb), labels, types, views)
  assert m == {"submission/probes": 2.0, "submission/gallery": 25.0}
  files = sorted(os.listdir(tmp_path / "submission"))
  csv_name = [f for f in files if f.endswith(".csv")][0]
  assert csv_name[:-4] + ".zip" in files and csv_name in table
  with open(tmp_path / "submission" / csv_name) as f:
    rows = list(csv.reader(f))
  assert rows[0] == ["videoId"] + [f"rank{r}" for r in range(1, 21)]
  assert [r[0] for r in rows[1:]] == ["vidX", "vidY"]
  # Brute-force oracle: stable ascending order of |g − probe| over the 25 gallery items.
  gal = np.array(emb[:25])
  gal_ids = labels[:25]
  for row, p in zip(rows[1:], (500.0, 2.0)):
    expect = [str(int(gal_ids[j])) for j in np.argsort(np.abs(gal - p), kind="stable")[:20]]
    assert row[1:] == expect
  # Probe at 2: 3 (id 00000, d 1), 0 (id 00000, d 2), 10 (id 00001, d 8).
  assert rows[2][1:4] == ["0", "0", "1"]
  with zipfile.ZipFile(tmp_path / "submission" / (csv_name[:-4] + ".zip")) as z:
    assert z.namelist() == [csv_name]
    assert z.read(csv_name).decode().splitlines()[0].startswith("videoId,rank1,")
  # The distractor (type 04, id 99999 at 61) joins the gallery: 12th nearest to the probe at 500.
  assert rows[1][12] == "99999"


def gait3d_set():
  # Probe P (id 1) at 0: gallery order g0 id2 (1), g1 id1 (2), g2 id3 (3), g3 id1 (4).
  # AP = (1/2 + 2/4)/2 = 0.5; INP = 2/4 = 0.5; first match at rank 2.
  # Probe Q (id 9) has no gallery match: skipped.
  emb = line([0.0, 100.0, 1.0, 2.0, 3.0, 4.0])
  labels = ["1", "9", "2", "1", "3", "1"]
  types = ["camA", "camA", "camB", "camB", "camB", "camC"]
  views = ["seq0", "seq0", "seq0", "seq1", "seq0", "seq0"]
  partition = {"TRAIN_SET": [], "TEST_SET": ["1", "2", "3", "9"], "PROBE_SET": ["1-camA-seq0", "9-camA-seq0"]}
  return emb, labels, types, views, partition


def test_gait3d_hand_worked(tmp_path):
  emb, labels, types, views, partition = gait3d_set()
  path = tmp_path / "Gait3D.json"
  path.write_text(json.dumps(partition))
  m, _ = protocols.evaluate(protocols.build("gait3d", CFG, partition=str(path)), emb, labels,
                            types, views)
  assert m["rank1"] == 0.0 and m["rank5"] == 100.0 and m["rank10"] == 100.0
  assert m["mAP"] == pytest.approx(50.0) and m["mINP"] == pytest.approx(50.0)


def test_gait3d_partition_errors(tmp_path):
  emb, labels, types, views, _ = gait3d_set()
  with pytest.raises(ValueError, match="no partition file"):
    protocols.run_protocol("gait3d", emb, labels, types, views, CFG)
  bad = tmp_path / "p.json"
  bad.write_text(json.dumps({"TRAIN_SET": [], "TEST_SET": []}))
  with pytest.raises(ValueError, match="PROBE_SET"):
    protocols.evaluate(protocols.build("gait3d", CFG, partition=str(bad)), emb, labels, types,
                       views)


def test_evaluate_rank_brute_force():
  """Reference semantics on random data: CMC over valid probes, AP, INP."""
  rng = np.random.default_rng(0)
  dist = rng.random((7, 9))
  p_ids = np.array(list("abcdxab"))
  g_ids = np.array(list("aabbccdde"))
  cmc, aps, inps = ranking.evaluate_rank(dist, p_ids, g_ids)
  exp_cmc, exp_ap, exp_inp = [], [], []
  for i in range(7):
    order = sorted(range(9), key=lambda j: (dist[i, j], j))
    hit = [g_ids[j] == p_ids[i] for j in order]
    if not any(hit):
      continue
    pos = [r for r, h in enumerate(hit) if h]
    exp_ap.append(np.mean([(n + 1) / (r + 1) for n, r in enumerate(pos)]))
    exp_inp.append(len(pos) / (pos[-1] + 1))
    exp_cmc.append([1.0 if r >= pos[0] else 0.0 for r in range(9)])
  assert len(aps) == 6  # probe 'x' skipped
  np.testing.assert_allclose(aps, exp_ap)
  np.testing.assert_allclose(inps, exp_inp)
  np.testing.assert_allclose(cmc, np.mean(exp_cmc, 0), rtol=1e-6)


def kth_like():
  """Gallery type d4-00 for ids p1 (at 0) and p2 (at 10); probes: d4-03 right for both,
  d1-00 right for p1 only, d3-00 wrong for both. Gallery sequences never become probes."""
  emb = line([0, 10, 1, 11, 2, 3, 9, 1])
  labels = ["p1", "p2", "p1", "p2", "p1", "p2", "p1", "p2"]
  types = ["d4-00", "d4-00", "d4-03", "d4-03", "d1-00", "d1-00", "d3-00", "d3-00"]
  views = ["090"] * 8
  return emb, labels, types, views


def test_custom_groups():
  cfg_kw = dict(custom_gallery="d4-00/*", custom_probes="d4=d4-*/*;d1=d1-*/*;d3=d3-*/090;d2=d2-*/*")
  cfg = _cfg(**cfg_kw)
  m, table = protocols.run_protocol("custom", *kth_like(), cfg)
  assert m["d4/probes"] == 2 and m["d4/rank1"] == 100.0 and m["d4/mAP"] == 100.0
  assert m["d1/rank1"] == 50.0 and m["d1/rank5"] == 100.0
  assert m["d1/mAP"] == pytest.approx(75.0)  # AP 1 and 1/2
  assert m["d3/rank1"] == 0.0 and m["d3/mAP"] == pytest.approx(50.0)
  assert m["d2/probes"] == 0 and np.isnan(m["d2/rank1"])
  assert np.isnan(m["mean/rank1"])  # an empty group makes the mean NaN, visibly
  m2, _ = protocols.run_protocol("custom", *kth_like(), _cfg(**dict(cfg_kw, custom_probes="d4=d4-*/*;d1=d1-*/*")))
  assert m2["mean/rank1"] == 75.0
  assert "d4" in table


def test_custom_config_errors():
  for gallery, probes, match in [("", "a=*", "custom_gallery"), ("zz/*", "a=*", "matches no sequence"),
                                 ("d4-00/*", "", "custom_probes is empty"),
                                 ("d4-00/*", "d4", "lacks '='"), ("d4-00/*", "a=*;a=*", "repeated")]:
    with pytest.raises(ValueError, match=match):
      protocols.run_protocol("custom", *kth_like(), _cfg(custom_gallery=gallery, custom_probes=probes))


def test_unknown_protocol_and_rerank_refusal():
  emb, labels, types, views = casia_set()
  with pytest.raises(ValueError, match="evaluate.protocol"):
    protocols.run_protocol("casiab", emb, labels, types, views, CFG)
  with pytest.raises(ValueError, match="rerank"):
    protocols.run_protocol("casia_b", emb, labels, types, views, _cfg(rerank=True))
  with pytest.raises(ValueError, match="labels"):
    protocols.run_protocol("grew", emb, labels[:-1], types, views, CFG)


def test_rerank_changes_grew_and_keeps_shapes():
  """With re-ranking on, the protocol still returns its metrics (values from the re-ranked matrix)."""
  rng = np.random.default_rng(5)
  n_ids = 8
  centers = rng.normal(size=(n_ids, 4, 2)) * 3
  emb = np.concatenate([centers + 0.3 * rng.normal(size=centers.shape),
                        centers + 0.3 * rng.normal(size=centers.shape)]).astype(np.float32)
  labels = [f"{i:05d}" for i in range(n_ids)] * 2
  types = ["01"] * n_ids + ["02"] * n_ids
  views = [str(i) for i in range(2 * n_ids)]
  cfg = _cfg(rerank=True, k1=4, k2=2, lambda_value=0.3)
  m, _ = protocols.run_protocol("grew", emb, labels, types, views, cfg)
  assert set(m) == {"rank1", "rank5", "rank10", "rank20"}
  assert m["rank1"] == 100.0  # well separated clusters stay right after re-ranking


def test_kth_walk_protocol_group_sizes(shared_data):
  """configs/kth_walking.py selects the KTH-walk gallery and probe groups of the data README."""
  from conftest import load_config
  c = load_config("kth_walking")
  root = os.path.join(shared_data, "kth_walking")
  with open(os.path.join(shared_data, "kth_walking.json")) as f:
    test_ids = json.load(f)["TEST_SET"]
  labels, types, views = [], [], []
  for i in test_ids:
    for t in sorted(os.listdir(os.path.join(root, i))):
      for v in sorted(os.listdir(os.path.join(root, i, t))):
        labels.append(i); types.append(t); views.append(v)
  emb = np.random.default_rng(0).normal(size=(len(labels), 2, 1)).astype(np.float32)
  m, table = protocols.run_protocol(c.evaluate.protocol, emb, labels, types, views, c.evaluate)
  assert c.evaluate.protocol == "kth_walk" and "gallery 13 sequences" in table
  assert [m[f"{g}/probes"] for g in ("d4", "d1", "d2", "d3")] == [32, 44, 37, 36]


def test_registry_finds_every_protocol_module():
  assert protocols.NAMES == ("casia_b", "custom", "gait3d", "grew", "grew_submission", "holdout",
                             "kth_walk", "oumvlp")
  for name in protocols.NAMES:
    cls = protocols.get(name)
    assert cls.name == name and (cls.headline or not cls.figures)


def test_kth_walk_is_custom_with_fixed_groups():
  """The named KTH-walk protocol gives exactly the custom protocol's table with its globs."""
  cfg = _cfg(custom_gallery="d4-00/*", custom_probes="d4=d4-*/*;d1=d1-*/*;d2=d2-*/*;d3=d3-*/*")
  named, _ = protocols.run_protocol("kth_walk", *kth_like(), CFG)
  custom, _ = protocols.run_protocol("custom", *kth_like(), cfg)
  np.testing.assert_equal(named, custom)


def test_held_out_ids_are_scored_by_the_protocol_that_can_rank_them():
  c = base_config()
  c.evaluate.protocol = "kth_walk"
  seqs = lambda types, ids: Sequences.of(ids, types, ["090"] * len(ids))  # noqa: E731
  covered = seqs(["d4-00", "d1-00", "d4-00", "d1-00"], ["a", "a", "b", "b"])
  assert protocols.for_holdout(c, covered).name == "kth_walk"
  # Id b has no d4-00 pass: each id's first sequence is its gallery instead.
  uncovered = seqs(["d4-00", "d1-00", "d1-03"], ["a", "a", "b"])
  assert protocols.for_holdout(c, uncovered).name == "holdout"
  c.evaluate.protocol = "grew"
  c.search.protocol = "casia_b"
  full = seqs(["nm-01", "nm-05", "bg-01", "cl-01"], ["a"] * 4)
  assert protocols.for_holdout(c, full).name == "casia_b"
  # Without BG and CL probes its headline (the mean of the three groups) would be NaN.
  assert protocols.for_holdout(c, seqs(["nm-01", "nm-05"], ["a", "a"])).name == "holdout"
  c.search.protocol = ""
  assert protocols.for_holdout(c, covered).name == "holdout"


def test_holdout_protocol_first_sequence_is_the_gallery():
  # Ids a (0, 1, 5) and b (10, 11, 3): probes 1 -> a right, 5 -> a wrong? |5-0|=5 < |5-10|=5
  # ties by gallery index (a first): right; 11 -> b right; 3 -> a wrong.
  emb = line([0, 10, 1, 11, 5, 3])
  labels = ["a", "b", "a", "b", "a", "b"]
  m, _ = protocols.run_protocol("holdout", emb, labels, ["x"] * 6, ["v"] * 6, _cfg(rerank=True))
  assert m["holdout/probes"] == 4 and m["holdout/rank1"] == 75.0
  assert protocols.build("holdout", CFG).fitness(m) == 75.0
  c = _cfg(custom_gallery="a/*", custom_probes="g1=b/*;g2=c/*")
  # The custom fitness is the mean over the groups that have probes.
  assert protocols.build("custom", c).fitness({"g1/rank1": 50.0, "g2/rank1": float("nan"),
                                               "mean/rank1": float("nan")}) == 50.0


def test_the_documented_new_protocol_is_one_file(tmp_path, monkeypatch):
  """docs/ARCHITECTURE.md's worked example, dropped into the package as one file, is found by
  name and evaluates: nothing else to register."""
  import re  # pylint: disable=g-import-not-at-top
  from conftest import REPO  # pylint: disable=g-import-not-at-top
  doc = open(os.path.join(REPO, "docs", "ARCHITECTURE.md")).read()
  code = re.search(r"```python\n# gait_jax/evaluation/protocols/two_days.py\n(.*?)```", doc,
                   re.S).group(1)
  (tmp_path / "two_days.py").write_text(code)
  monkeypatch.setattr(protocols, "__path__", list(protocols.__path__) + [str(tmp_path)])
  registry = protocols._discover()  # pylint: disable=protected-access
  assert set(registry) == set(protocols.NAMES) | {"two_days"}
  emb = line([0, 10, 1, 11, 9, 2])
  labels = ["a", "b", "a", "b", "a", "b"]
  types = ["day1-00", "day1-00", "day2-00", "day2-00", "day2-01", "day2-01"]
  views = ["cam1", "cam1", "cam1", "cam1", "cam2", "cam2"]
  m, table = protocols.evaluate(registry["two_days"](CFG), emb, labels, types, views)
  # cam1: 1 -> a, 11 -> b (both right); cam2: 9 -> b (wrong), 2 -> a (wrong).
  assert (m["cam1/rank1"], m["cam2/rank1"], m["mean/rank1"]) == (100.0, 0.0, 50.0)
  assert table.startswith("two_days: gallery 2 sequences")
