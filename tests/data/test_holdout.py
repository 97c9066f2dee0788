import pytest

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


@pytest.mark.parametrize("spec,match", [("nobody,00001", "not training ids"), ("40", "between 1 and 39"),
                                        ("0", "between 1")])
def test_bad_specs_name_the_key(spec, match):
  with pytest.raises(ValueError, match=match):
    split_train_ids(IDS, spec, seed=0)


def test_default_spec_error_quotes_what_the_user_set():
  # The user set nothing: the message must not invent "search.val_ids=2".
  with pytest.raises(ValueError, match=r'search.val_ids="" \(the default: 10 %, at least 2, = 2 '
                                       r'ids\): need between 1 and 1 held-out ids out of 2'):
    split_train_ids(IDS[:2], "", seed=0)
