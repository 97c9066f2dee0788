"""gait_jax: SPOSGait (GREW NAS baseline) in JAX/Flax."""

__version__ = "0.1.0"
