"""Sizes that cannot fit are refused at once, before anything is built: the
layers and models (their parameters and gradients), the Trainer (the
optimizer's state and one step) and `seqcore train` (all of it, before the
model exists), each with the estimate, what is available and what to change;
a model just under the limit still builds. Initial weights are drawn straight
into the model's dtype, the same numbers as one float64 draw rounded.

The machine's available memory is set by the tests (memory.available_bytes
patched): the refusals then do not depend on the machine CI runs on.
"""

import subprocess
import sys
import time
import tracemalloc

import numpy as np
import pytest

from children import CHILD_CWD, child_env
from cli_calls import cli_exit as run_cli
from seqcore import memory, nn
from seqcore.nn import init
from seqcore.text import Vocabulary
from seqcore.train import Adam, Trainer
from seqcore.train.footprint import language_model_footprint, step_bytes

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


def test_seqcore_train_at_the_limit_trains_and_a_byte_less_is_refused(available, tmp_path, capsys):
    text = "hello world, hello seqcore\n" * 40
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(text)
    argv = ["train", str(corpus), "--hidden", "16", "--embed", "8", "--layers", "1", "--seq-len", "20",
            "--batch", "4", "--steps", "2", "--quiet", "--val-frac", "0", "--sample-length", "0"]
    need = language_model_footprint(len(Vocabulary.from_text(text)), 8, 16, 1, "lstm", np.float32, 20, 4,
                                    Adam.buffers()).total
    available(need - 1)
    assert run_cli(argv + ["--out", str(tmp_path / "refused")]) == 2
    assert "more than the" in capsys.readouterr().err
    available(need)
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
    need = (100 + 1) * 50 * 4  # Linear(100, 50) float32: weight and bias (gradients: untouched zeros)
    available(need)
    assert nn.Linear(100, 50).num_params() == 101 * 50
    available(need - 1)
    with pytest.raises(MemoryError, match="in_features or out_features"):
        nn.Linear(100, 50)
    # an LSTM's count: 4H(D + H + 2) per layer and direction, D = 2H past the first (concatenated)
    lstm = nn.LSTM(3, 5, num_layers=2, bidirectional=True, dtype=np.float64)
    assert lstm.num_params() == nn.recurrent.parameter_count("lstm", 3, 5, 2, True)
    available(lstm.num_params() * 8)
    nn.LSTM(3, 5, num_layers=2, bidirectional=True, dtype=np.float64)
    available(lstm.num_params() * 8 - 1)
    with pytest.raises(MemoryError, match="hidden_size, num_layers or input_size"):
        nn.LSTM(3, 5, num_layers=2, bidirectional=True, dtype=np.float64)


# ---------------------------------------------------------------------------
# the Trainer: the optimizer's state and one step


def test_the_trainer_refuses_a_step_a_byte_short_and_takes_it_at_the_limit(available):
    model = nn.LanguageModel(20, embed_size=8, hidden_size=16, num_layers=1, seed=0)
    ids = np.arange(2000) % 20
    need = Adam(model).pending_state_bytes() + step_bytes(model, 200, 8)
    available(need - 1)
    with pytest.raises(MemoryError, match=r"Trainer: the optimizer's state and one training step "
                                          r"\(batch_size=8, 200 steps a batch\) need .* make batch_size or seq_len"):
        Trainer(model, ids, optimizer=Adam(model), batch_size=8, seq_len=200, steps=1, progress=False)
    available(need)
    assert Trainer(model, ids, optimizer=Adam(model), batch_size=8, seq_len=200, steps=1,
                   progress=False).fit().step == 1


def test_a_resumed_run_with_a_step_too_large_is_refused_naming_the_flags(available, tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("hello world, hello seqcore\n" * 400)
    out = str(tmp_path / "run")
    assert run_cli(["train", str(corpus), "--hidden", "16", "--embed", "8", "--steps", "2", "--quiet",
                    "--sample-length", "0", "--out", out]) == 0
    available(1 << 20)
    assert run_cli(["train", "--resume", "--out", out, "--batch", "64", "--seq-len", "150", "--steps", "4"]) == 2
    assert "error: --seq-len, --batch: Trainer: " in capsys.readouterr().err


# what a step needs, measured in a child: the peak resident memory of one
# forward, loss and backward above what the built model holds
PEAK_CHILD = """
import sys
import numpy as np
from seqcore import nn
from seqcore.nn import softmax_cross_entropy
from seqcore.train.footprint import step_bytes

def rss(key):
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) * 1024 for l in f if l.startswith(key + ":"))

cell, layers, hidden, bidirectional, T, B = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1", \
    int(sys.argv[5]), int(sys.argv[6])
if bidirectional:
    model = nn.SequenceTagger(40, vocab_size=60, embed_size=32, hidden_size=hidden, num_layers=layers, cell=cell,
                              bidirectional=True, seed=0)
else:
    model = nn.LanguageModel(60, embed_size=32, hidden_size=hidden, num_layers=layers, cell=cell, seed=0)
ids = np.random.default_rng(0).integers(0, 40, (T, B))
before = rss("VmRSS")
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # the peak restarts from here
logits, _ = model.forward(ids)
loss, dlogits = softmax_cross_entropy(logits, ids)
model.backward(dlogits)
print(step_bytes(model, T, B), rss("VmHWM") - before)
"""


@pytest.mark.parametrize("shape", [("lstm", 6, 256, 0, 200, 64), ("rnn", 8, 512, 0, 100, 32),
                                   ("gru", 4, 128, 0, 150, 32), ("lstm", 2, 128, 1, 120, 48), ("gru", 1, 512, 0, 500, 64)])
def test_the_step_estimate_is_below_what_a_step_really_takes(shape):
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pytest.skip("no /proc/self/clear_refs to measure a peak with")
    done = subprocess.run([sys.executable, "-c", PEAK_CHILD, *map(str, shape)], capture_output=True, text=True,
                          env=child_env(OMP_NUM_THREADS="1"), cwd=CHILD_CWD, timeout=120)
    assert done.returncode == 0, done.stderr
    estimate, measured = map(int, done.stdout.split())
    assert 0 < estimate <= measured, (estimate, measured)


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
    # cgroup v2: this process in /jobs/42 (limit 1 GiB), inside /jobs (limit 2 GiB)
    proc = tmp_path / "cgroup"
    proc.write_text("0::/jobs/42\n")
    job, jobs = tmp_path / "fs" / "jobs" / "42", tmp_path / "fs" / "jobs"
    job.mkdir(parents=True)
    for folder, limit, used in ((job, 1 << 30, 512 << 20), (jobs, 2 << 30, 600 << 20)):
        (folder / "memory.max").write_text(f"{limit}\n")
        (folder / "memory.current").write_text(f"{used}\n")
    (job / "memory.stat").write_text("anon 1\ninactive_file 268435456\nactive_file 5\n")  # 256 MiB droppable
    monkeypatch.setattr(memory, "PROC_CGROUP", str(proc))
    monkeypatch.setattr(memory, "CGROUP", str(tmp_path / "fs"))
    assert memory._cgroup_available() == (1 << 30) - (512 << 20) + (256 << 20)
    (job / "memory.max").write_text("max\n")  # no limit of its own: its parent's
    assert memory._cgroup_available() == (2 << 30) - (600 << 20)
    (jobs / "memory.max").write_text("max\n")
    assert memory._cgroup_available() is None
    proc.write_text("4:memory:/jobs/42\n")  # v1: under fs/memory/
    v1 = tmp_path / "fs" / "memory" / "jobs" / "42"
    v1.mkdir(parents=True)
    (v1 / "memory.limit_in_bytes").write_text(f"{1 << 30}\n")
    (v1 / "memory.usage_in_bytes").write_text(f"{100 << 20}\n")
    (v1 / "memory.stat").write_text("total_inactive_file 0\n")
    assert memory._cgroup_available() == (1 << 30) - (100 << 20)
