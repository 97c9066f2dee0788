"""tools/gei_baseline.py: GEIs + nearest neighbour through the shared evaluation protocols."""
import os

import numpy as np
import pytest

from conftest import load_tool
from gait_jax.synthetic import walkers


gei_baseline = load_tool("gei_baseline")


def test_gei_is_the_mean_of_the_cut_frames():
  seq = np.zeros((2, 64, 64), np.uint8)
  seq[0, :, 10] = 255  # first kept column, on in one of two frames
  seq[:, :, 9] = 255  # cut away
  seq[:, 5, 53] = 255  # last kept column, on in both frames
  g = gei_baseline.gei(seq)
  assert g.shape == (64, 44) and g.dtype == np.float32
  assert np.allclose(g[:, 0], 0.5)
  assert g[5, 43] == 1.0 and g[4, 43] == 0.0
  assert g.sum() == pytest.approx(64 * 0.5 + 1.0)
  with pytest.raises(ValueError, match="expected a silhouette sequence"):
    gei_baseline.gei(np.zeros((0, 64, 64), np.uint8))


def test_flip_aware_geis_ignore_the_walking_direction():
  class Mirrored:
    """A dataset of two sequences, the second the mirror image of the first."""
    def __init__(self, seq):
      self.seqs = [seq, np.ascontiguousarray(seq[:, :, ::-1])]
      self.ids = self.types = self.views = np.array(["a", "b"])

    def __len__(self):
      return 2

    def load(self, i):
      return [self.seqs[i]]

  rng = np.random.default_rng(0)
  seq = ((rng.random((5, 64, 64)) < 0.3) * 255).astype(np.uint8)
  plain = gei_baseline.dataset_geis(Mirrored(seq))["emb"]
  flip = gei_baseline.dataset_geis(Mirrored(seq), flip=True)["emb"]
  assert not np.allclose(plain[0], plain[1])
  np.testing.assert_array_equal(flip[0], flip[1])  # (g + mirror g) / 2 is the same sum
  np.testing.assert_allclose(flip[0], (plain[0] + plain[1]) / 2, rtol=1e-6)


def test_eval_config_names_the_protocol():
  cfg = gei_baseline.eval_config("kth_walk")
  assert cfg.protocol == "kth_walk" and cfg.metric == "euc"
  cfg = gei_baseline.eval_config("custom", metric="cos", custom_gallery="a/*",
                                 custom_probes="b=b/*")
  assert (cfg.protocol, cfg.metric, cfg.custom_gallery, cfg.custom_probes) == (
      "custom", "cos", "a/*", "b=b/*")


@pytest.fixture(scope="module")
def easy_set(tmp_path_factory):
  # One side view, all ids in the test split: same-view identification is the easy case.
  out = str(tmp_path_factory.mktemp("gei") / "w")
  walkers.generate(out, ids=5, seqs_per_id=10, views="090", frames=20, seed=0, train_ids=0)
  return out


def test_casia_b_protocol_on_walkers(easy_set):
  metrics, table, n = gei_baseline.run(easy_set, easy_set + ".json", "casia_b")
  assert n == 50
  for group in ("NM", "BG", "CL"):
    for k in range(1, 6):
      assert f"{group}/rank{k}_include" in metrics
  assert "NM" in table and "CL" in table
  # Five people: chance is 20 %; the same view and condition must do clearly better,
  # and Rank-5 covers the whole gallery.
  assert metrics["NM/rank1_include"] >= 50.0
  assert metrics["NM/rank5_include"] == 100.0
  assert 0.0 <= metrics["CL/rank1_include"] <= 100.0


def test_cli_writes_json(easy_set, tmp_path):
  out = str(tmp_path / "m.json")
  metrics = gei_baseline.main(["--root", easy_set, "--partition", easy_set + ".json",
                               "--protocol", "casia_b", "--out", out])
  import json
  with open(out) as f:
    assert json.load(f)["NM/rank1_include"] == metrics["NM/rank1_include"]
  with pytest.raises(SystemExit):
    gei_baseline.main(["--root", easy_set, "--partition", easy_set + ".json",
                       "--protocol", "nonsense"])


def test_kth_walk_on_real_silhouettes(shared_data):
  root = os.path.join(shared_data, "kth_walking")
  metrics, _, n = gei_baseline.run(root, root + ".json", "kth_walk")
  assert n == 162  # test ids person13-25 (README of ../shared/data)
  assert metrics["d4/probes"] == 32 and metrics["d1/probes"] == 44
  assert metrics["d2/probes"] == 37 and metrics["d3/probes"] == 36
  # Same indoor scenario: well above the 1/13 chance.
  assert metrics["d4/rank1"] > 100 / 13 * 2
