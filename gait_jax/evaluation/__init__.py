"""Evaluation: part-wise distances and ranking, the benchmark protocols, re-ranking, GREW
submission."""
from gait_jax.evaluation.distance import distance_matrix, topk
from gait_jax.evaluation.protocols import NAMES as PROTOCOLS, run_protocol

__all__ = ["distance_matrix", "topk", "PROTOCOLS", "run_protocol"]
