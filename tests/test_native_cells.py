"""The native cells against the NumPy reference (oracle: reference), on every
ISA this CPU has, at 1 and 2 threads; bitwise equal between thread counts."""

import threading

import numpy as np
import pytest

import seqcore
from cellcases import (CELLS, relative_error, assert_bitwise_equal_results, at_one_and_two_threads, backward, forward, make_inputs,
                       make_output_weights)
from seqcore import ops

ISAS = seqcore.info()["isas"]
# float64 within 1e-10 relative, float32 within 1e-4 relative
TOLERANCE = {np.float64: 1e-10, np.float32: 1e-4}
# (T, B, D, H): tiny, odd sizes around the vector widths, tiles and units
SHAPES = [(1, 1, 1, 1), (5, 3, 4, 6), (7, 2, 9, 37), (3, 13, 5, 40), (4, 7, 17, 33), (2, 1, 3, 100)]




def run_both(cell, shape, dtype, seed=0):
    T, B, D, H = shape
    inputs = make_inputs(cell, T, B, D, H, dtype=dtype, seed=seed)
    weights = make_output_weights(cell, T, B, H, dtype=dtype)
    results = []
    for backend in ("native", "reference"):
        outs, cache = forward(cell, inputs, backend=backend)
        assert cache.backend == backend
        results.append((outs, backward(cell, weights, cache)))
    return results


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "T{}B{}D{}H{}".format(*s))
@pytest.mark.parametrize("cell", CELLS)
def test_native_matches_reference(cell, shape, dtype, isa, threads):
    (outs, grads), (ref_outs, ref_grads) = run_both(cell, shape, dtype)
    errors = {k: relative_error(outs[k], ref_outs[k]) for k in outs}
    errors.update({"d" + k: relative_error(grads[k], ref_grads[k]) for k in grads})
    worst = max(errors, key=errors.get)
    print(f"\n{cell} {shape} {np.dtype(dtype).name} {isa} {threads}t: max relative error {errors[worst]:.1e} ({worst})")
    assert errors[worst] < TOLERANCE[dtype], errors


@pytest.mark.parametrize("cell", CELLS)
def test_one_and_two_threads_are_bitwise_equal(cell, isa):
    assert_bitwise_equal_results(*at_one_and_two_threads(
        lambda: run_both(cell, (9, 11, 21, 70), np.float32, seed=5)[0]))


@pytest.mark.parametrize("cell", CELLS)
def test_inference_matches_training_forward(cell):
    inputs = make_inputs(cell, 300, 3, 5, 20, dtype=np.float32)  # more steps than one chunk
    infer, cache = forward(cell, inputs, train=False)
    assert cache is None
    train, _ = forward(cell, inputs, train=True)
    for k in infer:
        np.testing.assert_array_equal(infer[k], train[k], err_msg=k)


@pytest.mark.parametrize("cell", CELLS)
def test_inference_workspace_does_not_grow_with_T(cell):
    """Inference keeps O(B·H): its input projection runs a bounded chunk of
    steps at a time."""
    short = ops.forward_workspace_bytes(cell, 10, 8, 64, 128, train=False)
    long = ops.forward_workspace_bytes(cell, 10_000, 8, 64, 128, train=False)
    longest = ops.forward_workspace_bytes(cell, 1_000_000, 8, 64, 128, train=False)
    training = ops.forward_workspace_bytes(cell, 10_000, 8, 64, 128, train=True)
    print(f"\n{cell} workspace: inference T=10 {short:,} B, T=10,000 {long:,} B; "
          f"training T=10,000 {training:,} B")
    assert long == longest
    assert long < 4 * short
    assert training > 100 * long  # training keeps O(T·B·H) for backward


@pytest.mark.parametrize("cell", CELLS)
def test_calls_from_four_threads_give_the_sequential_results(cell):
    problems = [make_inputs(cell, 20, 4, 8, 24, dtype=np.float64, seed=s) for s in range(4)]
    expected = [forward(cell, p)[0]["y"] for p in problems]
    got = [None] * 4

    def work(i):
        got[i] = forward(cell, problems[i])[0]["y"]

    workers = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    for e, g in zip(expected, got):
        np.testing.assert_array_equal(e, g)


def test_kernels_release_the_gil():
    """A Python thread keeps running while a long kernel runs in another."""
    inputs = make_inputs("lstm", 2000, 16, 64, 256, dtype=np.float32)
    done = threading.Event()
    ticks = []

    def ticker():
        while not done.is_set():
            ticks.append(1)
            done.wait(0.001)

    t = threading.Thread(target=ticker)
    t.start()
    forward("lstm", inputs, train=False)
    done.set()
    t.join()
    assert len(ticks) > 5


# ---------------------------------------------------------------------------
# the binding boundary: _core checks what ops would have checked


def core_lstm_arguments(dtype=np.float32):
    inputs = make_inputs("lstm", 3, 2, 4, 5, dtype=dtype)
    return dict(cell="lstm", x=inputs["x"], h0=inputs["h0"], c0=inputs["c0"], W_ih=inputs["W_ih"],
                W_hh=inputs["W_hh"], b_ih=inputs["b"], b_hh=None, train=True)


def test_core_rejects_a_non_contiguous_input():
    from seqcore import _core
    args = core_lstm_arguments()
    args["x"] = np.asfortranarray(args["x"])
    with pytest.raises(ValueError, match="x: expected a C-contiguous array"):
        _core.cell_forward(**args)


def test_core_rejects_mixed_dtypes():
    from seqcore import _core
    args = core_lstm_arguments()
    args["W_hh"] = args["W_hh"].astype(np.float64)
    with pytest.raises(TypeError, match="W_hh: expected a float32 array"):
        _core.cell_forward(**args)


def test_core_rejects_a_wrong_shape():
    from seqcore import _core
    args = core_lstm_arguments()
    args["b_ih"] = args["b_ih"][:-1].copy()
    with pytest.raises(ValueError, match="b_ih: expected shape"):
        _core.cell_forward(**args)


def test_core_rejects_an_empty_sequence():
    from seqcore import _core
    args = core_lstm_arguments()
    args["x"] = args["x"][:0].copy()
    with pytest.raises(ValueError, match="T, B and H of at least 1"):
        _core.cell_forward(**args)


def test_core_rejects_an_unknown_cell():
    from seqcore import _core
    args = core_lstm_arguments()
    args["cell"] = "transformer"
    with pytest.raises(ValueError, match="cell: expected 'rnn', 'lstm' or 'gru'"):
        _core.cell_forward(**args)


@pytest.mark.parametrize("cell", CELLS)
def test_the_kernels_arrays_start_on_a_cache_line(cell):
    """Every array the extension allocates (outputs, what backward keeps)
    starts on a 64-byte boundary, where NumPy's own start 16 bytes past one:
    512-bit accesses then never straddle two cache lines. They are ordinary
    C-contiguous, writeable arrays all the same."""
    inputs = make_inputs(cell, 7, 5, 6, 33, dtype=np.float32)
    outs, cache = forward(cell, inputs, backend="native")
    grads = backward(cell, make_output_weights(cell, 7, 5, 33, dtype=np.float32), cache)
    kept = [cache.data[k] for k in ("ws_h", "ws_gates", "ws_c", "ws_hn") if cache.data[k] is not None]
    arrays = list(outs.values()) + list(grads.values()) + kept
    assert len(kept) >= (1 if cell == "rnn" else 2)
    for a in arrays:
        assert a.ctypes.data % 64 == 0 and a.flags.c_contiguous and a.flags.writeable
