"""Generated walkers: the embedded default data (no licence needed)."""
