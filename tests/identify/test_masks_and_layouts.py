"""A user's silhouettes in any unambiguous encoding give the same aligned frames as clean
0/255 masks (0/1, 16-bit, one colour on black, grey as RGB, an alpha mask); inverted and
colour images are refused by name, in PNG folders and pkls alike. Every gallery and probe
layout is read, and what is not read is reported with why."""
import os
import pickle

import cv2
import numpy as np
import pytest

from gait_jax.identify import masks
from gait_jax.identify import sources

FRAMES = 8


def _walker(h=240, w=180, frames=FRAMES):
  """uint8 0/255 [T, H, W]: an upright ellipse body that sways, with legs."""
  out = np.zeros((frames, h, w), np.uint8)
  for t in range(frames):
    cx = w // 2 + int(10 * np.sin(t))
    cv2.ellipse(out[t], (cx, h // 2), (w // 8, h // 3), 0, 0, 360, 255, -1)
    cv2.line(out[t], (cx, h // 2), (cx - 15 + 4 * t, h - 20), 255, 12)
  return out


def _png_folder(folder, frames):
  os.makedirs(folder, exist_ok=True)
  for i, f in enumerate(frames):
    assert cv2.imwrite(os.path.join(folder, f"{i:03d}.png"), f)
  return str(folder)


CLEAN = _walker()
ENCODINGS = {
    "0/1": (CLEAN // 255).astype(np.uint8),
    "bool": CLEAN > 0,
    "16-bit": CLEAN.astype(np.uint16) * 257,
    "float 0..1": CLEAN.astype(np.float32) / 255,
    "grey as RGB": np.repeat(CLEAN[..., None], 3, axis=-1),
    "red on black": np.stack([np.zeros_like(CLEAN), np.zeros_like(CLEAN), CLEAN], -1),
    "alpha mask": np.concatenate([np.full(CLEAN.shape + (3,), 255, np.uint8),
                                  CLEAN[..., None]], -1),
}


@pytest.mark.parametrize("name", sorted(ENCODINGS))
def test_unambiguous_encodings_align_like_clean_masks(name):
  want = sources.align_frames(CLEAN, "clean")
  np.testing.assert_array_equal(sources.align_frames(ENCODINGS[name], name), want)


@pytest.mark.parametrize("name", ["0/1", "16-bit", "red on black", "alpha mask"])
def test_png_folders_of_each_encoding(tmp_path, name):
  frames = ENCODINGS[name]
  if frames.dtype == np.bool_ or frames.dtype.kind == "f":
    pytest.skip("not a PNG encoding")
  folder = _png_folder(tmp_path / "p", list(frames))
  np.testing.assert_array_equal(sources.read_image_folder(folder),
                                sources.align_frames(CLEAN, "clean"))


def test_large_01_masks_are_not_dropped_as_empty(tmp_path):
  """A 0/1 mask at 480x640: its pixel sum is under the pretreatment's 10000, so before the
  normalisation every frame was dropped as empty."""
  big = (_walker(480, 640) // 255).astype(np.uint8)
  folder = _png_folder(tmp_path / "big", list(big))
  assert sources.read_image_folder(folder).shape == (FRAMES, 64, 64)


@pytest.mark.parametrize("frames,match", [
    (255 - CLEAN, "looks inverted"),
    (np.stack([CLEAN, np.roll(CLEAN, 9, axis=2), CLEAN // 2], -1), "colour frames"),
    (CLEAN.astype(np.int32) - 1, "negative values"),
    (CLEAN.astype(np.float32) * 4, "float values"),
    (CLEAN.astype(np.int64) * 70000, "values up to"),
])
def test_what_is_not_a_silhouette_is_refused_by_name(frames, match):
  with pytest.raises(sources.InputError, match=f"clip7: {match}"):
    sources.align_frames(frames, "clip7")


def test_the_same_rule_for_pkls(tmp_path):
  seq = tmp_path / "g" / "00001" / "nm-01" / "090"
  seq.mkdir(parents=True)
  with open(seq / "090.pkl", "wb") as f:
    pickle.dump(ENCODINGS["0/1"], f)
  np.testing.assert_array_equal(sources.read_pkl_folder(str(seq)),
                                sources.align_frames(CLEAN, "clean"))
  with open(seq / "090.pkl", "wb") as f:
    pickle.dump(255 - CLEAN, f)
  with pytest.raises(ValueError, match="090.pkl: looks inverted"):
    sources.read_pkl_folder(str(seq))


def test_every_gallery_layout_is_read(tmp_path):
  """pkl and PNG people mixed, flat `<id>/*.png`, `<id>/<seq>/<cam>/*.png`, `*.PNG`; stray
  files are reported, not silently dropped."""
  g = tmp_path / "gallery"
  frames = list(CLEAN)
  seq = g / "pkl_person" / "nm-01" / "090"
  seq.mkdir(parents=True)
  with open(seq / "090.pkl", "wb") as f:
    pickle.dump(CLEAN, f)
  _png_folder(g / "png_person" / "walk1", frames)
  _png_folder(g / "flat_person", frames)
  _png_folder(g / "nested_person" / "s1" / "cam2", frames)
  upper = _png_folder(g / "upper_person" / "s1", frames)
  for n in os.listdir(upper):
    os.rename(os.path.join(upper, n), os.path.join(upper, n.upper().replace(".PNG", ".PNG")))
  (g / "notes.txt").write_text("not a person")
  (g / "png_person" / "readme.md").write_text("hi")
  (g / "empty_person").mkdir()
  found = sources.gallery_sequences(str(g))
  names = sorted((s.id, s.name) for s in found.sequences)
  assert names == [("flat_person", "flat_person"), ("nested_person", "nested_person/s1/cam2"),
                   ("pkl_person", "pkl_person/nm-01/090"), ("png_person", "png_person/walk1"),
                   ("upper_person", "upper_person/s1")]
  usable, skipped = sources.load_usable(found)
  assert len(usable) == 5
  why = {os.path.basename(p): w for p, w in skipped}
  assert why == {"notes.txt": "not inside an <id> folder (the folder name is the id)",
                 "readme.md": "not a silhouette image, pkl or video",
                 "empty_person": "no silhouette images, pkls or videos below it"}


def test_probe_layouts_and_stray_images(tmp_path):
  p = tmp_path / "probes"
  _png_folder(p / "a", list(CLEAN))
  _png_folder(p / "cam1" / "b", list(CLEAN))
  cv2.imwrite(str(p / "stray.png"), CLEAN[0])
  found = sources.probe_sequences(str(p))
  assert sorted(s.name for s in found.sequences) == ["a", "cam1/b"]
  assert [(os.path.basename(x), w.split(",")[0]) for x, w in found.skipped] == [
      ("stray.png", "an image directly under the probe root")]
  one = sources.probe_sequences(str(p / "a"))  # one folder of frames is one probe
  assert [s.name for s in one.sequences] == ["a"] and not one.skipped


def test_masks_module_rule_on_single_frames():
  assert masks.normalise([], "x") == []
  with pytest.raises(masks.MaskError, match="x: frames of shape"):
    masks.normalise([np.zeros((4, 4, 5), np.uint8)], "x")
