"""The NumPy reference of every kernel: readable, step by step, the oracle of
the tests and the baseline of the benchmarks. Imports numpy and nothing else
of seqcore.

Arguments are taken as given (no validation, no None): use seqcore.ops for
checked calls.
"""

from .activations import sigmoid, tanh
from .bf16 import matmul_bf16, round_bf16
from .int8 import dequantize, int8_error_bound, int8_sums, matmul_int8, quantize_rows
from .gru import gru_backward, gru_cell_backward, gru_cell_forward, gru_forward
from .lstm import lstm_backward, lstm_cell_backward, lstm_cell_forward, lstm_forward
from .losses import softmax_cross_entropy_rows
from .optim import adam_update
from .rnn import rnn_backward, rnn_cell_backward, rnn_cell_forward, rnn_forward

__all__ = [
    "sigmoid", "tanh",
    "rnn_cell_forward", "rnn_cell_backward", "rnn_forward", "rnn_backward",
    "lstm_cell_forward", "lstm_cell_backward", "lstm_forward", "lstm_backward",
    "gru_cell_forward", "gru_cell_backward", "gru_forward", "gru_backward",
    "adam_update", "softmax_cross_entropy_rows",
    "round_bf16", "matmul_bf16",
    "quantize_rows", "int8_sums", "dequantize", "matmul_int8", "int8_error_bound",
]
