"""Layers with parameters and gradients, composed into networks; no autograd engine."""

from .module import Layer
from .recurrent import GRU, LSTM, RNN
from .language_model import LanguageModel
from .stepper import Stepper
from .sequence_models import SequenceClassifier, SequenceTagger
from .layers import Dropout, Embedding, Linear, ReLU, Sequential, Sigmoid, Tanh
from .losses import (CrossEntropyLoss, MSELoss, log_softmax, mean_squared_error, softmax,
                     softmax_cross_entropy)

__all__ = [
    "Layer", "RNN", "LSTM", "GRU", "LanguageModel", "Stepper", "SequenceClassifier", "SequenceTagger",
    "Linear", "Embedding", "Dropout", "Sequential", "Tanh", "ReLU", "Sigmoid",
    "softmax_cross_entropy", "mean_squared_error", "softmax", "log_softmax", "CrossEntropyLoss", "MSELoss",
]
