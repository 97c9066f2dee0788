"""The analytic counter against the reference's published figures, a hand-worked case, the
model's own parameters and convolutions, and XLA's cost analysis; and the flops mode CLI."""
import json
import math
import os
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from conftest import REPO, load_config
from gait_jax import config as cfg
from gait_jax.models import conv as conv_lib
from gait_jax.models import cost, layers
from gait_jax.modes import flops as flops_mode

KEYS = {"path", "macs_conv", "macs", "flops", "params_path", "params_backbone", "params_total", "params_supernet"}

# The reference's figures: backbone, + GeM + SeparateFCs, + BN-neck (M); conv MACs at 30 and 1186 frames (G),
# each with the number of decimals the reference prints.
SPEC_TABLE = [
    ("sposgait_large_GREW_train20000id_retrain", 20.79, 28.91, 346.38, (65.4, 1), (2585, 0)),
    ("sposgait_large_GREW_train5000id_retrain", 20.79, 28.91, 108.30, (65.4, 1), (2585, 0)),
    ("sposgait_large_GREW_train500id_retrain", 20.79, 28.91, 36.88, (65.4, 1), (2585, 0)),
    ("sposgait_large_Gait3D_retrain", 22.87, 24.97, 37.27, (124.0, 1), (4899, 0)),
    ("sposgait_large_OUMVLP_retrain", 20.79, 22.88, 44.00, (65.4, 1), (2585, 0)),
    ("sposgait_medium_GREW_20000id_retrain", 12.62, 20.75, 338.22, (46.8, 1), (1847, 0)),
    ("sposgait_small_GREW_train20000id_retrain", 2.16, 3.21, 85.14, (4.97, 2), (196, 0)),
    ("sposgait_small_casiab_retrain", 2.47, 3.52, 3.83, (6.85, 2), (271, 0)),
]


def _head_params(m):
  return 1 + sum(m.bins) * m.channels[-1] * m.out_channels


def _neck_params(m):
  return sum(m.bins) * m.out_channels * m.class_num + 2 * m.out_channels * sum(m.bins)


@pytest.mark.parametrize("name,backbone,path_m,total,conv30,conv1186", SPEC_TABLE)
def test_spec_table(name, backbone, path_m, total, conv30, conv1186):
  c = load_config("retrain/" + name)
  assert cfg.use_bnneck(c), "every reference retrain config has the BN-neck"
  path = cfg.model_path(c)
  r = cost.count(c.model, path, 30, bnneck=True)
  assert set(r) == KEYS
  assert round(r["params_backbone"] / 1e6, 2) == backbone
  assert round(r["params_path"] / 1e6, 2) == path_m
  assert round(r["params_total"] / 1e6, 2) == total
  assert round(cost.count(c.model, path, 30, bnneck=False)["macs_conv"] / 1e9, conv30[1]) == conv30[0]
  assert round(cost.count(c.model, path, 1186, bnneck=False)["macs_conv"] / 1e9, conv1186[1]) == conv1186[0]


@pytest.mark.parametrize("name,backbone", [
    ("retrain/sposgait_large_GREW_train20000id_retrain", 102.44),
    ("retrain/sposgait_medium_GREW_20000id_retrain", 47.56),
    ("retrain/sposgait_small_GREW_train20000id_retrain", 11.26),
    ("retrain/sposgait_small_casiab_retrain", 13.75),
])
def test_supernet_backbone_matches_spec(name, backbone):
  c = load_config(name)
  r = cost.count(c.model, cfg.model_path(c), 30, bnneck=True)
  supernet_backbone = r["params_supernet"] - _head_params(c.model) - _neck_params(c.model)
  assert round(supernet_backbone / 1e6, 2) == backbone


def _tiny(name="sposgait_small", channels=(2, 3, 4), bins=(2,), out=5, classes=6):
  m = ml_collections.ConfigDict()
  m.name, m.channels, m.bins, m.parts = name, tuple(channels), tuple(bins), sum(bins)
  m.out_channels, m.class_num = out, classes
  m.choice_max_num = cfg.CHOICE_MAX_NUM[name]
  return m


def test_hand_worked_small():
  # small, channels (2,3,4), bins (2,), out 5, 6 classes, path (0,1,2,5), 3 frames of 8 x 4.
  # Grids: stage 0 3x8x4 = 96 voxels; after pool + LTA 1x4x2 = 8; after pool 1x2x1 = 2.
  #   conv3d_00 cand0 1->2 3x3x3:   96*2*1*27 = 5184 MACs, 2*27 + 2*2 = 58 params
  #   downsample0 1->2:             96*2*1 = 192,          2 + 4 = 6
  #   LTA 2->2 3x1x1 (8 outputs):   8*2*2*3 = 96,          12
  #   conv3d_20 cand1 2->3 3x1x3:   8*3*2*9 = 432,         54 + 6 = 60
  #   downsample2 2->3:             8*3*2 = 48,            6 + 6 = 12
  #   conv3d_30 cand2 3->4 3x3x1:   2*4*3*9 = 216,         108 + 8 = 116
  #   downsample3 3->4:             2*4*3 = 24,            12 + 8 = 20
  #   conv3d_40 cand5 4->4 3x1x1 + 1x3x3: 2*4*4*3 + 2*4*4*9 = 384, 48+8 + 144+8 = 208
  #   downsample4 4->4:             2*4*4 = 32,            16 + 8 = 24
  # conv 6608 MACs, backbone 516 params. SeparateFCs 2 parts x 4 x 5 = 40 MACs, 40 + GeM p.
  # BN-neck 2 x 5 x 6 = 60 MACs; 60 + BN1d affine 2*5*2 = 80 params.
  m = _tiny()
  r = cost.count(m, (0, 1, 2, 5), 3, bnneck=True, height=8, width=4)
  assert r["params_backbone"] == 516
  assert r["params_path"] == 516 + 41
  assert r["params_total"] == 516 + 41 + 80
  assert r["macs"] == 6608 + 40 + 60
  assert r["flops"] == 2 * r["macs"]
  assert cost.count(m, (0, 1, 2, 5), 3, height=8, width=4, bnneck=False)["macs_conv"] == 6608
  no_neck = cost.count(m, "0,1,2,5", 3, bnneck=False, height=8, width=4)
  assert no_neck["params_total"] == no_neck["params_path"] == 557
  assert no_neck["macs"] == 6608 + 40
  assert no_neck["params_supernet"] == r["params_supernet"] - 80
  rows = cost.breakdown(m, (0, 1, 2, 5), 3, bnneck=True, height=8, width=4)
  assert sum(x["macs"] for x in rows) == r["macs"]
  assert sum(x["params"] for x in rows) == r["params_total"]


def test_time_axis():
  c = load_config("retrain/sposgait_large_GREW_train20000id_retrain")
  m, path = c.model, cfg.model_path(c)
  macs = {t: cost.count(m, path, t, bnneck=False)["macs_conv"] for t in (1, 2, 3, 4, 30, 31, 32, 33)}
  assert macs[1] == macs[3] and macs[2] == macs[4]  # tiling 1 -> 3, 2 -> 4 frames
  # 31 and 32 frames add pre-LTA frames only (LTA keeps floor(t/3) = 10); 33 adds one LTA frame.
  per_frame = macs[31] - macs[30]
  assert per_frame > 0 and macs[32] - macs[30] == 2 * per_frame
  assert macs[33] - macs[30] > 3 * per_frame
  # Everything is linear in the number of frames of each grid: 30 -> 1186 frames (10 -> 395).
  assert macs[30] < macs[33] < cost.count(m, path, 1186, bnneck=False)["macs_conv"]


def test_bad_input_errors():
  m = _tiny()
  with pytest.raises(ValueError, match="expected 4 entries"):
    cost.count(m, (0, 1, 2), 3, bnneck=False)
  with pytest.raises(ValueError, match=r"position 3 is 6; the search space allows 0\.\.5"):
    cost.count(m, (0, 1, 2, 6), 3, bnneck=False)
  with pytest.raises(ValueError, match=r"position 0 is 2; the search space allows only 0"):
    cost.count(m, (2, 1, 2, 5), 3, bnneck=False)
  with pytest.raises(ValueError, match="path is required"):
    cost.count(m, "", 3, bnneck=False)
  with pytest.raises(ValueError, match="frames"):
    cost.count(m, (0, 1, 2, 5), 0, bnneck=False)
  bad = _tiny(channels=(2, 3))
  with pytest.raises(ValueError, match="model.channels"):
    cost.count(bad, (0, 1, 2, 5), 3, bnneck=False)


def test_count_is_cheap():
  c = load_config("retrain/sposgait_large_GREW_train20000id_retrain")
  rng = np.random.default_rng(0)
  paths = [(0, 0) + tuple(rng.integers(0, 6, 8)) for _ in range(200)]
  cost.count(c.model, paths[0], 30, bnneck=True)  # fills the cache
  start = time.perf_counter()
  for p in paths:
    cost.count(c.model, p, 30, bnneck=True)
  assert (time.perf_counter() - start) / len(paths) < 0.01


# ---- cross-checks against the model ------------------------------------------------------

def _model_lib():
  try:
    from gait_jax.models import sposgait  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    pytest.skip(f"gait_jax.models.sposgait is not importable yet: {e}")
  return sposgait


def _param_count(model, sils, path):
  variables = jax.eval_shape(lambda x: model.init(jax.random.key(0), x, path), sils)
  return sum(math.prod(x.shape) for x in jax.tree.leaves(variables["params"]))


TINY_MODELS = [
    (_tiny("sposgait_small", (3, 5, 6), (4, 2, 1), 7, 9), (0, 5, 0, 1)),
    (_tiny("sposgait_medium", (2, 3, 4, 5), (2, 1), 4, 3), (0, 0, 4, 3, 0, 3, 1)),
    (_tiny("sposgait_large", (2, 3, 4, 5), (4, 1), 3, 5), (0, 0, 4, 5, 2, 0, 4, 3, 4, 3)),
]


@pytest.mark.parametrize("m,path", TINY_MODELS)
@pytest.mark.parametrize("bnneck", [False, True])
def test_params_match_model(m, path, bnneck):
  sposgait = _model_lib()
  sils = jax.ShapeDtypeStruct((1, 6, 16, 12), jnp.float32)
  r = cost.count(m, path, 6, bnneck=bnneck, height=16, width=12)
  fixed = sposgait.build_model(m, bnneck=bnneck, fixed_path=path)
  assert _param_count(fixed, sils, path) == r["params_total"]
  # A traced path makes the supernet create every candidate (a static one only the chosen).
  supernet = sposgait.build_model(m, bnneck=bnneck)
  assert _param_count(supernet, sils, jnp.asarray(path, jnp.int32)) == r["params_supernet"]


def test_params_match_model_reference_config():
  sposgait = _model_lib()
  c = load_config("retrain/sposgait_small_casiab_retrain")
  path = cfg.model_path(c)
  r = cost.count(c.model, path, 30, bnneck=True)
  sils = jax.ShapeDtypeStruct((1, 3, 64, 44), jnp.float32)
  assert _param_count(sposgait.build_model(c.model, bnneck=True, fixed_path=path), sils, path) \
      == r["params_total"]
  supernet = sposgait.build_model(c.model, bnneck=True)
  assert _param_count(supernet, sils, jnp.asarray(path, jnp.int32)) == r["params_supernet"]


def _sub_jaxprs(value):
  if hasattr(value, "eqns"):
    yield value
  elif hasattr(value, "jaxpr") and hasattr(value.jaxpr, "eqns"):
    yield value.jaxpr
  elif isinstance(value, (tuple, list)):
    for v in value:
      yield from _sub_jaxprs(v)


def _jaxpr_macs(jaxpr):
  """MACs of the traced convolutions and matmuls, read from their shapes alone:
  (conv full-kernel MACs as thop counts them, conv MACs of in-bounds taps only, dot MACs)."""
  full = valid = dots = 0
  for eqn in jaxpr.eqns:
    name = eqn.primitive.name
    if name == "conv_general_dilated":
      lhs, rhs, out = (eqn.invars[0].aval.shape, eqn.invars[1].aval.shape, eqn.outvars[0].aval.shape)
      dn = eqn.params["dimension_numbers"]
      cin = rhs[dn.rhs_spec[1]]
      kernel = [rhs[d] for d in dn.rhs_spec[2:]]
      full += math.prod(out) * cin * math.prod(kernel)
      taps = 1
      for i, k in enumerate(kernel):
        n, m_out = lhs[dn.lhs_spec[2 + i]], out[dn.out_spec[2 + i]]
        stride, (lo, _) = eqn.params["window_strides"][i], eqn.params["padding"][i]
        taps *= sum(1 for o in range(m_out) for d in range(k) if 0 <= o * stride + d - lo < n)
      valid += out[dn.out_spec[0]] * out[dn.out_spec[1]] * cin * taps
    elif name == "dot_general":
      (contract, _), _ = eqn.params["dimension_numbers"]
      lhs = eqn.invars[0].aval.shape
      dots += math.prod(eqn.outvars[0].aval.shape) * math.prod(lhs[d] for d in contract)
    for value in eqn.params.values():
      for sub in _sub_jaxprs(value):
        f, v, d = _jaxpr_macs(sub)
        full, valid, dots = full + f, valid + v, dots + d
  return full, valid, dots


@pytest.mark.parametrize("m,path", TINY_MODELS)
@pytest.mark.parametrize("frames", [2, 7])
def test_macs_match_model_convolutions(m, path, frames, monkeypatch):
  # The model's traced convolutions and matmuls, read from the jaxpr, give exactly our MACs:
  # the conv sum is the reference's figure, the matmuls are SeparateFCs + the BN-neck classifier.
  # 2 frames exercise the tiling (the backbone runs 4), 7 frames the LTA floor (2 frames).
  # Traced with XLA's convolution: the CPU default writes small convs as GEMMs (conv.py); and
  # in the export form, which keeps the first downsample's Conv (computed otherwise from the
  # one-channel input's statistics, batch_norm.py).
  monkeypatch.setenv(conv_lib.ENV_VAR, "xla")
  sposgait = _model_lib()
  model = sposgait.build_model(m, bnneck=True, fixed_path=path)
  sils = jax.ShapeDtypeStruct((1, frames, 16, 12), jnp.float32)
  variables = jax.eval_shape(lambda x: model.init(jax.random.key(0), x, path), sils)
  with layers.export_form():
    jaxpr = jax.make_jaxpr(lambda v, x: model.apply(v, x, path))(variables, sils).jaxpr
  full, _, dots = _jaxpr_macs(jaxpr)
  r = cost.count(m, path, frames, bnneck=True, height=16, width=12)
  conv = cost.count(m, path, frames, height=16, width=12, bnneck=False)["macs_conv"]
  assert full == conv
  assert dots == r["macs"] - conv


def test_xla_cost_analysis_agrees(monkeypatch):
  # XLA's HLO cost analysis counts 2 FLOPs per multiply-accumulate of the in-bounds taps
  # only (zero padding is skipped) plus ~1 FLOP per elementwise op. So:
  #  * XLA >= 2 x (in-bounds conv MACs + matmul MACs), read from the jaxpr shapes;
  #  * the excess is elementwise work (BN ~4, ReLU, pooling, GeM, adds: < ~15 ops per
  #    activation element), small next to >= 2 x cin x kernel-volume FLOPs per conv output:
  #    within 20 % even with these tiny widths;
  #  * our count (full kernels, as thop and the reference) bounds the XLA conv work from above.
  # The lowered module's cost analysis equals the compiled one on CPU and skips compilation.
  # XLA's own convolutions: the CPU formulations compute the same sums partly as elementwise
  # ops (the 1-channel stem's fused tap sum, padding taps included), which the jaxpr reading
  # below would not see as MACs.
  monkeypatch.setenv(conv_lib.ENV_VAR, "xla")
  sposgait = _model_lib()
  m = _tiny("sposgait_small", (8, 16, 16), (4, 2, 1), 16, 8)
  path = (0, 3, 4, 2)
  model = sposgait.build_model(m, bnneck=False, fixed_path=path)
  sils = jax.ShapeDtypeStruct((1, 9, 32, 24), jnp.float32)
  variables = jax.eval_shape(lambda x: model.init(jax.random.key(0), x, path), sils)
  fn = lambda v, x: model.apply(v, x, path)
  analysis = jax.jit(fn).lower(variables, sils).cost_analysis()
  analysis = analysis[0] if isinstance(analysis, (list, tuple)) else analysis
  xla = float(analysis["flops"])
  _, valid, dots = _jaxpr_macs(jax.make_jaxpr(fn)(variables, sils).jaxpr)
  ours = cost.count(m, path, 9, bnneck=False, height=32, width=24)
  assert 2 * (valid + dots) <= xla <= 1.2 * 2 * (valid + dots)
  assert valid < cost.count(m, path, 9, height=32, width=24, bnneck=False)["macs_conv"]
  assert 0.7 * ours["flops"] < xla < 1.1 * ours["flops"]


# ---- flops mode ----------------------------------------------------------------------------

def test_run_writes_json_and_table(tmp_path, capsys):
  c = load_config("retrain/sposgait_small_casiab_retrain")
  workdir = tmp_path / "new" / "dir"
  flops_mode.run(c, str(workdir))
  data = json.loads((workdir / "flops.json").read_text())
  assert set(data) == KEYS
  assert data == cost.count(c.model, cfg.model_path(c), 30, bnneck=True)
  assert os.listdir(workdir) == ["flops.json"]  # no temporary file left behind
  out = capsys.readouterr().out
  assert "conv3d_40" in out and "BNNecks" in out and "params supernet" in out


def test_run_supernet_config_reports_zeros_path(tmp_path, capsys):
  c = load_config("sposgait_small_GREW_supertraining_triplet")
  flops_mode.run(c, str(tmp_path))
  data = json.loads((tmp_path / "flops.json").read_text())
  assert data["path"] == [0, 0, 0, 0]
  assert data["params_total"] == data["params_path"]  # triplet only: no BN-neck
  assert "all-zeros path" in capsys.readouterr().out


def test_cli_large_grew(tmp_path):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  proc = subprocess.run(
      [sys.executable, "-m", "gait_jax.main",
       "--config", os.path.join(REPO, "configs/retrain/sposgait_large_GREW_train20000id_retrain.py"),
       "--workdir", str(tmp_path), "--config.mode=flops", "--config.flops.frames=30"],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-2000:]
  data = json.loads((tmp_path / "flops.json").read_text())
  assert data["path"] == [0, 0, 4, 5, 2, 0, 4, 3, 4, 3]
  assert round(data["params_backbone"] / 1e6, 2) == 20.79
  assert round(data["params_path"] / 1e6, 2) == 28.91
  assert round(data["params_total"] / 1e6, 2) == 346.38
  assert data["flops"] == 2 * data["macs"]
  assert "conv MACs        65.436 G" in proc.stdout
