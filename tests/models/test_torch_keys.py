"""PyTorch key conversion, checked against an independent NumPy forward in PyTorch layout.

The NumPy network below is written from the reference networks' definitions in their
NCDHW layout and reads reference state-dict keys directly; it shares no code with the Flax
model, so agreement checks the architecture, the key table and the conv transposition.
"""
import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from gait_jax.models import build_model, layer_names
from gait_jax.models import torch_keys as tk
from helpers import assert_close

H, W = 32, 22
EPS = 1e-5
OPS = {0: [(3, 3, 3)], 1: [(3, 1, 3)], 2: [(3, 3, 1)], 3: [(3, 3, 1), (3, 1, 3)],
       4: [(3, 1, 3), (3, 3, 1)], 5: [(3, 1, 1), (1, 3, 3)]}


def cfg(name="sposgait_large", channels=(4, 8, 8, 8)):
  return ml_collections.ConfigDict(dict(name=name, channels=channels, bins=(4, 2, 1), parts=7,
                                        out_channels=6, class_num=5))


def reference_keys(name, channels, bnneck):
  """The reference state-dict keys, built by hand from the table in torch_keys' docstring."""
  bn = lambda p: [f"{p}.{s}" for s in ("weight", "bias", "running_mean", "running_var",
                                       "num_batches_tracked")]
  keys = []
  for layer in layer_names(name):
    for j in range(6):
      keys += [f"{layer}.{j}.0.conv3d.weight"] + bn(f"{layer}.{j}.1")
      if j >= 3:
        keys += [f"{layer}.{j}.3.conv3d.weight"] + bn(f"{layer}.{j}.4")
  stages = (0, 2, 3, 4) if name == "sposgait_small" else (0, 1, 2, 3, 4)
  for k in stages:
    keys += [f"downsample{k}.0.weight"] + bn(f"downsample{k}.1")
  keys += ["LTA.0.conv3d.weight", "HPP.p", "Head0.fc_bin"]
  if bnneck:
    keys += ["BNNecks.fc_bin"] + bn("BNNecks.bn1d")
  return keys


def random_state_dict(model_cfg, bnneck, seed=0):
  rng = np.random.default_rng(seed)
  sd = {}
  for e in tk.torch_layout(model_cfg, bnneck=bnneck):
    key = e.torch_key
    if key.endswith("num_batches_tracked"):
      sd[key] = np.array(7, np.int64)
    elif key.endswith("running_var"):
      sd[key] = rng.uniform(0.5, 2.0, e.torch_shape).astype(np.float32)
    elif key.endswith(".weight") and len(e.torch_shape) == 1:  # BN weight
      sd[key] = rng.uniform(0.8, 1.2, e.torch_shape).astype(np.float32)
    elif key == "HPP.p":
      sd[key] = np.array([3.0], np.float32)  # not 6.5: checks the learnt p is used
    elif len(e.torch_shape) == 5:  # conv: keep activations O(1)
      fan_in = int(np.prod(e.torch_shape[1:]))
      sd[key] = (rng.standard_normal(e.torch_shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)
    else:
      sd[key] = (rng.standard_normal(e.torch_shape) * 0.3).astype(np.float32)
  return sd


# ------------------------------------------------------------------ NumPy reference (NCDHW)

def np_conv(x, w, stride_t=1, pad=True):
  kt, kh, kw = w.shape[2:]
  if pad:
    x = np.pad(x, ((0, 0), (0, 0), (kt // 2,) * 2, (kh // 2,) * 2, (kw // 2,) * 2))
  t_out = (x.shape[2] - kt) // stride_t + 1
  h_out, w_out = x.shape[3] - kh + 1, x.shape[4] - kw + 1
  out = np.zeros((x.shape[0], w.shape[0], t_out, h_out, w_out))
  for a in range(kt):
    for b in range(kh):
      for c in range(kw):
        patch = x[:, :, a:a + stride_t * (t_out - 1) + 1:stride_t, b:b + h_out, c:c + w_out]
        out += np.einsum("oi,nithw->nothw", w[:, :, a, b, c], patch)
  return out


def np_bn(x, sd, prefix, train):
  axes = (0,) + tuple(range(2, x.ndim))
  shape = (1, -1) + (1,) * (x.ndim - 2)
  if train:
    mean, var = x.mean(axes), x.var(axes)
    count = x.size / x.shape[1]
    sd[prefix + ".running_mean"] = 0.9 * sd[prefix + ".running_mean"] + 0.1 * mean
    sd[prefix + ".running_var"] = (0.9 * sd[prefix + ".running_var"]
                                   + 0.1 * var * count / (count - 1))
  else:
    mean, var = sd[prefix + ".running_mean"], sd[prefix + ".running_var"]
  return ((x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + EPS)
          * sd[prefix + ".weight"].reshape(shape) + sd[prefix + ".bias"].reshape(shape))


def np_candidate(x, sd, layer, j, flg_relu, train):
  kernels = OPS[j]
  for i in range(len(kernels)):
    x = np_conv(x, sd[f"{layer}.{j}.{3 * i}.conv3d.weight"])
    x = np_bn(x, sd, f"{layer}.{j}.{3 * i + 1}", train)
    if i < len(kernels) - 1 or flg_relu:
      x = np.maximum(x, 0)
  return x


def np_forward(sd, sils, path, name, bins, train):
  """The reference forward pass for large/medium/small, PyTorch layout. Mutates sd's running stats in train."""
  x = sils[:, None].astype(np.float64)
  if x.shape[2] == 1:
    x = np.repeat(x, 3, axis=2)  # torch .repeat: a → a,a,a
  elif x.shape[2] == 2:
    x = np.concatenate([x, x], axis=2)  # a,b → a,b,a,b
  relu = lambda v: np.maximum(v, 0)

  def pool(v):  # (1,2,2) max-pool, floor mode: an odd last row/column is dropped
    h, w = v.shape[3] // 2, v.shape[4] // 2
    return v[:, :, :, :2 * h, :2 * w].reshape(v.shape[:3] + (h, 2, w, 2)).max((4, 6))

  def ds(v, k):
    return np_bn(np_conv(v, sd[f"downsample{k}.0.weight"]), sd, f"downsample{k}.1", train)

  def lta(v):
    v = np_conv(v, sd["LTA.0.conv3d.weight"], stride_t=3, pad=False)
    return np.where(v > 0, v, 0.01 * v)

  names = layer_names(name)
  cand = lambda v, i, flg: np_candidate(v, sd, names[i], path[i], flg, train)
  if name == "sposgait_large":
    x = pool(relu(cand(cand(x, 0, True), 1, False) + ds(x, 0)))
    x = relu(cand(cand(x, 2, True), 3, False) + ds(x, 1))
    x = lta(x)
    x = pool(cand(cand(x, 4, True), 5, False) + ds(x, 2))
    x = cand(cand(x, 6, True), 7, False) + ds(x, 3)
    x = cand(cand(x, 8, True), 9, False) + ds(x, 4)
  elif name == "sposgait_medium":
    x = pool(relu(cand(cand(x, 0, True), 1, False) + ds(x, 0)))
    x = lta(relu(cand(cand(x, 2, True), 3, False) + ds(x, 1)))
    x = pool(cand(x, 4, True) + ds(x, 2))
    x = cand(x, 5, True) + ds(x, 3)
    x = cand(x, 6, True) + ds(x, 4)
  else:  # small
    x = lta(pool(relu(cand(x, 0, True) + ds(x, 0))))
    x = pool(cand(x, 1, True) + ds(x, 2))
    x = cand(x, 2, True) + ds(x, 3)
    x = cand(x, 3, True) + ds(x, 4)
  x = x.max(axis=2)  # [n, c, h, w]
  p = float(sd["HPP.p"][0])
  n, c = x.shape[:2]
  feats = [np.mean(np.maximum(x.reshape(n, c, b, -1), 1e-6) ** p, -1) ** (1 / p) for b in bins]
  feat = np.concatenate(feats, -1)  # [n, c, parts]
  embed = np.einsum("ncp,pco->nop", feat, sd["Head0.fc_bin"])
  out = {"embeddings": embed}
  if "BNNecks.fc_bin" in sd:
    n, c, parts = embed.shape
    bn = np_bn(embed.reshape(n, c * parts), sd, "BNNecks.bn1d", train).reshape(n, c, parts)
    f = bn.transpose(2, 0, 1)
    f = f / np.linalg.norm(f, axis=-1, keepdims=True)
    w = sd["BNNecks.fc_bin"] / np.linalg.norm(sd["BNNecks.fc_bin"], axis=1, keepdims=True)
    out["logits"] = np.matmul(f, w).transpose(1, 2, 0)
  return out


# ------------------------------------------------------------------------------ tests

@pytest.mark.parametrize("name,channels,bnneck", [
    ("sposgait_large", (4, 8, 8, 8), True), ("sposgait_medium", (4, 8, 8, 8), False),
    ("sposgait_small", (4, 8, 8), True)])
def test_layout_is_the_full_reference_key_list(name, channels, bnneck):
  model_cfg = cfg(name, channels)
  layout = [e.torch_key for e in tk.torch_layout(model_cfg, bnneck=bnneck)]
  assert len(layout) == len(set(layout))
  assert set(layout) == set(reference_keys(name, channels, bnneck))


def test_round_trip_and_strictness():
  model_cfg = cfg()
  sd = random_state_dict(model_cfg, True)
  variables = tk.convert_torch_state_dict(sd, model_cfg, bnneck=True)
  back = tk.to_torch_state_dict(variables, model_cfg, bnneck=True)
  assert set(back) == set(sd)
  for k, v in sd.items():
    if not k.endswith("num_batches_tracked"):
      np.testing.assert_array_equal(back[k], v, err_msg=k)
  # conv transposition: torch [out, in, kt, kh, kw] ↔ flax (kt, kh, kw, in, out)
  w = sd["conv3d_11.5.3.conv3d.weight"]  # (1,3,3) conv of candidate 5
  k = variables["params"]["conv3d_11"]["cand5"]["conv3"]["kernel"]
  assert k.shape == (1, 3, 3, 8, 8) and k[0, 2, 1, 3, 6] == w[6, 3, 0, 2, 1]
  with pytest.raises(ValueError, match="missing keys.*LTA"):
    tk.convert_torch_state_dict({k: v for k, v in sd.items() if not k.startswith("LTA")},
                                model_cfg, bnneck=True)
  with pytest.raises(ValueError, match="unexpected keys.*extra"):
    tk.convert_torch_state_dict(dict(sd, extra=np.zeros(1)), model_cfg, bnneck=True)
  with pytest.raises(ValueError, match=r"HPP.p is \(2,\), expected \(1,\)"):
    tk.convert_torch_state_dict(dict(sd, **{"HPP.p": np.zeros(2)}), model_cfg, bnneck=True)
  with pytest.raises(ValueError, match="unexpected keys.*BNNecks"):
    tk.convert_torch_state_dict(sd, model_cfg, bnneck=False)
  prefixed = {"module." + k: v for k, v in sd.items()}
  assert jax.tree.structure(tk.convert_torch_state_dict(prefixed, model_cfg, bnneck=True)) == \
      jax.tree.structure(variables)


def test_fixed_path_conversion_keeps_only_chosen_candidates():
  model_cfg = cfg()
  path = (0, 0, 4, 5, 2, 0, 4, 3, 4, 3)
  sd = random_state_dict(model_cfg, True)
  variables = tk.convert_torch_state_dict(sd, model_cfg, bnneck=True, fixed_path=path)
  for name, j in zip(layer_names("sposgait_large"), path):
    assert list(variables["params"][name]) == [f"cand{j}"]
  back = tk.to_torch_state_dict(variables, model_cfg, bnneck=True)
  assert "conv3d_10.4.3.conv3d.weight" in back and "conv3d_10.0.0.conv3d.weight" not in back
  full = tk.to_torch_state_dict(variables, model_cfg, bnneck=True, complete=True)
  assert set(full) == set(sd)
  np.testing.assert_array_equal(full["conv3d_10.0.1.running_var"], 1.0)


@pytest.mark.parametrize("name,channels,path,frames", [
    ("sposgait_large", (4, 8, 8, 8), (0, 0, 4, 5, 2, 0, 4, 3, 4, 3), 6),
    ("sposgait_large", (4, 8, 8, 8), (1, 2, 3, 1, 5, 4, 0, 2, 1, 5), 7),
    ("sposgait_medium", (4, 8, 8, 8), (0, 0, 4, 3, 0, 3, 0), 3),
    ("sposgait_small", (4, 8, 8), (0, 5, 0, 1), 2),
])
@pytest.mark.parametrize("train", [False, True])
def test_converted_weights_match_numpy_reference(name, channels, path, frames, train):
  model_cfg = cfg(name, channels)
  sd = random_state_dict(model_cfg, True, seed=len(path) + frames)
  x = np.random.default_rng(frames).uniform(0, 1, (2, frames, H, W)).astype(np.float32)
  ref_sd = dict(sd)
  want = np_forward(ref_sd, x, path, name, (4, 2, 1), train)
  model = build_model(model_cfg, bnneck=True, fixed_path=path)
  variables = tk.convert_torch_state_dict(sd, model_cfg, bnneck=True, fixed_path=path)
  # Jitted: op by op, every small op compiles on its own (most of a case's time).
  apply = jax.jit(functools.partial(model.apply, path=path, train=train,
                                    mutable=["batch_stats"] if train else False))
  if train:
    got, upd = apply(variables, jnp.asarray(x))
    new_sd = tk.to_torch_state_dict({"params": variables["params"], **upd}, model_cfg,
                                    bnneck=True)
    for key in new_sd:
      if key.endswith(("running_mean", "running_var")):
        assert_close(new_sd[key], ref_sd[key], rtol=1e-4, err_msg=key)
  else:
    got = apply(variables, jnp.asarray(x))
  for k in ("embeddings", "logits"):
    assert_close(got[k], want[k], rtol=1e-4, err_msg=k)
