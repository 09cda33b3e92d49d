"""ops against torch.nn.RNN / LSTM / GRU with the same weights (oracle: torch).
Skipped when torch is not installed."""

import numpy as np
import pytest

from cellcases import CELLS, backward, forward, make_inputs, make_output_weights

torch = pytest.importorskip("torch")

SHAPES = [(1, 1, 1, 1), (5, 3, 4, 6), (7, 2, 9, 5), (3, 4, 2, 11)]
TORCH_CLASS = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}


def torch_run(cell, inputs, weights, b_split):
    """Runs torch's layer with our weights; returns outputs and gradients under
    our names. For RNN and LSTM, our single bias b is split as b_ih + b_hh."""
    dtype = torch.float64 if inputs["x"].dtype == np.float64 else torch.float32
    T, B, D = inputs["x"].shape
    H = inputs["W_hh"].shape[1]
    layer = getattr(torch.nn, TORCH_CLASS[cell])(D, H).to(dtype)
    t = lambda a: torch.tensor(a, dtype=dtype)  # noqa: E731
    with torch.no_grad():
        layer.weight_ih_l0.copy_(t(inputs["W_ih"]))
        layer.weight_hh_l0.copy_(t(inputs["W_hh"]))
        if cell == "gru":
            layer.bias_ih_l0.copy_(t(inputs["b_ih"]))
            layer.bias_hh_l0.copy_(t(inputs["b_hh"]))
        else:
            layer.bias_ih_l0.copy_(t(inputs["b"] - b_split))
            layer.bias_hh_l0.copy_(t(b_split))
    x = t(inputs["x"]).requires_grad_()
    h0 = t(inputs["h0"])[None].requires_grad_()
    if cell == "lstm":
        c0 = t(inputs["c0"])[None].requires_grad_()
        y, (hT, cT) = layer(x, (h0, c0))
        outs = {"y": y, "hT": hT[0], "cT": cT[0]}
    else:
        y, hT = layer(x, h0)
        outs = {"y": y, "hT": hT[0]}
    L = sum((outs[k] * t(weights[k])).sum() for k in weights)
    L.backward()
    grads = {"x": x.grad, "h0": h0.grad[0], "W_ih": layer.weight_ih_l0.grad,
             "W_hh": layer.weight_hh_l0.grad}
    if cell == "lstm":
        grads["c0"] = c0.grad[0]
    if cell == "gru":
        grads["b_ih"], grads["b_hh"] = layer.bias_ih_l0.grad, layer.bias_hh_l0.grad
    else:
        # Both torch biases get the gradient of b (summed in other orders).
        grads["b"] = layer.bias_ih_l0.grad
        grads["b (torch's b_hh)"] = layer.bias_hh_l0.grad
    to_np = lambda a: a.detach().numpy()  # noqa: E731
    return {k: to_np(v) for k, v in outs.items()}, {k: to_np(v) for k, v in grads.items()}


def max_relative(a, b):
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


@pytest.mark.parametrize("backend", ["reference", "native"])
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 1e-5)], ids=["f64", "f32"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "T{}B{}D{}H{}".format(*s))
@pytest.mark.parametrize("cell", CELLS)
def test_outputs_and_gradients_match_torch(cell, shape, dtype, tol, backend):
    T, B, D, H = shape
    inputs = make_inputs(cell, T, B, D, H, dtype=dtype, seed=sum(shape))
    weights = make_output_weights(cell, T, B, H, dtype=dtype)
    b_split = np.random.default_rng(7).standard_normal(inputs["W_hh"].shape[0]).astype(dtype)
    ours, cache = forward(cell, inputs, backend=backend)
    grads = backward(cell, weights, cache)
    t_outs, t_grads = torch_run(cell, inputs, weights, b_split)
    worst = {}
    for k in t_outs:
        worst[k] = max_relative(ours[k], t_outs[k])
    for k in t_grads:
        worst["d" + k] = max_relative(grads[k.split()[0]], t_grads[k])
    print(f"\n{cell} {shape} {np.dtype(dtype).name} {backend}: " + ", ".join(f"{k} {v:.1e}" for k, v in worst.items()))
    assert max(worst.values()) < tol, worst
