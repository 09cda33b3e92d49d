"""seqcore.onnx.export: the exported graphs run in onnxruntime and give
seqcore's outputs and final states (oracle: seqcore's own inference forward,
float32, within 1e-5 relative). Skipped when onnx or onnxruntime is missing."""

import json

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
import seqcore.onnx  # noqa: E402  (needs onnx)

from seqcore import cli  # noqa: E402
from seqcore.nn import GRU, LSTM, RNN, LanguageModel, SequenceClassifier, SequenceTagger  # noqa: E402
from seqcore.text import Vocabulary  # noqa: E402
from seqcore.train import load_checkpoint  # noqa: E402

LAYERS = {"lstm": LSTM, "gru": GRU, "rnn": RNN}
TOL = 1e-5
T, B = 7, 5
LENGTHS = np.array([7, 2, 0, 5, 7])  # ties, an empty sequence


def session(model, **options):
    proto = seqcore.onnx.build(model, **options)
    return ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])


def max_relative(a, b):
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-30))


def check(got, expected):
    """got, expected: name -> array; every one within TOL."""
    worst = {k: max_relative(got[k], expected[k]) for k in expected}
    for k in expected:
        assert got[k].shape == expected[k].shape, k
    print(" ".join(f"{k} {v:.1e}" for k, v in worst.items()))
    assert max(worst.values()) <= TOL, worst


def random_state(rnn, batch, seed=1):
    rng = np.random.default_rng(seed)
    shape = (rnn.num_layers * rnn.directions, batch, rnn.hidden_size)
    h0 = rng.standard_normal(shape).astype(np.float32)
    if rnn.cell != "lstm":
        return h0, {"h0": h0}
    c0 = rng.standard_normal(shape).astype(np.float32)
    return (h0, c0), {"h0": h0, "c0": c0}


def named(y, final, cell):
    out = {"y": y, "hN": final[0] if cell == "lstm" else final}
    if cell == "lstm":
        out["cN"] = final[1]
    return out


# ---------------------------------------------------------------------------
# the recurrent layers


@pytest.mark.parametrize("lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("config", [dict(num_layers=1), dict(num_layers=2, bidirectional=True),
                                    dict(num_layers=2, bidirectional=True, merge="sum"),
                                    dict(num_layers=3, batch_first=True)],
                         ids=["L1", "L2-bi", "L2-bi-sum", "L3-batch_first"])
@pytest.mark.parametrize("cell", list(LAYERS))
def test_recurrent_layers_match_seqcore(cell, config, lengths):
    layer = LAYERS[cell](4, 6, seed=3, **config)
    x = np.random.default_rng(0).standard_normal((B, T, 4) if layer.batch_first else (T, B, 4)).astype(np.float32)
    state, feeds = random_state(layer, B)
    y, final = layer.forward(x, state, train=False, lengths=LENGTHS if lengths else None)
    feeds["x"] = x
    if lengths:
        feeds["lengths"] = LENGTHS
    sess = session(layer, lengths=lengths)
    got = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))
    check(got, named(y, final, cell))


@pytest.mark.parametrize("cell", list(LAYERS))
def test_the_graph_uses_onnxs_recurrent_operators(cell):
    proto = seqcore.onnx.build(LAYERS[cell](3, 4, num_layers=2, bidirectional=True))
    ops = [n for n in proto.graph.node if n.op_type == cell.upper()]
    assert len(ops) == 2
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in ops[0].attribute}
    assert attrs["direction"] == b"bidirectional" and attrs["hidden_size"] == 4
    if cell == "gru":
        assert attrs["linear_before_reset"] == 1
    assert proto.opset_import[0].version == seqcore.onnx.OPSET


def test_without_state_the_graph_starts_from_zeros_and_returns_y_alone():
    layer = LSTM(3, 4, num_layers=2)
    x = np.random.default_rng(0).standard_normal((T, B, 3)).astype(np.float32)
    sess = session(layer, state=False)
    assert [i.name for i in sess.get_inputs()] == ["x"] and [o.name for o in sess.get_outputs()] == ["y"]
    check({"y": sess.run(None, {"x": x})[0]}, {"y": layer.forward(x, train=False)[0]})


def test_time_and_batch_are_dynamic():
    layer = GRU(3, 4, bidirectional=True)
    sess = session(layer)
    for t, b in [(1, 1), (9, 2), (3, 17)]:
        x = np.random.default_rng(t).standard_normal((t, b, 3)).astype(np.float32)
        h0 = np.zeros((2, b, 4), np.float32)
        y, h = layer.forward(x, h0, train=False)
        got = sess.run(None, {"x": x, "h0": h0})
        check({"y": got[0], "hN": got[1]}, {"y": y, "hN": h})


def test_a_float64_layer_is_written_in_float32():
    layer = LSTM(3, 4, dtype=np.float64, seed=1)
    x = np.random.default_rng(0).standard_normal((T, B, 3))
    y = layer.forward(x, train=False)[0]
    got = session(layer, state=False).run(None, {"x": x.astype(np.float32)})[0]
    check({"y": got}, {"y": y})


# ---------------------------------------------------------------------------
# the models


@pytest.mark.parametrize("embed_size", [8, 0], ids=["embedding", "one-hot"])
@pytest.mark.parametrize("cell", list(LAYERS))
def test_a_language_model_continues_a_stream_as_seqcore(cell, embed_size):
    """Two chunks through onnxruntime, the state carried from one to the next,
    give seqcore's logits over the whole stream."""
    model = LanguageModel(11, embed_size=embed_size, hidden_size=6, num_layers=2, cell=cell, seed=2)
    ids = np.random.default_rng(0).integers(0, 11, (12, 3))
    logits, final = model.forward(ids, train=False)
    sess = session(model)
    state = {"h0": np.zeros((2, 3, 6), np.float32)}
    if cell == "lstm":
        state["c0"] = np.zeros((2, 3, 6), np.float32)
    chunks = []
    for part in (ids[:5], ids[5:]):
        out = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"x": part, **state})))
        chunks.append(out["y"])
        state = {"h0": out["hN"], **({"c0": out["cN"]} if cell == "lstm" else {})}
    got = {"y": np.concatenate(chunks), "hN": state["h0"], **({"cN": state["c0"]} if cell == "lstm" else {})}
    check(got, named(logits, final, cell))


@pytest.mark.parametrize("lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("pool", ["last", "mean", "max"])
@pytest.mark.parametrize("ids", [True, False], ids=["ids", "features"])
def test_a_sequence_classifier_matches_seqcore(ids, pool, lengths):
    kwargs = dict(vocab_size=13, embed_size=5) if ids else dict(input_size=4)
    model = SequenceClassifier(3, pool=pool, hidden_size=6, num_layers=2, bidirectional=True, cell="gru", seed=4,
                               **kwargs)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 13, (T, B)) if ids else rng.standard_normal((T, B, 4)).astype(np.float32)
    n = LENGTHS if lengths else None
    logits, final = model.forward(x, train=False, lengths=n)
    feeds = {"x": x, "h0": np.zeros((4, B, 6), np.float32)}
    if lengths:
        feeds["lengths"] = n
    got = session(model, lengths=lengths).run(None, feeds)
    check({"y": got[0], "hN": got[1]}, {"y": logits, "hN": final})


@pytest.mark.parametrize("lengths", [False, True], ids=["full", "lengths"])
def test_a_sequence_tagger_matches_seqcore(lengths):
    model = SequenceTagger(4, vocab_size=9, embed_size=5, hidden_size=6, num_layers=2, bidirectional=True,
                           cell="lstm", seed=5)
    x = np.random.default_rng(0).integers(0, 9, (T, B))
    state, feeds = random_state(model.rnn, B)
    logits, final = model.forward(x, state, train=False, lengths=LENGTHS if lengths else None)
    feeds["x"] = x
    if lengths:
        feeds["lengths"] = LENGTHS
    sess = session(model, lengths=lengths)
    got = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))
    check(got, named(logits, final, "lstm"))


def test_export_writes_a_file_that_onnx_checker_passes(tmp_path):
    model = LanguageModel(7, embed_size=4, hidden_size=5, num_layers=2, cell="lstm", seed=0)
    path = tmp_path / "model.onnx"
    proto = seqcore.onnx.export(model, path, lengths=True)
    loaded = onnx.load(str(path))
    onnx.checker.check_model(loaded, full_check=True)
    assert loaded == proto
    assert [i.name for i in loaded.graph.input] == ["x", "lengths", "h0", "c0"]
    assert [o.name for o in loaded.graph.output] == ["y", "hN", "cN"]
    dims = [d.dim_param or d.dim_value for d in loaded.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["T", "B"]


def test_what_cannot_be_exported_is_refused():
    with pytest.raises(TypeError, match="model: expected a seqcore.nn LanguageModel"):
        seqcore.onnx.build(object())
    with pytest.raises(TypeError, match="lengths: expected a bool"):
        seqcore.onnx.build(GRU(2, 3), lengths=1)


# ---------------------------------------------------------------------------
# seqcore export RUN OUTPUT


def test_the_command_line_exports_a_trained_run(tmp_path, capsys):
    """seqcore train, then seqcore export: the file gives the checkpoint's
    logits and state in onnxruntime, and carries the vocabulary."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the quick brown fox jumps over the lazy dog\n" * 60, encoding="utf-8")
    run, output = tmp_path / "run", tmp_path / "model.onnx"
    assert cli.main(["train", str(corpus), "--embed", "8", "--hidden", "12", "--layers", "2", "--batch", "4",
                     "--seq-len", "16", "--steps", "3", "--threads", "1", "--quiet", "--sample-length", "0",
                     "--out", str(run)]) == 0
    assert cli.main(["export", str(run), str(output)]) == 0
    assert f"wrote {output}: LanguageModel, inputs x, h0, c0, outputs y, hN, cN" in capsys.readouterr().out
    ckpt = load_checkpoint(run / "checkpoint")
    proto = onnx.load(str(output))
    onnx.checker.check_model(proto, full_check=True)
    meta = {p.key: p.value for p in proto.metadata_props}
    assert Vocabulary.from_dict(json.loads(meta["seqcore.vocabulary"])) == ckpt.vocab
    ids = ckpt.vocab.encode("the lazy dog")[:, None]
    logits, (h, c) = ckpt.model.forward(ids, train=False)
    zeros = np.zeros((2, 1, 12), np.float32)
    got = ort.InferenceSession(str(output)).run(None, {"x": ids.astype(np.int64), "h0": zeros, "c0": zeros})
    check({"y": got[0], "hN": got[1], "cN": got[2]}, {"y": logits, "hN": h, "cN": c})


def test_the_command_line_export_options_and_a_bad_output(tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("abcabcabd\n" * 100, encoding="utf-8")
    run = tmp_path / "run"
    assert cli.main(["train", str(corpus), "--embed", "4", "--hidden", "6", "--batch", "2", "--seq-len", "8",
                     "--steps", "1", "--threads", "1", "--quiet", "--sample-length", "0", "--out", str(run)]) == 0
    assert cli.main(["export", str(run), str(tmp_path / "m.onnx"), "--lengths", "--no-state"]) == 0
    assert "inputs x, lengths, outputs y" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        cli.main(["export", str(run), str(tmp_path / "missing" / "m.onnx")])
    assert e.value.code == 2 and "OUTPUT: expected a file path in an existing directory" in capsys.readouterr().err
