"""KTH-like degradations of the walker generator: each effect does what it says, the kth
profile changes the data and stays deterministic, and the clean profile is untouched."""
import hashlib

import numpy as np
import pytest

from gait_jax.synthetic import degrade, walkers


def _settings(**kw):
  s = dict(height0=200.0, height1=200.0, band=False, band_top=0.4, band_size=0.2,
           band_run=0.5, mirror=False)
  s.update(kw)
  return s


def _body(T=10, H=100, W=60):
  mask = np.zeros((H, W, T), bool)
  mask[10:90, 20:40] = True  # a 80-row "body"
  mask[10:90, 45] = True  # a one-pixel-wide "limb"
  return mask


def test_no_effect_settings_leave_the_mask_as_it_is():
  mask = _body()
  np.testing.assert_array_equal(degrade.apply(mask, _settings(), np.random.default_rng(0)),
                                mask)


def test_missing_band_lasts_a_run_of_frames_at_a_fixed_body_height():
  mask = _body(T=10)
  out = degrade.apply(mask, _settings(band=True, band_run=0.5), np.random.default_rng(0))
  lost = (mask & ~out).any((0, 1))
  assert lost.sum() == 5 and np.all(np.diff(np.flatnonzero(lost)) == 1)  # one run
  rows = np.flatnonzero((mask & ~out)[..., np.flatnonzero(lost)[0]].any(1))
  # top 10 + 0.4 * 80 = 42, 0.2 * 80 = 16 rows
  assert rows[0] == 42 and len(rows) == 16
  assert not (out & ~mask).any()


def test_mirror_flips_left_and_right():
  mask = _body()
  out = degrade.apply(mask, _settings(mirror=True), np.random.default_rng(0))
  np.testing.assert_array_equal(out, mask[:, ::-1])


def test_low_resolution_loses_thin_detail_and_zoom_changes_it_over_time():
  mask = _body(T=8)
  low = degrade.apply(mask, _settings(height0=25.0, height1=25.0), np.random.default_rng(0))
  assert not low[:, 45].any()  # the one-pixel limb is gone
  assert low[20:80, 25:35].all()  # the body stays
  zoom = degrade.apply(mask, _settings(height0=25.0, height1=100.0), np.random.default_rng(0))
  assert not zoom[50, 45, 0] and zoom[50, 45, -1]  # sharp again at full resolution


def test_kth_profile_differs_is_deterministic_and_leaves_clean_bytes_alone():
  clean = walkers.render_views(1, "00001", "nm-01", ["090"], 24)["090"]
  kth = walkers.render_views(1, "00001", "nm-01", ["090"], 24, profile="kth")["090"]
  again = walkers.render_views(1, "00001", "nm-01", ["090"], 24, profile="kth")["090"]
  np.testing.assert_array_equal(kth, again)
  assert kth.dtype == np.uint8 and kth.shape[1:] == (64, 64) and len(kth) > 10
  assert set(np.unique(kth)) <= {0, 255}
  assert clean.shape != kth.shape or not np.array_equal(clean, kth)
  # The clean profile draws no extra numbers: its sequence is the same as without the option.
  np.testing.assert_array_equal(
      clean, walkers.render_views(1, "00001", "nm-01", ["090"], 24, profile="clean")["090"])


def test_sampled_settings_cover_both_directions_zoom_and_bands():
  draws = [degrade.sample(np.random.default_rng(i)) for i in range(400)]
  mirror = np.mean([d["mirror"] for d in draws])
  zoom = np.mean([d["height0"] != d["height1"] for d in draws])
  band = np.mean([d["band"] for d in draws])
  assert 0.4 < mirror < 0.6 and 0.2 < zoom < 0.4 and 0.3 < band < 0.5
  heights = np.array([[d["height0"], d["height1"]] for d in draws])
  assert heights.min() >= 40 * np.exp(-0.7) - 1e-9 and heights.max() <= 100 * np.exp(0.7) + 1e-9


def test_unknown_profile_is_refused(tmp_path):
  with pytest.raises(ValueError, match="profile='foggy'"):
    walkers.generate(str(tmp_path / "w"), ids=2, seqs_per_id=1, profile="foggy")


def test_make_walkers_cli_profile(tmp_path):
  import subprocess
  import sys
  from conftest import REPO
  out = tmp_path / "w"
  proc = subprocess.run([sys.executable, "tools/make_walkers.py", "--out", str(out), "--ids", "2",
                         "--seqs-per-id", "1", "--views", "090", "--frames", "12",
                         "--profile", "kth"], cwd=REPO, capture_output=True, text=True)
  assert proc.returncode == 0, proc.stderr
  sums = {str(p.relative_to(out)): hashlib.sha1(p.read_bytes()).hexdigest() for p in out.rglob("*.pkl")}
  assert len(sums) == 2


def _footage(**kw):
  s = dict(merge=0.0, thin=0.0, lost=False, lost_top=0.25, lost_size=0.5, patch=False,
           patch_w=0.25, patch_h=0.25, patch_top=0.5, patch_left=False, patch_run=0.5)
  s.update(kw)
  return s


def _legs(T=6, H=120, W=80):
  """Two 8-pixel legs 4 pixels apart under a 20-pixel trunk: a 100-row body."""
  mask = np.zeros((H, W, T), bool)
  mask[10:60, 30:50] = True
  mask[60:110, 30:38] = True
  mask[60:110, 42:50] = True
  return mask


def test_footage_without_effects_leaves_the_mask_as_it_is():
  mask = _legs()
  out = degrade.apply_footage(mask, _footage(), np.random.default_rng(0))
  np.testing.assert_array_equal(out, mask)


def test_merged_limbs_close_the_gap_between_legs_and_swell_the_outline():
  mask = _legs()
  out = degrade.apply_footage(mask, _footage(merge=0.1), np.random.default_rng(0))
  assert not mask[80, 38:42].any() and out[80, 38:42].all()  # the gap between the legs
  assert out[80, 29].all() and out[80, 50].all() and out[9, 35].all()  # swollen outward
  assert (out & mask).sum() == mask.sum()  # nothing of the body lost


def test_thin_bodies_lose_their_outline():
  mask = _legs()
  mask[60:110, 60] = True  # a one-pixel limb
  out = degrade.apply_footage(mask, _footage(thin=0.03), np.random.default_rng(0))
  assert not out[60:110, 60].any() and out[30, 35:45].all()
  assert not (out & ~mask).any() and out.sum() < mask.sum()


def test_a_lost_part_is_missing_in_every_frame_at_the_same_body_height():
  mask = _legs()
  out = degrade.apply_footage(mask, _footage(lost=True), np.random.default_rng(0))
  lost_rows = np.flatnonzero((mask & ~out).any((1, 2)))
  # top 10 + 0.25 * 100 = 35, 0.5 * 100 = 50 rows, in every frame
  assert lost_rows[0] == 35 and len(lost_rows) == 50
  assert (mask & ~out).any((0, 1)).all() and not (out & ~mask).any()


def test_a_background_patch_sticks_to_the_body_for_a_run_of_frames():
  mask = _legs(T=10)
  out = degrade.apply_footage(mask, _footage(patch=True), np.random.default_rng(0))
  added = out & ~mask
  frames = np.flatnonzero(added.any((0, 1)))
  assert len(frames) == 5 and np.all(np.diff(frames) == 1)
  cols = np.flatnonzero(added.any((0, 2)))
  rows = np.flatnonzero(added.any((1, 2)))
  # right of the body (its last column 49), 25 x 25 pixels from row 10 + 0.5 * 100 = 60
  assert cols[0] == 50 and len(cols) == 25 and rows[0] == 60 and len(rows) == 25
  left = degrade.apply_footage(mask, _footage(patch=True, patch_left=True),
                               np.random.default_rng(0))
  assert np.flatnonzero((left & ~mask).any((0, 2)))[-1] == 29  # left of column 30


def test_footage_settings_are_drawn_at_their_rates():
  draws = [degrade.sample_footage(np.random.default_rng(i)) for i in range(400)]
  for key, low, high in (("merge", 0.25, 0.45), ("thin", 0.12, 0.28), ("lost", 0.17, 0.33),
                         ("patch", 0.22, 0.38)):
    assert low < np.mean([bool(d[key]) for d in draws]) < high, key


def test_footage_profile_is_deterministic_and_leaves_the_kth_draws_alone():
  kth = walkers.render_views(3, "00002", "nm-01", ["090"], 24, profile="kth")["090"]
  changed = 0
  for sid in ("00001", "00002", "00003", "00004"):
    a = walkers.render_views(3, sid, "nm-01", ["090"], 24, profile="footage")["090"]
    b = walkers.render_views(3, sid, "nm-01", ["090"], 24, profile="footage")["090"]
    np.testing.assert_array_equal(a, b)
    k = walkers.render_views(3, sid, "nm-01", ["090"], 24, profile="kth")["090"]
    changed += a.shape != k.shape or not np.array_equal(a, k)
  assert changed >= 1
  np.testing.assert_array_equal(
      kth, walkers.render_views(3, "00002", "nm-01", ["090"], 24, profile="kth")["090"])


def test_cv2_filters_over_more_frames_than_cv2_takes_channels_equal_frame_by_frame():
  import cv2
  from gait_jax.synthetic import render
  rng = np.random.default_rng(0)
  stack = (rng.random((40, 30, 1100)) > 0.5).astype(np.uint8) * 255  # 3 chunks of <= 512
  np.testing.assert_array_equal(
      render.cv2_frames(lambda a: cv2.blur(a, (5, 5)), stack),
      np.stack([cv2.blur(stack[..., t], (5, 5)) for t in range(1100)], -1))
  one = render.cv2_frames(lambda a: cv2.blur(a, (5, 5)), stack[..., :1])  # cv2 drops the axis
  assert one.shape == (40, 30, 1)
