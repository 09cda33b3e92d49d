"""ONNX export of the relu RNN (ONNX's RNN with activations ["Relu"]) run in
onnxruntime against seqcore, and the refusal of an LSTM with a projection
(naming proj_size). Skipped without onnx and onnxruntime."""

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
import seqcore.onnx  # noqa: E402  (needs onnx)

from seqcore.nn import LSTM, RNN, LanguageModel  # noqa: E402

T, B = 7, 5
LENGTHS = np.array([7, 2, 0, 5, 7])


@pytest.mark.parametrize("lengths", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("config", [dict(num_layers=1), dict(num_layers=2, bidirectional=True),
                                    dict(num_layers=2, bidirectional=True, merge="sum")],
                         ids=["L1", "L2-bi", "L2-bi-sum"])
def test_relu_rnn_runs_in_onnxruntime_as_in_seqcore(config, lengths):
    layer = RNN(4, 6, nonlinearity="relu", seed=3, **config)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T, B, 4)).astype(np.float32)
    h0 = rng.standard_normal((layer.num_layers * layer.directions, B, 6)).astype(np.float32)
    y, hN = layer.forward(x, h0, train=False, lengths=LENGTHS if lengths else None)
    assert (y == 0).any() and y.max() > 1  # relu, not tanh
    proto = seqcore.onnx.build(layer, lengths=lengths)
    rnn_ops = [n for n in proto.graph.node if n.op_type == "RNN"]
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in rnn_ops[0].attribute}
    assert attrs["activations"] == [b"Relu"] * layer.directions
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {"x": x, "h0": h0}
    if lengths:
        feeds["lengths"] = LENGTHS
    got = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))
    for name, expected in (("y", y), ("hN", hN)):
        assert got[name].shape == expected.shape
        np.testing.assert_allclose(got[name], expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())


def test_a_projected_lstm_is_refused_naming_proj_size():
    with pytest.raises(ValueError, match="^proj_size: an LSTM with a projection"):
        seqcore.onnx.build(LSTM(4, 6, proj_size=3))


def test_the_tanh_rnn_keeps_onnxs_default_activations():
    proto = seqcore.onnx.build(RNN(3, 4))
    node = [n for n in proto.graph.node if n.op_type == "RNN"][0]
    assert "activations" not in {a.name for a in node.attribute}
