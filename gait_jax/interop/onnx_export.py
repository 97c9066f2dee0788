"""A fixed-path model in inference mode as an ONNX graph, through jax2onnx.

The graph maps `sils` float32 `[batch, frames, 64, 44]` (pretreated silhouettes cut to 44
columns and scaled to [0, 1], exactly what `embed` feeds the network) to `embeddings` float32
`[batch, out_channels, parts]`, with BN in inference mode (running statistics). Both axes are
dynamic unless `frames` fixes the frame count; every row is a whole clip of at least 3 frames
(shorter clips: tile them first, 1 → 3 and 2 → 4 frames, as the network does). A model
whose config has `embed.flip` exports the same mirror-averaged embedding `embed` computes.

What jax2onnx takes as it is: the 3-D convolutions (`lax.conv_general_dilated` → Conv), flax's
max pool (MaxPool), the temporal max (ReduceMax), BN arithmetic and the per-part einsums
(MatMul). GeM's `x ** p` with a dynamic batch axis it does not, so the model is traced inside
`layers.export_form()`, where the power is `exp(p · log x)` (x > 0 there): equal to float
rounding, which tests check against the plain model.

jax2onnx is an optional dependency (requirements-export.txt).
"""
from __future__ import annotations

import logging as std_logging
import os
from typing import Any, Dict, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from gait_jax import config as config_lib
from gait_jax.common import io
from gait_jax.models import layers, space, weights
from gait_jax.models import INPUT_HW

OPSET = 18  # the oldest opset whose ReduceMean/ReduceMax take axes as jax2onnx writes them
MIN_FRAMES = 3  # the network tiles shorter clips itself, which a static graph cannot


def _converter():
  # jax2onnx imports its example plugins at once and logs a warning for each whose own
  # dependency (equinox, dm-pix) is missing; those examples are not used here.
  for name in ("jax2onnx", "onnx_ir"):  # and onnx_ir warns of untyped shape constants
    std_logging.getLogger(name).setLevel(std_logging.ERROR)
  try:
    import jax2onnx  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise SystemExit("ONNX export needs the optional export dependencies: "
                     "pip install --no-deps -r requirements-export.txt") from None
  return jax2onnx


def inference_fn(model, variables, flip: bool = False):
  """`sils -> embeddings` of a fixed-path model with its weights closed over; with `flip`
  (`embed.flip`), the mean with the horizontally mirrored clip's, as `embed` computes it."""
  path = tuple(model.fixed_path)

  def embed(sils):
    out = model.apply(variables, sils, path, train=False)["embeddings"]
    if flip:
      mirrored = model.apply(variables, sils[..., ::-1], path, train=False)["embeddings"]
      out = (out + mirrored) / 2
    return out
  return embed


def load_fixed_model(workdir: str, path: Optional[Sequence[int]] = None,
                     step: Optional[int] = None):
  """(model, NumPy variables, path, step, embed.flip) of a workdir: its config's path, or
  `path` for a supernet workdir (checked against the space it was trained on)."""
  config = config_lib.saved_config(workdir)
  saved_path = config_lib.model_path(config)
  if path is None:
    path = saved_path
  if path is None:
    raise ValueError(f"{workdir} is a supernet: choose its network with --path (e.g. the "
                     "search's best path)")
  path = tuple(int(v) for v in path)
  space.check_path(path, config.model.choice_max_num, key="--path",
                   model_name=config.model.name)
  model, variables, step = weights.load_fixed(config.model, path, workdir, step)
  return model, variables, path, step, config.embed.flip


def export(model, variables, out: str, frames: Optional[int] = None,
           flip: bool = False) -> Dict[str, Any]:
  """Writes the ONNX graph of `model` (with `flip`: the mirror-averaged embedding) to `out`
  atomically: a full disk or a failure leaves no truncated file; returns its description."""
  jax2onnx = _converter()
  if frames is not None and frames < MIN_FRAMES:
    raise ValueError(f"--frames={frames}: the graph needs at least {MIN_FRAMES} frames")
  shape = f"batch, {frames if frames else 'frames'}, {INPUT_HW[0]}, {INPUT_HW[1]}"
  constraints = () if frames else (f"frames >= {MIN_FRAMES}",)
  spec = jax.ShapeDtypeStruct(jax.export.symbolic_shape(shape, constraints=constraints),
                              jnp.float32)
  variables = jax.tree.map(jnp.asarray, variables)
  with layers.export_form():
    proto = jax2onnx.to_onnx(inference_fn(model, variables, flip), [spec],
                             model_name="sposgait", opset=OPSET, input_names=["sils"],
                             output_names=["embeddings"])
  with io.atomic_open(out, "wb") as f:
    f.write(proto.SerializeToString())
  return {"input": f"sils float32 [{shape}]", "output": "embeddings float32 [batch, "
          f"{model.out_channels}, {sum(model.bins)}]", "opset": OPSET, "flip": flip}


def run_onnx(path: str, sils: np.ndarray) -> np.ndarray:
  """The embeddings ONNX Runtime computes for `sils` with the graph at `path`."""
  import onnxruntime  # pylint: disable=g-import-not-at-top
  session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
  return session.run(["embeddings"], {"sils": np.asarray(sils, np.float32)})[0]
