"""Transform geometry against hand-worked pixel positions, probabilities and composition."""
import numpy as np
import pytest

from gait_jax.data import transforms as T


def column_ramp(frames=2, h=64, w=64):
  return np.broadcast_to(np.arange(w, dtype=np.uint8), (frames, h, w)).copy()


def one_pixel(r, c, h=64, w=44, dtype=np.float32):
  x = np.zeros((1, h, w), dtype)
  x[0, r, c] = 1
  return x


def test_base_sil_cutting_columns_and_scale():
  out = T.base_sil_cutting(column_ramp())
  assert out.dtype == np.float32 and out.shape == (2, 64, 44)
  np.testing.assert_allclose(out[0, 0] * 255, np.arange(10, 54), atol=1e-4)
  full = T.base_sil_cutting(np.full((1, 64, 64), 255, np.uint8))
  assert full.min() == 1.0 and full.max() == 1.0
  assert T.cut_width(np.zeros((1, 128, 128))).shape == (1, 128, 88)  # (128 // 64) * 10 = 20


def test_flip():
  x = T.base_sil_cutting(column_ramp())
  np.testing.assert_array_equal(T.rotate_flip_frames(x, 0.0, rotate=False, flip=True),
                                x[..., ::-1])


def test_pil_rotate_90_about_exact_centre():
  # Centre (22, 32) in (x, y); pixel centre (c+.5, r+.5). 90° counter-clockwise:
  # r' = 53 - c, c' = r - 10, so (32, 30) -> (23, 22).
  out = T.rotate_flip_frames(one_pixel(32, 30), 90.0, rotate=True, flip=False)
  assert out.dtype == np.float32
  np.testing.assert_array_equal(np.argwhere(out[0]), [[23, 22]])


def test_flip_happens_before_rotate():
  # Flip: (32, 30) -> (32, 13); then rotate 90°: -> (53 - 13, 32 - 10) = (40, 22).
  out = T.rotate_flip_frames(one_pixel(32, 30), 90.0, rotate=True, flip=True)
  np.testing.assert_array_equal(np.argwhere(out[0]), [[40, 22]])


def test_random_rotate_flip_draws():
  seq = ((np.random.default_rng(0).random((3, 64, 64)) < 0.4) * 255).astype(np.uint8)
  fn = T.random_rotate_flip()
  outs = [fn(seq, np.random.default_rng(s)) for s in range(40)]
  cut = T.base_sil_cutting(seq)
  assert all(o.shape == (3, 64, 44) and o.dtype == np.float32 for o in outs)
  assert all(set(np.unique(o)) <= {0.0, 1.0} for o in outs)  # nearest keeps binary values
  unchanged = sum(np.array_equal(o, cut) for o in outs)
  flipped_only = sum(np.array_equal(o, cut[..., ::-1]) for o in outs)
  assert 0 < unchanged < 40 and 0 < flipped_only < 40  # p = 0.5 each: ~1/4 of draws each


def test_perspective_identity_and_stretch():
  seq = ((np.random.default_rng(0).random((2, 64, 64)) < 0.5) * 255).astype(np.uint8)
  same = T.perspective_warp(seq, [(0, 0), (64, 0), (64, 64), (0, 64)])
  assert same.dtype == np.uint8
  np.testing.assert_array_equal(same, seq)
  # Columns x in [10, 54] stretched over [0, 64]: output column x' samples 10 + x' * 44 / 64.
  ramp = column_ramp().astype(np.float32)
  out = T.perspective_warp(ramp, [(10, 0), (54, 0), (54, 64), (10, 64)])
  np.testing.assert_allclose(out[0, 5, :60], 10 + np.arange(60) * 44 / 64, atol=1e-3)


def test_random_perspective_probability_and_range():
  seq = column_ramp(1).astype(np.float32)
  fn = T.random_perspective(prob=1.0)
  for s in range(10):
    out = fn(seq, np.random.default_rng(s))
    # Left corners come from [0, 10), right ones from [54, 64): column 0 samples in [0, 10).
    assert 0 <= out[0, 0, 0] < 10 and out.shape == seq.shape
  assert T.random_perspective(prob=0.0)(seq, np.random.default_rng(0)) is seq
  hits = sum(not np.array_equal(T.random_perspective()(seq, np.random.default_rng(s)), seq)
             for s in range(1000))
  assert 150 < hits < 250  # p = 0.2


def test_random_horizontal_flip():
  x = T.base_sil_cutting(column_ramp())
  np.testing.assert_array_equal(T.random_horizontal_flip(1.0)(x, np.random.default_rng(0)),
                                x[..., ::-1])
  flips = sum(T.random_horizontal_flip()(x, np.random.default_rng(s))[0, 0, 0] != x[0, 0, 0]
              for s in range(1000))
  assert 150 < flips < 250


def test_cv2_rotate_uses_swapped_centre():
  # Centre passed as (x, y) = (h // 2, w // 2) = (32, 22). 90°: x' = 32 + (y - 22),
  # y' = 22 - (x - 32); pixel (r=30, c=20) -> (r'=34, c'=40).
  out = T.rotate_frames(one_pixel(30, 20), 90.0)
  np.testing.assert_array_equal(np.argwhere(out[0] > 0.5), [[34, 40]])
  np.testing.assert_allclose(out.max(), 1.0, atol=1e-6)
  # (x=32, y=22), i.e. row 22 column 32, is the fixed point, not the image centre.
  fixed = T.rotate_frames(one_pixel(22, 32), 37.0)
  assert fixed[0, 22, 32] == pytest.approx(1.0, abs=1e-3)
  moved = T.rotate_frames(one_pixel(32, 22), 37.0)
  assert moved[0, 32, 22] < 0.5


def test_random_rotate_probability():
  x = one_pixel(30, 20)
  assert T.random_rotate(0.0)(x, np.random.default_rng(0)) is x
  rotated = T.random_rotate(1.0)(x, np.random.default_rng(0))
  assert not np.array_equal(rotated, x)


def test_build_transform_composition_and_errors():
  seq = ((np.random.default_rng(0).random((4, 64, 64)) < 0.4) * 255).astype(np.uint8)
  fn = T.build_transform("random_perspective,base_sil_cutting,random_horizontal_flip,"
                         "random_rotate")
  out = fn(seq, np.random.default_rng(1))
  assert out.shape == (4, 64, 44) and out.dtype == np.float32
  assert 0.0 <= out.min() and out.max() <= 1.0
  np.testing.assert_array_equal(T.build_transform()(seq, None), T.base_sil_cutting(seq))
  cut8 = T.build_transform("base_sil_cutting", uint8=True)(seq, None)
  assert cut8.dtype == np.uint8 and cut8.shape == (4, 64, 44)
  np.testing.assert_array_equal(cut8, seq[..., 10:54])
  with pytest.raises(ValueError, match="unknown transform 'blur'"):
    T.build_transform("base_sil_cutting,blur")
  with pytest.raises(ValueError, match="exactly one of"):
    T.build_transform("random_rotate")
  with pytest.raises(ValueError, match="exactly one of"):
    T.build_transform("random_rotate_flip,base_sil_cutting")
  with pytest.raises(ValueError, match="uint8 output needs"):
    T.build_transform("random_rotate_flip", uint8=True)


def test_rotation_map_equals_pil_on_float_frames():
  # The index-map shortcut must equal rotating each 32-bit float frame with PIL itself.
  from PIL import Image
  rng = np.random.default_rng(0)
  x = (rng.random((3, 64, 44)) < 0.4).astype(np.float32)
  for angle in [*rng.uniform(-10, 10, 20), 45.0, -90.0]:
    ref = np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(f)).rotate(
        float(angle), resample=Image.NEAREST)) for f in x[..., ::-1]])
    np.testing.assert_array_equal(T.rotate_flip_frames(x, angle, rotate=True, flip=True), ref)


def body(frames=3, h=64, w=64):
  """A 0/255 block body: rows 8..55, columns 24..39 (16 wide), the same in every frame."""
  x = np.zeros((frames, h, w), np.uint8)
  x[:, 8:56, 24:40] = 255
  return x


def test_reshape_body_dilates_erodes_where_asked():
  x = body()
  wider = T.reshape_body(x, morph=1, kernel=(1, 3))  # one column more on each side
  assert wider.dtype == np.uint8 and wider.shape == x.shape
  np.testing.assert_array_equal(np.nonzero(wider[0, 30])[0], np.arange(23, 41))
  np.testing.assert_array_equal(np.nonzero(wider[:, :, 30].any(axis=0))[0], np.arange(8, 56))
  thinner = T.reshape_body(x, morph=-1, kernel=(3, 3))  # one pixel less on every side
  np.testing.assert_array_equal(np.argwhere(thinner[1])[[0, -1]], [[9, 25], [54, 38]])
  lower = T.reshape_body(x, morph=1, kernel=(1, 5), rows=slice(32, 64))  # a skirt or coat
  np.testing.assert_array_equal(lower[:, :32], x[:, :32])
  np.testing.assert_array_equal(np.nonzero(lower[2, 40])[0], np.arange(22, 42))
  for out in (wider, thinner, lower):  # one change for the whole sequence
    assert all(np.array_equal(out[0], f) for f in out)


def test_reshape_body_stretches_about_the_centre():
  x = body()
  for scale in (0.75, 1.25):
    out = T.reshape_body(x, width_scale=scale)
    cols = np.nonzero(out[0, 30] > 127)[0]
    assert len(cols) == pytest.approx(16 * scale, abs=1.5)
    assert (cols[0] + cols[-1]) / 2 == pytest.approx(31.5, abs=0.6)  # centred as before
    np.testing.assert_array_equal(out[:, :8], 0)  # rows unchanged: only the width moves
  np.testing.assert_array_equal(T.reshape_body(x), x)


def test_random_body_shape_draws():
  seq = body(4)
  assert T.random_body_shape(prob=0.0)(seq, np.random.default_rng(0)) is seq
  fn = T.random_body_shape()
  np.testing.assert_array_equal(fn(seq, np.random.default_rng(7)),
                                fn(seq, np.random.default_rng(7)))  # seeded
  rng = np.random.default_rng(0)
  outs = [fn(seq, rng) for _ in range(400)]
  area = np.array([o[0].astype(np.float64).sum() for o in outs]) / seq[0].astype(np.float64).sum()
  untouched = sum(o is seq for o in outs)
  assert 70 < untouched < 130  # neither change drawn: p = 0.25
  assert area.min() < 0.9 and area.max() > 1.15  # thinner and broader bodies both occur
  assert all(o.shape == seq.shape and o.dtype == np.uint8 for o in outs)
  out = T.build_transform("random_horizontal_flip,random_body_shape,base_sil_cutting")(
      seq, np.random.default_rng(3))
  assert out.shape == (4, 64, 44) and out.dtype == np.float32 and out.max() <= 1.0
