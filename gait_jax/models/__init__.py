"""SPOSGait networks in Flax: `build_model`, path helpers and PyTorch weight conversion."""
from gait_jax.models.space import layer_names, path_mask, sample_path
from gait_jax.models.sposgait import (INPUT_HW, SPOSGait, abstract_variables, build_model,
                                      init_variables)

__all__ = [
    "INPUT_HW", "SPOSGait", "abstract_variables", "build_model", "init_variables", "layer_names",
    "path_mask", "sample_path",
]
