"""seqcore: fast recurrent sequence models (RNN, LSTM, GRU) for Python on the CPU."""

from ._version import __version__
from . import nn, ops, reference, text
from .gradient_check import GradcheckResult, gradcheck
from .ops import get_num_threads, info, set_num_threads

__all__ = ["__version__", "nn", "ops", "reference", "text", "info", "get_num_threads", "set_num_threads",
           "gradcheck", "GradcheckResult"]
