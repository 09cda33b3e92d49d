"""Numerical robustness of the cells: saturated gates, very long sequences,
and float32 against float64.

Documented error (the bound enforced here): a float32 call gives outputs and
gradients within 1e-4 of the float64 call on the same inputs, relative to the
largest magnitude of the float64 result, for weights of PyTorch's
initialisation (uniform in ±1/√H) and T up to 1,000 steps. The oracle of
saturation is the float64 NumPy reference; of long sequences, the bounds
tanh and sigmoid put on the states.
"""

import numpy as np
import pytest

from cellcases import CELLS, GATES, backward, forward, input_names, make_output_weights, relative_error

from seqcore import nn
from seqcore.train import SGD, Trainer

FLOAT32_VS_FLOAT64 = 1e-4


def torch_init_inputs(cell, T, B, D, H, seed=0):
    """float64 inputs: x and states standard normal, weights and biases
    uniform in ±1/√H as PyTorch initialises them."""
    rng = np.random.default_rng(seed)
    G, k = GATES[cell], 1 / np.sqrt(H)
    shapes = {"x": (T, B, D), "h0": (B, H), "c0": (B, H), "W_ih": (G * H, D), "W_hh": (G * H, H),
              "b": (G * H,), "b_ih": (G * H,), "b_hh": (G * H,)}
    return {name: rng.standard_normal(shapes[name]) if name in ("x", "h0", "c0")
            else rng.uniform(-k, k, shapes[name]) for name in input_names(cell)}


def assert_all_finite(arrays, what):
    for name, a in arrays.items():
        assert np.isfinite(a).all(), f"{what}: {name} has NaN or inf"


# ---------------------------------------------------------------------------
# pre-activations of ±1e4


@pytest.mark.parametrize("sign", [1.0, -1.0], ids=["plus", "minus"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cell", CELLS)
def test_pre_activations_of_1e4_saturate_without_nan_or_overflow(cell, dtype, sign, isa):
    T, B, D, H = 6, 3, 4, 8
    inputs = torch_init_inputs(cell, T, B, D, H)
    inputs["x"] = np.full((T, B, D), sign)
    inputs["W_ih"] = np.full_like(inputs["W_ih"], 1e4 / D)  # every gate's input part is ±1e4
    inputs["W_hh"] *= 1e4  # and its recurrent part up to about ±1e4 too
    inputs = {k: v.astype(dtype) for k, v in inputs.items()}
    outs, cache = forward(cell, inputs)
    grads = backward(cell, make_output_weights(cell, T, B, H, dtype=dtype), cache)
    assert_all_finite(outs, cell)
    assert_all_finite(grads, cell)
    bound = max(1.0, np.abs(inputs["h0"]).max()) if cell == "gru" else 1.0  # a GRU may keep h0
    assert np.abs(outs["y"]).max() <= bound and np.abs(outs["hT"]).max() <= bound
    if cell == "lstm":  # |c_t| <= |c_{t-1}| + 1
        assert np.abs(outs["cT"]).max() <= np.abs(inputs["c0"]).max() + T
    ref_inputs = {k: v.astype(np.float64) for k, v in inputs.items()}
    ref_outs, ref_cache = forward(cell, ref_inputs, backend="reference")
    ref_grads = backward(cell, make_output_weights(cell, T, B, H), ref_cache)
    tol = FLOAT32_VS_FLOAT64 if dtype == np.float32 else 1e-10
    for k in outs:
        assert relative_error(outs[k], ref_outs[k]) < tol, k
    for k in grads:
        # the saturated gates' derivatives are ~0: gradients are as small as the reference's
        assert relative_error(grads[k], ref_grads[k]) < tol, f"d{k}"


# ---------------------------------------------------------------------------
# 10,000 steps


@pytest.mark.parametrize("cell", CELLS)
def test_a_sequence_of_10000_steps_trains_without_overflow(cell):
    T, B, D, H = 10_000, 2, 3, 16
    layer = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[cell](D, H, seed=0)
    head = nn.Linear(H, 1, seed=1)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T, B, D)).astype(np.float32)
    target = np.sin(np.arange(T) / 50.0)[:, None, None].repeat(B, 1).astype(np.float32)
    optimizer = SGD({**{f"rnn.{k}": v for k, v in layer.params.items()},
                     **{f"head.{k}": v for k, v in head.params.items()}}, lr=0.05)
    losses = []
    for _ in range(3):
        y, state = layer.forward(x)
        pred = head.forward(y)
        loss, dpred = nn.mean_squared_error(pred, target)
        layer.zero_grad(), head.zero_grad()
        layer.backward(head.backward(dpred))
        grads = {**{f"rnn.{k}": v for k, v in layer.grads.items()}, **{f"head.{k}": v for k, v in head.grads.items()}}
        assert_all_finite(grads, f"{cell} gradients")
        optimizer.step(grads)
        losses.append(loss)
    assert np.isfinite(losses).all()
    assert np.abs(y).max() <= 1
    finals = state if isinstance(state, tuple) else (state,)
    assert all(np.isfinite(s).all() for s in finals)
    if cell == "lstm":
        assert np.abs(finals[1]).max() <= T  # the cell state grows by at most 1 a step
    assert losses[-1] < losses[0]


def test_the_trainer_runs_chunks_of_10000_steps_to_a_checkpoint(tmp_path):
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 7, 40_003)
    model = nn.LanguageModel(7, embed_size=4, hidden_size=12, cell="lstm", seed=0)
    result = Trainer(model, ids, batch_size=2, seq_len=10_000, steps=2, out_dir=str(tmp_path / "run"),
                     progress=False).fit()
    assert result.step == 2 and result.checkpoint is not None
    assert np.isfinite(result.train_loss)
    assert all(np.isfinite(p).all() for p in model.params.values())


# ---------------------------------------------------------------------------
# float32 against float64


@pytest.mark.parametrize("T", [1, 100, 1000])
@pytest.mark.parametrize("cell", CELLS)
def test_float32_is_within_the_documented_error_of_float64(cell, T, isa):
    B, D, H = 4, 8, 32
    inputs = torch_init_inputs(cell, T, B, D, H, seed=T)
    dout = make_output_weights(cell, T, B, H)
    results = {}
    for dtype in (np.float32, np.float64):
        outs, cache = forward(cell, {k: v.astype(dtype) for k, v in inputs.items()})
        grads = backward(cell, {k: v.astype(dtype) for k, v in dout.items()}, cache)
        results[dtype] = {**outs, **{f"d{k}": g for k, g in grads.items()}}
    errors = {k: relative_error(results[np.float32][k], results[np.float64][k]) for k in results[np.float64]}
    worst = max(errors, key=errors.get)
    print(f"\n{cell} T={T} {isa}: float32 vs float64 max relative error {errors[worst]:.1e} ({worst})")
    assert errors[worst] < FLOAT32_VS_FLOAT64, errors
