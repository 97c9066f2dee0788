"""Identification on one's own footage: enrol people, identify walkers (see recognizer.py)."""
from gait_jax.identify.recognizer import Recognizer  # noqa: F401
