"""TensorBoard writers with clu's method names, usable without TensorFlow.

`clu.metric_writers` imports TensorFlow at package import (STACK_NOTES), so by default the
event files are written with tensorboardX. When TensorFlow happens to be importable, clu's
own default writer is used instead; both expose the same methods:

  write_scalars(step, {name: float}), write_images(step, {name: [N, H, W, C]}),
  write_histograms(step, {name: array}), write_texts(step, {name: str}),
  write_hparams({name: value}), flush(), close().
"""
from __future__ import annotations

import importlib.util
import os
from typing import Any, Mapping

import numpy as np
from absl import logging


def _scalar(value) -> float:
  return float(np.asarray(value))


def flatten_hparams(params: Mapping[str, Any], prefix: str = "") -> dict:
  """Nested dicts (e.g. `config.to_dict()`) -> {"a.b": bool|int|float|str}.

  TensorBoard's hparams plugin accepts only those four types, so tuples/lists/None become
  their string form."""
  flat = {}
  for key, value in params.items():
    name = f"{prefix}{key}"
    if isinstance(value, Mapping):
      flat.update(flatten_hparams(value, name + "."))
    elif isinstance(value, (bool, int, float, str)):
      flat[name] = value
    elif isinstance(value, (np.integer, np.floating, np.bool_)):
      flat[name] = value.item()
    else:
      flat[name] = str(value)
  return flat


class LoggingWriter:
  """Writes scalars and texts to the absl log only (non-zero processes, `just_logging`)."""

  def write_scalars(self, step: int, scalars: Mapping[str, Any]) -> None:
    text = ", ".join(f"{k}={_scalar(v):.6g}" for k, v in sorted(scalars.items()))
    logging.info("[%d] %s", step, text)

  def write_images(self, step: int, images: Mapping[str, Any]) -> None:
    logging.info("[%d] images: %s", step, {k: np.shape(v) for k, v in images.items()})

  def write_histograms(self, step: int, arrays: Mapping[str, Any], num_buckets=None) -> None:
    del step, arrays, num_buckets

  def write_texts(self, step: int, texts: Mapping[str, str]) -> None:
    for k, v in texts.items():
      logging.info("[%d] %s: %s", step, k, v)

  def write_hparams(self, hparams: Mapping[str, Any]) -> None:
    logging.info("hparams: %s", flatten_hparams(hparams))

  def flush(self) -> None:
    pass

  def close(self) -> None:
    pass


class TensorboardXWriter:
  """Event files in `logdir` through tensorboardX (no TensorFlow needed)."""

  def __init__(self, logdir: str):
    from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
    os.makedirs(logdir, exist_ok=True)
    self._writer = SummaryWriter(logdir=logdir, flush_secs=30)

  def write_scalars(self, step: int, scalars: Mapping[str, Any]) -> None:
    for name, value in scalars.items():
      self._writer.add_scalar(name, _scalar(value), global_step=int(step))

  def write_images(self, step: int, images: Mapping[str, Any]) -> None:
    for name, value in images.items():
      value = np.asarray(value)
      if value.ndim != 4:
        raise ValueError(f"write_images({name!r}): expected [N, H, W, C], got shape {value.shape}")
      if value.dtype != np.uint8:  # floats are expected in [0, 1], as in clu
        value = np.clip(value.astype(np.float32), 0.0, 1.0)
      self._writer.add_images(name, value, global_step=int(step), dataformats="NHWC")

  def write_histograms(self, step: int, arrays: Mapping[str, Any], num_buckets=None) -> None:
    for name, value in arrays.items():
      self._writer.add_histogram(name, np.asarray(value, dtype=np.float64), global_step=int(step),
                                 bins="auto" if num_buckets is None else int(num_buckets))

  def write_texts(self, step: int, texts: Mapping[str, str]) -> None:
    for name, value in texts.items():
      self._writer.add_text(name, str(value), global_step=int(step))

  def write_hparams(self, hparams: Mapping[str, Any]) -> None:
    from tensorboardX.summary import hparams as hparams_summary  # pylint: disable=g-import-not-at-top
    # tensorboardX's add_hparams opens a second run directory per call; write the three
    # summaries into this run instead, as clu does.
    flat = flatten_hparams(hparams)
    for summary in hparams_summary(flat, {}):
      self._writer.file_writer.add_summary(summary)

  def flush(self) -> None:
    self._writer.flush()

  def close(self) -> None:
    self._writer.close()


class MultiWriter:
  """Fans every call out to several writers."""

  def __init__(self, writers):
    self._writers = list(writers)

  def __getattr__(self, name):
    methods = [getattr(w, name) for w in self._writers]

    def call(*args, **kwargs):
      for method in methods:
        method(*args, **kwargs)
    return call


def _tensorflow_available() -> bool:
  return importlib.util.find_spec("tensorflow") is not None


def create_writer(logdir: str, just_logging: bool = False, also_log: bool = False):
  """The writer for `logdir` (normally WORKDIR/tb).

  Args:
    logdir: directory for the event files (created).
    just_logging: only log (use on processes other than 0, as clu's default writer).
    also_log: additionally echo scalars to the absl log.
  """
  if just_logging:
    return LoggingWriter()
  if _tensorflow_available():
    try:
      from clu import metric_writers  # pylint: disable=g-import-not-at-top
      return metric_writers.create_default_writer(logdir, just_logging=False)
    except Exception as e:  # a broken TensorFlow install must not stop training
      logging.warning("clu.metric_writers unavailable (%s); using tensorboardX", e)
  writer = TensorboardXWriter(logdir)
  return MultiWriter([writer, LoggingWriter()]) if also_log else writer
