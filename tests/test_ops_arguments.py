"""seqcore.ops checks its arguments and names the bad one."""

import numpy as np
import pytest

from cellcases import CELLS, backward, forward, input_names, make_inputs, make_output_weights, state_names


def inputs32(cell):
    return make_inputs(cell, 3, 2, 4, 5, dtype=np.float32)


@pytest.mark.parametrize("cell", CELLS)
def test_float32_in_float32_out(cell):
    outs, cache = forward(cell, inputs32(cell))
    assert all(v.dtype == np.float32 for v in outs.values())
    grads = backward(cell, make_output_weights(cell, 3, 2, 5, dtype=np.float32), cache)
    assert all(g.dtype == np.float32 for g in grads.values())


@pytest.mark.parametrize("cell", CELLS)
def test_none_states_mean_zeros(cell):
    inputs = inputs32(cell)
    for k in state_names(cell):
        inputs[k] = np.zeros_like(inputs[k])
    with_zeros, _ = forward(cell, inputs)
    for k in state_names(cell):
        inputs[k] = None
    with_none, _ = forward(cell, inputs)
    for k in with_zeros:
        np.testing.assert_array_equal(with_zeros[k], with_none[k])


@pytest.mark.parametrize("cell", CELLS)
def test_inference_keeps_no_cache(cell):
    outs, cache = forward(cell, inputs32(cell), train=False)
    assert cache is None
    assert outs["y"].shape == (3, 2, 5)


@pytest.mark.parametrize("cell", CELLS)
def test_empty_sequence_returns_the_initial_state(cell):
    inputs = make_inputs(cell, 0, 2, 4, 5)
    outs, cache = forward(cell, inputs)
    assert outs["y"].shape == (0, 2, 5)
    np.testing.assert_array_equal(outs["hT"], inputs["h0"])
    grads = backward(cell, {"hT": np.ones((2, 5))}, cache)
    np.testing.assert_array_equal(grads["h0"], np.ones((2, 5)))
    assert not grads["W_hh"].any()


@pytest.mark.parametrize("cell", CELLS)
def test_non_contiguous_inputs_are_accepted(cell):
    inputs = make_inputs(cell, 3, 2, 4, 5)
    expected, _ = forward(cell, inputs)
    inputs["x"] = np.asfortranarray(inputs["x"])
    inputs["W_hh"] = np.ascontiguousarray(inputs["W_hh"][::-1])[::-1]  # negative strides
    got, _ = forward(cell, inputs)
    np.testing.assert_array_equal(got["y"], expected["y"])


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("name", ["x", "h0", "W_ih", "W_hh"])
def test_wrong_number_of_dimensions_names_the_argument(cell, name):
    inputs = inputs32(cell)
    inputs[name] = inputs[name][None]
    with pytest.raises(ValueError, match=f"^{name}: expected"):
        forward(cell, inputs)


@pytest.mark.parametrize("cell", CELLS)
def test_wrong_bias_shape_names_the_bias(cell):
    inputs = inputs32(cell)
    name = input_names(cell)[-1]
    inputs[name] = inputs[name][:-1]
    with pytest.raises(ValueError, match=f"^{name}: expected shape"):
        forward(cell, inputs)


@pytest.mark.parametrize("cell", CELLS)
def test_input_size_mismatch_names_W_ih(cell):
    inputs = inputs32(cell)
    inputs["W_ih"] = inputs["W_ih"][:, :-1].copy()
    with pytest.raises(ValueError, match="^W_ih: expected shape"):
        forward(cell, inputs)


@pytest.mark.parametrize("cell", CELLS)
def test_gate_count_mismatch_names_W_hh(cell):
    inputs = inputs32(cell)
    inputs["W_hh"] = np.zeros((7, 5), np.float32)
    with pytest.raises(ValueError, match="^W_hh: expected shape"):
        forward(cell, inputs)


@pytest.mark.parametrize("cell", CELLS)
def test_batch_mismatch_names_h0(cell):
    inputs = inputs32(cell)
    inputs["h0"] = inputs["h0"][:1]
    with pytest.raises(ValueError, match="^h0: expected shape"):
        forward(cell, inputs)


@pytest.mark.parametrize("cell", CELLS)
def test_mixed_dtypes_are_rejected(cell):
    inputs = inputs32(cell)
    inputs["W_hh"] = inputs["W_hh"].astype(np.float64)
    with pytest.raises(TypeError, match="^W_hh: expected dtype float32"):
        forward(cell, inputs)


@pytest.mark.parametrize("cell", CELLS)
def test_integer_input_is_rejected(cell):
    inputs = inputs32(cell)
    inputs["x"] = np.ones((3, 2, 4), dtype=np.int64)
    with pytest.raises(TypeError, match="^x: expected dtype float32 or float64"):
        forward(cell, inputs)


@pytest.mark.parametrize("cell", CELLS)
def test_a_list_is_not_an_array(cell):
    inputs = inputs32(cell)
    inputs["x"] = inputs["x"].tolist()
    with pytest.raises(TypeError, match="^x: expected a numpy.ndarray"):
        forward(cell, inputs)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("name", ["x", "W_ih", "W_hh", "h0"])
@pytest.mark.parametrize("cell", CELLS)
def test_non_finite_values_are_rejected(cell, name, bad):
    inputs = inputs32(cell)
    inputs[name].flat[1] = bad
    with pytest.raises(ValueError, match=f"^{name}: contains NaN or inf"):
        forward(cell, inputs)


@pytest.mark.parametrize("cell", CELLS)
def test_unknown_backend_is_rejected(cell):
    with pytest.raises(ValueError, match="^backend: expected"):
        forward(cell, inputs32(cell), backend="cuda")


@pytest.mark.parametrize("cell", CELLS)
def test_backward_rejects_a_cache_of_another_cell(cell):
    other = "gru" if cell != "gru" else "lstm"
    _, cache = forward(other, inputs32(other))
    with pytest.raises(ValueError, match=f"^cache: this cache comes from {other}_forward"):
        backward(cell, {"y": np.ones((3, 2, 5), np.float32)}, cache)


@pytest.mark.parametrize("cell", CELLS)
def test_backward_rejects_no_cache(cell):
    with pytest.raises(TypeError, match="^cache: expected the Cache"):
        backward(cell, {"y": np.ones((3, 2, 5), np.float32)}, None)


@pytest.mark.parametrize("cell", CELLS)
def test_backward_checks_dy_shape_and_dtype(cell):
    _, cache = forward(cell, inputs32(cell))
    with pytest.raises(ValueError, match="^dy: expected shape"):
        backward(cell, {"y": np.ones((3, 2, 4), np.float32)}, cache)
    with pytest.raises(TypeError, match="^dy: expected dtype float32"):
        backward(cell, {"y": np.ones((3, 2, 5), np.float64)}, cache)
    with pytest.raises(ValueError, match="^dhT: contains NaN"):
        backward(cell, {"hT": np.full((2, 5), np.nan, np.float32)}, cache)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", [0, 70_000, -1])
def test_a_large_float32_weight_with_a_nan_or_inf_anywhere_is_refused(bad, where):
    # W_hh of 4·H x H = 262,144 elements: checked by the native sum of squares (ops/_checks.py, all_finite)
    from seqcore import ops
    H = 256
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 1, 8)).astype(np.float32)
    W_ih = rng.standard_normal((4 * H, 8)).astype(np.float32)
    W_hh = np.full((4 * H, H), 3.4e38, np.float32)  # the largest float32s: their squares' sum is finite
    b = np.zeros(4 * H, np.float32)
    ops.lstm_forward(x, None, None, W_ih, W_hh * np.float32(1e-40), b, train=False)
    ops.lstm_forward(x, None, None, W_ih, W_hh, b, train=False)
    W_hh.reshape(-1)[where] = bad
    with pytest.raises(ValueError, match="^W_hh: contains NaN or inf"):
        ops.lstm_forward(x, None, None, W_ih, W_hh, b, train=False)
    with pytest.raises(ValueError, match="^W_hh: contains NaN or inf"):
        ops.lstm_forward(x, None, None, W_ih, np.asfortranarray(W_hh), b, train=False)
