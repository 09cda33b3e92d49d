"""Training: optimisers and gradient clipping."""

from .clip import clip_by_global_norm, clip_by_value
from .optim import SGD, Adam, AdamW, Optimizer

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "clip_by_value", "clip_by_global_norm"]
