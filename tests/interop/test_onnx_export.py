"""ONNX export: ONNX Runtime's embeddings equal JAX's (1e-4 relative) on the tiny model and
on a reference-width model, with dynamic batch and frame axes or a fixed frame count; the
export-only op forms equal the originals. Needs requirements-export.txt (tools/test.sh
installs it)."""
import os
import subprocess
import sys

import jax
import ml_collections
import numpy as np
import pytest

pytest.importorskip("jax2onnx", reason="ONNX export tests need requirements-export.txt")
pytest.importorskip("onnxruntime", reason="ONNX export tests need requirements-export.txt")

from conftest import REPO, load_config  # noqa: E402
from gait_jax.interop import onnx_export  # noqa: E402
from gait_jax.interop import reference_checkpoint as rc  # noqa: E402
from gait_jax.models import build_model  # noqa: E402
from helpers import assert_close  # noqa: E402
from helpers.variables import random_variables  # noqa: E402

CKPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures",
                    "sposgait_small_tiny_2loss.pt")


def _sils(rng, n, t):
  return (rng.random((n, t, 64, 44)) > 0.5).astype(np.float32)


def _check(model, variables, out, shapes, frames=None, flip=False):
  onnx_export.export(model, variables, out, frames=frames, flip=flip)
  rng = np.random.default_rng(0)
  fn = jax.jit(onnx_export.inference_fn(model, variables, flip))
  for n, t in shapes:
    sils = _sils(rng, n, t)
    got = onnx_export.run_onnx(out, sils)
    assert got.shape == (n, model.out_channels, sum(model.bins))
    assert_close(got, np.asarray(fn(sils)), rtol=1e-4, err_msg=f"batch {n}, {t} frames")


def test_tiny_model_dynamic_and_fixed_axes(tmp_path):
  workdir = str(tmp_path / "w")
  rc.import_reference(CKPT, load_config("test_tiny"), workdir)
  model, variables, path, step, flip = onnx_export.load_fixed_model(workdir, (0, 5, 0, 1))
  assert path == (0, 5, 0, 1) and step == 3 and not flip
  _check(model, variables, str(tmp_path / "dyn.onnx"), [(2, 12), (1, 5), (3, 3)])
  # One Conv node per convolution of the path (stem, its downsample, LTA, 2 + 1 in stage 2,
  # 1 + 1 in stages 3 and 4), whatever the CPU formulation (the converter maps flax's Conv
  # itself), for the ONNX runtime to pick its own kernels.
  import onnx  # pylint: disable=g-import-not-at-top
  ops = [n.op_type for n in onnx.load(str(tmp_path / "dyn.onnx")).graph.node]
  assert ops.count("Conv") == 10, sorted(set(ops))
  _check(model, variables, str(tmp_path / "fixed.onnx"), [(2, 6), (1, 6)], frames=6)
  with pytest.raises(ValueError, match="is a supernet: choose its network with --path"):
    onnx_export.load_fixed_model(workdir)
  with pytest.raises(ValueError, match="at least 3 frames"):
    onnx_export.export(model, variables, str(tmp_path / "x.onnx"), frames=2)


def test_reference_width_model(tmp_path):
  cfg = ml_collections.ConfigDict(dict(name="sposgait_small", channels=(64, 128, 256),
                                       bins=(16,), parts=16, out_channels=256, class_num=74))
  path = (0, 5, 0, 1)
  model = build_model(cfg, bnneck=False, fixed_path=path)
  variables = jax.tree.map(np.asarray, random_variables(model, path, seed=3))
  _check(model, variables, str(tmp_path / "ref.onnx"), [(1, 6), (2, 4)])


def test_command_line_tool(tmp_path):
  workdir = str(tmp_path / "w")
  rc.import_reference(CKPT, load_config("test_tiny").unlock(), workdir)
  env = dict(os.environ, XLA_FLAGS="", JAX_PLATFORMS="cpu")
  r = subprocess.run([sys.executable, "tools/export_onnx.py", workdir, "--out",
                      str(tmp_path / "m.onnx"), "--path", "0,5,0,1", "--frames", "8"], cwd=REPO,
                     env=env, capture_output=True, text=True, timeout=300)
  assert r.returncode == 0, r.stderr[-2000:]
  assert "input  sils float32 [batch, 8, 64, 44]" in r.stdout
  assert "output embeddings float32 [batch, 8, 7]" in r.stdout
  assert os.path.getsize(tmp_path / "m.onnx") > 1000


def test_flip_is_exported_as_embed_computes_it(tmp_path):
  """embed.flip (on in the KTH configs): the graph gives the mean of the clip's and its
  mirror's embeddings, which `embed` computes, not the plain embedding."""
  workdir = str(tmp_path / "w")
  rc.import_reference(CKPT, load_config("test_tiny"), workdir)
  model, variables, _, _, _ = onnx_export.load_fixed_model(workdir, (0, 5, 0, 1))
  out = str(tmp_path / "flip.onnx")
  _check(model, variables, out, [(2, 7)], flip=True)
  sils = _sils(np.random.default_rng(1), 2, 7)
  plain = np.asarray(jax.jit(onnx_export.inference_fn(model, variables))(sils))
  flipped = onnx_export.run_onnx(out, sils)
  mirrored = np.asarray(jax.jit(onnx_export.inference_fn(model, variables))(
      np.ascontiguousarray(sils[..., ::-1])))
  assert_close(flipped, (plain + mirrored) / 2, rtol=1e-4)
  assert np.max(np.abs(flipped - plain)) > 1e-3 * np.max(np.abs(plain))


def test_a_failed_export_leaves_no_file(tmp_path, monkeypatch):
  workdir = str(tmp_path / "w")
  rc.import_reference(CKPT, load_config("test_tiny"), workdir)
  model, variables, _, _, _ = onnx_export.load_fixed_model(workdir, (0, 5, 0, 1))
  out = tmp_path / "m.onnx"
  out.write_bytes(b"the previous export")

  def full_disk(*_):
    raise OSError(28, "No space left on device")
  monkeypatch.setattr(os, "fsync", full_disk)
  with pytest.raises(OSError, match="No space left"):
    onnx_export.export(model, variables, str(out), frames=4)
  assert out.read_bytes() == b"the previous export"
  assert sorted(os.listdir(tmp_path)) == ["m.onnx", "w"]  # no temporary file left
