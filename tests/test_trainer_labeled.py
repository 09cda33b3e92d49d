"""The Trainer on classifiers and taggers: they learn synthetic tasks to a
clear success, validation reports loss and accuracy exactly, resuming is
bitwise, checkpoints rebuild the model, and bad data is refused by name."""

import csv

import numpy as np
import pytest

from seqcore.nn import SequenceClassifier, SequenceTagger, log_softmax
from seqcore.text import Vocabulary
from seqcore.train import Adam, Trainer, evaluate, load_checkpoint

VOCAB_SIZE = 8  # ids 1..7; 0 pads


def majority_task(n, seed):
    """Sequences of ids 1..7 of lengths 3..12; label 1 when id 1 occurs more
    often than id 2 (never a tie)."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    while len(xs) < n:
        x = rng.integers(1, VOCAB_SIZE, rng.integers(3, 13))
        a, b = (x == 1).sum(), (x == 2).sum()
        if a != b:
            xs.append(x)
            ys.append(int(a > b))
    return xs, np.array(ys)


def seen_task(n, seed):
    """Tag each id 1 if it occurred earlier in its sequence."""
    rng = np.random.default_rng(seed)
    xs = [rng.integers(1, VOCAB_SIZE, rng.integers(2, 11)) for _ in range(n)]
    return xs, [np.array([x[t] in x[:t] for t in range(len(x))], np.int64) for x in xs]


def classifier(seed=0, **kwargs):
    kwargs = {**dict(vocab_size=VOCAB_SIZE, embed_size=8, hidden_size=24), **kwargs}
    return SequenceClassifier(2, seed=seed, **kwargs)


def tagger(seed=0):
    return SequenceTagger(2, vocab_size=VOCAB_SIZE, embed_size=8, hidden_size=24, seed=seed)


def trainer(model, train, val=None, lr=1e-2, **kwargs):
    kwargs.setdefault("progress", False)
    return Trainer(model, train, val, optimizer=Adam(model, lr=lr), batch_size=32, clip_norm=5.0, **kwargs)


# ---------------------------------------------------------------------------
# learning


@pytest.mark.parametrize("pool", ["last", "mean"])
def test_a_classifier_learns_which_token_is_in_the_majority(pool):
    train, val = majority_task(1024, 0), majority_task(256, 1)
    result = trainer(classifier(pool=pool), train, val, epochs=8).fit()
    assert result.stop_reason == "done"
    assert result.val.accuracy > 0.9, result.val  # chance: 0.5
    assert result.val.tokens == 256               # one label per sequence


def test_a_tagger_learns_which_tokens_were_seen_before():
    (xs, tags), val = seen_task(1024, 0), seen_task(256, 1)
    result = trainer(tagger(), (xs, tags), val, epochs=8).fit()
    majority = max(np.mean(np.concatenate(val[1])), 1 - np.mean(np.concatenate(val[1])))
    assert result.val.accuracy > 0.95 > majority + 0.2, (result.val, majority)
    assert result.val.tokens == sum(len(t) for t in val[1])  # every real step, no padding


def test_a_classifier_on_feature_vectors_learns_the_sign_of_the_sum():
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((rng.integers(2, 9), 3)) for _ in range(512)]  # float64: converted
    ys = np.array([int(x[:, 0].sum() > 0) for x in xs])
    model = SequenceClassifier(2, input_size=3, hidden_size=16, pool="mean", cell="gru", seed=0)
    result = trainer(model, (xs[:384], ys[:384]), (xs[384:], ys[384:]), epochs=15).fit()
    assert result.val.accuracy > 0.85, result.val


# ---------------------------------------------------------------------------
# evaluation


@pytest.mark.parametrize("make, task", [(classifier, majority_task), (tagger, seen_task)])
def test_evaluate_is_the_mean_loss_and_accuracy_over_real_labels(make, task):
    model = make(seed=3)
    xs, ys = task(37, 5)
    got = evaluate(model, (xs, ys), batch_size=8)
    nll, hits = [], []
    for x, y in zip(xs, ys):  # one sequence at a time, no padding anywhere
        logits, _ = model.forward(x[:, None], train=False)
        logits, y = logits.reshape(-1, 2), np.reshape(y, -1)  # (1 or T, classes), (1 or T,)
        logp = log_softmax(logits.astype(np.float64))
        nll.append(-logp[np.arange(len(y)), y])
        hits.append(logits.argmax(-1) == y)
    nll, hits = np.concatenate(nll), np.concatenate(hits)
    assert got.tokens == nll.size
    assert got.loss == pytest.approx(nll.mean(), rel=1e-5)
    assert got.accuracy == hits.mean()
    assert "accuracy" in str(got)


def test_validation_lines_and_the_loss_curve_carry_the_accuracy(tmp_path, capsys):
    t = trainer(classifier(), majority_task(64, 0), majority_task(32, 1), steps=4, eval_every=2, log_every=2,
                out_dir=tmp_path, progress=True)
    result = t.fit()
    assert "accuracy" in capsys.readouterr().err
    with open(tmp_path / "loss.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["val_accuracy"]) for r in rows] == [t.history[0]["val_accuracy"], result.val.accuracy]


# ---------------------------------------------------------------------------
# checkpoints


@pytest.mark.parametrize("make, task", [(classifier, majority_task), (tagger, seen_task)])
def test_n_steps_save_resume_m_steps_is_bitwise_n_plus_m_steps_straight(tmp_path, make, task):
    data = task(100, 0)  # 4 batches an epoch, the last one short

    def run(out_dir, steps, seed=0):
        return trainer(make(seed=seed), data, steps=steps, out_dir=out_dir, lr=3e-2)

    straight = run(None, 7)
    straight.fit()
    run(tmp_path, 3).fit()
    resumed = run(tmp_path, 7, seed=9)
    resumed.restore()
    assert (resumed.epoch, resumed.batch_index) == (0, 3)
    resumed.fit()
    for name, p in straight.model.params.items():
        np.testing.assert_array_equal(resumed.model.params[name], p, err_msg=name)
    ckpt = load_checkpoint(tmp_path / "checkpoint")
    assert type(ckpt.model) is type(straight.model) and ckpt.model.config() == straight.model.config()
    assert ckpt.vocab is None


def test_a_classifier_checkpoint_keeps_its_vocabulary(tmp_path):
    vocab = Vocabulary.from_text("abcdefg")
    xs, ys = majority_task(40, 0)
    model = SequenceClassifier(2, vocab_size=len(vocab), seed=0)
    trainer(model, (xs, ys), vocab=vocab, steps=1, out_dir=tmp_path).fit()
    assert load_checkpoint(tmp_path / "checkpoint").vocab.tokens == vocab.tokens


# ---------------------------------------------------------------------------
# bad input


XS, YS = majority_task(10, 0)


@pytest.mark.parametrize("data, error, match", [
    (XS, TypeError, r"train_data: expected a pair \(inputs, labels\)"),
    ((XS, YS[:-1]), ValueError, r"train_data: expected labels as 10 integers"),
    ((XS, YS + 2), ValueError, r"train_data: expected labels in \[0, num_classes\) = \[0, 2\)"),
    ((XS, YS.astype(float)), ValueError, "train_data: expected labels as 10 integers"),
    (([x + 10 for x in XS], YS), ValueError, r"train_data: inputs\[0\]: expected ids in \[0, vocab_size\) = \[0, 8\)"),
    (([x.astype(float) for x in XS], YS), TypeError, r"train_data: inputs\[0\]: expected a 1-D array of token ids"),
    (([np.zeros(0, np.int64)] + XS[1:], YS), ValueError, r"inputs\[0\]: expected at least one step"),
    (([], []), ValueError, "train_data: expected inputs as a non-empty list"),
])
def test_bad_classifier_data_is_refused_naming_it(data, error, match):
    with pytest.raises(error, match=match):
        trainer(classifier(), data)


def test_bad_tagger_and_feature_data_is_refused_naming_it():
    xs, tags = seen_task(5, 0)
    with pytest.raises(ValueError, match=r"train_data: labels\[1\]: expected \d+ integers \(one per step"):
        trainer(tagger(), (xs, [tags[0], tags[1][:-1]] + tags[2:]))
    with pytest.raises(ValueError, match="train_data: expected labels as 5 integer arrays"):
        trainer(tagger(), (xs, tags[:4]))
    features = SequenceClassifier(2, input_size=3, seed=0)
    with pytest.raises(TypeError, match=r"inputs\[0\]: expected a \(T, input_size\) = \(T, 3\) array"):
        trainer(features, ([np.zeros((4, 2))], [0]))
    with pytest.raises(ValueError, match="vocab: the model reads feature vectors"):
        trainer(features, ([np.zeros((4, 3))], [0]), vocab=Vocabulary.from_text("ab"))

