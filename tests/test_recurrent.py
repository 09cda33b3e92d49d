"""Recurrent layers: stacked, bidirectional, padded batches.

Oracles: torch.nn.RNN/LSTM/GRU with pack_padded_sequence (when installed),
the layer run on each sequence alone, and central finite differences."""

import numpy as np
import pytest

import seqcore
from seqcore.nn import GRU, LSTM, RNN

LAYERS = {"rnn": RNN, "lstm": LSTM, "gru": GRU}
T, B, D, H = 6, 4, 5, 7
LENGTHS = np.array([6, 3, 1, 5])


def make(cell, **kw):
    kw.setdefault("dtype", np.float64)
    kw.setdefault("seed", 0)
    return LAYERS[cell](D, H, **kw)


def inputs(dtype=np.float64, seed=1, shape=(T, B, D)):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def final_h(state):
    return state[0] if isinstance(state, tuple) else state


# ---------------------------------------------------------------------------
# torch parity


def torch_layer(torch, layer):
    cls = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[layer.cell]
    t = cls(layer.input_size, layer.hidden_size, num_layers=layer.num_layers,
            bidirectional=layer.bidirectional, batch_first=layer.batch_first)
    t = t.double() if layer.dtype == np.float64 else t
    t.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in layer.torch_state_dict().items()})
    return t


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 1e-4)], ids=["f64", "f32"])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("cell", list(LAYERS))
def test_stacked_bidirectional_padded_matches_torch_packed(cell, threads, dtype, tol):
    torch = pytest.importorskip("torch")
    layer = make(cell, num_layers=2, bidirectional=True, dtype=dtype)
    t = torch_layer(torch, layer)
    x = inputs(dtype)
    rng = np.random.default_rng(5)
    states = [rng.standard_normal((4, B, H)).astype(dtype) for _ in range(2 if cell == "lstm" else 1)]
    state = tuple(states) if cell == "lstm" else states[0]
    before = seqcore.get_num_threads()
    seqcore.set_num_threads(threads)
    try:
        y, final = layer.forward(x, state, lengths=LENGTHS)
        dy = rng.standard_normal(y.shape).astype(dtype)
        finals = final if cell == "lstm" else (final,)
        dfinals = [rng.standard_normal(f.shape).astype(dtype) for f in finals]
        dx = layer.backward(dy, tuple(dfinals) if cell == "lstm" else dfinals[0])
    finally:
        seqcore.set_num_threads(before)

    xt = torch.tensor(x, requires_grad=True)
    st = [torch.tensor(s, requires_grad=True) for s in states]
    packed = torch.nn.utils.rnn.pack_padded_sequence(xt, torch.tensor(LENGTHS), enforce_sorted=False)
    yt, ft = t(packed, tuple(st) if cell == "lstm" else st[0])
    yt, _ = torch.nn.utils.rnn.pad_packed_sequence(yt, total_length=T)
    fts = ft if cell == "lstm" else (ft,)
    loss = (yt * torch.tensor(dy)).sum() + sum((f * torch.tensor(g)).sum() for f, g in zip(fts, dfinals))
    loss.backward()

    def close(a, b, what):
        scale = max(np.abs(b).max(), 1e-30)
        err = np.abs(a - b).max() / scale
        assert err < tol, f"{what}: relative error {err:.1e}"
        return err

    worst = close(y, yt.detach().numpy(), "y")
    for k, (f, g) in enumerate(zip(finals, fts)):
        worst = max(worst, close(f, g.detach().numpy(), f"state {k}"))
    worst = max(worst, close(dx, xt.grad.numpy(), "dx"))
    state_grads = layer.state_grad if cell == "lstm" else (layer.state_grad,)
    for k, s in enumerate(st):
        worst = max(worst, close(state_grads[k], s.grad.numpy(), f"d state {k}"))
    params = dict(t.named_parameters())
    for name, g in layer.grads.items():
        worst = max(worst, close(g, params[name].grad.numpy(), f"d{name}"))
    print(f"\n{cell} {np.dtype(dtype).name} {threads}t: max relative error {worst:.1e}")


@pytest.mark.parametrize("cell", list(LAYERS))
def test_batch_first_matches_torch(cell):
    torch = pytest.importorskip("torch")
    layer = make(cell, batch_first=True)
    t = torch_layer(torch, layer)
    x = inputs(shape=(B, T, D))
    y, final = layer.forward(x)
    yt, ft = t(torch.tensor(x))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(final_h(final), final_h(ft).detach().numpy(), rtol=1e-12, atol=1e-14)


# ---------------------------------------------------------------------------
# behaviour


@pytest.mark.parametrize("cell", list(LAYERS))
def test_sum_merge_adds_the_directions(cell):
    concat = make(cell, bidirectional=True)
    summed = make(cell, bidirectional=True, merge="sum")
    x = inputs()
    yc, _ = concat.forward(x, lengths=LENGTHS)
    ys, _ = summed.forward(x, lengths=LENGTHS)
    assert ys.shape == (T, B, H)
    np.testing.assert_allclose(ys, yc[..., :H] + yc[..., H:], rtol=1e-14)


@pytest.mark.parametrize("cell", list(LAYERS))
def test_state_shapes_follow_torch(cell):
    layer = make(cell, num_layers=3, bidirectional=True)
    y, final = layer.forward(inputs())
    assert y.shape == (T, B, 2 * H)
    for f in (final if cell == "lstm" else (final,)):
        assert f.shape == (6, B, H)


@pytest.mark.parametrize("cell", list(LAYERS))
def test_padded_steps_output_zeros_and_sequences_are_independent(cell):
    layer = make(cell, num_layers=2, bidirectional=True)
    x = inputs()
    y, final = layer.forward(x, lengths=LENGTHS, train=False)
    for b, n in enumerate(LENGTHS):
        assert not y[n:, b].any()
        alone, alone_final = layer.forward(x[:n, b:b + 1], train=False)
        np.testing.assert_allclose(y[:n, b], alone[:, 0], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(final_h(final)[:, b], final_h(alone_final)[:, 0], rtol=1e-12, atol=1e-14)


def test_dropout_between_layers_is_seeded_and_off_in_inference():
    x = inputs()
    a, b = (make("lstm", num_layers=2, dropout=0.5, seed=3) for _ in range(2))
    ya, _ = a.forward(x)
    yb, _ = b.forward(x)
    np.testing.assert_array_equal(ya, yb)
    plain = make("lstm", num_layers=2, seed=3)
    y_train, _ = a.forward(x)
    y_infer, _ = a.forward(x, train=False)
    np.testing.assert_array_equal(y_infer, plain.forward(x, train=False)[0])
    assert not np.allclose(y_train, y_infer)


def test_dropout_gradient_matches_finite_differences():
    """The mask of the last forward is used by backward (oracle: finite differences
    with the same mask, reproduced by reseeding)."""
    x = inputs(seed=4)
    dy = inputs(seed=5, shape=(T, B, H))

    def loss(x_):
        layer = make("gru", num_layers=2, dropout=0.3, seed=11)
        return float((layer.forward(x_)[0] * dy).sum())

    layer = make("gru", num_layers=2, dropout=0.3, seed=11)
    layer.forward(x)
    dx = layer.backward(dy)
    num = np.zeros_like(x)
    eps = 1e-6
    for idx in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[idx] += eps
        xm[idx] -= eps
        num[idx] = (loss(xp) - loss(xm)) / (2 * eps)
    np.testing.assert_allclose(dx, num, rtol=1e-6, atol=1e-8)


def test_forget_bias_sets_the_forget_gate():
    layer = make("lstm", num_layers=2, bidirectional=True, forget_bias=1.0)
    for name, p in layer.params.items():
        if name.startswith("bias_ih"):
            np.testing.assert_array_equal(p[H:2 * H], 1.0)
        if name.startswith("bias_hh"):
            np.testing.assert_array_equal(p[H:2 * H], 0.0)


def test_initialisation_is_uniform_within_one_over_sqrt_h():
    layer = make("gru", num_layers=2, seed=1)
    for p in layer.params.values():
        assert np.abs(p).max() <= 1 / np.sqrt(H)
    assert np.std(np.concatenate([p.ravel() for p in layer.params.values()])) > 0.5 / np.sqrt(3 * H)


def test_grads_accumulate_until_zero_grad():
    layer = make("rnn")
    x, dy = inputs(), inputs(shape=(T, B, H))
    layer.forward(x)
    layer.backward(dy)
    once = {k: v.copy() for k, v in layer.grads.items()}
    layer.forward(x)
    layer.backward(dy)
    for k, v in layer.grads.items():
        np.testing.assert_allclose(v, 2 * once[k], rtol=1e-14)
    layer.zero_grad()
    assert not any(v.any() for v in layer.grads.values())


def test_torch_state_dict_round_trips_with_array_likes():
    a, b = make("lstm", num_layers=2, bidirectional=True, seed=1), make("lstm", num_layers=2, bidirectional=True, seed=2)
    b.load_torch_state_dict({k: v.tolist() for k, v in a.torch_state_dict().items()})
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])
    assert "bias_hh_l1_reverse" in a.torch_state_dict()


def test_loading_a_wrong_state_changes_nothing():
    layer = make("gru")
    before = layer.state_dict()
    bad = dict(before)
    bad["weight_hh_l0"] = np.zeros((3 * H, H + 1))
    with pytest.raises(ValueError, match=r"weight_hh_l0.*expected shape"):
        layer.load_torch_state_dict(bad)
    with pytest.raises(KeyError, match="missing"):
        layer.load_torch_state_dict({"weight_ih_l0": before["weight_ih_l0"]})
    for k, v in layer.params.items():
        np.testing.assert_array_equal(v, before[k])


@pytest.mark.parametrize("kwargs,match", [
    (dict(hidden_size=0), "^hidden_size: expected an int >= 1"),
    (dict(num_layers=0), "^num_layers: expected an int >= 1"),
    (dict(merge="mean"), "^merge: expected 'concat' or 'sum'"),
    (dict(dropout=1.0), r"^dropout: expected a probability in \[0, 1\)"),
])
def test_bad_configuration_is_rejected(kwargs, match):
    args = dict(input_size=D, hidden_size=H)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        LSTM(**args)


def test_bad_inputs_are_rejected():
    layer = make("lstm")
    with pytest.raises(ValueError, match=r"^x: expected shape \(T, B, D\) with D = 5"):
        layer.forward(inputs(shape=(T, B, D + 1)))
    with pytest.raises(TypeError, match="^x: expected dtype float64"):
        layer.forward(inputs(np.float32))
    with pytest.raises(TypeError, match=r"^state: expected a tuple \(h0, c0\)"):
        layer.forward(inputs(), np.zeros((1, B, H)))
    with pytest.raises(ValueError, match="^state: expected h0"):
        layer.forward(inputs(), (np.zeros((2, B, H)), np.zeros((2, B, H))))
    with pytest.raises(RuntimeError, match="^backward: call forward"):
        layer.backward(np.zeros((T, B, H)))


@pytest.mark.parametrize("cell", list(LAYERS))
def test_padded_network_gradients_match_finite_differences(cell):
    """Embedding -> 2-layer bidirectional recurrent layer with lengths -> Linear ->
    cross-entropy masked at the padding, float64 (oracle: finite differences)."""
    from gradcheck import numerical_gradient
    from seqcore.nn import Embedding, Linear, softmax_cross_entropy

    embed = Embedding(6, 3, dtype=np.float64, seed=0)
    rnn = LAYERS[cell](3, 2, num_layers=2, bidirectional=True, dtype=np.float64, seed=1)
    head = Linear(4, 6, dtype=np.float64, seed=2)
    rng = np.random.default_rng(0)
    ids, targets = rng.integers(0, 6, size=(2, 4, 3))
    lengths = np.array([4, 2, 1])
    mask = np.arange(4)[:, None] < lengths[None, :]

    def run(train):
        y, _ = rnn.forward(embed.forward(ids, train=train), train=train, lengths=lengths)
        return softmax_cross_entropy(head.forward(y, train=train), targets, mask=mask)

    _, dlogits = run(True)
    embed.backward(rnn.backward(head.backward(dlogits)))
    # atol: central differences of a loss near 1.8 carry ~2e-10 of rounding
    for layer in (embed, rnn, head):
        for name, p in layer.params.items():
            np.testing.assert_allclose(layer.grads[name], numerical_gradient(lambda: run(False)[0], p),
                                       rtol=1e-6, atol=2e-9, err_msg=name)
