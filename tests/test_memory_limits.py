"""Sizes that cannot fit are refused at once, before anything is built: the
layers and models (their parameters and gradients), the Trainer (the
optimizer's state and one step) and `seqcore train` (all of it, before the
model exists), each with the estimate, what is available and what to change;
a model just under the limit still builds. Initial weights are drawn straight
into the model's dtype, the same numbers as one float64 draw rounded.

The machine's available memory is set by the tests (memory.available_bytes
patched): the refusals then do not depend on the machine CI runs on.
"""

import time
import tracemalloc

import numpy as np
import pytest

from cli_calls import cli_exit as run_cli
from seqcore import memory, nn
from seqcore.nn import init
from seqcore.train import Adam, Trainer

GiB = 1 << 30
SECOND = 1.0  # a refusal's bound: it guards a hang (minutes of building), not a speed


@pytest.fixture
def available(monkeypatch):
    """set(n): the machine has n bytes available, as far as seqcore can tell."""
    def set_available(n):
        monkeypatch.setattr(memory, "available_bytes", lambda: n)
    set_available(16 * GiB)
    return set_available


# ---------------------------------------------------------------------------
# the command line: the three commands (and the course of them)


@pytest.mark.parametrize("flags, named", [
    (["--layers", "100000000", "--steps", "1"], "--hidden, --layers, --embed"),
    (["--hidden", "100000"], "--hidden, --layers, --embed"),
    (["--embed", "10000000"], "--hidden, --layers, --embed"),
    (["--seq-len", "100000", "--batch", "100"], "--seq-len, --batch"),
])
def test_seqcore_train_refuses_sizes_that_cannot_fit_in_under_a_second(available, tmp_path, capsys, flags, named):
    out = tmp_path / "run"
    start = time.perf_counter()
    assert run_cli(["train", *flags, "--out", str(out), "--quiet"]) == 2  # the default corpus: the stdlib's
    assert time.perf_counter() - start < SECOND
    err = capsys.readouterr().err
    assert f"error: {named}: training this model needs " in err, err
    assert "more than the 16.0 GiB available" in err and "Traceback" not in err
    assert not out.exists()  # nothing written


def test_seqcore_train_just_under_the_limit_trains(available, tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("hello world, hello seqcore\n" * 40)
    argv = ["train", str(corpus), "--hidden", "16", "--embed", "8", "--layers", "1", "--seq-len", "20",
            "--batch", "4", "--steps", "2", "--quiet", "--val-frac", "0", "--sample-length", "0"]
    available(1 << 10)
    assert run_cli(argv + ["--out", str(tmp_path / "refused")]) == 2
    assert "more than the 1.0 KiB available" in capsys.readouterr().err
    available(64 << 20)
    assert run_cli(argv + ["--out", str(tmp_path / "run")]) == 0


# ---------------------------------------------------------------------------
# layers and models: before any weight is drawn


@pytest.mark.parametrize("build, words", [
    (lambda: nn.LSTM(64, 100000), "LSTM(input_size=64, hidden_size=100000, num_layers=1)'s parameters"),
    (lambda: nn.GRU(64, 256, num_layers=100000000, bidirectional=True), "num_layers=100000000, bidirectional=True"),
    (lambda: nn.Embedding(10000000, 10000), "Embedding(10000000, 10000)'s parameters"),
    (lambda: nn.Linear(10 ** 6, 10 ** 6), "Linear(1000000, 1000000)'s parameters"),
    # the embedding alone would fit: refused before it is built, not after
    (lambda: nn.LanguageModel(83, embed_size=5000000, hidden_size=256), "LanguageModel(vocab_size=83, "
                                                                          "embed_size=5000000"),
    (lambda: nn.SequenceClassifier(2, vocab_size=10 ** 9), "SequenceClassifier(num_classes=2, vocab_size=1000000000"),
    (lambda: nn.SequenceTagger(3, input_size=8, num_layers=10 ** 8), "SequenceTagger("),
])
def test_layers_and_models_too_large_are_refused_at_once(available, build, words):
    start = time.perf_counter()
    with pytest.raises(MemoryError, match="more than the 16.0 GiB available") as e:
        build()
    assert time.perf_counter() - start < SECOND
    assert words in str(e.value) and "need" in str(e.value) and "smaller" in str(e.value)


def test_a_layer_just_under_the_limit_builds(available):
    need = 2 * (100 + 1) * 50 * 4  # Linear(100, 50) float32: weight and bias, and their gradients
    available(need)
    assert nn.Linear(100, 50).num_params() == 101 * 50
    available(need - 1)
    with pytest.raises(MemoryError, match="in_features or out_features"):
        nn.Linear(100, 50)
    # an LSTM's count: 4H(D + H + 2) per layer and direction, D = 2H past the first (concatenated)
    lstm = nn.LSTM(3, 5, num_layers=2, bidirectional=True, dtype=np.float64)
    assert lstm.num_params() == nn.recurrent.parameter_count("lstm", 3, 5, 2, True)
    available(2 * lstm.num_params() * 8)
    nn.LSTM(3, 5, num_layers=2, bidirectional=True, dtype=np.float64)
    available(2 * lstm.num_params() * 8 - 1)
    with pytest.raises(MemoryError, match="hidden_size, num_layers or input_size"):
        nn.LSTM(3, 5, num_layers=2, bidirectional=True, dtype=np.float64)


# ---------------------------------------------------------------------------
# the Trainer: the optimizer's state and one step


def test_the_trainer_refuses_a_step_that_cannot_fit_and_takes_one_that_can(available):
    model = nn.LanguageModel(20, embed_size=8, hidden_size=16, num_layers=1, seed=0)
    ids = np.arange(2000) % 20
    available(1 << 20)
    with pytest.raises(MemoryError, match=r"Trainer: the optimizer's state and one training step "
                                          r"\(batch_size=8, 200 steps a batch\) need .* make batch_size or seq_len"):
        Trainer(model, ids, optimizer=Adam(model), batch_size=8, seq_len=200, steps=1, progress=False)
    available(16 << 20)
    assert Trainer(model, ids, optimizer=Adam(model), batch_size=8, seq_len=200, steps=1,
                   progress=False).fit().step == 1


def test_optimizer_state_to_come():
    model = nn.Linear(10, 3)
    assert Adam(model).pending_state_bytes() == 2 * 33 * 4
    from seqcore.train import SGD
    assert SGD(model, lr=0.1).pending_state_bytes() == 0
    assert SGD(model, lr=0.1, momentum=0.9).pending_state_bytes() == 33 * 4
    adam = Adam(model)
    model.grads["weight"][...] = 1
    model.grads["bias"][...] = 1
    adam.step()
    assert adam.pending_state_bytes() == 0  # allocated now


# ---------------------------------------------------------------------------
# initial weights: no float64 temporaries, the same numbers


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_initial_values_in_chunks_equal_one_float64_draw_rounded(dtype):
    shape = (37, 11)
    got = init.uniform(np.random.default_rng(5), 0.3, shape, dtype, chunk=50)
    assert got.dtype == dtype and np.array_equal(got, np.random.default_rng(5).uniform(-0.3, 0.3, shape).astype(dtype))
    got = init.normal(np.random.default_rng(6), shape, dtype, chunk=7)
    assert np.array_equal(got, np.random.default_rng(6).standard_normal(shape).astype(dtype))


def test_a_float32_layer_never_holds_a_float64_copy_of_its_weights():
    tracemalloc.start()
    try:
        layer = nn.Linear(2048, 2048, dtype=np.float32, seed=0)  # 16 MiB of weights, 16 MiB of gradients
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    weights = layer.weight.nbytes
    # weights, gradients and one 8 MiB chunk; a float64 draw would add 32 MiB
    assert peak < 2 * weights + init.CHUNK * 8 + (4 << 20), peak


def test_one_seed_gives_the_same_model_in_both_dtypes():
    a = nn.LanguageModel(30, embed_size=6, hidden_size=8, seed=3, dtype=np.float32)
    b = nn.LanguageModel(30, embed_size=6, hidden_size=8, seed=3, dtype=np.float64)
    for name, p in a.params.items():
        assert np.array_equal(p, b.params[name].astype(np.float32)), name


# ---------------------------------------------------------------------------
# seqcore.memory


def test_available_memory_and_the_refusal_message(monkeypatch, tmp_path):
    n = memory.available_bytes()
    assert n is None or n > 0
    assert memory.format_bytes(1536) == "1.5 KiB" and memory.format_bytes(100) == "100 B"
    assert memory.format_bytes(298 * GiB) == "298.0 GiB"
    monkeypatch.setattr(memory, "available_bytes", lambda: GiB)
    memory.require(GiB, "this", "do that")
    with pytest.raises(MemoryError, match=r"^this need 1\.5 GiB, more than the 1\.0 GiB available; do that$"):
        memory.require(GiB + 512 * (1 << 20) + 1, "this", "do that")
    monkeypatch.setattr(memory, "available_bytes", lambda: None)  # unknown: nothing refused
    memory.require(1 << 62, "this", "do that")


def test_a_cgroup_limit_smaller_than_the_machine_is_what_is_available(monkeypatch, tmp_path):
    (tmp_path / "memory.max").write_text("1073741824\n")
    (tmp_path / "memory.current").write_text("268435456\n")
    monkeypatch.setattr(memory, "CGROUP", str(tmp_path))
    assert memory.available_bytes() == 768 << 20
    (tmp_path / "memory.max").write_text("max\n")
    assert memory.available_bytes() != 768 << 20  # no limit: the machine's
