"""A fixed-path network with its trained weights, from any checkpoint source."""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

from gait_jax.common import checkpoint
from gait_jax.models import space
from gait_jax.models.sposgait import SPOSGait, abstract_variables, build_model


def load_fixed(model_cfg, path: Sequence[int], source: str, step: Optional[int] = None
               ) -> Tuple[SPOSGait, dict, int]:
  """(model without BN-neck, NumPy variables, step) for `path` from `source` (a workdir,
  checkpoints dir or step dir; newest step unless `step`).

  A supernet checkpoint holds every candidate, but those outside the space it was trained on
  (its config.json) keep their initial weights: such a path is refused. A retrained checkpoint
  holds only its path's candidates, so the variable names decide."""
  trained = checkpoint.trained_space(source)
  if trained is not None:
    space.check_path(path, trained,
                     key=f"model.path (supernet {checkpoint.source_workdir(source)})")
  restored, step = checkpoint.restore_variables(source, step)
  model = build_model(model_cfg, bnneck=False, fixed_path=tuple(path))
  variables = checkpoint.select_by_name(restored, abstract_variables(model),
                                        f"checkpoint {source} (step {step})")
  return model, variables, step
