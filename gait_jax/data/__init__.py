"""Data pipeline: OpenGait pkl reader, P×K sampler, frame selection, transforms, loader."""
from gait_jax.data.dataset import GaitDataset, SequenceInfo, read_partition
from gait_jax.data.loader import TrainLoader, iter_sequences, load_sequence
from gait_jax.data.samplers import sample_pk, select_frames
from gait_jax.data.transforms import build_transform

__all__ = ["GaitDataset", "SequenceInfo", "read_partition", "TrainLoader", "iter_sequences",
           "load_sequence", "sample_pk", "select_frames", "build_transform"]
