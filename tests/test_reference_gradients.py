"""The reference's BPTT against central finite differences in float64, for
every gradient of every cell (oracle: finite differences)."""

import numpy as np
import pytest

from cellcases import CELLS, backward, forward, input_names, loss, make_inputs, make_output_weights
from gradcheck import numerical_gradient as central_differences

# (T, B, D, H): the smallest case, odd sizes, and one-of-each edge cases.
SHAPES = [(1, 1, 1, 1), (3, 2, 5, 4), (4, 3, 2, 7), (1, 2, 3, 1), (6, 1, 3, 5), (2, 4, 1, 3)]
EPS = 1e-6
TOLERANCE = 1e-7  # relative to the largest gradient entry of the argument


def numerical_gradient(cell, inputs, weights, name, loss_fn=None):
    """Central differences of the test loss (or of loss_fn()) w.r.t. every
    entry of inputs[name]."""
    if loss_fn is None:
        def loss_fn():
            return loss(forward(cell, inputs, train=False, backend="reference")[0], weights)
    return central_differences(loss_fn, inputs[name], EPS)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "T{}B{}D{}H{}".format(*s))
@pytest.mark.parametrize("cell", CELLS)
def test_reference_gradients_match_finite_differences(cell, shape):
    T, B, D, H = shape
    inputs = make_inputs(cell, T, B, D, H, seed=T * 100 + H)
    weights = make_output_weights(cell, T, B, H)
    outputs, cache = forward(cell, inputs, backend="reference")
    grads = backward(cell, weights, cache)
    worst = {}
    for name in input_names(cell):
        num = numerical_gradient(cell, inputs, weights, name)
        err = np.max(np.abs(grads[name] - num)) / max(np.max(np.abs(num)), 1e-12)
        worst[name] = err
        assert grads[name].shape == inputs[name].shape, name
        assert err < TOLERANCE, f"{cell} d{name}: relative error {err:.2e}"
    print(f"\n{cell} {shape}: max relative error " + ", ".join(f"d{k} {v:.1e}" for k, v in worst.items()))


@pytest.mark.parametrize("cell", CELLS)
def test_gradient_from_final_state_alone(cell):
    """dy=None: only the final state carries a gradient."""
    inputs = make_inputs(cell, 4, 2, 3, 5)
    weights = make_output_weights(cell, 4, 2, 5)
    del weights["y"]
    _, cache = forward(cell, inputs, backend="reference")
    grads = backward(cell, weights, cache)
    num = numerical_gradient(cell, inputs, weights, "W_hh")
    np.testing.assert_allclose(grads["W_hh"], num, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("cell", CELLS)
def test_gradient_from_outputs_alone(cell):
    """dhT=None (and dcT=None): only the outputs carry a gradient."""
    inputs = make_inputs(cell, 4, 2, 3, 5)
    weights = {"y": make_output_weights(cell, 4, 2, 5)["y"]}
    _, cache = forward(cell, inputs, backend="reference")
    grads = backward(cell, weights, cache)
    num = numerical_gradient(cell, inputs, weights, "x")
    np.testing.assert_allclose(grads["x"], num, rtol=1e-6, atol=1e-9)
