"""enroll / identify from the three input kinds (pkl tree, PNG folders of any size, videos)
with a tiny model; videos identify about as well as the clean pkls of the same walkers; the
gallery only grows with the model that made it; bad input is named; the Recognizer API."""
import glob
import os
import pickle
import shutil

import cv2
import numpy as np
import pytest

from conftest import load_config
from helpers.shared_files import built_once
from gait_jax.identify import Recognizer
from gait_jax.identify import mode
from gait_jax.identify import sources
from gait_jax.modes import train
from helpers import walker_video as synthetic_video
from gait_jax.synthetic import walkers

IDS = 8
TRAIN_STEPS = 60


def _config(**identify):
  c = load_config("test_tiny").unlock()
  c.model.path = "0,5,0,1"
  for k, v in identify.items():
    c.identify[k] = v
  return c.lock()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
  """A tiny retrained path that tells walkers apart: trained on walkers other than the people
  below (ids 9-24 of the same generator; the people are ids 1-8)."""
  return str(built_once(tmp_path_factory, "identify-model", _train) / "model")


def _train(root):
  data = walkers.generate(str(root / "walk"), ids=IDS + 16, seqs_per_id=2, views=("090",),
                          frames=30, seed=1, train_ids=IDS + 16)
  c = _config().unlock()
  c.data.root, c.data.partition = data["root"], data["partition"]
  c.data.frames = 12
  c.model.class_num = IDS + 16
  c.train.total_steps, c.train.save_every, c.train.log_every = TRAIN_STEPS, TRAIN_STEPS, 50
  c.optim.milestones = (TRAIN_STEPS,)
  train.run(c.lock(), str(root / "model"))


def _pkl(path):
  with open(path, "rb") as f:
    return pickle.load(f)


@pytest.fixture(scope="module")
def people(tmp_path_factory):
  """The same walkers (nm-01 enrolled, nm-02 probed) as pkl trees, PNG folders at 2× size
  and videos."""
  root = built_once(tmp_path_factory, "identify-people", _make_people)
  return {kind: (str(root / kind / "gallery"), str(root / kind / "probes"))
          for kind in ("pkl", "png", "video")}


def _make_people(root):
  walk = walkers.generate(str(root / "walk"), ids=IDS, seqs_per_id=2, views=("090",),
                          frames=40, seed=0)["root"]
  kinds = {}
  for kind in ("pkl", "png", "video"):
    kinds[kind] = (str(root / kind / "gallery"), str(root / kind / "probes"))
  for sid in walkers.id_names(IDS):
    for seq_type, role in (("nm-01", 0), ("nm-02", 1)):
      src = os.path.join(walk, sid, seq_type)
      pkl_dest = os.path.join(kinds["pkl"][role], sid, seq_type)
      shutil.copytree(src, pkl_dest)
      frames = _pkl(os.path.join(src, "090", "090.pkl"))
      png_dir = (os.path.join(kinds["png"][0], sid, seq_type) if role == 0
                 else os.path.join(kinds["png"][1], f"{sid}_{seq_type}"))
      os.makedirs(png_dir)
      for i, f in enumerate(frames):
        cv2.imwrite(os.path.join(png_dir, f"{i:03d}.png"),
                    cv2.resize(f, (128, 128), interpolation=cv2.INTER_NEAREST))
      vid = (os.path.join(kinds["video"][0], sid, f"{seq_type}.avi") if role == 0
             else os.path.join(kinds["video"][1], f"{sid}_{seq_type}.avi"))
      os.makedirs(os.path.dirname(vid), exist_ok=True)
      synthetic_video.make_walker_video(vid, 0, sid, seq_type, frames=40)
  return kinds


def _accuracy(report):
  hits = [p["top"][0]["id"] == p["probe"].split("/")[0].split("_")[0] for p in report["probes"]]
  return float(np.mean(hits))


def _run(model_dir, workdir, gallery, probes, **identify):
  c = _config(gallery=gallery, probes=probes, **identify).unlock()
  c.train.init_from = model_dir
  mode.run_enroll(c, workdir)
  mode.run_identify(c, workdir)
  return mode.read_report(workdir)


def test_every_input_kind_enrols_and_identifies(model_dir, people, tmp_path, capsys):
  acc = {}
  for kind, (gallery, probes) in people.items():
    report = _run(model_dir, str(tmp_path / kind), gallery, probes, top_k=3)
    assert len(report["probes"]) == IDS
    for p in report["probes"]:
      assert len(p["top"]) == 3 and p["top"][0]["distance"] <= p["top"][1]["distance"]
      assert p["decision"] in {p["top"][0]["id"], "unknown"}
    acc[kind] = _accuracy(report)
    # One gallery sequence per id: the same-person distances come from sequence halves, and
    # the threshold is finite (a stranger is not accepted by default).
    cal = report["threshold"]
    assert cal["method"] == "equal error rate on sequence halves (one sequence per person)"
    assert cal["same_id_pairs"] == IDS and np.isfinite(cal["threshold"])
    assert "computed_from" in cal
    saved = np.load(str(tmp_path / kind / "gallery.npz"))
    assert saved["embeddings"].shape[0] == IDS and str(saved["path"]) == "0,5,0,1"
    assert int(saved["step"]) == TRAIN_STEPS and len(str(saved["model_hash"])) == 16
  out = capsys.readouterr().out
  assert "threshold" in out and "decision" in out
  print("top-1 accuracy by input kind:", acc)
  assert acc["pkl"] > 2.0 / IDS  # well above chance (1/8)
  assert acc["png"] >= acc["pkl"] - 1.0 / IDS
  assert acc["video"] >= acc["pkl"] - 1.5 / IDS


def test_rerun_adds_only_new_sequences_and_another_model_is_refused(model_dir, people, tmp_path):
  gallery, probes = people["png"]
  partial = str(tmp_path / "partial")
  shutil.copytree(gallery, partial, ignore=lambda d, names: [n for n in names if n == "00008"])
  workdir = str(tmp_path / "w")
  c = _config(gallery=partial).unlock()
  c.train.init_from = model_dir
  mode.run_enroll(c, workdir)
  first = np.load(os.path.join(workdir, "gallery.npz"))
  assert sorted(set(first["ids"].tolist())) == walkers.id_names(IDS - 1)
  c.identify.gallery = gallery
  mode.run_enroll(c, workdir)  # the same people plus 00008
  second = np.load(os.path.join(workdir, "gallery.npz"))
  assert len(second["ids"]) == IDS and second["ids"][-1] == "00008"
  np.testing.assert_array_equal(second["embeddings"][:IDS - 1], first["embeddings"])
  before = open(os.path.join(workdir, "gallery.npz"), "rb").read()
  other = _config(gallery=gallery).unlock()
  other.train.init_from = model_dir
  other.embed.flip = True  # direction-invariant embeddings: not comparable with plain ones
  with pytest.raises(ValueError, match=r"enrolled with another model \(embed.flip: gallery "
                                       r"False vs now True"):
    mode.run_enroll(other, workdir)
  assert open(os.path.join(workdir, "gallery.npz"), "rb").read() == before  # nothing lost


def test_bad_input_is_named_and_skipped(model_dir, people, tmp_path, caplog, capsys):
  gallery, _ = people["png"]
  bad = str(tmp_path / "gallery")
  shutil.copytree(gallery, bad)
  broken = os.path.join(bad, "00001", "nm-01", "000.png")
  open(broken, "wb").write(b"not a png")
  short = os.path.join(bad, "00002", "nm-01")
  for f in sorted(glob.glob(os.path.join(short, "*.png")))[4:]:
    os.remove(f)  # 4 frames left: too few
  c = _config(gallery=bad).unlock()
  c.train.init_from = model_dir
  workdir = str(tmp_path / "w")
  mode.run_enroll(c, workdir)
  assert "000.png: unreadable image, skipped" in caplog.text
  out = capsys.readouterr().out
  assert "1 skipped" in out
  assert f"skipped {short}: 4 usable frames of 4" in out
  saved = np.load(os.path.join(workdir, "gallery.npz"))
  assert "00002" not in saved["ids"].tolist() and "00001" in saved["ids"].tolist()
  nothing = tmp_path / "nothing"
  nothing.mkdir()
  (nothing / "list.txt").write_text("no frames here")
  with pytest.raises(sources.InputError, match="no probes found.*list.txt: not a silhouette"):
    sources.probe_sequences(str(nothing))
  with pytest.raises(sources.InputError, match="not a directory"):
    sources.gallery_sequences(str(tmp_path / "missing"))
  c.identify.probes = short  # one PNG folder as the probe root, with 4 frames
  with pytest.raises(ValueError, match="no probe has enough usable frames"):
    mode.run_identify(c, workdir)
  c.identify.threshold = "abc"
  with pytest.raises(ValueError, match="identify.threshold='abc'"):
    mode.run_identify(c, workdir)


def test_threshold_calibration_and_open_set_decisions(model_dir, people, tmp_path):
  """Two sequences per enrolled id give same-id pairs: the equal-error threshold is measured
  on the gallery, and people who were never enrolled come out `unknown` more often than the
  enrolled ones."""
  gallery, probes = people["pkl"]
  both = str(tmp_path / "gallery")
  for sid in walkers.id_names(IDS)[:5]:  # 5 enrolled people, both sessions
    shutil.copytree(os.path.join(gallery, sid), os.path.join(both, sid))
    shutil.copytree(os.path.join(probes, sid), os.path.join(both, sid), dirs_exist_ok=True)
  report = _run(model_dir, str(tmp_path / "w"), both, probes, figures=True)
  cal = report["threshold"]
  assert cal["method"] == "equal error rate on gallery pairs" and cal["same_id_pairs"] == 5
  assert 0 <= cal["false_accept_rate"] <= 1 and 0 <= cal["false_reject_rate"] <= 1
  unknown = {p["probe"].split("/")[0]: p["decision"] == "unknown" for p in report["probes"]}
  strangers = [unknown[s] for s in walkers.id_names(IDS)[5:]]
  assert np.mean(strangers) > np.mean([unknown[s] for s in walkers.id_names(IDS)[:5]])
  figs = sorted(glob.glob(str(tmp_path / "w" / "identify_figures" / "*.png")))
  assert len(figs) == IDS and cv2.imread(figs[0]).shape[1] > 200


def test_recognizer_api(model_dir, people, tmp_path):
  gallery, probes = people["png"]
  rec = Recognizer.from_workdir(model_dir)
  raw = {}
  for sid in walkers.id_names(4):
    for seq_type, root in (("nm-01", gallery), ("nm-02", probes)):
      folder = (os.path.join(root, sid, seq_type) if seq_type == "nm-01"
                else os.path.join(root, f"{sid}_{seq_type}"))
      frames = [cv2.imread(f, cv2.IMREAD_GRAYSCALE) for f in sorted(glob.glob(folder + "/*.png"))]
      raw[sid, seq_type] = np.stack(frames)  # uint8 [T, 128, 128]: any size
  for sid in walkers.id_names(4):
    rec.enroll(sid, raw[sid, "nm-01"])
  ranked = rec.identify(raw["00001", "nm-02"])
  assert [pid for pid, _ in ranked] and len(ranked) == 4
  assert all(a[1] <= b[1] for a, b in zip(ranked, ranked[1:]))
  hits = [rec.identify(raw[sid, "nm-02"], top_k=1)[0][0] == sid for sid in walkers.id_names(4)]
  assert np.mean(hits) >= 0.5
  with pytest.raises(sources.InputError, match="looks inverted"):
    rec.identify(255 - raw["00001", "nm-02"])
  with pytest.raises(sources.InputError, match="usable frames"):
    rec.identify(np.zeros((10, 64, 64), np.uint8))


def test_enrolment_is_locked_and_the_gallery_follows_the_weights(model_dir, people, tmp_path):
  """A second enroll while one holds the workdir is refused (a lost enrolment before); the
  gallery belongs to the weights' content, wherever they are referenced from."""
  from gait_jax.common import workdir_lock  # pylint: disable=g-import-not-at-top
  gallery, _ = people["pkl"]
  workdir = str(tmp_path / "w")
  c = _config(gallery=gallery).unlock()
  c.train.init_from = model_dir
  with workdir_lock.hold(workdir, "enroll"):
    with pytest.raises(workdir_lock.WorkdirInUse, match="in use by another gait_jax run"):
      mode.run_enroll(c, workdir)
  assert not os.path.exists(os.path.join(workdir, "gallery.npz"))
  mode.run_enroll(c, workdir)
  moved = str(tmp_path / "elsewhere" / "model")
  shutil.copytree(model_dir, moved)
  c.train.init_from = os.path.relpath(moved)
  mode.run_enroll(c, workdir)  # the same weights from another place: accepted, nothing new
  assert len(np.load(os.path.join(workdir, "gallery.npz"))["ids"]) == IDS


def test_gallery_files_through_the_api_and_damaged_galleries(model_dir, people, tmp_path):
  rec = Recognizer.from_workdir(model_dir)
  frames = _pkl(os.path.join(people["pkl"][0], "00001", "nm-01", "090", "090.pkl"))
  with pytest.raises(ValueError, match="person id None: expected a non-empty string"):
    rec.enroll(None, frames)
  rec.enroll("00001", frames)
  rec.enroll("00002", _pkl(os.path.join(people["pkl"][0], "00002", "nm-01", "090", "090.pkl")))
  path = str(tmp_path / "people.npz")
  rec.save_gallery(path)
  other = Recognizer.from_workdir(model_dir)
  assert other.load_gallery(path) and sorted(set(other.gallery["ids"].tolist())) == [
      "00001", "00002"]
  assert other.identify(frames, top_k=1)[0][0] == "00001"
  t, cal = other.calibrate()  # one sequence per person: from the halves, finite
  assert np.isfinite(t) and cal["same_id_pairs"] == 2
  data = dict(np.load(path))
  data["embeddings"][1, 0, 0] = np.nan
  np.savez(path, **data)
  with pytest.raises(ValueError, match="1 sequences have non-finite embeddings"):
    other.load_gallery(path)


def test_identify_prints_before_writing_and_names_figures_apart(model_dir, people, tmp_path,
                                                               capsys, monkeypatch):
  gallery, probes = people["png"]
  workdir = str(tmp_path / "w")
  c = _config(gallery=gallery, probes=probes).unlock()
  c.train.init_from = model_dir
  mode.run_enroll(c, workdir)
  capsys.readouterr()

  def full_disk(*_, **__):
    raise OSError(28, "No space left on device")
  with monkeypatch.context() as m:  # a full (or read-only) workdir
    m.setattr(mode.io, "write_json", full_disk)
    with pytest.raises(OSError, match="could not write the results .* printed above"):
      mode.run_identify(c, workdir)
  assert "00001_nm-02" in capsys.readouterr().out  # the results reached the screen
  assert not os.path.exists(os.path.join(workdir, "identify.json"))
  assert mode.figure_names(["p a", "p_a", "q"]) == [
      f"p_a-{__import__('hashlib').sha1(b'p a').hexdigest()[:8]}.png",
      f"p_a-{__import__('hashlib').sha1(b'p_a').hexdigest()[:8]}.png", "q.png"]


@pytest.mark.parametrize("key,value,match", [
    ("threshold", "-1", "identify.threshold='-1'"), ("threshold", "nan", "identify.threshold"),
    ("top_k", -3, "identify.top_k=-3"), ("top_k", 0, "identify.top_k=0")])
def test_invalid_numbers_are_refused(model_dir, people, tmp_path, key, value, match):
  gallery, probes = people["pkl"]
  c = _config(gallery=gallery, probes=probes).unlock()
  c.train.init_from = model_dir
  workdir = str(tmp_path / "w")
  mode.run_enroll(c, workdir)
  c.identify[key] = value
  with pytest.raises(ValueError, match=match):
    mode.run_identify(c, workdir)


def test_rerunning_enroll_does_not_decode_videos_again(model_dir, people, tmp_path,
                                                      monkeypatch):
  from gait_jax.identify import video_tracks  # pylint: disable=g-import-not-at-top
  gallery, _ = people["video"]
  some = str(tmp_path / "g")
  for sid in walkers.id_names(2):
    shutil.copytree(os.path.join(gallery, sid), os.path.join(some, sid))
  c = _config(gallery=some).unlock()
  c.train.init_from = model_dir
  workdir = str(tmp_path / "w")
  mode.run_enroll(c, workdir)
  decoded = []
  real = video_tracks.video_tracks
  monkeypatch.setattr(video_tracks, "video_tracks", lambda p, *a, **k: decoded.append(p) or real(
      p, *a, **k))
  mode.run_enroll(c, workdir)
  assert decoded == []
  c.identify.video.min_area = -1.0
  with pytest.raises(ValueError, match="video min_area=-1.0"):
    mode.run_enroll(c, workdir)


def test_init_from_uses_the_checkpoints_own_network(model_dir, people, tmp_path, capsys):
  """An experiment config of another shape (a supernet, other widths) still identifies with
  the checkpoint's own path and widths, and embeds exactly as its own config does."""
  gallery, probes = people["pkl"]
  mine = _config(gallery=gallery, probes=probes).unlock()
  mine.train.init_from = model_dir
  mode.run_enroll(mine, str(tmp_path / "own"))
  other = load_config("test_tiny").unlock()
  other.model.channels = tuple(2 * ch for ch in other.model.channels)
  other.model.path = ""
  other.identify.gallery, other.identify.probes = gallery, probes
  other.train.init_from = model_dir
  mode.run_enroll(other, str(tmp_path / "other"))
  a = np.load(str(tmp_path / "own" / "gallery.npz"))
  b = np.load(str(tmp_path / "other" / "gallery.npz"))
  np.testing.assert_array_equal(a["embeddings"], b["embeddings"])
  # test / embed load through the same rule.
  from gait_jax import config as config_lib  # pylint: disable=g-import-not-at-top
  used, source = config_lib.inference_weights(other, str(tmp_path / "unused"))
  assert source == model_dir and used.model.path == "0,5,0,1"
  assert used.model.channels == mine.model.channels != other.model.channels


def test_enroll_without_weights_uses_the_shipped_model_and_says_so(model_dir, people, tmp_path,
                                                                   monkeypatch, capsys):
  from gait_jax import config as config_lib  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(config_lib, "SHIPPED_MODEL", model_dir)
  gallery, probes = people["pkl"]
  c = load_config("test_tiny").unlock()
  c.identify.gallery, c.identify.probes = gallery, probes
  mode.run_enroll(c, str(tmp_path / "w"))
  mode.run_identify(c, str(tmp_path / "w"))
  out = capsys.readouterr().out
  assert out.count(f"using the shipped walkers-only model {model_dir}") == 2
  assert len(mode.read_report(str(tmp_path / "w"))["probes"]) == IDS
  monkeypatch.setattr(config_lib, "SHIPPED_MODEL", str(tmp_path / "absent"))
  with pytest.raises(ValueError, match="fixed architecture|checkpoint"):
    mode.run_enroll(c, str(tmp_path / "w2"))
