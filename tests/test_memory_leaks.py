"""Repeated calls keep memory flat: no array or Python object made by the
binding outlives its call (a reference leaked in csrc/bindings/ would keep its
array alive). NumPy reports its data buffers to tracemalloc, so the traced
memory after many calls is compared with the memory after one; each call
allocates far more than the slack allowed, so one leaked buffer per call
shows. (.ci/sanitize.sh checks the C++ heap with LeakSanitizer.)
"""

import gc
import tracemalloc

import numpy as np
import pytest

from cellcases import CELLS, backward, forward, make_inputs, make_output_weights

from seqcore import ops

CALLS = 30
SLACK = 32 * 1024  # bytes; one call's outputs and workspaces are more than this


def traced_growth(call):
    """Bytes still traced after CALLS more calls than after the first."""
    call()
    gc.collect()
    tracemalloc.start()
    try:
        call()
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(CALLS):
            call()
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


def allocated_by_one(call):
    tracemalloc.start()
    try:
        call()
        return tracemalloc.get_traced_memory()[1]  # the peak
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("cell", CELLS)
def test_forward_and_backward_leak_nothing(cell):
    T, B, D, H = 100, 8, 16, 32
    inputs = make_inputs(cell, T, B, D, H, dtype=np.float64)
    dout = make_output_weights(cell, T, B, H)
    lengths = np.arange(B) * T // B

    def call():
        outs, cache = forward(cell, inputs, lengths=lengths, reverse=True)
        backward(cell, dout, cache)
    assert allocated_by_one(call) > 4 * SLACK  # the test can see a leak of one call's arrays
    assert traced_growth(call) < SLACK


def test_rejected_calls_leak_nothing():
    x = np.ones((50, 8, 16))
    W_ih, W_hh = np.ones((128, 16)), np.ones((128, 32))

    def call():
        for bad in (np.ones((8, 31)), np.ones((8, 32), np.float32), np.ones((7, 32))):
            with pytest.raises((TypeError, ValueError)):
                ops.lstm_forward(x, bad, None, W_ih, W_hh, np.ones(128))
    assert traced_growth(call) < SLACK


def test_matmul_into_out_leaks_nothing():
    a, out = np.ones((300, 200)), np.zeros((300, 300))
    assert traced_growth(lambda: ops.matmul(a, a, trans_b=True, out=out)) < SLACK
