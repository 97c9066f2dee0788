"""Hand-made embeddings whose protocol results can be worked out by hand."""
import numpy as np


def line(values):
  """1-D embeddings [N, 1, 1] from scalars."""
  return np.asarray(values, np.float32).reshape(-1, 1, 1)


def casia_set(views=("000", "090")):
  """Ids A (at 0) and B (at 10). Gallery nm-01..04 at the id's value in every view.
  NM probes at value+1 (always right); BG: A at 6 (nearer B: its 4 B items come first, the
  true match is at rank 5), B at 16 (right); CL: A at 9, B at 1 (both wrong at rank 1,
  right at rank 5)."""
  vals, labels, types, vs = [], [], [], []
  base = {"A": 0.0, "B": 10.0}
  probe_val = {("nm-05", "A"): 1, ("nm-05", "B"): 11, ("nm-06", "A"): 1, ("nm-06", "B"): 11,
               ("bg-01", "A"): 6, ("bg-01", "B"): 16, ("bg-02", "A"): 6, ("bg-02", "B"): 16,
               ("cl-01", "A"): 9, ("cl-01", "B"): 1, ("cl-02", "A"): 9, ("cl-02", "B"): 1}
  for v in views:
    for ident in "AB":
      for t in ("nm-01", "nm-02", "nm-03", "nm-04"):
        vals.append(base[ident]); labels.append(ident); types.append(t); vs.append(v)
      for t in ("nm-05", "nm-06", "bg-01", "bg-02", "cl-01", "cl-02"):
        vals.append(probe_val[(t, ident)]); labels.append(ident); types.append(t); vs.append(v)
  return line(vals), labels, types, vs
