"""SPOSGait networks in Flax: `build_model`, path helpers and PyTorch weight conversion."""
from gait_jax.models.paths import layer_names, path_mask, sample_path
from gait_jax.models.sposgait import SPOSGait, build_model

__all__ = ["SPOSGait", "build_model", "layer_names", "path_mask", "sample_path"]
