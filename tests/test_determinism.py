"""Determinism of training: the same seed gives bitwise the same weights after
N steps of the Trainer, run again in this process, at 1 thread and at 2
threads alike, and in a fresh process.

(test_native_cells.py and test_gemm.py check single kernel calls at 1 and 2
threads; here whole training runs: embedding, stacked and bidirectional
recurrent layers over padded batches, dropout, the head, the loss, clipping
and Adam, shuffled batches.)
"""

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from children import CHILD_CWD, child_env

import seqcore
from seqcore.nn import LanguageModel, SequenceClassifier
from seqcore.text import Vocabulary
from seqcore.train import Adam, Trainer

TEXT = "the quick brown fox jumps over the lazy dog. pack my box with five dozen liquor jugs! " * 20
VOCAB = Vocabulary.from_text(TEXT)
STEPS = 6


def language_model_run(seed):
    """STEPS steps of a 2-layer LSTM language model with dropout on a stream."""
    model = LanguageModel(len(VOCAB), embed_size=8, hidden_size=24, num_layers=2, cell="lstm", dropout=0.2,
                          seed=seed)
    Trainer(model, VOCAB.encode(TEXT), optimizer=Adam(model, lr=1e-2), batch_size=4, seq_len=20, steps=STEPS,
            clip_norm=1.0, seed=seed, progress=False).fit()
    return model.state_dict()


def classifier_run(seed):
    """STEPS steps of a bidirectional 2-layer GRU classifier on shuffled
    padded sequences of several lengths (the directions run side by side at
    2 threads)."""
    rng = np.random.default_rng(100)
    xs = [rng.integers(1, 9, rng.integers(2, 15)) for _ in range(64)]
    ys = np.array([int(x.sum() % 2) for x in xs])
    model = SequenceClassifier(2, vocab_size=9, embed_size=6, hidden_size=16, num_layers=2, cell="gru",
                               bidirectional=True, dropout=0.1, seed=seed)
    Trainer(model, (xs, ys), optimizer=Adam(model, lr=1e-2), batch_size=8, steps=STEPS, seed=seed,
            progress=False).fit()
    return model.state_dict()


RUNS = {"language model": language_model_run, "classifier": classifier_run}


def at_threads(n, run, seed):
    before = seqcore.get_num_threads()
    seqcore.set_num_threads(n)
    try:
        return run(seed)
    finally:
        seqcore.set_num_threads(before)


def assert_bitwise_equal(a, b, what):
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype
        assert a[k].tobytes() == b[k].tobytes(), f"{what}: {k} differs"


@pytest.mark.parametrize("name", RUNS)
def test_the_same_seed_gives_bitwise_the_same_weights_at_1_and_2_threads(name):
    run = RUNS[name]
    first = at_threads(1, run, seed=3)
    assert_bitwise_equal(first, at_threads(1, run, seed=3), "1 thread, again")
    assert_bitwise_equal(first, at_threads(2, run, seed=3), "2 threads")
    assert_bitwise_equal(first, at_threads(2, run, seed=3), "2 threads, again")


@pytest.mark.parametrize("name", RUNS)
def test_another_seed_gives_other_weights(name):
    # the oracle above is not vacuous: the seed does reach the weights
    a, b = RUNS[name](3), RUNS[name](4)
    assert any(a[k].tobytes() != b[k].tobytes() for k in a)


def digest(weights):
    return hashlib.sha256(b"".join(weights[k].tobytes() for k in sorted(weights))).hexdigest()


def test_a_fresh_process_gives_bitwise_the_same_weights():
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import test_determinism as t; "
            "print(t.digest(t.language_model_run(3)))")
    done = subprocess.run([sys.executable, "-c", code, str(Path(__file__).parent)], capture_output=True, text=True,
                          timeout=300, env=child_env(OMP_NUM_THREADS="2"), cwd=CHILD_CWD)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == digest(at_threads(1, language_model_run, 3))
