"""How a time step reads W_hh, and the read-bandwidth probe.

Each worker visits its units in alternating order from step to step
(cells/panel.h, unit_in_order), so that a pass starts with the panels the last
one left in its L2. The order changes no sum: the results are the same bits
at 1, 2 and 3 threads (every offered thread working, so each worker owns
several units and the order matters), train and inference alike, a row's the
same in any batch whose tiles sum in one chain, and they match the NumPy
reference; on every ISA this CPU has, the forced lower ones included. T is
odd and even (the last step ascending or descending).
"""

import numpy as np
import pytest

import seqcore
from seqcore import _core, benchmark, ops

CELLS = ("rnn", "lstm", "gru")


@pytest.fixture
def every_thread_works():
    """Thread planning off (every offered thread works, whatever the step's
    size), restored after."""
    before_planning, before_threads = _core.thread_planning(), seqcore.get_num_threads()
    _core.set_thread_planning(False)
    yield
    _core.set_thread_planning(before_planning)
    seqcore.set_num_threads(before_threads)


def forward(cell, args, train, precision="fp32", int8=None):
    options = {"int8_weights": int8} if int8 is not None else {}
    return getattr(ops, f"{cell}_forward")(*args, train=train, backend="native", precision=precision, **options)


def reference_outputs(cell, args):
    """The NumPy reference's inference outputs, in float64, from args (of any float dtype)."""
    args = [a.astype(np.float64) if a is not None else None for a in args]
    return outputs(cell, getattr(ops, f"{cell}_forward")(*args, train=False, backend="reference"))


def outputs(cell, out):
    """y, hT (and cT) of a forward's result."""
    return out[:3] if cell == "lstm" else out[:2]


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("T,B", [(7, 1), (6, 3)])
def test_small_batch_step_is_the_same_bits_at_any_threads(cell, T, B, isa, every_thread_works):
    # H = 200: 13 units of 16 lanes (AVX-512, gated), so 2 or 3 workers own several each
    args = benchmark.cell_arguments(cell, T, B, 24, 200)
    W_ih, W_hh = (args[3], args[4]) if cell == "lstm" else (args[2], args[3])
    int8 = ops.Int8Weights(cell, W_ih, W_hh)
    dy = np.random.default_rng(1).standard_normal((T, B, 200)).astype(np.float32)
    no_state_grads = [None] * (2 if cell == "lstm" else 1)
    results = {}
    for n in (1, 2, 3):
        seqcore.set_num_threads(n)
        got = {}
        for precision in ("fp32", "bf16", "int8"):
            got[precision] = outputs(cell, forward(cell, args, False, precision, int8 if precision == "int8" else None))
        for precision in ("fp32", "bf16"):
            out = forward(cell, args, True, precision)
            got[precision + " train"] = outputs(cell, out)
            got[precision + " grads"] = getattr(ops, f"{cell}_backward")(dy, *no_state_grads, out[-1])
        results[n] = got
    for n in (2, 3):
        for key, arrays in results[1].items():
            for i, (a, b) in enumerate(zip(arrays, results[n][key])):
                np.testing.assert_array_equal(a, b, err_msg=f"{key} output {i}: 1 against {n} threads")
    for precision in ("fp32", "bf16"):  # training's forward computes what inference does
        for a, b in zip(results[1][precision], results[1][precision + " train"]):
            np.testing.assert_array_equal(a, b)
    want = reference_outputs(cell, args)
    for a, b in zip(results[1]["fp32"], want):
        np.testing.assert_allclose(a, b, rtol=0, atol=2e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_row_has_the_same_bits_alone_and_in_a_batch(dtype, isa, every_thread_works):
    # LSTM (4 vectors a unit), H = 200: 12 rows take 2 to 6 tiles of one chain on every ISA, 2 rows
    # one tile of one chain. A row's sums are the same chain either way, k in order: the same bits.
    args = benchmark.cell_arguments("lstm", 5, 12, 16, 200, dtype=dtype)
    x, W = args[0], args[3:]
    for n in (1, 3):
        seqcore.set_num_threads(n)
        for train in (False, True):
            y, hT, cT = ops.lstm_forward(x, None, None, *W, train=train, backend="native")[:3]
            for b in range(0, 12, 2):
                y2, hT2, cT2 = ops.lstm_forward(x[:, b:b + 2].copy(), None, None, *W, train=train,
                                                backend="native")[:3]
                np.testing.assert_array_equal(y[:, b:b + 2], y2, err_msg=f"rows {b}, {b + 1}")
                np.testing.assert_array_equal(cT[b:b + 2], cT2)
    want = reference_outputs("lstm", args)
    np.testing.assert_allclose(y, want[0], rtol=0, atol=2e-5 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("B", [13, 32])
def test_a_batch_of_several_tiles_is_the_same_bits_at_any_threads(cell, B, isa, every_thread_works):
    args = benchmark.cell_arguments(cell, 6, B, 24, 300)
    results = []
    for n in (1, 2, 3):
        seqcore.set_num_threads(n)
        results.append([outputs(cell, forward(cell, args, train)) for train in (False, True)])
    for n, got in zip((2, 3), results[1:]):
        for arrays, want in zip(got, results[0]):
            for a, b in zip(arrays, want):
                np.testing.assert_array_equal(a, b, err_msg=f"1 against {n} threads")
    for a, b in zip(*results[0]):  # training's forward computes what inference does
        np.testing.assert_array_equal(a, b)
    want = reference_outputs(cell, args)
    for a, b in zip(results[0][0], want):
        np.testing.assert_allclose(a, b, rtol=0, atol=2e-5)


@pytest.mark.parametrize("cell", CELLS)
def test_small_batch_step_in_float64_matches_the_reference(cell, isa, every_thread_works):
    args = benchmark.cell_arguments(cell, 5, 2, 8, 72, dtype=np.float64)
    want = reference_outputs(cell, args)
    for n in (1, 3):
        seqcore.set_num_threads(n)
        got = outputs(cell, getattr(ops, f"{cell}_forward")(*args, train=False, backend="native"))
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 2, 3])
def test_read_stream_reads_every_element(dtype, n, isa):
    x = (np.arange(100_003) % 7).astype(dtype)  # a tail past the last whole vector and cache line
    seconds, total = _core.read_stream(x, 3, n)
    assert seconds > 0
    assert total == 3 * x.sum()  # small integers: exact in either type


def test_read_stream_reads_a_tiny_buffer_on_more_threads_than_lines():
    x = np.full(5, 2.0, np.float32)
    assert _core.read_stream(x, 2, 8)[1] == 20.0


def test_read_stream_refuses_bad_input():
    x = np.ones(64, np.float32)
    with pytest.raises(ValueError, match="repeats"):
        _core.read_stream(x, 0)
    with pytest.raises(ValueError, match="x: expected 1 dimensions"):
        _core.read_stream(np.ones((4, 4), np.float32))
    with pytest.raises(ValueError, match="C-contiguous"):
        _core.read_stream(np.ones(128, np.float32)[::2])
    with pytest.raises(TypeError, match="x: expected a float32 array"):
        _core.read_stream(np.ones(64, np.int32))
    with pytest.raises(ValueError, match="num_threads"):
        _core.read_stream(x, 1, -1)


def test_ops_read_stream_checks_its_arguments():
    x = np.full(1000, 0.5, np.float32)
    seconds, total = ops.read_stream(x, 2, 2)
    assert seconds > 0 and total == 1000.0
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="repeats"):
            ops.read_stream(x, bad)
    with pytest.raises(ValueError, match="num_threads"):
        ops.read_stream(x, 1, 0)
    with pytest.raises(TypeError, match="a: expected"):
        ops.read_stream([1.0, 2.0])


def test_read_bandwidth_is_a_rate():
    rate = benchmark.read_bandwidth(1 << 16, rounds=3, min_time=0.001)
    assert np.isfinite(rate) and rate > 1e6  # bytes a second: any machine reads 64 KB at more than 1 MB/s
    with pytest.raises(ValueError, match="nbytes"):
        benchmark.read_bandwidth(16)


@pytest.mark.parametrize("precision", ["fp32", "bf16", "int8"])
def test_the_stepper_gives_the_same_logits_on_any_threads(precision, isa):
    # H = 448: a step is worth 3 threads (generate/stepper.h, stepper_threads), each owning
    # several units, whose order alternates from step to step
    from seqcore.nn import LanguageModel
    model = LanguageModel(40, 16, 448, 1, cell="lstm", seed=3, precision=precision)
    ids = np.random.default_rng(0).integers(0, 40, (7, 2))
    runs = {}
    for n in (1, 2, 3):
        stepper = model.stepper(2, num_threads=n)
        runs[n] = [stepper.step(row).copy() for row in ids]
    for n in (2, 3):
        for s, (a, b) in enumerate(zip(runs[1], runs[n])):
            np.testing.assert_array_equal(a, b, err_msg=f"step {s}: 1 against {n} threads")
    if precision == "fp32":  # and the model's forward over the same tokens
        logits = model.forward(ids, train=False)[0]
        np.testing.assert_allclose(np.stack(runs[1]), logits, rtol=0, atol=1e-5)
