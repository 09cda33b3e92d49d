"""Training: optimisers, gradient clipping, learning-rate schedules, checkpoints
and the Trainer of language models, sequence classifiers and taggers."""

from . import schedules
from .checkpoint import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from .clip import clip_by_global_norm, clip_by_value
from .optim import SGD, Adam, AdamW, Optimizer
from .schedules import Constant, Cosine, StepDecay, make_schedule
from .evaluation import Evaluation, evaluate
from .trainer import Trainer, TrainResult

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "clip_by_value", "clip_by_global_norm",
           "save_checkpoint", "load_checkpoint", "Checkpoint", "CheckpointError",
           "schedules", "Constant", "StepDecay", "Cosine", "make_schedule",
           "Trainer", "TrainResult", "Evaluation", "evaluate"]
