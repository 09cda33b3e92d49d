"""seqcore.nn's non-recurrent layers: Linear, Embedding, Dropout, activations,
Sequential. Oracles: central finite differences in float64 for every backward,
torch (when installed) for Linear and Embedding, plain NumPy formulas."""

import warnings

import numpy as np
import pytest

from gradcheck import assert_close_to_numerical, numerical_gradient
from seqcore.nn import Dropout, Embedding, Layer, Linear, ReLU, Sequential, Sigmoid, Tanh


def rand(*shape, seed=0, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def weighted_sum(y, w):
    """The test loss: Σ y·w, so that dL/dy = w (a fixed random array)."""
    return float(np.sum(y * w))


# ---------------------------------------------------------------------------
# Linear


def test_linear_init_is_uniform_within_torch_bound():
    """PyTorch's init: weight and bias uniform in ±1/√in_features."""
    layer = Linear(400, 300, seed=0)
    k = 1 / np.sqrt(400)
    assert layer.params["weight"].shape == (300, 400) and layer.params["bias"].shape == (300,)
    assert layer.weight.dtype == np.float32
    for p in layer.params.values():
        assert np.abs(p).max() <= k
        assert np.abs(p).max() > 0.95 * k  # spread over the whole interval
    assert abs(layer.weight.mean()) < 0.01 * k


def test_linear_same_seed_same_weights_in_both_dtypes():
    a, b = Linear(5, 3, seed=7), Linear(5, 3, dtype=np.float64, seed=7)
    np.testing.assert_allclose(a.weight, b.weight, rtol=1e-7)
    assert not np.array_equal(Linear(5, 3, seed=8).weight, a.weight)


def test_linear_without_bias_has_only_weight():
    layer = Linear(4, 2, bias=False, seed=0)
    assert list(layer.params) == ["weight"] and list(layer.grads) == ["weight"]
    x = rand(3, 4, dtype=np.float32)
    np.testing.assert_allclose(layer(x), x @ layer.weight.T, rtol=1e-6)


def test_linear_applies_at_every_step_of_a_sequence():
    """(T, B, H) in one call equals the layer applied to each step alone (oracle: a loop)."""
    layer = Linear(6, 4, dtype=np.float64, seed=1)
    x = rand(5, 3, 6)
    y = layer(x)
    assert y.shape == (5, 3, 4)
    for t in range(5):
        np.testing.assert_allclose(y[t], x[t] @ layer.weight.T + layer.bias, rtol=1e-12)
    assert layer(x[0, 0]).shape == (4,)  # no leading dims at all


def test_linear_gradients_match_finite_differences():
    layer = Linear(4, 3, dtype=np.float64, seed=2)
    x = rand(3, 2, 4, seed=3)
    w = rand(3, 2, 3, seed=4)
    layer.forward(x)
    dx = layer.backward(w)

    def loss():
        return weighted_sum(layer.forward(x, train=False), w)

    assert_close_to_numerical(dx, numerical_gradient(loss, x))
    assert_close_to_numerical(layer.grads["weight"], numerical_gradient(loss, layer.weight))
    assert_close_to_numerical(layer.grads["bias"], numerical_gradient(loss, layer.bias))


def test_linear_backward_accumulates_until_zero_grad():
    layer = Linear(3, 2, dtype=np.float64, seed=0)
    x, dy = rand(4, 3), rand(4, 2, seed=1)
    layer.forward(x)
    layer.backward(dy)
    once = {k: v.copy() for k, v in layer.grads.items()}
    layer.backward(dy)
    for k in once:
        np.testing.assert_allclose(layer.grads[k], 2 * once[k], rtol=1e-14)
    layer.zero_grad()
    assert all(not g.any() for g in layer.grads.values())


def test_linear_matches_torch():
    torch = pytest.importorskip("torch")
    for dtype, tdtype, tol in ((np.float32, torch.float32, 1e-5), (np.float64, torch.float64, 1e-12)):
        layer = Linear(7, 5, dtype=dtype, seed=0)
        ref = torch.nn.Linear(7, 5).to(tdtype)
        ref.load_state_dict({k: torch.tensor(v) for k, v in layer.state_dict().items()})
        x, w = rand(4, 3, 7, dtype=dtype), rand(4, 3, 5, seed=1, dtype=dtype)
        y = layer(x)
        dx = layer.backward(w)
        xt = torch.tensor(x, requires_grad=True)
        yt = ref(xt)
        (yt * torch.tensor(w)).sum().backward()
        np.testing.assert_allclose(y, yt.detach().numpy(), rtol=tol, atol=tol)
        np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=tol, atol=tol)
        np.testing.assert_allclose(layer.grads["weight"], ref.weight.grad.numpy(), rtol=tol, atol=tol)
        np.testing.assert_allclose(layer.grads["bias"], ref.bias.grad.numpy(), rtol=tol, atol=tol)


def test_linear_rejects_bad_input_naming_x():
    layer = Linear(3, 2, seed=0)
    with pytest.raises(ValueError, match="x: expected shape"):
        layer(np.zeros((4, 5), np.float32))
    with pytest.raises(TypeError, match="x: expected dtype float32"):
        layer(np.zeros((4, 3), np.float64))
    with pytest.raises(ValueError, match="x: contains NaN"):
        layer(np.full((4, 3), np.nan, np.float32))
    layer(np.zeros((4, 3), np.float32))
    with pytest.raises(ValueError, match="dy: expected the shape"):
        layer.backward(np.zeros((4, 3), np.float32))


def test_linear_rejects_bad_sizes_and_dtype():
    with pytest.raises(ValueError, match="in_features"):
        Linear(0, 2)
    with pytest.raises(ValueError, match="out_features"):
        Linear(2, 2.5)
    with pytest.raises(TypeError, match="dtype"):
        Linear(2, 2, dtype=np.int32)


def test_backward_after_inference_forward_raises():
    """train=False keeps nothing (and forgets an earlier training forward)."""
    layer = Linear(3, 2, seed=0)
    x = np.ones((2, 3), np.float32)
    with pytest.raises(RuntimeError, match="train=True"):
        layer.backward(np.ones((2, 2), np.float32))
    layer.forward(x)
    layer.forward(x, train=False)
    with pytest.raises(RuntimeError, match="train=True"):
        layer.backward(np.ones((2, 2), np.float32))


# ---------------------------------------------------------------------------
# Embedding


def test_embedding_init_is_standard_normal_as_torch():
    layer = Embedding(1000, 50, seed=0)
    assert layer.weight.shape == (1000, 50) and layer.weight.dtype == np.float32
    assert abs(layer.weight.mean()) < 0.02 and abs(layer.weight.std() - 1) < 0.02


def test_embedding_gathers_rows_for_ids_of_any_shape():
    layer = Embedding(10, 4, dtype=np.float64, seed=0)
    ids = np.array([[1, 2, 2], [9, 0, 1]])
    y = layer(ids)
    assert y.shape == (2, 3, 4)
    np.testing.assert_array_equal(y[1, 0], layer.weight[9])
    assert layer(np.int64(3)).shape == (4,)
    assert layer(np.array([3], np.uint8)).shape == (1, 4)


def test_embedding_gradient_matches_finite_differences():
    """Repeated ids included: their gradients must add up."""
    layer = Embedding(6, 3, dtype=np.float64, seed=1)
    ids = np.array([[0, 2, 2], [5, 2, 0]])
    w = rand(2, 3, 3, seed=2)
    layer.forward(ids)
    assert layer.backward(w) is None  # integer ids have no gradient

    def loss():
        return weighted_sum(layer.forward(ids, train=False), w)

    assert_close_to_numerical(layer.grads["weight"], numerical_gradient(loss, layer.weight))


def test_embedding_repeated_ids_accumulate():
    layer = Embedding(4, 2, dtype=np.float64, seed=0)
    layer.forward(np.array([3, 3, 3, 1]))
    layer.backward(np.ones((4, 2)))
    np.testing.assert_array_equal(layer.grads["weight"], [[0, 0], [1, 1], [0, 0], [3, 3]])


def test_embedding_padding_row_starts_at_zero_and_gets_no_gradient():
    layer = Embedding(5, 3, padding_idx=-1, seed=0)  # -1 is row 4, as in PyTorch
    assert layer.padding_idx == 4 and not layer.weight[4].any()
    layer.forward(np.array([[4, 1], [4, 4]]))
    layer.backward(np.ones((2, 2, 3), np.float32))
    assert not layer.grads["weight"][4].any()
    np.testing.assert_array_equal(layer.grads["weight"][1], [1, 1, 1])


def test_embedding_rejects_bad_ids_naming_ids():
    layer = Embedding(5, 3, seed=0)
    with pytest.raises(ValueError, match=r"ids: expected values in \[0, num_embeddings\)"):
        layer(np.array([0, 5]))
    with pytest.raises(ValueError, match="ids: expected values"):
        layer(np.array([-1, 2]))
    with pytest.raises(TypeError, match="ids: expected integers"):
        layer(np.array([0.0, 1.0]))
    with pytest.raises(TypeError, match="ids: expected integers"):
        layer(np.array([True, False]))
    with pytest.raises(ValueError, match="padding_idx"):
        Embedding(5, 3, padding_idx=5)


def test_embedding_matches_torch():
    torch = pytest.importorskip("torch")
    layer = Embedding(8, 4, padding_idx=0, seed=3)
    ref = torch.nn.Embedding(8, 4, padding_idx=0)
    ref.load_state_dict({"weight": torch.tensor(layer.weight)})
    ids = np.array([[0, 3, 3, 7], [1, 0, 3, 2]])
    w = rand(2, 4, 4, seed=1, dtype=np.float32)
    y = layer(ids)
    layer.backward(w)
    yt = ref(torch.tensor(ids))
    (yt * torch.tensor(w)).sum().backward()
    np.testing.assert_array_equal(y, yt.detach().numpy())
    np.testing.assert_allclose(layer.grads["weight"], ref.weight.grad.numpy(), rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------------------
# Dropout


def test_dropout_is_identity_in_inference_and_at_p_zero():
    x = rand(4, 5, dtype=np.float32)
    np.testing.assert_array_equal(Dropout(0.5, seed=0)(x, train=False), x)
    layer = Dropout(0.0, seed=0)
    np.testing.assert_array_equal(layer(x), x)
    np.testing.assert_array_equal(layer.backward(x), x)


def test_dropout_zeroes_a_share_p_and_scales_the_rest():
    """Inverted dropout: kept entries are x / (1 - p); about a share p is zeroed."""
    p = 0.3
    x = np.ones((200, 500))
    y = Dropout(p, seed=0)(x)
    kept = y != 0
    np.testing.assert_allclose(y[kept], 1 / (1 - p), rtol=1e-15)
    assert abs(1 - kept.mean() - p) < 0.005
    assert abs(y.mean() - 1) < 0.01  # the expectation is unchanged


def test_dropout_backward_uses_the_kept_mask():
    layer = Dropout(0.5, seed=1)
    x = rand(6, 7) + 3  # no zeros
    y = layer(x)
    dy = rand(6, 7, seed=2)
    np.testing.assert_allclose(layer.backward(dy), dy * (y / x), rtol=1e-12)


def test_dropout_same_seed_same_masks():
    x = np.ones((10, 10), np.float32)
    a, b = Dropout(0.5, seed=4), Dropout(0.5, seed=4)
    for _ in range(3):
        np.testing.assert_array_equal(a(x), b(x))
    assert not np.array_equal(a(x), Dropout(0.5, seed=5)(x))


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5, True, "0.5"])
def test_dropout_rejects_p_outside_0_1(p):
    with pytest.raises(ValueError, match="p: expected a probability"):
        Dropout(p)


# ---------------------------------------------------------------------------
# activations


@pytest.mark.parametrize("cls", [Tanh, Sigmoid, ReLU])
def test_activation_gradient_matches_finite_differences(cls):
    layer = cls()
    x = rand(3, 4, 2)
    x[np.abs(x) < 1e-3] = 0.5  # ReLU: keep away from the kink
    w = rand(3, 4, 2, seed=1)
    layer.forward(x)
    dx = layer.backward(w)
    assert_close_to_numerical(dx, numerical_gradient(lambda: weighted_sum(layer.forward(x, train=False), w), x))


def test_activations_match_their_formulas():
    x = np.array([-3.0, -0.5, 0.0, 0.5, 3.0])
    np.testing.assert_allclose(Tanh()(x), np.tanh(x), rtol=1e-15)
    np.testing.assert_allclose(Sigmoid()(x), 1 / (1 + np.exp(-x)), rtol=1e-15)
    np.testing.assert_array_equal(ReLU()(x), [0, 0, 0, 0.5, 3])
    layer = ReLU()
    layer(x)
    np.testing.assert_array_equal(layer.backward(np.ones(5)), [0, 0, 0, 1, 1])  # 0 at 0, as PyTorch


def test_sigmoid_does_not_overflow():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = Sigmoid()(np.array([-1e4, 1e4], np.float32))
    np.testing.assert_array_equal(y, [0, 1])
    assert y.dtype == np.float32


# ---------------------------------------------------------------------------
# Sequential


def mlp(dtype=np.float64):
    return Sequential(Linear(4, 5, dtype=dtype, seed=0), Tanh(), Linear(5, 3, dtype=dtype, seed=1))


def test_sequential_names_params_as_torch():
    model = mlp()
    assert list(model.params) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert list(model.grads) == list(model.params)
    assert len(model) == 3 and isinstance(model[1], Tanh) and model[-1] is model[2]
    assert model.num_params() == 4 * 5 + 5 + 5 * 3 + 3


def test_sequential_gradients_match_finite_differences():
    """Linear -> Tanh -> Linear over a (T, B, D) sequence: dx and every parameter."""
    model = mlp()
    x = rand(3, 2, 4, seed=5)
    w = rand(3, 2, 3, seed=6)
    model.forward(x)
    dx = model.backward(w)

    def loss():
        return weighted_sum(model.forward(x, train=False), w)

    assert_close_to_numerical(dx, numerical_gradient(loss, x))
    for name, p in model.params.items():
        assert_close_to_numerical(model.grads[name], numerical_gradient(loss, p))


def test_sequential_state_dict_round_trip():
    a, b = mlp(), Sequential(Linear(4, 5, dtype=np.float64, seed=9), Tanh(),
                             Linear(5, 3, dtype=np.float64, seed=9))
    b.load_state_dict(a.state_dict())
    x = rand(2, 4)
    np.testing.assert_array_equal(a(x), b(x))


def test_sequential_passes_train_to_its_layers():
    model = Sequential(Dropout(0.5, seed=0), Linear(4, 4, dtype=np.float64, seed=0))
    x = rand(8, 4)
    np.testing.assert_array_equal(model(x, train=False), model[1](x, train=False))
    assert not np.array_equal(model(x, train=True), model[1](x, train=False))


class TupleLayer(Layer):
    """Stands in for a recurrent layer: forward returns (y, state), backward
    takes (dy, dstate=None). y = 2x; state = x summed over time."""

    def forward(self, x, state=None, train=True, lengths=None):
        return 2 * x, x.sum(axis=0)

    def backward(self, dy, dstate=None):
        assert dstate is None
        return 2 * dy


def test_sequential_passes_on_the_first_element_of_a_tuple():
    model = Sequential(TupleLayer(), Linear(3, 2, dtype=np.float64, seed=0))
    x = rand(4, 2, 3)
    y = model(x)
    np.testing.assert_allclose(y, model[1](2 * x), rtol=1e-14)
    dy = rand(4, 2, 2, seed=1)
    np.testing.assert_allclose(model.backward(dy), 2 * (dy @ model[1].weight), rtol=1e-14)


def test_sequential_embedding_first_ends_backward_with_none():
    model = Sequential(Embedding(7, 3, dtype=np.float64, seed=0), Linear(3, 2, dtype=np.float64, seed=1))
    ids = np.array([[1, 6], [1, 0]])
    y = model(ids)
    assert y.shape == (2, 2, 2)
    assert model.backward(np.ones((2, 2, 2))) is None
    assert model.grads["0.weight"][1].any() and not model.grads["0.weight"][2].any()


def test_sequential_rejects_non_layers():
    with pytest.raises(TypeError, match=r"layers\[1\]"):
        Sequential(Tanh(), lambda x: x)


def test_sequential_with_a_recurrent_layer_matches_finite_differences():
    """Embedding -> 2-layer bidirectional LSTM -> Linear at every step ->
    cross-entropy, float64: the gradient of every parameter (oracle: finite
    differences)."""
    from seqcore.nn import LSTM, softmax_cross_entropy

    model = Sequential(Embedding(5, 3, dtype=np.float64, seed=0),
                       LSTM(3, 2, num_layers=2, bidirectional=True, dtype=np.float64, seed=1),
                       Linear(4, 5, dtype=np.float64, seed=2))
    ids = np.array([[1, 4], [0, 2], [3, 3]])  # (T, B) = (3, 2)
    targets = np.array([[4, 0], [2, 2], [1, 3]])
    logits = model.forward(ids)
    assert logits.shape == (3, 2, 5)
    _, dlogits = softmax_cross_entropy(logits, targets)
    assert model.backward(dlogits) is None

    def loss():
        return softmax_cross_entropy(model.forward(ids, train=False), targets)[0]

    for name, p in model.params.items():
        assert_close_to_numerical(model.grads[name], numerical_gradient(loss, p), rtol=1e-6)
