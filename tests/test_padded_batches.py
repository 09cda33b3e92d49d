"""Padded batches with per-sequence lengths, forward and reverse, in ops.

Oracles: each sequence run alone (the batch must change nothing), finite
differences, and the reference for the native kernels."""

import numpy as np
import pytest

import seqcore
from cellcases import (CELLS, assert_bitwise_equal_results, at_one_and_two_threads, backward, forward, input_names, loss,
                       make_inputs, make_output_weights, state_names)
from test_reference_gradients import numerical_gradient

LENGTHS = np.array([5, 0, 3, 5, 1, 2])  # unsorted, with an empty and a full sequence
T, B, D, H = 5, 6, 3, 7


def one_sequence(inputs, cell, b, length):
    """The inputs of sequence b alone, cut to its length."""
    single = {k: v.copy() for k, v in inputs.items()}
    single["x"] = inputs["x"][:length, b:b + 1].copy()
    for k in state_names(cell):
        single[k] = inputs[k][b:b + 1].copy()
    return single


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("backend", ["reference", "native"])
@pytest.mark.parametrize("cell", CELLS)
def test_a_padded_batch_equals_its_sequences_run_alone(cell, backend, reverse):
    inputs = make_inputs(cell, T, B, D, H)
    outs, _ = forward(cell, inputs, backend=backend, lengths=LENGTHS, reverse=reverse)
    for b, n in enumerate(LENGTHS):
        single = one_sequence(inputs, cell, b, n)
        if reverse:
            single["x"] = single["x"][::-1].copy()
        alone, _ = forward(cell, single, backend="reference")
        y = alone["y"][::-1] if reverse else alone["y"]
        np.testing.assert_allclose(outs["y"][:n, b], y[:, 0], rtol=1e-12, atol=1e-14)
        assert not outs["y"][n:, b].any(), "padded steps output zeros"
        for k in outs:
            if k != "y":
                np.testing.assert_allclose(outs[k][b], alone[k][0], rtol=1e-12, atol=1e-14, err_msg=k)


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("cell", CELLS)
def test_padded_gradients_match_finite_differences(cell, reverse):
    inputs = make_inputs(cell, T, B, D, H, seed=3)
    weights = make_output_weights(cell, T, B, H)
    options = dict(lengths=LENGTHS, reverse=reverse)
    _, cache = forward(cell, inputs, backend="reference", **options)
    grads = backward(cell, weights, cache)

    def padded_loss():
        return loss(forward(cell, inputs, train=False, backend="reference", **options)[0], weights)

    for name in input_names(cell):
        num = numerical_gradient(cell, inputs, weights, name, loss_fn=padded_loss)
        np.testing.assert_allclose(grads[name], num, rtol=1e-6, atol=1e-8, err_msg=name)
    assert not grads["x"][LENGTHS[None, :] <= np.arange(T)[:, None]].any(), "no gradient at padded steps"


@pytest.mark.parametrize("lengths", [[9, 4, 0, 9, 1, 7, 3, 8, 9, 2, 5], [9, 9, 8, 7, 7, 5, 3, 2, 1, 0, 0]],
                         ids=["unsorted", "sorted"])
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-10), (np.float32, 1e-4)], ids=["f64", "f32"])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("cell", CELLS)
def test_native_padded_batches_match_the_reference(cell, reverse, threads, dtype, tol, lengths):
    lengths = np.array(lengths)
    inputs = make_inputs(cell, 9, 11, 6, 37, dtype=dtype, seed=1)
    weights = make_output_weights(cell, 9, 11, 37, dtype=dtype)
    before = seqcore.get_num_threads()
    seqcore.set_num_threads(threads)
    try:
        results = []
        for backend in ("native", "reference"):
            outs, cache = forward(cell, inputs, backend=backend, lengths=lengths, reverse=reverse)
            results.append((outs, backward(cell, weights, cache)))
    finally:
        seqcore.set_num_threads(before)
    (outs, grads), (ref_outs, ref_grads) = results
    for k in outs:
        np.testing.assert_allclose(outs[k], ref_outs[k], rtol=tol, atol=tol * np.abs(ref_outs[k]).max(), err_msg=k)
    for k in grads:
        np.testing.assert_allclose(grads[k], ref_grads[k], rtol=tol, atol=tol * np.abs(ref_grads[k]).max(),
                                   err_msg="d" + k)


VARIABLE = [40, 13, 0, 40, 1, 27, 3, 38, 40, 22, 5, 17, 9]  # unsorted, an empty and full rows


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("cell", CELLS)
def test_native_padded_batches_are_bitwise_equal_at_one_and_two_threads(cell, reverse):
    # Enough rows and units that both threads own rows of the products and
    # units of the time loops; every row ends at a different iteration.
    inputs = make_inputs(cell, 40, 13, 21, 70, dtype=np.float32, seed=4)
    weights = make_output_weights(cell, 40, 13, 70, dtype=np.float32)

    def run():
        outs, cache = forward(cell, inputs, lengths=np.array(VARIABLE), reverse=reverse)
        return outs, backward(cell, weights, cache)
    assert_bitwise_equal_results(*at_one_and_two_threads(run))


@pytest.mark.parametrize("lengths", [VARIABLE, sorted(VARIABLE, reverse=True)], ids=["unsorted", "sorted"])
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("cell", CELLS)
def test_native_padded_inference_equals_the_training_forward(cell, reverse, lengths):
    # Inference carries finished rows' states; training keeps them in the
    # workspace block after their last iteration: the same outputs.
    inputs = make_inputs(cell, 40, 13, 21, 70, dtype=np.float32, seed=6)
    options = dict(lengths=np.array(lengths), reverse=reverse)
    infer, _ = forward(cell, inputs, train=False, **options)
    train, _ = forward(cell, inputs, train=True, **options)
    for k in infer:
        np.testing.assert_array_equal(infer[k], train[k], err_msg=k)


@pytest.mark.parametrize("cell", CELLS)
def test_full_lengths_change_nothing(cell):
    inputs = make_inputs(cell, T, B, D, H)
    plain, _ = forward(cell, inputs)
    padded, _ = forward(cell, inputs, lengths=np.full(B, T))
    for k in plain:
        np.testing.assert_array_equal(plain[k], padded[k])


@pytest.mark.parametrize("lengths,error,match", [
    ([1, 2], ValueError, r"^lengths: expected shape \(B,\)"),
    ([[1] * B], ValueError, r"^lengths: expected shape \(B,\)"),
    ([1.0] * B, TypeError, "^lengths: expected integers"),
    ([T + 1] + [1] * (B - 1), ValueError, r"^lengths: expected values in \[0, T\]"),
    ([-1] + [1] * (B - 1), ValueError, r"^lengths: expected values in \[0, T\]"),
])
def test_bad_lengths_are_rejected(lengths, error, match):
    with pytest.raises(error, match=match):
        forward("lstm", make_inputs("lstm", T, B, D, H), lengths=lengths)


def test_reverse_must_be_a_bool():
    with pytest.raises(TypeError, match="^reverse: expected a bool"):
        forward("gru", make_inputs("gru", T, B, D, H), reverse="yes")


# The hidden size at which the backward pads the rows of its gate gradients
# (gate_grad_stride in csrc/cells/loops.h: rows a multiple of 2 KiB apart get
# a cache line more), by cell and dtype.
PADDED_ROWS_H = {("lstm", np.float32): 128, ("lstm", np.float64): 64, ("gru", np.float32): 512,
                 ("gru", np.float64): 256, ("rnn", np.float32): 512, ("rnn", np.float64): 256}


@pytest.mark.parametrize("lengths", [None, [6, 2, 0, 6, 1]], ids=["full", "variable"])
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-10), (np.float32, 1e-4)], ids=["f64", "f32"])
@pytest.mark.parametrize("cell", CELLS)
def test_native_matches_the_reference_where_gate_gradient_rows_are_padded(cell, dtype, tol, reverse, lengths):
    H = PADDED_ROWS_H[(cell, dtype)]
    # weights of std 1/√H, as an initialised layer's: at std 0.5 and H = 512
    # the recurrence would amplify float32 rounding ~10× a step
    inputs = make_inputs(cell, 6, 5, 3, H, dtype=dtype, seed=2, scale=H ** -0.5)
    weights = make_output_weights(cell, 6, 5, H, dtype=dtype)
    lengths = None if lengths is None else np.array(lengths)
    results = []
    for backend in ("native", "reference"):
        outs, cache = forward(cell, inputs, backend=backend, lengths=lengths, reverse=reverse)
        results.append(backward(cell, weights, cache))
    for k in results[0]:
        np.testing.assert_allclose(results[0][k], results[1][k], rtol=tol, atol=tol * np.abs(results[1][k]).max(),
                                   err_msg="d" + k)
