"""The language model: ids -> logits, trained with teacher forcing.
Oracles: central finite differences, and the same model run in one piece."""

import numpy as np
import pytest

from gradcheck import assert_close_to_numerical, numerical_gradient
from seqcore.nn import LanguageModel, softmax_cross_entropy
from seqcore.train import Adam

V = 7


def ids(T=5, B=3, seed=0):
    return np.random.default_rng(seed).integers(0, V, size=(T, B))


@pytest.mark.parametrize("embed", [4, 0], ids=["embedding", "one-hot"])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_gradients_match_finite_differences(cell, embed):
    model = LanguageModel(V, embed_size=embed, hidden_size=5, num_layers=2, cell=cell, dtype=np.float64, seed=0)
    x, targets = ids(seed=1), ids(seed=2)

    def loss():
        return softmax_cross_entropy(model.forward(x, train=False)[0], targets)[0]

    logits, _ = model.forward(x)
    _, dlogits = softmax_cross_entropy(logits, targets)
    model.backward(dlogits)
    for name, p in model.params.items():
        assert_close_to_numerical(model.grads[name], numerical_gradient(loss, p), rtol=1e-6)


def test_state_carries_from_chunk_to_chunk():
    """Two chunks with the state carried give what one long forward gives."""
    model = LanguageModel(V, embed_size=4, hidden_size=6, num_layers=2, dtype=np.float64, seed=3)
    x = ids(T=8)
    whole, _ = model.forward(x, train=False)
    first, state = model.forward(x[:5], train=False)
    second, _ = model.forward(x[5:], state, train=False)
    np.testing.assert_allclose(np.concatenate([first, second]), whole, rtol=1e-13)


def test_teacher_forcing_learns_a_cyclic_sequence():
    """Next token = current token + 1 (mod V): chance loss is ln 7 = 1.95 nats."""
    rng = np.random.default_rng(0)
    model = LanguageModel(V, embed_size=8, hidden_size=32, num_layers=1, seed=0)
    optimizer = Adam(model, lr=1e-2)
    stream = np.arange(1000) % V
    for _ in range(80):
        starts = rng.integers(0, 900, size=8)
        batch = np.stack([stream[s:s + 21] for s in starts], axis=1)
        logits, _ = model.forward(batch[:-1])  # step t sees the true token t-1
        loss, dlogits = softmax_cross_entropy(logits, batch[1:])
        model.zero_grad()
        model.backward(dlogits)
        optimizer.step()
    assert loss < 0.1


def test_config_rebuilds_the_same_model():
    model = LanguageModel(V, embed_size=3, hidden_size=4, num_layers=2, cell="gru", dropout=0.1, seed=5)
    again = LanguageModel(**model.config(), seed=5)
    for k, v in model.params.items():
        np.testing.assert_array_equal(v, again.params[k])


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(cell="transformer"), ValueError, "^cell: expected one of"),
    (dict(embed_size=-1), ValueError, r"^embed_size: expected an int >= 0"),
])
def test_bad_configuration_is_rejected(kwargs, error, match):
    with pytest.raises(error, match=match):
        LanguageModel(V, **kwargs)


def test_ids_out_of_range_are_rejected():
    model = LanguageModel(V, embed_size=0, hidden_size=4, num_layers=1)
    with pytest.raises(ValueError, match=r"^ids: expected values in \[0, 7\)"):
        model.forward(np.full((2, 2), V))
