"""embed / test modes: packed, sharded whole-sequence embedding of a tiny generated set."""
import json
import os
import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import load_config
from gait_jax.evaluation import embed
from gait_jax.modes import inference
from gait_jax.common import checkpoint, huge_pages
from gait_jax.common import parallel as mesh_lib
from gait_jax.data import GaitDataset, load_sequence
from gait_jax.models import build_model, conv, onednn_conv
from helpers.gait_tree import make_tree
from helpers.variables import random_variables
from helpers import assert_close

PATH = (0, 5, 5, 4)
# Lengths 3-20 frames: rows of 8, 12 and 24 frames below.
LENGTHS = {("001", "nm-01"): 5, ("001", "nm-02"): 8, ("002", "nm-01"): 10,
           ("002", "nm-02"): 12, ("003", "nm-01"): 20, ("003", "nm-02"): 3}


_APPLY = {}


def apply_alone(model, variables, seq):
  """One sequence, unpadded, no lengths mask, no sharding (one jitted function per model)."""
  if model not in _APPLY:
    _APPLY[model] = jax.jit(lambda v, x: model.apply(v, x, PATH, train=False)["embeddings"][0])
  return np.asarray(_APPLY[model](variables, jnp.asarray(seq)[None]))


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
  base = tmp_path_factory.mktemp("embed")
  root, partition = make_tree(base, views=("090",), frames=lambda i, t, v: LENGTHS[(i, t)],
                              train=[], test=["001", "002", "003"], name="tiny")
  return root, partition


@pytest.fixture(scope="module")
def tiny():
  config = load_config("test_tiny")
  model = build_model(config.model, bnneck=False, fixed_path=PATH)
  variables = random_variables(model, PATH, 1)  # non-trivial BN statistics: inference-mode BN matters
  return config, model, variables


def _counting(fn, shapes):
  """`fn` that also records the [rows, frames] of every batch it is given."""
  def call(variables, sils, segments, path):
    shapes.append(tuple(sils.shape[:2]))
    return fn(variables, sils, segments, path)
  return call


def test_embed_dataset_matches_one_by_one_and_is_deterministic(tree, tiny):
  config, model, variables = tiny
  ds = GaitDataset(*tree, split="test")
  # Two devices, one sequence each: batches of 2 rows.
  mesh = mesh_lib.make_mesh(jax.devices()[:2])
  fn = embed._make_embed_fn(model, mesh)  # uncached: count this test's compilations only
  shapes = []
  kw = dict(batch_per_device=1, mesh=mesh, embed_fn=_counting(fn, shapes), progress=False)
  out = embed.embed_dataset(model, variables, ds, PATH, **kw)
  assert out["embeddings"].shape == (6, config.model.out_channels, config.model.parts)
  assert out["embeddings"].dtype == np.float32
  assert out["labels"].tolist() == [s.id for s in ds.sequences]
  assert out["types"].tolist() == ["nm-01", "nm-02"] * 3 and set(out["views"]) == {"090"}
  # One row per device. In dataset order (lengths 5, 8, 10, 12, 20, 3; slots with their gaps
  # 6, 9, 12, 15, 21, 6) the first three fill two rows of 12 frames (10 | 8; the 5 waits),
  # then 20 | 12 + the waiting 5 fill rows of 24 (the 5 at frame 15, after the 12), and the
  # last (3) goes alone in a row of 8. Compilations: one per row length (12, 24, 8).
  assert shapes == [(2, 12), (2, 24), (2, 8)]
  assert fn._cache_size() == 3
  again = embed.embed_dataset(model, variables, ds, PATH, **kw)
  np.testing.assert_array_equal(again["embeddings"], out["embeddings"])
  assert fn._cache_size() == 3
  # Each sequence alone, unpadded, no lengths mask, no sharding: packed neighbours and the
  # gaps between them change nothing.
  for i in range(len(ds)):
    seq = load_sequence(ds, i)
    assert seq.shape[0] == LENGTHS[(ds.sequences[i].id, ds.sequences[i].type)]
    assert_close(out["embeddings"][i], apply_alone(model, variables, seq), rtol=1e-4)
  # All devices (8 rows): the six sequences never fill 8 rows, so they are packed at the end
  # into rows of the longest one's bucket (24; one of them holds 10, 5 and 3), one per device.
  shapes.clear()
  full = embed.embed_dataset(model, variables, ds, PATH, batch_per_device=1,
                             embed_fn=_counting(embed._make_embed_fn(model, mesh_lib.make_mesh()),
                                                shapes), progress=False)
  assert shapes == [(jax.device_count(), 24)]
  assert_close(full["embeddings"], out["embeddings"], rtol=1e-4)


@pytest.mark.skipif(not huge_pages.pausable(), reason="PR_GET_THP_DISABLE unavailable here")
def test_embedding_runs_with_the_huge_pages_paused(tree, tiny, monkeypatch):
  """Where the process asks for huge pages, every embedding call runs on 4 KiB pages."""
  monkeypatch.setattr(huge_pages, "active", lambda: True)
  _, model, variables = tiny
  seen = []
  fn = embed.make_embed_fn(model, mesh_lib.make_mesh())
  def recording(*args):
    seen.append(huge_pages.thp_disabled())
    return fn(*args)
  embed.embed_dataset(model, variables, GaitDataset(*tree, split="test"), PATH, batch=1,
                      embed_fn=recording, progress=False)
  assert seen and all(seen) and not huge_pages.thp_disabled()


def test_frame_limit_and_traced_path_reuse(tree, tiny):
  """One compiled function serves every path of a supernet — also when the caller passes no
  embed_fn, as search does (cached per model and mesh); frames_all_limit truncates."""
  config, _, _ = tiny
  ds = GaitDataset(*tree, split="test")
  supernet = build_model(config.model, bnneck=False)
  variables = random_variables(supernet, jnp.asarray(PATH, jnp.int32), 2)
  mesh = mesh_lib.make_mesh()
  kw = dict(batch=1, mesh=mesh, progress=False, frames_all_limit=8)
  a = embed.embed_dataset(supernet, variables, ds, PATH, **kw)
  b = embed.embed_dataset(supernet, variables, ds, jnp.asarray((0, 1, 2, 3), jnp.int32), **kw)
  fn = embed.make_embed_fn(build_model(config.model, bnneck=False), mesh)  # equal model: cached
  assert fn._cache_size() == 1  # limit 8: slots of at most 9 frames, rows of 12, both paths
  assert not np.allclose(a["embeddings"], b["embeddings"])
  # The truncated 20-frame sequence equals its first 8 frames embedded alone.
  i = [k for k, s in enumerate(ds.sequences) if (s.id, s.type) == ("003", "nm-01")][0]
  first8 = load_sequence(ds, i)[:8]
  assert_close(a["embeddings"][i], apply_alone(supernet, variables, first8), rtol=1e-4)


def _checkpoint_with_extra_candidates(workdir, variables, step=7):
  """A checkpoint holding more than the path uses (as a supernet's does: other candidates,
  a BN-neck): embed must pick the path's subset by name."""
  params = jax.tree.map(np.asarray, dict(variables["params"]))
  params["conv3d_20"] = dict(params["conv3d_20"], cand0={"unused": np.ones((3,), np.float32)})
  params["BNNecks"] = {"fc_bin": np.ones((7, 8, 8), np.float32)}
  ck = checkpoint.Checkpointer(checkpoint.checkpoint_dir(workdir))
  ck.save(step, {"params": params, "batch_stats": variables["batch_stats"]}, {"step": step})
  ck.wait()
  ck.close()


@pytest.fixture
def custom_config(tree, tiny):
  """The tiny config on the tiny tree, with a custom protocol: nm-01 gallery, nm-02 probes."""
  config = tiny[0].unlock()
  config.data.root, config.data.partition = tree
  config.evaluate.protocol = "custom"
  config.evaluate.custom_gallery = "nm-01/*"
  config.evaluate.custom_probes = "nm=nm-02/*"
  return config


def test_test_mode_writes_npz_and_metrics(tree, tiny, custom_config, tmp_path):
  config = custom_config
  workdir = str(tmp_path / "w")
  with pytest.raises(ValueError, match="model.path"):
    inference.run_embed(config, workdir)
  config.model.path = ",".join(map(str, PATH))
  _, model, variables = tiny
  _checkpoint_with_extra_candidates(workdir, variables)
  inference.run_test(config, workdir)
  with np.load(os.path.join(workdir, "embeddings.npz")) as z:
    assert z["embeddings"].shape == (6, 8, 7) and int(z["step"]) == 7
    assert z["labels"].tolist() == ["001", "001", "002", "002", "003", "003"]
    emb = z["embeddings"]
  # The checkpoint's weights on the path, applied directly, give the same embeddings.
  ds = GaitDataset(*tree, split="test")
  seq = load_sequence(ds, 0, int(config.data.test_frames_all_limit))
  assert_close(emb[0], apply_alone(model, variables, seq), rtol=1e-4)
  metrics = json.loads(open(os.path.join(workdir, "metrics.json")).read())
  assert metrics["nm/probes"] == 3.0 and 0.0 <= metrics["nm/rank1"] <= 100.0


def test_checkpoint_mismatch_names_the_variable(tiny):
  template = {"params": {"Head0": {"fc_bin": jax.ShapeDtypeStruct((7, 8, 8), jnp.float32)}}}
  with pytest.raises(ValueError, match="params/Head0/fc_bin has shape"):
    checkpoint.select_by_name({"params": {"Head0": {"fc_bin": np.zeros((7, 8, 4))}}}, template, "ck")
  with pytest.raises(ValueError, match="params/Head0/fc_bin is missing"):
    checkpoint.select_by_name({"params": {}}, template, "ck")


def test_fixed_model_refuses_another_path(tree, tiny):
  # Inside the jitted function the path is traced and a fixed-path model would run its own
  # candidates whatever it says.
  _, model, variables = tiny
  ds = GaitDataset(*tree, split="test")
  with pytest.raises(ValueError, match="differs from the model's fixed_path"):
    embed.embed_dataset(model, variables, ds, (0, 0, 0, 0), progress=False)


def test_path_outside_the_supernets_trained_space_is_refused(tree, tiny, tmp_path):
  config = tiny[0].unlock()
  config.data.root, config.data.partition = tree
  workdir = str(tmp_path / "supernet")
  _checkpoint_with_extra_candidates(workdir, tiny[2])
  with open(os.path.join(workdir, "config.json"), "w") as f:
    json.dump({"model": {"name": "sposgait_small", "path": "", "choice_max_num": [1, 6, 6, 6]}}, f)
  config.model.choice_max_num = (6, 6, 6, 6)  # this config allows it; the supernet never trained it
  config.model.path = "3,5,5,4"
  with pytest.raises(ValueError, match=r"supernet .* position 0 is 3; .*allows only 0"):
    inference.embed_config(config, workdir)


def test_non_finite_embeddings_are_refused_before_anything_is_written(tiny, custom_config,
                                                                      tmp_path):
  config = custom_config
  config.model.path = ",".join(map(str, PATH))
  _, _, variables = tiny
  huge = jax.tree.map(np.array, variables)
  huge["params"]["Head0"]["fc_bin"] *= 1e38  # finite weights whose embeddings overflow
  workdir = str(tmp_path / "w")
  _checkpoint_with_extra_candidates(workdir, huge)
  with pytest.raises(ValueError, match=r"embed: .* [1-6] of 6 embeddings are not finite .*, from"):
    inference.run_test(config, workdir)
  assert not os.path.exists(os.path.join(workdir, "embeddings.npz"))
  assert not os.path.exists(os.path.join(workdir, "metrics.json"))


def test_flip_makes_the_embedding_independent_of_walking_direction(tree, tiny, tmp_path):
  config, model, variables = tiny
  ds = GaitDataset(*tree, split="test")
  kw = dict(batch_per_device=1, progress=False)
  plain = embed.embed_dataset(model, variables, ds, PATH, **kw)["embeddings"]
  flipped = embed.embed_dataset(model, variables, ds, PATH, flip=True, **kw)["embeddings"]
  assert not np.allclose(plain, flipped)  # the network itself is not mirror-symmetric
  # The same sequences walking the other way: a tree of their mirror images.
  root, partition = tree
  mirror = str(tmp_path / "mirror")
  for s in ds.sequences:
    d = os.path.join(mirror, s.id, s.type, s.view)
    os.makedirs(d)
    with open(os.path.join(d, f"{s.view}.pkl"), "wb") as f:
      pickle.dump(np.ascontiguousarray(ds.load(ds.sequences.index(s))[0][:, :, ::-1]), f)
  mirrored = GaitDataset(mirror, partition, split="test")
  other_way = embed.embed_dataset(model, variables, mirrored, PATH, flip=True, **kw)["embeddings"]
  # base_sil_cutting keeps columns 10..53 of 64, a symmetric window: the mirror of the cut
  # frame is the cut of the mirrored frame, so both directions give one embedding.
  assert_close(other_way, flipped, rtol=1e-5)
  mirror_plain = embed.embed_dataset(model, variables, mirrored, PATH, **kw)["embeddings"]
  assert_close(flipped, (plain + mirror_plain) / 2, rtol=1e-5)


@pytest.mark.parametrize("units", ["this CPU's", "none"])
def test_bf16_products_where_the_cpu_has_them_float32_elsewhere(tree, tiny, monkeypatch, caplog,
                                                                units):
  """`embed.bf16`: on one device with oneDNN's convolutions, bfloat16 products where the CPU has
  bfloat16 units (embeddings within 1e-2 of float32's, not equal to them); elsewhere float32
  exactly, with one log line saying why ("none": a CPU without them, on any machine)."""
  if units == "none":
    monkeypatch.setattr(conv.cpu, "has_bf16_units", lambda: False)
  _, model, variables = tiny
  ds = GaitDataset(*tree, split="test")
  if onednn_conv.available():
    monkeypatch.setenv(conv.ENV_VAR, "onednn")  # the suite's 8 CPU devices default to fold
  monkeypatch.setattr(embed, "_EMBED_FNS", {})
  kw = dict(batch_per_device=1, mesh=mesh_lib.make_mesh(jax.devices()[:1]), progress=False)
  plain = embed.embed_dataset(model, variables, ds, PATH, **kw)["embeddings"]
  with caplog.at_level("WARNING"):
    fast = embed.embed_dataset(model, variables, ds, PATH, bf16=True, **kw)["embeddings"]
  why = conv.bf16_available()
  lines = [r.getMessage() for r in caplog.records if "embed.bf16" in r.getMessage()]
  if why:
    assert len(lines) == 1 and why in lines[0]
    np.testing.assert_array_equal(fast, plain)
  else:
    assert not lines
    a, b = plain.reshape(len(plain), -1), fast.reshape(len(fast), -1)
    deviation = np.linalg.norm(a - b, axis=1) / np.linalg.norm(a, axis=1)
    assert 0 < deviation.max() < 1e-2, deviation
