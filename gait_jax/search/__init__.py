"""Evolutionary search over a trained supernet's paths: the algorithm (evolution), the fitness
of a path (fitness), the resumable state (state) and the outputs (report)."""
