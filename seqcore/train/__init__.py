"""Training: optimisers, gradient clipping and checkpoints."""

from .checkpoint import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from .clip import clip_by_global_norm, clip_by_value
from .optim import SGD, Adam, AdamW, Optimizer

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "clip_by_value", "clip_by_global_norm",
           "save_checkpoint", "load_checkpoint", "Checkpoint", "CheckpointError"]
