#!/usr/bin/env python
"""The reference network in PyTorch, for the side-by-side benchmark and the interop fixtures.

SPOSGait_small with the reference's layout, module names and ops, rebuilt from its description
(the state-dict keys are the reference's). Runs only where PyTorch is installed: the venv
`tools/benchmark.py reference` makes from requirements-bench.txt, never the test command's.

  python tools/reference_torch.py '{"channels": [64, 128, 256], "path": [0, 5, 0, 1], ...}'

sets the work up and runs each unit once untimed (allocations, oneDNN's plans for every shape),
prints one line `@@ {"ready": ...}`, then answers each command line on stdin with one line
`@@ {"seconds": ...}` until its input ends: `train`, one train step (forward, the reference's
batch-all triplet loss, backward, SGD with momentum and weight decay; with its loss), and
`embed`, one pass embedding the sequences whole, one per call (the reference's test: batch 1,
all frames). With `"bf16": true`, also `train_bf16` and `embed_bf16`, PyTorch's own ways: the
train step under CPU autocast (mixed precision: its convolutions in bfloat16, float32 weights),
the embedding with the network cast to bfloat16. The benchmark runs it beside gait_jax's side
(gait_jax/benchmarks/reference_speed.py), one unit of each in turn.
"""
import copy
import importlib.util
import json
import os
import sys
import time

import torch
from torch import nn
import torch.nn.functional as F

# The side-by-side protocol (stdlib only), loaded from its file: PyTorch's venv has no gait_jax.
_spec = importlib.util.spec_from_file_location("_served", os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "gait_jax", "benchmarks", "_served.py"))
_served = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_served)

KERNELS = (((3, 3, 3),), ((3, 1, 3),), ((3, 3, 1),), ((3, 3, 1), (3, 1, 3)),
           ((3, 1, 3), (3, 3, 1)), ((3, 1, 1), (1, 3, 3)))


class BasicConv3d(nn.Module):
  def __init__(self, cin, cout, kernel, stride=1, padding=0):
    super().__init__()
    self.conv3d = nn.Conv3d(cin, cout, kernel, stride=stride, padding=padding, bias=False)

  def forward(self, x):
    return self.conv3d(x)


def candidate(j, cin, cout, flg_relu):
  layers = []
  for i, k in enumerate(KERNELS[j]):
    layers += [BasicConv3d(cin if i == 0 else cout, cout, k, padding=tuple(v // 2 for v in k)),
               nn.BatchNorm3d(cout)]
    if i < len(KERNELS[j]) - 1 or flg_relu:
      layers.append(nn.ReLU(inplace=True))
  return nn.Sequential(*layers)


def downsample(cin, cout):
  return nn.Sequential(nn.Conv3d(cin, cout, 1, bias=False), nn.BatchNorm3d(cout))


class SPOSGaitSmall(nn.Module):
  """SPOSGait_small; `classes=0` leaves out the BN-neck (a triplet-only config)."""

  def __init__(self, channels=(4, 8, 8), bins=(4, 2, 1), out=8, classes=8):
    super().__init__()
    c0, c1, c2 = channels
    self.bins, self.out = tuple(bins), out
    parts = sum(bins)
    self.conv3d_00 = nn.ModuleList(candidate(j, 1, c0, True) for j in range(6))
    self.downsample0 = downsample(1, c0)
    self.LTA = nn.Sequential(BasicConv3d(c0, c0, (3, 1, 1), stride=(3, 1, 1)), nn.LeakyReLU())
    self.conv3d_20 = nn.ModuleList(candidate(j, c0, c1, True) for j in range(6))
    self.downsample2 = downsample(c0, c1)
    self.conv3d_30 = nn.ModuleList(candidate(j, c1, c2, True) for j in range(6))
    self.downsample3 = downsample(c1, c2)
    self.conv3d_40 = nn.ModuleList(candidate(j, c2, c2, True) for j in range(6))
    self.downsample4 = downsample(c2, c2)
    self.HPP = nn.Module()
    self.HPP.p = nn.Parameter(torch.ones(1) * 6.5)
    self.Head0 = nn.Module()
    self.Head0.fc_bin = nn.Parameter(nn.init.xavier_uniform_(torch.zeros(parts, c2, out)))
    self.BNNecks = None
    if classes:
      self.BNNecks = nn.Module()
      self.BNNecks.fc_bin = nn.Parameter(nn.init.xavier_uniform_(torch.zeros(parts, out, classes)))
      self.BNNecks.bn1d = nn.BatchNorm1d(out * parts)

  def forward(self, sils, path):
    x = sils.unsqueeze(1)  # [n, 1, s, h, w]
    s = x.shape[2]
    if s < 3:
      x = x.repeat(1, 1, 3 if s == 1 else 2, 1, 1)
    x = F.relu(self.conv3d_00[path[0]](x) + self.downsample0(x))
    x = F.max_pool3d(x, (1, 2, 2), (1, 2, 2))
    x = self.LTA(x)
    x = self.conv3d_20[path[1]](x) + self.downsample2(x)
    x = F.max_pool3d(x, (1, 2, 2), (1, 2, 2))
    x = self.conv3d_30[path[2]](x) + self.downsample3(x)
    x = self.conv3d_40[path[3]](x) + self.downsample4(x)
    x = torch.max(x, dim=2)[0]  # [n, c, h, w]
    n, c, h, w = x.shape
    feats = []
    for b in self.bins:
      z = x.view(n, c, b, -1).clamp(min=1e-6).pow(self.HPP.p)
      feats.append(z.mean(-1).pow(1.0 / self.HPP.p))
    feat = torch.cat(feats, -1)  # [n, c, p]
    embed = feat.permute(2, 0, 1).matmul(self.Head0.fc_bin).permute(1, 2, 0)  # [n, out, p]
    if self.BNNecks is None:
      return embed, None
    p = embed.shape[-1]
    bn = self.BNNecks.bn1d(embed.reshape(n, -1)).view(n, self.out, p)
    logits = F.normalize(bn.permute(2, 0, 1), dim=-1).matmul(
        F.normalize(self.BNNecks.fc_bin, dim=1)).permute(1, 2, 0)
    return embed, logits


def triplet_loss(embed, labels, margin=0.2):
  """The reference's batch-all triplet loss: per part, the mean of the active hinge terms."""
  x = embed.permute(2, 0, 1)  # [p, n, c]
  x2 = (x ** 2).sum(-1)
  # F.relu as OpenGait: its backward is 0 at an exact 0 (the anchor as its own positive), where
  # clamp(min=0) passes sqrt's infinite slope through and every gradient becomes NaN.
  dist = F.relu(x2.unsqueeze(2) + x2.unsqueeze(1) - 2 * x.matmul(x.transpose(1, 2))).sqrt()
  same = labels.unsqueeze(0) == labels.unsqueeze(1)
  p, n = dist.shape[:2]
  ap = dist.masked_select(same.unsqueeze(0)).view(p, n, -1, 1)  # each anchor's positives
  an = dist.masked_select(~same.unsqueeze(0)).view(p, n, 1, -1)  # and negatives
  loss = F.relu(ap - an + margin).view(p, -1)
  return (loss.sum(-1) / ((loss != 0).sum(-1) + 1e-9)).mean()


class Work:
  """The reference's network, optimiser and inputs for `spec`; `units` times one unit each."""

  def __init__(self, spec: dict):
    torch.set_num_threads(int(spec["threads"]))
    torch.manual_seed(0)
    self.path = spec["path"]
    build = lambda: SPOSGaitSmall(spec["channels"], spec["bins"], spec["out"], classes=0)  # noqa: E731
    self.model = build()
    start = copy.deepcopy(self.model.state_dict())
    n = spec["batch"]
    self.labels = torch.arange(n) // spec["batch_k"]
    gen = torch.Generator().manual_seed(1)
    self.sils = (torch.rand(n, spec["frames"], 64, 44, generator=gen) > 0.5).float()
    # The same frame counts gait_jax embeds.
    self.seqs = [(torch.rand(1, int(t), 64, 44, generator=gen) > 0.5).float()
                 for t in spec["lengths"]]
    self.opt = _sgd(self.model)
    self.units = {"train": lambda: self._train(self.model, self.opt, False),
                  "embed": lambda: self._embed(self.model, self.seqs)}
    if spec.get("bf16"):
      half = build()
      half.load_state_dict(start)
      half_opt = _sgd(half)
      cast = build()
      cast.load_state_dict(start)
      cast = cast.to(torch.bfloat16)
      seqs16 = [s.to(torch.bfloat16) for s in self.seqs]
      self.units.update(train_bf16=lambda: self._train(half, half_opt, True),
                        embed_bf16=lambda: self._embed(cast, seqs16))

  def _train(self, model, opt, bf16: bool) -> dict:
    model.train()
    t0 = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
      embed, _ = model(self.sils, self.path)
      loss = triplet_loss(embed.float(), self.labels)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return {"seconds": time.perf_counter() - t0, "loss": loss.item()}

  def _embed(self, model, seqs) -> dict:
    model.eval()
    with torch.no_grad():
      t0 = time.perf_counter()
      for s in seqs:
        model(s, self.path)
      return {"seconds": time.perf_counter() - t0}


def _sgd(model):
  return torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)


def serve(spec: dict, commands=None) -> None:
  """Warms every unit up untimed, says ready, then answers each command with its unit's time."""
  work = Work(spec)
  warm = {name: unit() for name, unit in work.units.items()}
  _served.answer_commands(work.units, {
      "ready": True, "torch": torch.__version__, "threads": torch.get_num_threads(),
      "sequences": len(work.seqs), "loss": warm["train"]["loss"]}, commands)


if __name__ == "__main__":
  serve(json.loads(sys.argv[1]))
