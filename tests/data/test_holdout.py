import pytest

import json
import os

import ml_collections

from gait_jax.data import holdout
from gait_jax.data.holdout import split_train_ids

IDS = [f"{i:05d}" for i in range(1, 41)]


def test_default_is_ten_percent_seeded_and_disjoint():
  train, val = split_train_ids(IDS, "", seed=0)
  assert len(val) == 4 and len(train) == 36
  assert not set(train) & set(val) and set(train) | set(val) == set(IDS)
  assert split_train_ids(IDS, "", seed=0) == (train, val)
  assert split_train_ids(IDS, "", seed=1)[1] != val
  assert val == sorted(val, key=IDS.index)  # original order kept


def test_count_and_list():
  assert len(split_train_ids(IDS, "7", seed=3)[1]) == 7
  train, val = split_train_ids(IDS, "00003, 00001", seed=0)
  assert val == ["00001", "00003"] and "00001" not in train


def test_min_two_ids_for_small_sets():
  assert len(split_train_ids(IDS[:6], "", seed=0)[1]) == 2


@pytest.mark.parametrize("spec,match", [("nobody,00001", "not training ids"),
                                        ("40", "between 2 and 39"), ("0", "between 2"),
                                        ("1", "between 2 and 39"), ("00001,", "names 1 id")])
def test_bad_specs_name_the_key(spec, match):
  with pytest.raises(ValueError, match=match):
    split_train_ids(IDS, spec, seed=0)


def test_default_spec_error_quotes_what_the_user_set():
  # The user set nothing: the message must not invent "search.val_ids=2".
  with pytest.raises(ValueError, match=r'search.val_ids="" \(the default: 10 %, at least 2, = 2 '
                                       r'ids\): need between 2 and 1 held-out ids out of 2'):
    split_train_ids(IDS[:2], "", seed=0)


def _config(root="r", partition="p.json", val_ids="2", path=""):
  return ml_collections.ConfigDict(dict(
      seed=0, search=dict(val_ids=val_ids), model=dict(path=path),
      data=dict(format="pkl", root=root, partition=partition)))


def test_a_workdir_that_trained_on_every_id_cannot_hold_ids_out_later(tmp_path):
  """A fixed-path workdir trained with eval_on=test has no holdout.json: resuming it with
  eval_on=holdout would validate on ids it trained on."""
  workdir = str(tmp_path / "w")
  os.makedirs(workdir)
  with pytest.raises(ValueError, match="its weights have seen every training id"):
    holdout.supernet_split(_config(path="0,5,0,1"), IDS, workdir, resumed=True,
                           fixed_path=True)
  assert not os.path.exists(os.path.join(workdir, holdout.HOLDOUT_FILE))  # nothing false written
  holdout.record_trained_on_all(workdir, "imported from x.pt")
  for fixed in (False, True):
    with pytest.raises(ValueError, match="imported from x.pt"):
      holdout.supernet_split(_config(), IDS, workdir, resumed=True, fixed_path=fixed)


def test_search_over_a_supernet_that_held_nothing_out_is_refused(tmp_path):
  workdir = str(tmp_path / "imported")
  holdout.record_trained_on_all(workdir, "imported from ref.pt")
  with pytest.raises(ValueError, match=r"trained on every training id \(imported from ref.pt\)"):
    holdout.search_split(_config(), IDS, workdir)


def test_init_from_a_model_that_saw_the_held_out_ids_is_refused(tmp_path):
  source = tmp_path / "src"
  source.mkdir()
  data = {"root": str(tmp_path / "data"), "partition": str(tmp_path / "data.json")}
  (source / "config.json").write_text(json.dumps({"data": data, "model": {"path": "0,5,0,1"},
                                                  "search": {"val_ids": ""}, "seed": 0}))
  cfg = _config(root=data["root"], partition=data["partition"])
  with pytest.raises(ValueError, match="trained on 2 of the ids this run would hold out"):
    holdout.check_unseen(IDS[:2], str(source), cfg, IDS)
  # Other data (walkers -> KTH): nothing to check.
  holdout.check_unseen(IDS[:2], str(source), _config(root=str(tmp_path / "other")), IDS)
  # The same TFDS dataset (its partition inside, none given) is the same data.
  tfds_data = {"format": "tfds", "root": str(tmp_path / "tfds"), "partition": ""}
  (source / "config.json").write_text(json.dumps({"data": tfds_data, "model": {"path": "0,5,0,1"},
                                                  "search": {"val_ids": ""}, "seed": 0}))
  tfds_cfg = _config(root=tfds_data["root"], partition="")
  tfds_cfg.data.format = "tfds"
  with pytest.raises(ValueError, match="trained on 2 of the ids this run would hold out"):
    holdout.check_unseen(IDS[:2], str(source), tfds_cfg, IDS)
  holdout.check_unseen(IDS[:2], str(source), _config(root=tfds_data["root"], partition=""), IDS)
  (source / "config.json").write_text(json.dumps({"data": data, "model": {"path": "0,5,0,1"},
                                                  "search": {"val_ids": ""}, "seed": 0}))
  # A source that recorded these ids as held out never saw them.
  (source / holdout.HOLDOUT_FILE).write_text(json.dumps({"train_ids": IDS[2:],
                                                         "held_out_ids": IDS[:2]}))
  holdout.check_unseen(IDS[:2], str(source), cfg, IDS)
