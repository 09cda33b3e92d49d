"""Layers with parameters and gradients, composed into networks; no autograd engine."""

from .module import Layer
from .recurrent import GRU, LSTM, RNN

__all__ = ["Layer", "RNN", "LSTM", "GRU"]
