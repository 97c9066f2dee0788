"""Helpers shared by every stage: file I/O."""
