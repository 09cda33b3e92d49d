"""Functional kernels: ``*_forward`` / ``*_backward`` for each cell, and the backend runtime.

Shapes (G = 1 for RNN, 4 for LSTM, 3 for GRU): x (T, B, D), y (T, B, H),
h0, c0, hT, cT (B, H), W_ih (G·H, D), W_hh (G·H, H), b, b_ih, b_hh (G·H,).
Gate order as PyTorch: LSTM i, f, g, o; GRU r, z, n. For RNN and LSTM, ``b``
is the one bias (PyTorch's b_ih + b_hh). An RNN's ``nonlinearity`` is "tanh"
or "relu". An LSTM with a projection (PyTorch's proj_size P, 0 < P < H)
takes ``W_hr`` (P, H): h_t = (o_t ⊙ tanh(c_t)) W_hrᵀ, and then W_hh is
(4H, P), h0, hT, y have P features, c0, cT keep H.

Padded batches: ``lengths`` (B integers in [0, T]) gives each sequence's
length; steps past it leave the state unchanged and output zeros, and the
final state is taken at each sequence's own last step. ``reverse=True`` runs
each sequence backwards from its own end (the reverse direction of a
bidirectional layer); y stays in time order. ``num_threads`` sets the
threads of one call (default: seqcore.get_num_threads()); backward uses the
forward's.

Precision: ``precision="fp32"`` (the default) computes in the arrays' dtype,
float32 or float64. ``precision="bf16"`` (float32 arrays only) reads every
matrix product's operands — inputs, states, weights, gradients — rounded to
bfloat16 (nearest even, as torch; see seqcore.reference.bf16) and sums in
float32: AMX tiles where the CPU has them (isa "amx_bf16"), AVX512-BF16's
vdpbf16ps (isa "avx512_bf16"), a float32 product of the rounded operands
elsewhere. Gate nonlinearities,
the cell state, the biases and every array in or out stay float32. The
cache remembers the precision and backward follows it.
``precision="int8"`` (float32, inference: ``train=False``; a training
forward in it is refused) runs the cells' products in int8 with exact
int32 sums, as PyTorch's dynamic quantization does: the weights quantized
once per output row (``Int8Weights``, or in the call), x and h per row at
every step; the scheme and its error bound are seqcore.reference.int8's.
AMX-INT8 tiles (isa "amx_bf16"), vpdpbusd ("avx512_vnni", "avx512_bf16",
AVX-VNNI's "avx2_vnni"), 16-bit products elsewhere: the same int32 sums on
every ISA and thread count.

Every argument is checked here, with an error naming it. Inputs that are not
C-contiguous are copied to C-contiguous arrays (the one conversion made);
dtypes are never converted: all arrays of one call share x's dtype, float32
or float64.

This package is the only Python that calls the extension ``seqcore._core``
(through _runtime). The package's modules, by concern: _runtime (the extension, ISA, threads,
thread plans, fork), _checks (argument checks, the cache), _products
(matrix product, Adam, norms, softmax cross-entropy), _cells (the cells'
forward and backward), _generation (the draw, the stepper). Import their
names from here.
"""

from __future__ import annotations

from typing import Any

from ._cells import (forward_workspace_bytes, gru_backward, gru_forward, lstm_backward, lstm_forward,
                     rnn_backward, rnn_forward)
from ._checks import (BACKENDS, NONLINEARITIES, PRECISIONS, Cache, check_inference, check_nonlinearity,
                      check_precision)
from ._generation import NativeStepper, draw
from ._int8 import Int8Weights
from ._products import adam_update, matmul, read_stream, softmax_cross_entropy_rows, sum_of_squares
from ._runtime import (ISAS, MAX_THREADS, SPIN_COUNT, get_num_threads, info, plan_product_threads,
                       plan_stream_threads, plan_threads, set_isa, set_num_threads, thread_plan_costs)
from ._runtime import every_thread_works as _every_thread_works  # noqa: F401 (for tests of the schedules)
from ._runtime import forked

__all__ = [
    "BACKENDS", "PRECISIONS", "ISAS", "MAX_THREADS", "SPIN_COUNT", "STEPPER_TABLE_BYTES",
    "info", "get_num_threads", "set_num_threads", "set_isa", "forked",
    "plan_threads", "plan_product_threads", "plan_stream_threads", "thread_plan_costs",
    "matmul", "adam_update", "sum_of_squares", "softmax_cross_entropy_rows", "read_stream",
    "NONLINEARITIES", "check_precision", "check_inference", "check_nonlinearity", "Cache", "forward_workspace_bytes",
    "rnn_forward", "rnn_backward", "lstm_forward", "lstm_backward", "gru_forward", "gru_backward",
    "draw", "NativeStepper", "Int8Weights",
]

# Layer 0's x W_ihᵀ is kept for every id (one row copied a step instead of a
# product) when that table takes at most this many bytes (read by
# NativeStepper when it is made; tests change it here).
STEPPER_TABLE_BYTES = 16 << 20


def __getattr__(name: str) -> Any:
    # ops._FORKED, as before the split: whether this process was forked
    # (a value that changes, so read from _runtime each time)
    if name == "_FORKED":
        return forked()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
