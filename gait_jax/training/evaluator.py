"""`train.eval_every`: evaluation of the current weights during training.

`train.eval_on=test` (the reference's with_test) embeds `embed.split` and runs
`evaluate.protocol`. `train.eval_on=holdout` embeds the training ids this run held out
(WORKDIR/holdout.json) and scores them as the search's fitness does, so hyperparameters can be
chosen without looking at the test ids. Scalars go to TensorBoard under eval/; each evaluation
is also appended to WORKDIR/validation.json and the curve redrawn in WORKDIR/validation.png.
The dataset and the jitted embed function are built once."""
from __future__ import annotations

import json
import os
import time

import jax
import numpy as np
from absl import logging

from gait_jax import config as config_lib
from gait_jax.common import io
from gait_jax.data import holdout
from gait_jax.data import splits
from gait_jax.evaluation import embed as embed_lib
from gait_jax.evaluation import embedding_checks
from gait_jax.evaluation import protocols
from gait_jax.evaluation.protocol import Sequences

HISTORY_FILE = "validation.json"
CURVE_FILE = "validation.png"


class Evaluator:

  def __init__(self, config, model, mesh, workdir: str):
    self.config, self.model, self.mesh, self.workdir = config, model, mesh, workdir
    self.dataset = None

  def _open(self):
    c = self.config
    if c.train.eval_on == "holdout":
      recorded = holdout.read_holdout(self.workdir)
      if recorded is None:
        raise ValueError(f"train.eval_on=holdout: {self.workdir}/{holdout.HOLDOUT_FILE} is "
                         "missing (it is written when the run starts)")
      self.dataset = splits.open_split(c.data, "train", num_train=c.data.num_train, cache=True,
                                       ids=recorded[1])
      self.limit = embed_lib.frames_limit(c)
      ds = self.dataset
      self.protocol = protocols.for_holdout(c, Sequences.of(ds.ids, ds.types, ds.views))
    else:
      self.dataset, self.limit = embed_lib.open_eval_split(c)
      self.protocol = protocols.from_config(c, self.workdir)
    self.embed_fn = embed_lib.make_embed_fn(self.model, self.mesh, c.embed.bf16)

  def __call__(self, state, path, step, writer) -> dict:
    c = self.config
    if self.dataset is None:
      self._open()
    t0 = time.monotonic()
    out = embed_lib.embed_dataset(
        self.model, state.variables, self.dataset, tuple(int(v) for v in path),
        batch_per_device=c.embed.batch, frames_all_limit=self.limit, mesh=self.mesh,
        embed_fn=self.embed_fn, workers=max(1, c.data.workers), progress=False,
        flip=c.embed.flip)
    where = f"train.eval_every at step {step} ({c.train.eval_on})"
    embedding_checks.check_finite(out["embeddings"], out["labels"], out["types"], out["views"],
                                  where)
    metrics, table = protocols.evaluate(self.protocol, out["embeddings"], out["labels"],
                                        out["types"], out["views"])
    if c.train.eval_on == "holdout":
      score = self.protocol.fitness(metrics)
      metrics = {**metrics, "validation": score}
      table = (f"validation ({self.protocol.name} on {len(set(out['labels']))} held-out ids): "
               f"{score:.2f}")
    logging.info("evaluation at step %d with path %s (%.1f s):\n%s", step,
                 config_lib.format_path(path), time.monotonic() - t0, table)
    scalars = {f"eval/{k}": float(v) for k, v in metrics.items()
               if isinstance(v, (int, float, np.floating, np.integer))}
    writer.write_scalars(step, scalars)
    if jax.process_index() == 0:
      record(self.workdir, step, {k[len("eval/"):]: v for k, v in scalars.items()},
             f"{c.train.eval_on}: {self.protocol.name}", self.protocol.headline)
    return metrics


def record(workdir: str, step: int, scalars: dict, what: str, headline: str = "") -> None:
  """Appends one evaluation to WORKDIR/validation.json (replacing any at this step or later:
  a resumed run evaluates those again) and redraws WORKDIR/validation.png (`draw_curve`)."""
  path = os.path.join(workdir, HISTORY_FILE)
  points = read_history(workdir)
  points = [p for p in points if int(p["step"]) < step] + [{"step": int(step), **scalars}]
  io.write_json(path, {"evaluated_on": what, "points": points})
  draw_curve(points, os.path.join(workdir, CURVE_FILE), what, headline)


def read_history(workdir: str) -> list:
  path = os.path.join(workdir, HISTORY_FILE)
  if not os.path.exists(path):
    return []
  try:
    with open(path) as f:
      return list(json.load(f)["points"])
  except (OSError, ValueError, KeyError, TypeError) as e:
    raise ValueError(f"{path} is unreadable ({type(e).__name__}: {e}); it holds this run's "
                     "evaluation history: move it aside to start a new one") from None


def curve_keys(points: list, headline: str = "") -> list:
  """The metrics `draw_curve` plots: the protocol's headline (e.g. `mean/rank1_exclude`), the
  same figure per probe group (`NM/rank1_exclude`; not per view) and the validation score."""
  figure = headline.rsplit("/", 1)[-1] or "rank1"
  keys = sorted({k for p in points for k in p
                 if k == "validation" or k.count("/") <= 1 and k.rsplit("/", 1)[-1] == figure})
  if "validation" in keys and headline in keys:
    keys.remove(headline)  # the validation score is that headline: one line, not two
  return keys


def draw_curve(points: list, out: str, what: str, headline: str = "") -> list:
  """Draws `curve_keys` against the step; returns them."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  steps = [p["step"] for p in points]
  keys = curve_keys(points, headline)
  fig, ax = plt.subplots(figsize=(6, 3.6))
  for k in keys:
    wide = k in ("validation", headline)
    ax.plot(steps, [p.get(k, np.nan) for p in points], marker="o", markersize=3,
            linewidth=2.2 if wide else 1.0, label=k)
  ax.set_xlabel("step")
  ax.set_ylabel("Rank-1 (%)")
  ax.set_title(f"evaluation during training ({what})", fontsize=9)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7, loc="best")
  fig.tight_layout()
  with io.atomic_open(out, "wb") as f:
    fig.savefig(f, format="png", dpi=100)
  plt.close(fig)
  return keys
