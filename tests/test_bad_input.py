"""The bad-input matrix: every public function and class, given what it cannot
use, raises a clear exception naming the argument, never crashes, hangs or
computes garbage.

One table, one test: each row is (call, exception, words the message must
hold). Add a row to extend it. Rows for what other files already test (the
per-cell shape and dtype checks of seqcore.ops in test_ops_arguments.py, the
CLI's flags in test_cli.py, the Trainer's in test_trainer.py) are not
repeated here.

Categories: wrong number of dimensions, wrong or mismatched shapes and dtypes,
empty sizes, NaN and inf, non-contiguous and negative-stride arrays,
read-only outputs, Python objects of the wrong type, sizes too large to
allocate (MemoryError).
"""

import os

import numpy as np
import pytest

from cli_calls import cli_exit
from seqcore import generate, memory, nn, ops, text
from seqcore.text import Vocabulary
from seqcore.train import SGD, Adam, clip_by_global_norm, clip_by_value, load_checkpoint, save_checkpoint

F32 = np.float32
HUGE = 1 << 40  # elements: 4 TiB of float32, more than any test machine has


def ones(*shape, dtype=F32):
    return np.ones(shape, dtype)


def read_only(a):
    a.setflags(write=False)
    return a


def weights(G, H=5, D=4, dtype=F32):
    """W_ih (G·H, D), W_hh (G·H, H), b (G·H,) of zeros."""
    return np.zeros((G * H, D), dtype), np.zeros((G * H, H), dtype), np.zeros(G * H, dtype)


def rnn(**kwargs):
    return lambda: ops.rnn_forward(ones(3, 2, 4), None, *weights(1), **kwargs)


def lstm_cache():
    return ops.lstm_forward(ones(3, 2, 4), None, None, *weights(4))[3]


def vocab():
    return Vocabulary.from_text("hello world")


def language_model():
    return nn.LanguageModel(len(vocab()), embed_size=4, hidden_size=6, seed=0)


def trained(layer, x):
    layer.forward(x)
    return layer


# (id, call, exception, words in the message)
CASES = [
    # -- seqcore.ops: flags and options of the cell functions
    ("ops.train-str", rnn(train="no"), TypeError, ["train", "bool"]),
    ("ops.reverse-int", rnn(reverse=1), TypeError, ["reverse", "bool"]),
    ("ops.num_threads-str", rnn(num_threads="2"), ValueError, ["num_threads"]),
    ("ops.num_threads-zero", rnn(num_threads=0), ValueError, ["num_threads"]),
    ("ops.num_threads-beyond-int", rnn(num_threads=2**31), ValueError, ["num_threads"]),
    ("ops.num_threads-past-the-limit", rnn(num_threads=10**6), ValueError, ["num_threads", "1024"]),
    ("ops.lengths-float", rnn(lengths=[1.5, 2.0]), TypeError, ["lengths", "integers"]),
    ("ops.lengths-str", rnn(lengths="ab"), TypeError, ["lengths", "integers"]),
    ("ops.lengths-2d", rnn(lengths=[[1, 2]]), ValueError, ["lengths", "shape"]),
    ("ops.lengths-negative", rnn(lengths=[-1, 2]), ValueError, ["lengths", "[0, T]"]),
    ("ops.lengths-huge-uint", rnn(lengths=np.array([2**63, 1], np.uint64)), ValueError, ["lengths", "[0, T]"]),
    ("ops.x-float16", lambda: ops.rnn_forward(ones(3, 2, 4, dtype=np.float16), None, *weights(1)),
     TypeError, ["x", "float32 or float64"]),
    ("ops.x-complex", lambda: ops.rnn_forward(ones(3, 2, 4, dtype=np.complex64), None, *weights(1)),
     TypeError, ["x", "float32 or float64"]),
    ("ops.x-object", lambda: ops.rnn_forward(np.empty((3, 2, 4), object), None, *weights(1)),
     TypeError, ["x", "float32 or float64"]),
    ("ops.x-None", lambda: ops.rnn_forward(None, None, *weights(1)), TypeError, ["x", "numpy.ndarray"]),
    ("ops.x-0d", lambda: ops.rnn_forward(np.float32(1), None, *weights(1)), TypeError, ["x", "numpy.ndarray"]),
    ("ops.b-nan", lambda: ops.rnn_forward(ones(3, 2, 4), None, *weights(1)[:2], np.full(5, np.nan, F32)),
     ValueError, ["b", "NaN or inf"]),
    ("ops.gru-b_hh-inf", lambda: ops.gru_forward(ones(3, 2, 4), None, *weights(3), np.full(15, np.inf, F32)),
     ValueError, ["b_hh", "NaN or inf"]),
    ("ops.c0-inf", lambda: ops.lstm_forward(ones(3, 2, 4), None, np.full((2, 5), -np.inf, F32), *weights(4)),
     ValueError, ["c0", "NaN or inf"]),
    ("ops.c0-batch", lambda: ops.lstm_forward(ones(3, 2, 4), None, ones(3, 5), *weights(4)),
     ValueError, ["c0", "shape"]),
    ("ops.dcT-shape", lambda: ops.lstm_backward(None, None, ones(2, 4), lstm_cache()), ValueError, ["dcT", "shape"]),
    ("ops.dcT-nan", lambda: ops.lstm_backward(None, None, np.full((2, 5), np.nan, F32), lstm_cache()),
     ValueError, ["dcT", "NaN"]),
    ("ops.dy-list", lambda: ops.lstm_backward([[[1.0]]], None, None, lstm_cache()), TypeError, ["dy", "ndarray"]),
    ("ops.too-large-to-allocate",
     lambda: ops.rnn_forward(np.zeros((1 << 20, 1 << 10, 1), F32), None, *weights(1, H=4096, D=1)),
     MemoryError, []),
    ("ops.backend-int", rnn(backend=1), ValueError, ["backend"]),
    # -- seqcore.ops: matmul, the runtime, workspace sizes
    ("matmul.a-1d", lambda: ops.matmul(ones(3), ones(3, 2)), TypeError, ["a", "2-D"]),
    ("matmul.b-int", lambda: ops.matmul(ones(2, 2), np.ones((2, 2), int)), TypeError, ["b", "float32"]),
    ("matmul.b-dtype", lambda: ops.matmul(ones(2, 2), ones(2, 2, dtype=np.float64)), TypeError, ["b", "dtype"]),
    ("matmul.shapes", lambda: ops.matmul(ones(2, 3), ones(2, 2)), ValueError, ["b", "rows"]),
    ("matmul.out-read-only", lambda: ops.matmul(ones(2, 2), ones(2, 2), out=read_only(ones(2, 2))),
     ValueError, ["out", "writeable"]),
    ("matmul.out-strided", lambda: ops.matmul(ones(2, 2), ones(2, 2), out=ones(2, 4)[:, ::2]),
     ValueError, ["out", "C-contiguous"]),
    ("matmul.out-negative-stride", lambda: ops.matmul(ones(2, 2), ones(2, 2), out=ones(2, 2)[::-1]),
     ValueError, ["out", "C-contiguous"]),
    ("matmul.out-shape", lambda: ops.matmul(ones(2, 2), ones(2, 2), out=ones(3, 2)), TypeError, ["out", "(2, 2)"]),
    ("matmul.out-dtype", lambda: ops.matmul(ones(2, 2), ones(2, 2), out=ones(2, 2, dtype=np.float64)),
     TypeError, ["out", "float32"]),
    ("matmul.out-list", lambda: ops.matmul(ones(2, 2), ones(2, 2), out=[[0.0, 0.0], [0.0, 0.0]]),
     TypeError, ["out", "list"]),
    ("matmul.accumulate-without-out", lambda: ops.matmul(ones(2, 2), ones(2, 2), accumulate=True),
     ValueError, ["accumulate"]),
    ("matmul.too-large-to-allocate",
     lambda: ops.matmul(np.broadcast_to(F32(0), (1 << 20, 1)), np.broadcast_to(F32(0), (1, 1 << 20))),
     MemoryError, []),
    ("set_num_threads.beyond-int", lambda: ops.set_num_threads(2**40), ValueError, ["n"]),
    ("set_isa.int", lambda: ops.set_isa(3), ValueError, ["name"]),
    ("workspace.cell", lambda: ops.forward_workspace_bytes("cnn", 1, 1, 1, 1, train=True), ValueError, ["cell"]),
    ("workspace.negative-T", lambda: ops.forward_workspace_bytes("lstm", -1, 2, 3, 4, train=True),
     ValueError, ["T", "[0, 2**40)"]),
    ("workspace.overflow", lambda: ops.forward_workspace_bytes("lstm", 2**39, 2**39, 3, 4, train=True),
     ValueError, ["does not fit"]),
    ("workspace.train-None", lambda: ops.forward_workspace_bytes("lstm", 1, 2, 3, 4, train=None),
     TypeError, ["train", "bool"]),
    # -- layers
    ("LSTM.input_size-float", lambda: nn.LSTM(4.0, 5), ValueError, ["input_size"]),
    ("LSTM.hidden_size-zero", lambda: nn.LSTM(4, 0), ValueError, ["hidden_size"]),
    ("LSTM.num_layers-str", lambda: nn.LSTM(4, 5, num_layers="2"), ValueError, ["num_layers"]),
    ("LSTM.dtype-int", lambda: nn.LSTM(4, 5, dtype=np.int32), TypeError, ["dtype"]),
    ("LSTM.too-large-to-allocate", lambda: nn.LSTM(4, 10**6), MemoryError, []),
    ("LSTM.x-list", lambda: nn.LSTM(4, 5).forward([[[1.0]]]), TypeError, ["x", "ndarray"]),
    ("LSTM.x-2d", lambda: nn.LSTM(4, 5).forward(ones(3, 4)), ValueError, ["x", "shape"]),
    ("LSTM.x-float64", lambda: nn.LSTM(4, 5).forward(ones(2, 3, 4, dtype=np.float64)), TypeError, ["x", "dtype"]),
    ("LSTM.x-nan", lambda: nn.LSTM(4, 5).forward(np.full((2, 3, 4), np.nan, F32)), ValueError, ["x", "NaN"]),
    ("LSTM.state-not-tuple", lambda: nn.LSTM(4, 5).forward(ones(2, 3, 4), state=ones(1, 3, 5)),
     TypeError, ["state", "tuple"]),
    ("GRU.state-shape", lambda: nn.GRU(4, 5).forward(ones(2, 3, 4), state=ones(1, 2, 5)), ValueError, ["state"]),
    ("LSTM.lengths-too-long", lambda: nn.LSTM(4, 5).forward(ones(2, 3, 4), lengths=[5, 1, 1]),
     ValueError, ["lengths"]),
    ("LSTM.backward-first", lambda: nn.LSTM(4, 5).backward(ones(2, 3, 5)), RuntimeError, ["forward"]),
    ("LSTM.dy-shape", lambda: trained(nn.LSTM(4, 5), ones(2, 3, 4)).backward(ones(2, 3, 4)),
     ValueError, ["dy", "shape"]),
    ("LSTM.dy-inf", lambda: trained(nn.LSTM(4, 5), ones(2, 3, 4)).backward(np.full((2, 3, 5), np.inf, F32)),
     ValueError, ["dy", "NaN or inf"]),
    ("Linear.dtype-garbage", lambda: nn.Linear(2, 2, dtype="no-such-type"), TypeError, ["dtype"]),
    ("Linear.in_features-zero", lambda: nn.Linear(0, 3), ValueError, ["in_features"]),
    ("Linear.too-large-to-allocate", lambda: nn.Linear(10**6, 10**6), MemoryError, []),
    ("Linear.x-0d", lambda: nn.Linear(3, 2).forward(np.float32(1)), TypeError, ["x"]),
    ("Linear.x-inf", lambda: nn.Linear(3, 2).forward(np.full((2, 3), np.inf, F32)), ValueError, ["x", "NaN or inf"]),
    ("Linear.dy-shape", lambda: trained(nn.Linear(3, 2), ones(2, 3)).backward(ones(2, 3)), ValueError, ["dy"]),
    ("Embedding.ids-float", lambda: nn.Embedding(5, 3).forward(np.array([1.0])), TypeError, ["ids", "integers"]),
    ("Embedding.ids-str", lambda: nn.Embedding(5, 3).forward(["a"]), TypeError, ["ids", "integers"]),
    ("Embedding.ids-None", lambda: nn.Embedding(5, 3).forward(None), TypeError, ["ids", "integers"]),
    ("Embedding.ids-negative", lambda: nn.Embedding(5, 3).forward([-1]), ValueError, ["ids", "[0, 5)"]),
    ("Embedding.padding_idx", lambda: nn.Embedding(5, 3, padding_idx=5), ValueError, ["padding_idx"]),
    ("Embedding.too-large-to-allocate", lambda: nn.Embedding(10**7, 10**6), MemoryError, []),
    ("Dropout.p-one", lambda: nn.Dropout(1.0), ValueError, ["p"]),
    ("Dropout.x-list", lambda: nn.Dropout(0.5).forward([1.0]), TypeError, ["x", "ndarray"]),
    ("Tanh.x-list", lambda: nn.Tanh().forward([1.0]), TypeError, ["x", "ndarray"]),
    ("Sequential.not-a-layer", lambda: nn.Sequential(3), TypeError, ["layers[0]", "Layer"]),
    ("LanguageModel.cell", lambda: nn.LanguageModel(5, 4, 6, cell="transformer"), ValueError, ["cell"]),
    ("LanguageModel.ids-float", lambda: language_model().forward(ones(2, 3)), TypeError, ["ids", "integers"]),
    ("LanguageModel.ids-out-of-range", lambda: language_model().forward(np.full((2, 3), 99)), ValueError, ["ids"]),
    ("SequenceClassifier.pool", lambda: nn.SequenceClassifier(5, vocab_size=3, pool="median"),
     ValueError, ["pool"]),
    # -- losses
    ("softmax.int", lambda: nn.softmax(np.array([1, 2])), TypeError, ["logits", "float32 or float64"]),
    ("softmax.0d", lambda: nn.softmax(np.float32(1)), TypeError, ["logits", "ndarray"]),
    ("cross_entropy.nan", lambda: nn.softmax_cross_entropy(np.full((2, 3), np.nan, F32), np.array([0, 1])),
     ValueError, ["logits", "NaN or inf"]),
    ("cross_entropy.targets-float", lambda: nn.softmax_cross_entropy(ones(2, 3), np.array([0.0, 1.0])),
     TypeError, ["targets", "integers"]),
    ("mean_squared_error.shape", lambda: nn.mean_squared_error(ones(2, 3), ones(3, 2)),
     ValueError, ["target", "shape"]),
    # -- text
    ("Vocabulary.from_text-int", lambda: Vocabulary.from_text(3), TypeError, ["text", "str"]),
    ("Vocabulary.level", lambda: Vocabulary.from_text("abc", level="byte"), ValueError, ["level"]),
    ("Vocabulary.encode-None", lambda: vocab().encode(None), TypeError, ["text", "str"]),
    ("Vocabulary.encode-bytes", lambda: vocab().encode(b"hello"), TypeError, ["text", "str"]),
    ("Vocabulary.decode-str", lambda: vocab().decode("ab"), TypeError, ["ids", "integers"]),
    ("Vocabulary.decode-negative", lambda: vocab().decode([-1]), ValueError, ["ids"]),
    ("Vocabulary.decode-beyond-int64", lambda: vocab().decode([2**70]), TypeError, ["ids", "integers"]),
    ("Vocabulary.decode-nan", lambda: vocab().decode(np.array([np.nan])), TypeError, ["ids", "integers"]),
    ("Vocabulary.id_to_token-str", lambda: vocab().id_to_token("a"), TypeError, ["id", "int"]),
    ("Vocabulary.from_dict-list", lambda: Vocabulary.from_dict([1, 2]), ValueError, ["not a seqcore vocabulary"]),
    ("Vocabulary.load-binary", lambda: Vocabulary.load("/bin/sh"), ValueError, ["not a seqcore vocabulary"]),
    ("Vocabulary.load-missing", lambda: Vocabulary.load("/no/such/vocab.json"), FileNotFoundError, ["vocab.json"]),
    ("one_hot.negative", lambda: text.one_hot([-1], 3), ValueError, ["ids", "[0, vocab_size)"]),
    ("one_hot.too-large-to-allocate", lambda: text.one_hot(np.zeros(10**6, int), 10**7), MemoryError, []),
    ("stream_batches.batch_size-zero", lambda: text.stream_batches(np.arange(10), 0, 3), ValueError, ["batch_size"]),
    ("stream_batches.ids-float", lambda: text.stream_batches(np.arange(10.0), 2, 3), TypeError, ["ids"]),
    ("stream_batches.batch_size-huge", lambda: text.stream_batches(np.arange(10), 10**12, 3),
     ValueError, ["batch_size"]),
    ("pad_batches.str", lambda: text.pad_batches("abc", 2, 0), TypeError, ["sequences"]),
    ("pad_batches.float-ids", lambda: text.pad_batches([[1.5]], 2, 0), TypeError, ["sequences[0]", "integer"]),
    ("train_val_split.nan", lambda: text.train_val_split(np.arange(10), float("nan")), ValueError, ["val_frac"]),
    ("length_mask.negative-length", lambda: text.length_mask([-1], 3), ValueError, ["lengths", "[0, T]"]),
    ("length_mask.length-past-T", lambda: text.length_mask([4], 3), ValueError, ["lengths", "[0, T]"]),
    ("length_mask.negative-T", lambda: text.length_mask([1], -3), ValueError, ["T"]),
    ("next_token_pairs.1d", lambda: text.next_token_pairs(np.zeros(3, int), [1]), ValueError, ["padded"]),
    # -- training pieces
    ("SGD.lr-nan", lambda: SGD(nn.Linear(2, 2), lr=float("nan")), ValueError, ["lr"]),
    ("SGD.lr-inf", lambda: SGD(nn.Linear(2, 2), lr=float("inf")), ValueError, ["lr"]),
    ("Adam.betas", lambda: Adam(nn.Linear(2, 2), betas=(1.5, 0.9)), ValueError, ["betas"]),
    ("Adam.params-int", lambda: Adam(3), TypeError, ["params"]),
    ("clip_by_global_norm.max_norm", lambda: clip_by_global_norm({"a": np.ones(1)}, -1.0), ValueError, ["max_norm"]),
    ("clip_by_value.nan", lambda: clip_by_value({"a": np.ones(1)}, float("nan")), ValueError, ["clip_value"]),
    ("save_checkpoint.directory-int", lambda: save_checkpoint(3, language_model(), step=0),
     TypeError, ["directory"]),
    ("save_checkpoint.model-None", lambda: save_checkpoint("/tmp/never-written", None, step=0),
     TypeError, ["model"]),
    ("save_checkpoint.step-str", lambda: save_checkpoint("/tmp/never-written", language_model(), step="1"),
     ValueError, ["step"]),
    ("save_checkpoint.optimizer-str", lambda: save_checkpoint("/tmp/never-written", language_model(), "abc", step=0),
     TypeError, ["optimizer"]),
    ("load_checkpoint.None", lambda: load_checkpoint(None), TypeError, ["directory"]),
    ("load_checkpoint.file", lambda: load_checkpoint("/bin/sh"), ValueError, ["not a directory"]),
    # -- sampling
    ("sample.model-int", lambda: generate.sample(3, vocab()), TypeError, ["model"]),
    ("sample.vocab-str", lambda: generate.sample(language_model(), "abc"), TypeError, ["vocab"]),
    ("sample.temperature-nan", lambda: generate.sample(language_model(), vocab(), temperature=float("nan")),
     ValueError, ["temperature"]),
    ("sample.length-negative", lambda: generate.sample(language_model(), vocab(), length=-1), ValueError, ["length"]),
    ("sample.top_p", lambda: generate.sample(language_model(), vocab(), top_p=2), ValueError, ["top_p"]),
    ("sample.top_k-zero", lambda: generate.sample(language_model(), vocab(), top_k=0), ValueError, ["top_k"]),
]


def _overcommits_always() -> bool:
    """vm.overcommit_memory = 1: the kernel grants any allocation and kills the
    process when it is filled, so no MemoryError can come (the default, 0,
    refuses what cannot fit, as these rows expect)."""
    try:
        with open("/proc/sys/vm/overcommit_memory") as f:
            return f.read().strip() == "1"
    except OSError:
        return False


ALWAYS_OVERCOMMITS = pytest.mark.skipif(_overcommits_always(), reason="vm.overcommit_memory = 1: no MemoryError")


@pytest.mark.parametrize("call, error, words", [
    pytest.param(*row[1:], id=row[0], marks=[ALWAYS_OVERCOMMITS] if row[2] is MemoryError else [])
    for row in CASES])
def test_bad_input_raises_a_clear_exception(call, error, words):
    with pytest.raises(error) as info:
        call()
    message = str(info.value)
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"


@pytest.mark.parametrize("argv, flag", [
    (["train", "{corpus}", "--threads", "99999999999"], "--threads"),
    (["sample", "{tmp}", "--threads", "0"], "--threads"),
    (["train", "{corpus}", "--lr", "inf"], "--lr"),
    (["train", "{corpus}", "--dropout", "nan"], "--dropout"),
    (["train", "{binary}"], "UTF-8"),
    (["train", "{tmp}"], "directory"),
])
def test_cli_bad_values_exit_2_naming_the_flag(argv, flag, tmp_path, capsys):
    corpus, binary = tmp_path / "corpus.txt", tmp_path / "binary.txt"
    corpus.write_text("hello world\n" * 50)
    binary.write_bytes(bytes(range(256)))
    argv = [a.format(corpus=corpus, binary=binary, tmp=tmp_path) for a in argv]
    assert cli_exit(argv) == 2
    assert flag in capsys.readouterr().err


def test_cli_sizes_too_large_to_allocate_end_with_a_message_not_a_traceback(tmp_path, capsys, monkeypatch):
    # where the machine's memory is unknown, nothing is refused up front (see
    # test_memory_limits.py): the allocation's own MemoryError ends the run
    monkeypatch.setattr(memory, "available_bytes", lambda: None)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("hello world\n" * 50)
    assert cli_exit(["train", str(corpus), "--hidden", "1000000000", "--quiet", "--val-frac", "0",
                     "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert "out of memory" in err and "Traceback" not in err
    assert not os.path.exists(tmp_path / "run" / "checkpoint")


# ---------------------------------------------------------------------------
# what is not an error: empty sizes, read-only and strided inputs


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("T, B, D, H", [(0, 2, 4, 5), (3, 0, 4, 5), (3, 2, 0, 5), (3, 2, 4, 0), (0, 0, 0, 0)])
def test_empty_sizes_give_empty_outputs_of_the_right_shapes(cell, T, B, D, H):
    G = {"rnn": 1, "lstm": 4, "gru": 3}[cell]
    x = np.ones((T, B, D), F32)
    W_ih, W_hh, b = weights(G, H, D)
    states = [None, None] if cell == "lstm" else [None]
    biases = [b, b] if cell == "gru" else [b]
    out = getattr(ops, f"{cell}_forward")(x, *states, W_ih, W_hh, *biases)
    y, cache = out[0], out[-1]
    assert y.shape == (T, B, H) and all(s.shape == (B, H) for s in out[1:-1])
    # with D = 0 and zero weights and biases every pre-activation is 0
    assert np.isfinite(y).all()
    grads = getattr(ops, f"{cell}_backward")(np.ones_like(y), *([None] * len(states)), cache)
    assert grads[0].shape == (T, B, D)
    assert grads[-(2 if cell == "gru" else 1)].shape == (G * H,)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_read_only_inputs_are_read_not_written(cell):
    G = {"rnn": 1, "lstm": 4, "gru": 3}[cell]
    rng = np.random.default_rng(0)
    x = read_only(rng.standard_normal((3, 2, 4)).astype(F32))
    W_ih, W_hh = (read_only(rng.standard_normal(s).astype(F32) * 0.3) for s in ((G * 5, 4), (G * 5, 5)))
    b = read_only(np.zeros(G * 5, F32))
    states = [read_only(np.ones((2, 5), F32))] * (2 if cell == "lstm" else 1)
    biases = [b, b] if cell == "gru" else [b]
    y = getattr(ops, f"{cell}_forward")(x, *states, W_ih, W_hh, *biases)[0]
    expected = getattr(ops, f"{cell}_forward")(x.copy(), *[s.copy() for s in states], W_ih.copy(),
                                               W_hh.copy(), *[c.copy() for c in biases])[0]
    np.testing.assert_array_equal(y, expected)


def test_matmul_reads_negative_stride_and_transposed_views():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((5, 3)), rng.standard_normal((3, 4))
    np.testing.assert_allclose(ops.matmul(a[::-1], b[:, ::-1]), a[::-1] @ b[:, ::-1], rtol=1e-12)
    np.testing.assert_allclose(ops.matmul(np.asfortranarray(a), b), a @ b, rtol=1e-12)


# ---------------------------------------------------------------------------
# the Trainer: data it cannot use should be refused when it is constructed,
# naming the argument, before any step is taken (known gaps, strict xfails:
# each fails today because the error comes later, from inside a step or a
# validation, naming an internal argument, or not at all)


def trainer_with(**kwargs):
    from seqcore.train import Trainer
    ids = np.random.default_rng(0).integers(0, len(vocab()), 500)
    options = {"train_data": ids, "batch_size": 2, "seq_len": 5, "steps": 2, "progress": False, **kwargs}
    return lambda: Trainer(language_model(), options.pop("train_data"), **options)


def classifier_trainer_with(xs, ys):
    from seqcore.train import Trainer
    model = nn.SequenceClassifier(2, input_size=3, hidden_size=4, seed=0)
    return lambda: Trainer(model, (xs, ys), batch_size=4, steps=2, progress=False)


TRAINER_GAPS = [
    ("train_data-ids-past-the-vocabulary", trainer_with(train_data=np.arange(500) % 40), ValueError, ["train_data"],
     "the ids are checked by the embedding at the first step, as 'ids'"),
    ("val_data-ids-past-the-vocabulary", trainer_with(val_data=np.arange(500) % 40), ValueError, ["val_data"],
     "the ids are checked at the first validation, after training steps, as 'ids'"),
    ("out_dir-int", trainer_with(out_dir=3), TypeError, ["out_dir"],
     "an int out_dir raises os.fspath's TypeError, which does not name out_dir"),
    ("callbacks-not-callable", trainer_with(callbacks=[3]), TypeError, ["callbacks"],
     "a callback that is not callable fails after the first step: 'int' object is not callable"),
    ("train_data-NaN-features", classifier_trainer_with([np.full((4, 3), np.nan)] * 8, np.zeros(8, int)),
     ValueError, ["train_data"], "NaN features are found by the recurrent layer at the first step, as 'x'"),
]


def read_only_grads():
    g = np.full(3, 5.0)
    g.setflags(write=False)
    return {"g": g}


# seqcore/train/clip.py: clipping writes into the gradients in place
CLIP_GAPS = [
    ("clip_by_value-read-only-grads", lambda: clip_by_value(read_only_grads(), 1.0), ValueError, ["grads"],
     "NumPy's 'output array is read-only', which does not name grads"),
    ("clip_by_global_norm-read-only-grads", lambda: clip_by_global_norm(read_only_grads(), 1.0), ValueError,
     ["grads"], "NumPy's 'output array is read-only', which does not name grads"),
]


@pytest.mark.parametrize("call, error, words", [
    pytest.param(*row[1:4], id=row[0]) for row in TRAINER_GAPS + CLIP_GAPS])
def test_once_known_gaps_refuse_unusable_input_naming_it(call, error, words):
    """Each row's last entry says what happened before it was fixed."""
    with pytest.raises(error) as info:
        call()
    for word in words:
        assert word in str(info.value)
