"""SequenceClassifier and SequenceTagger: gradients against central
differences in float64 (every pooling, ids and features, bidirectional,
stacked, with lengths), pooling semantics, configuration and bad input."""

import numpy as np
import pytest

from gradcheck import assert_close_to_numerical, numerical_gradient
from seqcore.nn import SequenceClassifier, SequenceTagger, softmax_cross_entropy

T, B, C = 5, 3, 4
LENGTHS = np.array([5, 2, 3])


def _inputs(model, rng):
    if model.vocab_size is not None:
        ids = rng.integers(1, model.vocab_size, (T, B))
        ids[np.arange(T)[:, None] >= LENGTHS[None, :]] = 0
        return ids
    return rng.standard_normal((T, B, model.input_size))


def _targets(model, rng):
    return rng.integers(0, C, B if isinstance(model, SequenceClassifier) else (T, B))


def _mask(model):
    return None if isinstance(model, SequenceClassifier) else np.arange(T)[:, None] < LENGTHS[None, :]


@pytest.mark.parametrize("make", [
    lambda: SequenceClassifier(C, vocab_size=7, embed_size=3, hidden_size=4, pool="last", cell="lstm",
                               bidirectional=True, num_layers=2, dtype=np.float64, seed=1),
    lambda: SequenceClassifier(C, input_size=3, hidden_size=4, pool="mean", cell="gru", bidirectional=True,
                               dtype=np.float64, seed=2),
    lambda: SequenceClassifier(C, input_size=3, hidden_size=4, pool="max", cell="rnn", num_layers=2,
                               dtype=np.float64, seed=3),
    lambda: SequenceClassifier(C, input_size=3, hidden_size=4, pool="last", cell="gru", dtype=np.float64, seed=4),
    lambda: SequenceTagger(C, vocab_size=7, embed_size=3, hidden_size=4, cell="lstm", bidirectional=True,
                           dtype=np.float64, seed=5),
    lambda: SequenceTagger(C, input_size=3, hidden_size=4, cell="gru", num_layers=2, dtype=np.float64, seed=6),
], ids=["cls-last-bilstm2-ids", "cls-mean-bigru", "cls-max-rnn2", "cls-last-gru", "tag-bilstm-ids", "tag-gru2"])
def test_gradients_match_finite_differences(make):
    model = make()
    rng = np.random.default_rng(0)
    x, y, mask = _inputs(model, rng), _targets(model, rng), _mask(model)

    def loss():
        logits, _ = model.forward(x, train=False, lengths=LENGTHS)
        return softmax_cross_entropy(logits, y, mask=mask)[0]

    logits, _ = model.forward(x, train=True, lengths=LENGTHS)
    _, dlogits = softmax_cross_entropy(logits, y, mask=mask)
    model.zero_grad()
    dx = model.backward(dlogits)
    for name, p in model.params.items():
        assert_close_to_numerical(model.grads[name], numerical_gradient(loss, p), rtol=1e-6)
    if model.input_size is not None:
        assert_close_to_numerical(dx, numerical_gradient(loss, x), rtol=1e-6)
    else:
        assert dx is None


def test_last_pooling_reads_each_sequence_at_its_own_last_step():
    model = SequenceClassifier(2, input_size=3, hidden_size=4, cell="gru", bidirectional=True, seed=0)
    x = np.random.default_rng(1).standard_normal((T, B, 3)).astype(np.float32)
    logits, _ = model.forward(x, train=False, lengths=LENGTHS)
    for b, n in enumerate(LENGTHS):  # each sequence alone, cut to its length
        alone, _ = model.forward(np.ascontiguousarray(x[:n, b:b + 1]), train=False)
        np.testing.assert_allclose(logits[b], alone[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("pool", ["mean", "max"])
def test_pooling_ignores_the_padding(pool):
    model = SequenceClassifier(2, input_size=3, hidden_size=4, pool=pool, seed=0)
    x = np.random.default_rng(1).standard_normal((T, B, 3)).astype(np.float32)
    logits, _ = model.forward(x, train=False, lengths=LENGTHS)
    x[T - 1, 1:] = 1e3  # only padding changes
    again, _ = model.forward(x, train=False, lengths=LENGTHS)
    np.testing.assert_array_equal(logits[1:], again[1:])


def test_the_tagger_labels_every_step():
    model = SequenceTagger(3, vocab_size=6, embed_size=2, hidden_size=4, seed=0)
    logits, (h, c) = model.forward(np.ones((T, B), np.int64), lengths=LENGTHS, train=False)
    assert logits.shape == (T, B, 3) and h.shape == c.shape == (1, B, 4)


@pytest.mark.parametrize("cls", [SequenceClassifier, SequenceTagger])
def test_config_rebuilds_the_same_architecture(cls):
    model = cls(3, vocab_size=9, embed_size=4, hidden_size=5, num_layers=2, bidirectional=True, seed=7)
    again = cls(**model.config())
    assert again.config() == model.config()
    assert {k: p.shape for k, p in again.params.items()} == {k: p.shape for k, p in model.params.items()}


@pytest.mark.parametrize("kwargs, match", [
    (dict(num_classes=2), "vocab_size, input_size"),
    (dict(num_classes=2, vocab_size=5, input_size=3), "vocab_size, input_size"),
    (dict(num_classes=0, vocab_size=5), "num_classes"),
    (dict(num_classes=2, vocab_size=5, cell="tcn"), "cell"),
    (dict(num_classes=2, vocab_size=5, pool="sum"), "pool"),
    (dict(num_classes=2, vocab_size=5, embed_size=0), "embed_size"),
])
def test_bad_configuration_is_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SequenceClassifier(**kwargs)


def test_ids_of_the_wrong_shape_are_rejected():
    model = SequenceTagger(2, vocab_size=5, seed=0)
    with pytest.raises(ValueError, match=r"x: expected token ids of shape \(T, B\)"):
        model.forward(np.ones((2, 3, 4), np.int64))
