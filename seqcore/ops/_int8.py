"""Precision "int8" (inference, float32): a cell's weights quantized and
packed once, for the native forward (csrc/cells/forward_int8.h; the scheme
and its error bound: seqcore.reference.int8)."""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from ._checks import checked_array, expect_shape
from ._runtime import checked_threads, core

CELL_GATES = {"rnn": 1, "lstm": 4, "gru": 3}


class Int8Weights:
    """W_ih (G·H, D) and W_hh (G·H, H) of one cell ("rnn", "lstm", "gru"),
    float32, quantized per output row (symmetric int8, a scale per gate
    unit) and packed for the kernels of the ISA in use: a quarter of the
    float32 weights' bytes. Made once and passed to ``<cell>_forward(...,
    precision="int8", int8_weights=...)``; the arrays are read when it is
    made (a later change to them is not seen: make it again). Under another
    ISA (``set_isa``) it packs itself again from the arrays it keeps."""

    def __init__(self, cell: str, W_ih: np.ndarray, W_hh: np.ndarray, num_threads: Optional[int] = None) -> None:
        if cell not in CELL_GATES:
            raise ValueError(f"cell: expected 'rnn', 'lstm' or 'gru', got {cell!r}")
        W_hh = checked_array("W_hh", W_hh, "(G·H, H)", np.float32)
        G, H = CELL_GATES[cell], W_hh.shape[1]
        expect_shape("W_hh", W_hh, (G * H, H), f"({G}·H, H)")
        W_ih = checked_array("W_ih", W_ih, "(G·H, D)", np.float32)
        expect_shape("W_ih", W_ih, (G * H, W_ih.shape[1]), f"({G}·H, D)")
        self.cell, self.input_size, self.hidden_size = cell, W_ih.shape[1], H
        self._arrays: Tuple[np.ndarray, np.ndarray] = (W_ih, W_hh)
        self._num_threads = checked_threads(num_threads)
        self._native = core.Int8Weights(cell, W_ih, W_hh, self._num_threads)

    def native(self):
        """The packed weights for the ISA in use (packed again after set_isa)."""
        if self._native.isa != core.isa():
            self._native = core.Int8Weights(self.cell, *self._arrays, self._num_threads)
        return self._native

    def matches(self, W_ih: np.ndarray, W_hh: np.ndarray) -> bool:
        """Whether these are the arrays it was made from (the same objects)."""
        return self._arrays[0] is W_ih and self._arrays[1] is W_hh

    @property
    def nbytes(self) -> int:
        """Bytes of the packed weights."""
        return self._native.nbytes


def int8_weights_for(cell: str, W_ih: np.ndarray, W_hh: np.ndarray, given: Optional[Int8Weights],
                     num_threads: int):
    """The native packed weights of a call: ``given``'s (checked against the
    cell and sizes), else W_ih and W_hh quantized now."""
    if given is None:
        return core.Int8Weights(cell, W_ih, W_hh, num_threads)
    if not isinstance(given, Int8Weights):
        raise TypeError(f"int8_weights: expected an ops.Int8Weights or None, got {type(given).__name__}")
    if given.cell != cell or given.input_size != W_ih.shape[1] or given.hidden_size != W_hh.shape[1]:
        raise ValueError(f"int8_weights: made for a {given.cell} of D={given.input_size}, H={given.hidden_size}, "
                         f"not this {cell} of D={W_ih.shape[1]}, H={W_hh.shape[1]}")
    return given.native()
