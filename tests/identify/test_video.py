"""Video → silhouettes on rendered walkers (textured, shaking background, flicker, noise,
MJPG, a distractor): the extracted silhouettes match the rendered masks after alignment;
bad videos get an error naming the file."""
import numpy as np
import pytest

from gait_jax.data import pretreat
from gait_jax.identify import video_tracks
from helpers import walker_video as synthetic_video


def _iou(a, b):
  a, b = a > 127, b > 127
  return np.logical_and(a, b).sum() / max(np.logical_or(a, b).sum(), 1)


def test_extracted_silhouettes_match_the_rendered_masks(tmp_path):
  ious, kept = [], []
  for sid in ("00001", "00002", "00003"):
    for seq_type in ("nm-01", "nm-02"):
      path = str(tmp_path / f"{sid}_{seq_type}.avi")
      truth = synthetic_video.make_walker_video(path, 0, sid, seq_type, frames=40)
      tracks, summary = video_tracks.video_tracks(path)
      assert summary["tracks"] == 1 and len(tracks) == 1, summary
      kept.append(summary["kept"] / len(truth["silhouettes"]))
      for frame, index in zip(tracks[0].frames, tracks[0].indices):
        want = pretreat.align_frame(truth["masks"][index])[0]
        assert want is not None, f"frame {index} kept without a person in it"
        ious.append(_iou(frame, want))
  assert np.mean(ious) >= 0.8, f"mean IoU after alignment {np.mean(ious):.3f}"
  assert min(kept) >= 0.6, f"kept fractions {kept}"  # the rest: entering/leaving (clipped)


def test_two_crossings_make_two_tracks(tmp_path):
  a = synthetic_video.walker_masks(0, "00001", frames=30)
  b = synthetic_video.walker_masks(0, "00002", frames=30)
  fa, _ = synthetic_video.compose(a, seed=5, lead_in=10)
  fb, _ = synthetic_video.compose(b, seed=5, lead_in=10)  # same scene, a second person
  path = synthetic_video.write_video(str(tmp_path / "two.avi"), np.concatenate([fa, fb]))
  tracks, summary = video_tracks.video_tracks(path)
  assert summary["tracks"] == 2
  assert tracks[0].indices.max() < len(fa) <= tracks[1].indices.min()


def test_bad_videos_are_named(tmp_path):
  junk = tmp_path / "junk.avi"
  junk.write_bytes(b"not a video")
  with pytest.raises(video_tracks.VideoError, match="junk.avi: cannot be opened as a video"):
    video_tracks.video_tracks(str(junk))
  still = np.full((30, 120, 160, 3), 128, np.uint8)  # nothing moves
  path = synthetic_video.write_video(str(tmp_path / "still.avi"), still)
  with pytest.raises(video_tracks.VideoError, match="still.avi: no moving person found"):
    video_tracks.video_tracks(path)


def test_video_to_silhouettes_tool(tmp_path, capsys):
  import glob
  import os
  import sys
  sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tools"))
  import video_to_silhouettes
  videos = tmp_path / "videos" / "cam1"
  synthetic_video.make_walker_video(str(videos / "walk.avi"), 0, "00001", frames=30)
  (videos / "broken.avi").write_bytes(b"garbage")
  with pytest.raises(SystemExit, match="1 of 2 videos gave no person"):
    video_to_silhouettes.main([str(tmp_path / "videos"), "--out", str(tmp_path / "out")])
  out = capsys.readouterr().out
  assert "broken.avi: cannot be opened" in out and "frames read" in out and "in 1 tracks" in out
  pngs = glob.glob(str(tmp_path / "out" / "cam1" / "walk" / "*.png"))
  assert len(pngs) >= 20


def test_video_tool_rerun_replaces_and_a_full_disk_stops_it(tmp_path, capsys, monkeypatch):
  import os
  import sys
  sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tools"))
  import video_to_silhouettes
  from gait_jax.common import io
  src = tmp_path / "walk.avi"
  synthetic_video.make_walker_video(str(src), 0, "00001", frames=30)
  out = tmp_path / "out"
  stale = out / "walk" / "9999.png"
  stale.parent.mkdir(parents=True)
  stale.write_bytes(b"a frame of an earlier run")
  video_to_silhouettes.main([str(src), "--out", str(out)])
  frames = sorted(os.listdir(out / "walk"))
  assert "9999.png" not in frames and len(frames) >= 20  # no stale frame mixed in
  assert all(os.path.getsize(out / "walk" / f) > 0 for f in frames)

  def full_disk(*_):
    raise OSError(28, "No space left on device")
  monkeypatch.setattr(io.os, "fsync", full_disk)
  with pytest.raises(SystemExit, match="cannot write .*walk \\(No space left on device\\)"):
    video_to_silhouettes.main([str(src), "--out", str(out)])
  assert sorted(os.listdir(out / "walk")) == frames  # the previous run's frames are intact
  assert os.listdir(out) == ["walk"]  # no partial folder left
  for bad in (["--min-area", "-1"], ["--min-area", "nan"], ["--max-gap", "-3"]):
    with pytest.raises(SystemExit):
      video_to_silhouettes.main([str(src), "--out", str(out), *bad])
    assert "expected" in capsys.readouterr().err


def test_options_are_checked():
  for bad in (dict(min_area=float("nan")), dict(max_gap=-3), dict(min_height=1.5),
              dict(method="sift")):
    with pytest.raises(ValueError, match="video "):
      video_tracks.Options(**bad)


def test_a_truncated_video_is_used_with_a_warning(tmp_path, caplog):
  path = str(tmp_path / "walk.avi")
  synthetic_video.make_walker_video(path, 0, "00001", frames=40)
  data = open(path, "rb").read()
  cut = str(tmp_path / "cut.avi")
  open(cut, "wb").write(data[:len(data) * 6 // 10])
  try:
    video_tracks.video_tracks(cut)
  except video_tracks.VideoError:
    pass  # too little left for a track is fine; the warning is what is checked
  assert "cut.avi: only" in caplog.text and "truncated or damaged" in caplog.text
