"""Sampling: seeds, temperature, top-k, top-p, <pad> and <eos>, streaming.

Oracles: the model run in one piece (greedy decoding re-run on the whole
sequence, and the logits of one forward over everything sampled); models
whose head gives fixed, known logits; counts against the uniform distribution.
"""

import numpy as np
import pytest

from seqcore import ops
from seqcore.generate import sample, stream
from seqcore.nn import LanguageModel
from seqcore.text import UnknownTokenError, Vocabulary, join_words

VOCAB = Vocabulary.from_text("abcdefg")  # <pad> <unk> <eos> a b c d e f g: ids 0 .. 9
V = len(VOCAB)
PAD, EOS = VOCAB.pad_id, VOCAB.eos_id


def random_model(cell="lstm", num_layers=1, vocab=VOCAB, seed=0):
    # float64: stepping and one piece agree to rounding, so argmax never flips on a near tie
    return LanguageModel(len(vocab), embed_size=4, hidden_size=8, num_layers=num_layers, cell=cell,
                         dtype=np.float64, seed=seed)


def fixed_model(logits, vocab=VOCAB):
    """A model whose logits are ``logits`` (V,) at every step, whatever it reads."""
    model = LanguageModel(len(vocab), embed_size=2, hidden_size=2, num_layers=1, cell="rnn",
                          dtype=np.float64, seed=0)
    model.head.weight[...] = 0
    model.head.bias[...] = logits
    return model


def uniform_model():
    return fixed_model(np.zeros(V))


def three_tokens(probs=(0.5, 0.3, 0.2)):
    """P(a), P(b), P(c) as given; every other token about e^-100."""
    logits = np.full(V, -100.0)
    logits[[VOCAB.token_to_id(t) for t in "abc"]] = np.log(probs)
    return fixed_model(logits)


class Recorder:
    """A model with only ``forward`` (no stepper, so sampling takes the
    reference path: one forward a token) that runs ``model``'s and keeps the
    ids (T, 1) and logits (T, 1, V) of each call."""

    def __init__(self, model):
        self.ids, self.logits = [], []
        self.model, self.vocab_size = model, model.vocab_size

    def forward(self, ids, state=None, train=True):
        logits, state = self.model.forward(ids, state, train=train)
        self.ids.append(np.array(ids))
        self.logits.append(logits.copy())
        return logits, state

    @property
    def steps(self):  # time steps run through the recurrent kernels
        return sum(ids.shape[0] for ids in self.ids)


def ids_of(tokens, vocab=VOCAB):
    """Yielded tokens -> their ids (specials are yielded as their names)."""
    return np.array([vocab.token_to_id(t) for t in tokens], dtype=np.int64)


def greedy_in_one_piece(model, prime, n):
    """Argmax decoding (never <pad>), re-running the whole sequence for every token."""
    ids = list(VOCAB.encode(prime))
    for _ in range(n):
        logits = model.forward(np.array(ids)[:, None], train=False)[0][-1, 0]
        logits[PAD] = -np.inf
        ids.append(int(np.argmax(logits)))
    return VOCAB.decode(ids[len(prime):])


# ---------------------------------------------------------------------------
# seeds


def test_same_seed_gives_the_same_text():
    model = random_model()
    assert sample(model, VOCAB, 60, seed=7, stop_at_eos=False) == sample(model, VOCAB, 60, seed=7, stop_at_eos=False)


def test_different_seeds_give_different_texts():
    model = uniform_model()
    assert sample(model, VOCAB, 60, seed=1, stop_at_eos=False) != sample(model, VOCAB, 60, seed=2, stop_at_eos=False)


def test_a_generator_is_drawn_from():
    """A Generator seeded alike gives the same text as the seed; drawn again, it goes on."""
    model = uniform_model()
    rng = np.random.default_rng(3)
    first = sample(model, VOCAB, 40, seed=rng, stop_at_eos=False)
    assert first == sample(model, VOCAB, 40, seed=3, stop_at_eos=False)
    assert sample(model, VOCAB, 40, seed=rng, stop_at_eos=False) != first


# ---------------------------------------------------------------------------
# temperature, top-k, top-p


@pytest.mark.parametrize("kwargs", [dict(top_k=1), dict(top_p=1e-9)], ids=["top_k=1", "tiny top_p"])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_keeping_one_token_is_argmax_decoding(cell, kwargs):
    model = random_model(cell, num_layers=2)
    got = sample(model, VOCAB, 30, prime="bad", stop_at_eos=False, seed=0, **kwargs)
    assert got == greedy_in_one_piece(model, "bad", 30)


def test_very_low_temperature_is_argmax():
    """Logits 0, 0.5, .., 4.5: at T = 0.01 the runner-up is e^-50 as likely as the top."""
    model = fixed_model(0.5 * np.arange(V))
    assert sample(model, VOCAB, 200, temperature=0.01, seed=0) == "g" * 200


def test_very_high_temperature_is_uniform():
    """At T = 1e4 the same logits are uniform over the 9 tokens other than <pad>:
    3,600 draws, 400 expected each (sd 19); the bound is 6 sd."""
    model = fixed_model(0.5 * np.arange(V))
    tokens = list(stream(model, VOCAB, 3600, temperature=1e4, seed=0, stop_at_eos=False))
    counts = np.array([tokens.count(t) for t in VOCAB.tokens if t != "<pad>"])
    assert np.abs(counts - 400).max() < 6 * np.sqrt(3600 * (1 / 9) * (8 / 9))
    # and at T = 1 the same logits are far from uniform: g is e^4.5 = 90 times as likely as <unk>
    ones = list(stream(model, VOCAB, 900, seed=0, stop_at_eos=False))
    assert ones.count("g") > 10 * max(ones.count("<unk>"), 1)


@pytest.mark.parametrize("kwargs,kept", [
    (dict(), "abc"),
    (dict(top_k=2), "ab"),
    (dict(top_p=0.75), "ab"),                 # 0.5 < 0.75 <= 0.5 + 0.3
    (dict(top_p=0.85), "abc"),
    (dict(top_p=0.6), "ab"),                  # 0.5 < 0.6
    (dict(top_k=2, top_p=0.6), "a"),          # top-p after top-k, on 0.625, 0.375
    (dict(temperature=0.5, top_p=0.6), "a"),  # top-p after temperature: 0.66, 0.24, 0.11
], ids=lambda v: str(v))
def test_filters_keep_the_tokens_they_should(kwargs, kept):
    """P(a, b, c) = 0.5, 0.3, 0.2: 300 draws see every kept token and no other."""
    tokens = sample(three_tokens(), VOCAB, 300, seed=0, **kwargs)
    assert set(tokens) == set(kept)


def test_top_k_larger_than_the_vocabulary_keeps_everything():
    assert set(sample(three_tokens(), VOCAB, 300, top_k=1000, seed=0)) == set("abc")


# ---------------------------------------------------------------------------
# <pad>, <unk>, <eos>, length


def test_pad_is_never_drawn_however_likely():
    """<pad> e^100 times as likely as the rest: the rest are drawn, uniformly."""
    logits = np.zeros(V)
    logits[PAD] = 100.0
    tokens = list(stream(fixed_model(logits), VOCAB, 300, seed=0, stop_at_eos=False))
    assert len(tokens) == 300 and "<pad>" not in tokens
    assert set(tokens) == set(VOCAB.tokens) - {"<pad>"}


def test_unk_is_drawn_when_the_model_predicts_it():
    logits = np.zeros(V)
    logits[VOCAB.unk_id] = 100.0
    assert sample(fixed_model(logits), VOCAB, 3, seed=0) == "<unk>" * 3


def test_stops_at_eos_without_yielding_it():
    """The same draws with stop_at_eos=False are the oracle: the text is what
    comes before the first <eos>."""
    model = uniform_model()
    everything = list(stream(model, VOCAB, 200, seed=5, stop_at_eos=False))
    assert "<eos>" in everything
    assert list(stream(model, VOCAB, 200, seed=5)) == everything[:everything.index("<eos>")]


@pytest.mark.parametrize("length", [0, 1, 17])
def test_length_is_the_number_of_tokens(length):
    assert len(list(stream(uniform_model(), VOCAB, length, seed=0, stop_at_eos=False))) == length


# ---------------------------------------------------------------------------
# streaming and steps


def test_stream_yields_what_sample_returns():
    model = random_model()
    tokens = list(stream(model, VOCAB, 50, prime="cab", seed=4, stop_at_eos=False))
    assert len(tokens) == 50
    assert "".join(tokens) == sample(model, VOCAB, 50, prime="cab", seed=4, stop_at_eos=False)


def test_stream_yields_each_token_before_computing_the_next():
    model = random_model()
    calls = Recorder(model)
    tokens = stream(calls, VOCAB, 50, prime="cab", seed=4)
    assert calls.steps == 0  # nothing runs until a token is asked for
    next(tokens)
    assert [ids.shape for ids in calls.ids] == [(3, 1)]


def test_the_prime_is_run_once_and_each_token_once():
    """A prime of P tokens, then N tokens: one forward on T=P, then N-1 on T=1
    (the last token is never fed): P + N - 1 steps in all."""
    model = random_model()
    calls = Recorder(model)
    tokens = list(stream(calls, VOCAB, 20, prime="faded", seed=0, stop_at_eos=False))
    assert len(tokens) == 20
    assert [ids.shape[0] for ids in calls.ids] == [5] + [1] * 19
    assert calls.steps == 5 + 20 - 1
    np.testing.assert_array_equal(calls.ids[0][:, 0], VOCAB.encode("faded"))
    np.testing.assert_array_equal(np.concatenate(calls.ids[1:])[:, 0], ids_of(tokens[:-1]))


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_stepping_gives_the_logits_of_one_forward_over_everything(cell):
    """Oracle: the model run in one piece over prime + sampled tokens."""
    model = random_model(cell, num_layers=2)
    calls = Recorder(model)
    tokens = list(stream(calls, VOCAB, 25, prime="bead", seed=1, stop_at_eos=False))
    stepped = np.concatenate(calls.logits)  # (4 + 24, 1, V)
    fed = np.concatenate(calls.ids)         # (4 + 24, 1)
    np.testing.assert_array_equal(fed[:, 0], np.concatenate([VOCAB.encode("bead"), ids_of(tokens[:-1])]))
    whole, _ = LanguageModel.forward(model, fed, train=False)
    np.testing.assert_allclose(stepped, whole, rtol=1e-12, atol=1e-14)


def test_an_empty_prime_starts_from_eos():
    model = random_model()
    calls = Recorder(model)
    tokens = list(stream(calls, VOCAB, 10, seed=0, stop_at_eos=False))
    assert len(tokens) == 10
    assert calls.ids[0].tolist() == [[EOS]]
    assert calls.steps == 1 + 10 - 1


def test_without_eos_an_empty_prime_starts_from_a_uniform_regular_token():
    """As char-rnn does: the first token is drawn uniformly, yielded, then fed."""
    vocab = Vocabulary.from_text("abcdefg", specials=("<pad>", "<unk>"))
    model = random_model(vocab=vocab)
    calls = Recorder(model)
    firsts = set()
    for seed in range(40):
        tokens = list(stream(calls, vocab, 5, top_k=1, seed=seed))
        assert len(tokens) == 5 and tokens[0] in "abcdefg"
        assert calls.ids[-4].tolist() == [[vocab.token_to_id(tokens[0])]]
        firsts.add(tokens[0])
    assert firsts == set("abcdefg")
    assert calls.steps == 40 * (5 - 1)


def test_word_level_tokens_are_words_joined_by_join_words():
    vocab = Vocabulary.from_text("the cat sat on the mat .\n", level="word")
    model = random_model(vocab=vocab)
    tokens = list(stream(model, vocab, 30, prime="the cat", seed=2, stop_at_eos=False))
    assert all(t in vocab for t in tokens)
    assert sample(model, vocab, 30, prime="the cat", seed=2, stop_at_eos=False) == join_words(tokens)


# ---------------------------------------------------------------------------
# arguments


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(temperature=0), ValueError, "^temperature: expected a number > 0"),
    (dict(temperature=-1.0), ValueError, "^temperature: expected a number > 0"),
    (dict(top_k=0), ValueError, r"^top_k: expected None or an int >= 1"),
    (dict(top_k=1.5), TypeError, r"^top_k: expected None or an int >= 1"),
    (dict(top_p=0.0), ValueError, r"^top_p: expected None or a number in \(0, 1\]"),
    (dict(top_p=1.5), ValueError, r"^top_p: expected None or a number in \(0, 1\]"),
    (dict(length=-1), ValueError, "^length: expected an int >= 0"),
    (dict(length=2.0), TypeError, "^length: expected an int >= 0"),
    (dict(seed="x"), TypeError, "^seed: expected None, an int"),
    (dict(prime=3), TypeError, "^prime: expected a str"),
    (dict(stop_at_eos=None), TypeError, "^stop_at_eos: expected a bool"),
], ids=lambda v: str(v))
def test_bad_arguments_are_rejected_when_stream_is_called(kwargs, error, match):
    args = dict(length=10) | kwargs
    with pytest.raises(error, match=match):
        stream(random_model(), VOCAB, args.pop("length"), **args)  # not iterated: raised at the call


def test_a_prime_token_not_in_a_vocabulary_without_unk_is_rejected():
    vocab = Vocabulary.from_text("abcdefg", specials=("<pad>", "<eos>"))
    with pytest.raises(UnknownTokenError, match="^prime: character 'z'"):
        stream(random_model(vocab=vocab), vocab, prime="abz")


def test_a_prime_token_not_in_the_vocabulary_reads_as_unk():
    model = random_model()
    calls = Recorder(model)
    next(stream(calls, VOCAB, prime="az", stop_at_eos=False))  # an <eos> drawn first must not end it
    assert calls.ids[0][:, 0].tolist() == [VOCAB.token_to_id("a"), VOCAB.unk_id]


def test_a_vocabulary_of_another_size_is_rejected():
    with pytest.raises(ValueError, match="^vocab: expected the model's vocabulary of 10 tokens, got 11"):
        stream(random_model(), Vocabulary.from_text("abcdefgh"))


# ---------------------------------------------------------------------------
# the stepper's path (a LanguageModel) against the reference (forward and _draw)

OPTIONS = [dict(), dict(temperature=0.6), dict(temperature=1.7), dict(top_k=3), dict(top_k=1),
           dict(top_p=0.8), dict(top_p=0.3, temperature=0.8), dict(top_k=5, top_p=0.9)]


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_stepper_gives_the_reference_paths_text(cell, dtype):
    """Oracle: the same sample through a model without stepper (Recorder):
    one forward a token and the NumPy draw."""
    vocab = Vocabulary.from_text("abcdefghij klmnop")
    model = LanguageModel(len(vocab), 6, 24, num_layers=2, cell=cell, dtype=dtype, seed=5)
    for k, options in enumerate(OPTIONS):
        args = dict(prime=["", "fade"][k % 2], seed=k, stop_at_eos=k % 3 == 0, **options)
        expected = sample(Recorder(model), vocab, 150, **args)
        assert sample(model, vocab, 150, **args) == expected, args


def test_the_stepper_gives_the_reference_paths_text_without_eos():
    """No <eos>: the uniform first token, then the stepper from the zero state."""
    vocab = Vocabulary.from_text("abcdefg", specials=("<pad>", "<unk>"))
    model = LanguageModel(len(vocab), 0, 16, num_layers=1, cell="gru", seed=2)  # one-hot input
    for seed in range(5):
        assert sample(model, vocab, 100, seed=seed) == sample(Recorder(model), vocab, 100, seed=seed)


def test_the_native_draw_is_the_reference_draw():
    """ops.draw against generate._draw on random logits (V past numpy's
    128-element blocks of sums) and uniform numbers."""
    from seqcore.generate import _draw
    rng = np.random.default_rng(0)
    for trial in range(300):
        V = int(rng.integers(2, 300))
        logits = rng.normal(0, rng.uniform(0.1, 8), (1, V)).astype(rng.choice([np.float32, np.float64]))
        options = dict(temperature=float(rng.uniform(0.2, 2)), top_k=[None, 1, 4, V + 3][trial % 4],
                       top_p=[None, 0.5, 0.95, 1.0][trial // 4 % 4], pad_id=[None, 0, V - 1][trial % 3])
        u = rng.random(1)
        expected = _draw(logits[0], options["temperature"], options["top_k"], options["top_p"],
                         options["pad_id"], np.random.default_rng(trial))
        u[0] = np.random.default_rng(trial).random()  # the number the reference drew
        assert ops.draw(logits, u, **options)[0] == expected


def test_a_generator_is_left_as_the_reference_leaves_it():
    model = random_model()
    g1, g2 = np.random.default_rng(3), np.random.default_rng(3)
    assert sample(model, VOCAB, 40, seed=g1) == sample(Recorder(model), VOCAB, 40, seed=g2)
    assert g1.random() == g2.random()


# ---------------------------------------------------------------------------
# several samples at once


def test_num_samples_gives_row_i_the_text_of_seed_plus_i():
    vocab = Vocabulary.from_text("abcdefghij klmnop")
    model = LanguageModel(len(vocab), 6, 24, num_layers=2, cell="lstm", seed=5)
    texts = sample(model, vocab, 120, prime="ab", seed=10, num_samples=6, top_p=0.9)
    assert isinstance(texts, list) and len(texts) == 6
    assert texts == [sample(model, vocab, 120, prime="ab", seed=10 + i, top_p=0.9) for i in range(6)]
    assert len(set(texts)) == 6
    assert sample(model, vocab, 120, prime="ab", seed=10, num_samples=1, top_p=0.9) == texts[:1]


def test_rows_stop_at_eos_and_the_others_go_on():
    """A model that ends often: rows stop at different lengths; each is still
    the text of its seed alone (the reference path)."""
    logits = np.zeros(V)
    logits[EOS] = 1.5  # <eos> about 1 in 5
    model = fixed_model(logits)
    texts = sample(model, VOCAB, 60, seed=0, num_samples=12)
    assert len({len(t) for t in texts}) > 3 and min(len(t) for t in texts) < 60
    assert texts == [sample(Recorder(model), VOCAB, 60, seed=i) for i in range(12)]


def test_num_samples_without_eos_start_uniformly_each_row():
    vocab = Vocabulary.from_text("abcdefg", specials=("<pad>", "<unk>"))
    model = LanguageModel(len(vocab), 3, 12, num_layers=2, cell="rnn", seed=2)
    texts = sample(model, vocab, 30, seed=4, num_samples=5)
    assert texts == [sample(Recorder(model), vocab, 30, seed=4 + i) for i in range(5)]


def test_num_samples_with_a_generator_rows_use_it_and_its_spawn():
    model = random_model()
    texts = sample(model, VOCAB, 40, seed=np.random.default_rng(8), num_samples=3, stop_at_eos=False)
    children = np.random.default_rng(8).spawn(2)
    assert texts == [sample(model, VOCAB, 40, seed=np.random.default_rng(8), stop_at_eos=False)] + \
        [sample(model, VOCAB, 40, seed=c, stop_at_eos=False) for c in children]


def test_num_samples_of_the_reference_path_too():
    model = random_model()
    assert sample(Recorder(model), VOCAB, 30, seed=1, num_samples=3) == \
        sample(model, VOCAB, 30, seed=1, num_samples=3)


@pytest.mark.parametrize("bad", [0, -1, 2.0, True])
def test_a_bad_num_samples_is_rejected(bad):
    with pytest.raises((TypeError, ValueError), match="num_samples"):
        sample(random_model(), VOCAB, 10, num_samples=bad)


def test_num_samples_of_word_level_texts():
    vocab = Vocabulary.from_text("the cat sat on the mat .\n", level="word")
    model = random_model(vocab=vocab)
    texts = sample(model, vocab, 20, prime="the cat", seed=2, num_samples=2, stop_at_eos=False)
    assert texts == [sample(model, vocab, 20, prime="the cat", seed=2 + i, stop_at_eos=False) for i in range(2)]


def test_a_language_model_is_sampled_on_its_stepper():
    """Its forward runs the prime only; every token after is the stepper's
    (so the comparisons above are of two paths, not one)."""
    model = random_model()
    shapes = []
    forward = model.forward
    model.forward = lambda ids, *args, **kwargs: shapes.append(np.shape(ids)) or forward(ids, *args, **kwargs)
    sample(model, VOCAB, 30, prime="cab", seed=0, stop_at_eos=False)
    assert shapes == [(3, 1)]
    sample(model, VOCAB, 30, prime="cab", seed=0, stop_at_eos=False, num_samples=4)
    assert shapes == [(3, 1), (3, 1)]


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_a_bf16_model_is_sampled_on_its_bf16_stepper_with_the_reference_paths_text(cell):
    """precision "bf16": the stepper (in bf16, as the model's forward) gives
    the text of the reference path, whose forward runs in bf16; and the
    forward runs the prime only."""
    vocab = Vocabulary.from_text("abcdefghij klmnop")
    model = LanguageModel(len(vocab), 6, 40, num_layers=2, cell=cell, seed=5, precision="bf16")
    for k, options in enumerate(OPTIONS):
        args = dict(prime=["", "fade"][k % 2], seed=k, stop_at_eos=k % 3 == 0, **options)
        assert sample(model, vocab, 150, **args) == sample(Recorder(model), vocab, 150, **args), args
    texts = sample(model, vocab, 80, prime="ab", seed=3, num_samples=5)
    assert texts == [sample(Recorder(model), vocab, 80, prime="ab", seed=3 + i) for i in range(5)]
    shapes = []
    forward = model.forward
    model.forward = lambda ids, *args, **kwargs: shapes.append(np.shape(ids)) or forward(ids, *args, **kwargs)
    sample(model, vocab, 30, prime="cab", seed=0, stop_at_eos=False)
    assert shapes == [(3, 1)]
