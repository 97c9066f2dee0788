"""Every benchmark protocol of the reference, as plain functions of embeddings and labels.

Entry point: `run_protocol(name, emb, labels, types, views, eval_cfg, workdir=None,
partition=None) -> (metrics, table)`, metrics a flat `{name: float}` and table a printable
text. Percentages are in [0, 100]. Metric names per protocol:

* `casia_b` (probes NM = nm-05/06, BG = bg-01/02, CL = cl-01/02; gallery nm-01..04; one gallery
  view at a time) and `oumvlp` (probe `00`, gallery `01`; group `NM`, as the reference names it):
  `<G>/rank<k>_include` (mean of the view × view matrix), `<G>/rank<k>_exclude` (identical views
  excluded, reference `de_diag`), k = 1..5; `<G>/rank1_exclude/<view>` per probe view;
  `mean/rank<k>_include|exclude` = mean over the groups. Cells are round(100·hits/probes, 2).
* `grew` (gallery type `01`, probes `02`): `rank1`, `rank5`, `rank10`, `rank20`.
* `grew_submission` (gallery `01`,`02` + `04` distractors if present, probes `03`): writes
  `WORKDIR/submission/<time>.csv|.zip`; metrics `submission/probes`, `submission/gallery`.
* `gait3d` (probes = `PROBE_SET` of the partition file, gallery = the rest): `rank1`, `rank5`,
  `rank10`, `mAP`, `mINP` (reference `evaluate_rank`: probes without a true match are skipped).
* `custom` (`evaluate.custom_gallery` / `evaluate.custom_probes` globs on "type/view"):
  `<group>/rank1`, `<group>/rank5`, `<group>/mAP`, `<group>/probes`, and `mean/rank1|rank5|mAP`.

Reference conventions kept: probes whose id has no gallery item count as misses (CASIA-B,
OU-MVLP, GREW, custom ranks); they are skipped for Gait3D and for every mAP. An empty
probe set gives NaN (the reference divides by zero). Where the reference would crash we
give NaN (empty gallery) or cap ranks at the gallery size (rank-k with fewer than k
gallery items is the rank-|gallery| figure). Ties are ranked by ascending gallery index
(see distance.py).

Re-ranking (`evaluate.rerank=True`, k-reciprocal with evaluate.k1/k2/lambda_value) applies to
`grew`, `grew_submission`, `gait3d` and `custom` (per probe group: probes of the group +
gallery). It is refused for `casia_b`/`oumvlp`, whose single-view galleries of ~50–5000
items per cell make the neighbourhood statistics meaningless (and the reference never
re-ranks them).
"""
from __future__ import annotations

import fnmatch
import json
import logging
import os
from typing import Dict, Optional, Tuple

import numpy as np

from gait_jax.evaluation import distance as dist_lib
from gait_jax.evaluation import embedding_checks
from gait_jax.evaluation import rerank as rerank_lib
from gait_jax.evaluation import submission as submission_lib

PROTOCOLS = ("casia_b", "oumvlp", "grew", "grew_submission", "gait3d", "custom")
RERANK_PROTOCOLS = ("grew", "grew_submission", "gait3d", "custom")
# KTH-walk as a `custom` protocol (the real people of ../shared/data/kth_walking): gallery = each
# test id's first indoor pass, probes grouped by scenario (d4 same, d1 outdoor, d2 zoom, d3
# other clothes).
KTH_WALK = dict(custom_gallery="d4-00/*", custom_probes="d4=d4-*/*;d1=d1-*/*;d2=d2-*/*;d3=d3-*/*")

CASIA_B_PROBES = (("NM", ("nm-05", "nm-06")), ("BG", ("bg-01", "bg-02")), ("CL", ("cl-01", "cl-02")))
CASIA_B_GALLERY = ("nm-01", "nm-02", "nm-03", "nm-04")
OUMVLP_PROBES = (("NM", ("00",)),)
OUMVLP_GALLERY = ("01",)
GREW_RANKS = (1, 5, 10, 20)
NUM_RANK = 5  # CASIA-B / OU-MVLP Rank-1..5

Metrics = Dict[str, float]


def _as_str(a, name: str, n: int) -> np.ndarray:
  a = np.asarray(a).astype(str)
  if a.shape != (n,):
    raise ValueError(f"{name}: expected {n} strings (one per embedding), got shape {a.shape}")
  return a


def percent(hits, total):
  """round(100 · hits / total, 2) exactly as the reference computes it (NaN when total = 0)."""
  with np.errstate(divide="ignore", invalid="ignore"):
    return np.round(np.asarray(hits) * 100 / total, 2)


def cumulative_hits(probe_ids, gallery_ids, order, max_rank: int) -> np.ndarray:
  """`[max_rank]` counts of probes with a true match among their top-(k) ranked gallery items.

  `order [P, k']` are gallery indices nearest first; ranks beyond k' repeat the last count.
  """
  order = np.asarray(order)
  if order.shape[1] == 0:
    return np.zeros(max_rank, np.int64)
  match = np.asarray(gallery_ids)[order] == np.asarray(probe_ids)[:, None]
  counts = np.sum(np.cumsum(match, 1) > 0, 0)
  if counts.shape[0] < max_rank:
    counts = np.concatenate([counts, np.full(max_rank - counts.shape[0], counts[-1])])
  return counts[:max_rank]


def de_diag(acc: np.ndarray, each_view: bool = False):
  """Identical-view cells excluded: per probe view, mean of the other gallery views."""
  with np.errstate(divide="ignore", invalid="ignore"):
    per_view = np.sum(acc - np.diag(np.diag(acc)), 1) / (acc.shape[1] - 1.0)
  return per_view if each_view else np.mean(per_view)


def _probe_gallery_dist(probe_x, gallery_x, eval_cfg) -> np.ndarray:
  """Full probe × gallery distances, k-reciprocal re-ranked when evaluate.rerank is on."""
  metric = eval_cfg.metric
  chunk = int(eval_cfg.chunk)
  if not eval_cfg.rerank:
    return dist_lib.distance_matrix(probe_x, gallery_x, metric, chunk=chunk)
  both = np.concatenate([probe_x, gallery_x], axis=0)
  full = dist_lib.distance_matrix(both, both, metric, chunk=chunk)
  return rerank_lib.k_reciprocal_rerank(
      full, probe_x.shape[0], k1=int(eval_cfg.k1), k2=int(eval_cfg.k2),
      lambda_value=float(eval_cfg.lambda_value))


def _ranked(probe_x, gallery_x, k: int, eval_cfg) -> np.ndarray:
  """`[P, min(k, G)]` gallery indices nearest first (ties by index), re-ranked if asked."""
  if eval_cfg.rerank and probe_x.shape[0] and gallery_x.shape[0]:
    return dist_lib.rank_rows(_probe_gallery_dist(probe_x, gallery_x, eval_cfg), k)
  _, idx = dist_lib.topk(probe_x, gallery_x, k, eval_cfg.metric,
                         chunk=int(eval_cfg.chunk))
  return idx


# --- CASIA-B and OU-MVLP: single-view gallery, view × view matrices ---

def identification(emb, labels, types, views, probe_groups, gallery_types, eval_cfg):
  """acc `[groups, views, views, 5]` and the view list."""
  view_list = sorted(set(views.tolist()))
  acc = np.full((len(probe_groups), len(view_list), len(view_list), NUM_RANK), np.nan)
  gallery_type_mask = np.isin(types, gallery_types)
  for g, (_, probe_types) in enumerate(probe_groups):
    probe_type_mask = np.isin(types, probe_types)
    for v1, probe_view in enumerate(view_list):
      pmask = probe_type_mask & (views == probe_view)
      for v2, gallery_view in enumerate(view_list):
        gmask = gallery_type_mask & (views == gallery_view)
        if not gmask.any():
          continue  # NaN: no gallery in this view (the reference would crash)
        order = _ranked(emb[pmask], emb[gmask], NUM_RANK, eval_cfg) if pmask.any() else \
            np.zeros((0, 1), np.int64)
        hits = cumulative_hits(labels[pmask], labels[gmask], order, NUM_RANK)
        acc[g, v1, v2, :] = percent(hits, int(pmask.sum()))
  return acc, view_list


def _identification_report(acc, view_list, probe_groups) -> Tuple[Metrics, str]:
  metrics: Metrics = {}
  lines = []
  for g, (group, _) in enumerate(probe_groups):
    for k in range(NUM_RANK):
      metrics[f"{group}/rank{k + 1}_include"] = float(np.mean(acc[g, :, :, k]))
      metrics[f"{group}/rank{k + 1}_exclude"] = float(de_diag(acc[g, :, :, k]))
    for view, value in zip(view_list, de_diag(acc[g, :, :, 0], each_view=True)):
      metrics[f"{group}/rank1_exclude/{view}"] = float(value)
  for k in range(NUM_RANK):
    for kind in ("include", "exclude"):
      metrics[f"mean/rank{k + 1}_{kind}"] = float(np.mean(
          [metrics[f"{group}/rank{k + 1}_{kind}"] for group, _ in probe_groups]))
  groups = [group for group, _ in probe_groups]
  lines.append("Rank-1 / Rank-5 (%)      " + "  ".join(f"{g:>13s}" for g in groups + ["mean"]))
  for kind in ("include", "exclude"):
    row = [f"{metrics[f'{g}/rank1_{kind}']:6.2f}/{metrics[f'{g}/rank5_{kind}']:6.2f}"
           for g in groups + ["mean"]]
    lines.append(f"{kind} identical views   " + "  ".join(f"{r:>13s}" for r in row))
  lines.append("Rank-1 per probe view, identical view excluded:")
  lines.append("view   " + "  ".join(f"{g:>7s}" for g in groups))
  for view in view_list:
    lines.append(f"{view:6s} " + "  ".join(
        f"{metrics[f'{g}/rank1_exclude/{view}']:7.2f}" for g in groups))
  return metrics, "\n".join(lines)


# --- GREW local validation ---

def grew(emb, labels, types, eval_cfg) -> Tuple[Metrics, str]:
  gmask, pmask = types == "01", types == "02"
  max_rank = max(GREW_RANKS)
  order = _ranked(emb[pmask], emb[gmask], max_rank, eval_cfg) if pmask.any() and gmask.any() \
      else np.zeros((int(pmask.sum()), 0), np.int64)
  acc = percent(cumulative_hits(labels[pmask], labels[gmask], order, max_rank), int(pmask.sum()))
  metrics = {f"rank{r}": float(acc[r - 1]) for r in GREW_RANKS}
  table = (f"GREW: {int(pmask.sum())} probes (type 02) vs {int(gmask.sum())} gallery (type 01)\n"
           + "  ".join(f"Rank-{r}: {metrics[f'rank{r}']:.2f}" for r in GREW_RANKS))
  return metrics, table


# --- GREW official test submission ---

def grew_submission(emb, labels, types, views, eval_cfg, workdir) -> Tuple[Metrics, str]:
  gallery_types = ["01", "02"] + (["04"] if np.any(types == "04") else [])
  gmask, pmask = np.isin(types, gallery_types), types == "03"
  if not pmask.any():
    raise ValueError("grew_submission: no probe sequences (type '03') in the embeddings")
  if gmask.sum() < submission_lib.RANKS:
    raise ValueError(f"grew_submission: {int(gmask.sum())} gallery sequences (types "
                     f"{gallery_types}); the CSV needs at least {submission_lib.RANKS}")
  order = _ranked(emb[pmask], emb[gmask], submission_lib.RANKS, eval_cfg)
  gallery_labels = labels[gmask]
  out_dir = os.path.join(workdir or os.getcwd(), "submission")
  csv_path, zip_path = submission_lib.write_submission(
      out_dir, views[pmask].tolist(), [gallery_labels[row].tolist() for row in order])
  metrics = {"submission/probes": float(pmask.sum()), "submission/gallery": float(gmask.sum())}
  table = (f"GREW submission: {int(pmask.sum())} probes vs {int(gmask.sum())} gallery "
           f"(types {','.join(gallery_types)})\nCSV: {csv_path}\nzip for CodaLab: {zip_path}")
  return metrics, table


# --- Gait3D ---

def evaluate_rank(distmat, probe_ids, gallery_ids, max_rank: int = 50):
  """Reference `evaluate_rank`: (cmc float32 [max_rank'], AP list, INP list) over probes that
  have at least one true match (others skipped); max_rank capped by the gallery size."""
  num_p, num_g = distmat.shape
  max_rank = min(max_rank, num_g)
  order = dist_lib.rank_rows(distmat)
  matches = (np.asarray(gallery_ids)[order] == np.asarray(probe_ids)[:, None]).astype(np.int32)
  cmcs, aps, inps = [], [], []
  for p in range(num_p):
    raw = matches[p]
    if not raw.any():
      continue
    cum = raw.cumsum()
    last = int(np.flatnonzero(raw)[-1])
    inps.append(cum[last] / (last + 1.0))
    cmcs.append(np.minimum(cum, 1)[:max_rank])
    precision = cum / np.arange(1.0, num_g + 1)
    aps.append(float(np.sum(precision * raw) / raw.sum()))
  if not cmcs:
    return np.full(max_rank, np.nan, np.float32), aps, inps
  cmc = np.asarray(cmcs).astype(np.float32).sum(0) / len(cmcs)
  return cmc, aps, inps


def read_probe_set(partition) -> set:
  if isinstance(partition, dict):
    data, where = partition, "the partition"
  else:
    if not partition:
      raise ValueError("gait3d protocol: no partition file (set data.partition or embed.partition "
                       "to the Gait3D JSON with a PROBE_SET)")
    where = partition
    try:
      with open(partition) as f:
        data = json.load(f)
    except (OSError, ValueError) as e:
      raise ValueError(f"gait3d protocol: cannot read partition file {partition}: {e}") from None
  if "PROBE_SET" not in data:
    raise ValueError(f"gait3d protocol: {where} has no key 'PROBE_SET' (list of '<id>-<type>-<view>')")
  return set(data["PROBE_SET"])


def gait3d(emb, labels, types, views, eval_cfg, partition) -> Tuple[Metrics, str]:
  probe_set = read_probe_set(partition)
  pmask = np.array([f"{i}-{t}-{v}" in probe_set for i, t, v in zip(labels, types, views)], bool)
  if not pmask.any() or pmask.all():
    raise ValueError(f"gait3d protocol: {int(pmask.sum())} of {len(pmask)} sequences are in "
                     "PROBE_SET; need both probes and gallery")
  dist = _probe_gallery_dist(emb[pmask], emb[~pmask], eval_cfg)
  cmc, aps, inps = evaluate_rank(dist, labels[pmask], labels[~pmask])
  if not aps:
    logging.warning("gait3d: no probe id appears in the gallery; metrics are NaN")
  metrics = {f"rank{r}": float(cmc[min(r, len(cmc)) - 1] * 100) for r in (1, 5, 10)}
  metrics["mAP"] = float(np.mean(aps) * 100) if aps else float("nan")
  metrics["mINP"] = float(np.mean(inps) * 100) if inps else float("nan")
  table = (f"Gait3D: {int(pmask.sum())} probes ({len(aps)} with a gallery match) vs "
           f"{int((~pmask).sum())} gallery\n"
           + "  ".join(f"{k}: {metrics[k]:.2f}" for k in ("rank1", "rank5", "rank10", "mAP", "mINP")))
  return metrics, table


# --- custom: glob-selected gallery and probe groups ---

def _patterns(text: str, key: str):
  pats = [p.strip() for p in str(text).split(",") if p.strip()]
  if not pats:
    raise ValueError(f"{key}={text!r}: expected comma-separated globs on 'type/view', e.g. 'nm-0[1-4]/*'")
  return pats


def parse_custom_probes(text: str):
  """'name=glob,glob;name2=glob' → [(name, [globs])] in the given order."""
  groups = []
  for part in str(text).split(";"):
    if not part.strip():
      continue
    if "=" not in part:
      raise ValueError(f"evaluate.custom_probes: group {part!r} lacks '=': expected "
                       "'name=glob,glob;name2=glob'")
    name, pats = part.split("=", 1)
    name = name.strip()
    if not name or name in dict(groups) or name == "mean":
      raise ValueError(f"evaluate.custom_probes: bad or repeated group name {name!r}")
    groups.append((name, _patterns(pats, f"evaluate.custom_probes[{name}]")))
  if not groups:
    raise ValueError("evaluate.custom_probes is empty: expected 'name=glob,glob;name2=glob'")
  return groups


def _match(keys: np.ndarray, pats) -> np.ndarray:
  return np.array([any(fnmatch.fnmatchcase(k, p) for p in pats) for k in keys], bool)


def mean_ap(dist, probe_ids, gallery_ids) -> float:
  """Mean AP ×100 over probes with at least one true match (NaN if none has one)."""
  _, aps, _ = evaluate_rank(dist, probe_ids, gallery_ids)
  return float(np.mean(aps) * 100) if aps else float("nan")


def type_view_keys(types, views) -> np.ndarray:
  """The "type/view" string of every sequence: what the custom protocol's globs match."""
  return np.array([f"{t}/{v}" for t, v in zip(types, views)])


def match_globs(keys, text: str, what: str) -> np.ndarray:
  """bool mask of the "type/view" keys matched by the comma-separated globs `text`."""
  return _match(np.asarray(keys), _patterns(text, what))


def custom(emb, labels, types, views, eval_cfg) -> Tuple[Metrics, str]:
  keys = type_view_keys(types, views)
  gmask = match_globs(keys, eval_cfg.custom_gallery, "evaluate.custom_gallery")
  if not gmask.any():
    raise ValueError(f"evaluate.custom_gallery={eval_cfg.custom_gallery!r} matches "
                     "no sequence (patterns are globs on 'type/view')")
  groups = parse_custom_probes(eval_cfg.custom_probes)
  metrics: Metrics = {}
  lines = [f"custom: gallery {int(gmask.sum())} sequences",
           f"{'group':10s} {'probes':>6s} {'Rank-1':>7s} {'Rank-5':>7s} {'mAP':>7s}"]
  for name, pats in groups:
    pmask = _match(keys, pats) & ~gmask
    n = int(pmask.sum())
    if n:
      dist = _probe_gallery_dist(emb[pmask], emb[gmask], eval_cfg)
      order = dist_lib.rank_rows(dist, NUM_RANK)
      acc = percent(cumulative_hits(labels[pmask], labels[gmask], order, NUM_RANK), n)
      m_ap = mean_ap(dist, labels[pmask], labels[gmask])
    else:
      acc, m_ap = np.full(NUM_RANK, np.nan), float("nan")
    metrics[f"{name}/rank1"], metrics[f"{name}/rank5"] = float(acc[0]), float(acc[4])
    metrics[f"{name}/mAP"], metrics[f"{name}/probes"] = m_ap, float(n)
    lines.append(f"{name:10s} {n:6d} {acc[0]:7.2f} {acc[4]:7.2f} {m_ap:7.2f}")
  for m in ("rank1", "rank5", "mAP"):
    metrics[f"mean/{m}"] = float(np.mean([metrics[f"{name}/{m}"] for name, _ in groups]))
  lines.append(f"{'mean':10s} {'':6s} {metrics['mean/rank1']:7.2f} {metrics['mean/rank5']:7.2f} "
               f"{metrics['mean/mAP']:7.2f}")
  return metrics, "\n".join(lines)


def run_protocol(name: str, emb, labels, types, views, eval_cfg, workdir: Optional[str] = None,
                 partition=None) -> Tuple[Metrics, str]:
  """Runs protocol `name` on embeddings `[N, c, p]` with per-sequence id/type/view strings."""
  if name not in PROTOCOLS:
    raise ValueError(f"evaluate.protocol={name!r}: expected one of {PROTOCOLS}")
  emb = dist_lib.check_embeddings(emb)
  n = emb.shape[0]
  labels, types, views = (_as_str(labels, "labels", n), _as_str(types, "types", n),
                          _as_str(views, "views", n))
  embedding_checks.check_usable(emb, labels, types, views, f"evaluate.protocol={name}")
  dist_lib.check_metric(eval_cfg.metric)
  if eval_cfg.rerank and name not in RERANK_PROTOCOLS:
    raise ValueError(f"evaluate.rerank=True is supported for {RERANK_PROTOCOLS}, "
                     f"not for protocol {name!r}")
  if name in ("casia_b", "oumvlp"):
    groups, gallery = ((CASIA_B_PROBES, CASIA_B_GALLERY) if name == "casia_b"
                       else (OUMVLP_PROBES, OUMVLP_GALLERY))
    acc, view_list = identification(emb, labels, types, views, groups, gallery, eval_cfg)
    return _identification_report(acc, view_list, groups)
  if name == "grew":
    return grew(emb, labels, types, eval_cfg)
  if name == "grew_submission":
    return grew_submission(emb, labels, types, views, eval_cfg, workdir)
  if name == "gait3d":
    return gait3d(emb, labels, types, views, eval_cfg, partition)
  return custom(emb, labels, types, views, eval_cfg)
