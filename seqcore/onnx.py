"""Export of seqcore.nn models to ONNX, for serving without Python or seqcore.

    import seqcore.onnx
    seqcore.onnx.export(model, "model.onnx")                 # state in and out
    seqcore.onnx.export(model, "model.onnx", lengths=True)   # and a padded batch's lengths

Models: LanguageModel, SequenceClassifier, SequenceTagger, and the recurrent
layers RNN, LSTM, GRU alone (stacked, bidirectional, merge "concat" or
"sum", batch_first). Each layer is ONNX's own ``LSTM``, ``GRU`` or ``RNN``
operator (one per layer, both directions in it), with the gates reordered
(LSTM: seqcore's and PyTorch's i, f, g, o -> ONNX's i, o, f, c; GRU: r, z,
n -> z, r, h, with ``linear_before_reset=1``, seqcore's form) and the biases
laid out as ONNX wants them ([W_b, R_b] per direction); an RNN with
nonlinearity="relu" has the operator's activations ["Relu"]. An LSTM with a
projection (proj_size) is refused: ONNX's LSTM cannot project its output
inside the recurrence, and the Loop of one step's MatMuls that could would
run outside the runtimes' recurrent kernels. The rest is
Gather (embedding) or OneHot, MatMul + Add (the linear head), and for the
classifier its pooling. Dropout is the identity, as at inference.

The graph (opset 17, float32: what onnxruntime's recurrent operators run; a
float64 model's weights are written as float32), time-major as the models:

    inputs   x        (T, B) int64 ids, or (T, B, D) float32 features
                      ((B, T, D) for a batch_first layer)
             lengths  (B,) int64, each in [0, T]           (lengths=True only)
             h0       (num_layers·directions, B, H) float32  (state=True only;
             c0       LSTM only)                              zeros to start)
    outputs  y        logits (T, B, V) / (B, C) / (T, B, C), or the layer's y
             hN, cN   the final state, shaped as h0, c0     (state=True only)

T and B are dynamic. Outputs past a sequence's length are zeros and its
final state is that of its last real step, as seqcore's padded batches.

onnx is imported here only; ``import seqcore`` never loads this module.
"""

from __future__ import annotations

import json
import os
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .nn import GRU, LSTM, RNN, LanguageModel, SequenceClassifier, SequenceTagger
from .nn.recurrent import Recurrent, param_suffixes

__all__ = ["export", "OPSET"]

OPSET = 17
OP = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}
# ONNX's gate order, as indices into seqcore's (PyTorch's) blocks of H rows
GATE_ORDER = {"rnn": [0], "lstm": [0, 3, 1, 2], "gru": [1, 0, 2]}

Model = Union[LanguageModel, SequenceClassifier, SequenceTagger, RNN, LSTM, GRU]


class _Graph:
    """Nodes, initializers and a counter for fresh names."""

    def __init__(self) -> None:
        self.nodes: List[onnx.NodeProto] = []
        self.initializers: List[onnx.TensorProto] = []
        self._count = 0

    def name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, hint: str, array: np.ndarray) -> str:
        name = self.name(hint)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def op(self, op_type: str, inputs: Sequence[str], outputs: int = 1, **attrs) -> List[str]:
        names = [self.name(op_type.lower()) for _ in range(outputs)]
        self.nodes.append(helper.make_node(op_type, list(inputs), names, **attrs))
        return names

    def op1(self, op_type: str, inputs: Sequence[str], **attrs) -> str:
        return self.op(op_type, inputs, 1, **attrs)[0]


def _f32(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, dtype=np.float32)


def _onnx_weights(layer: Recurrent, index: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """W (dirs, G·H, D), R (dirs, G·H, H), B (dirs, 2·G·H) of layer ``index``
    in ONNX's gate order and bias layout."""
    p, H = layer.params, layer.hidden_size
    order = GATE_ORDER[layer.cell]
    rows = np.concatenate([np.arange(g * H, (g + 1) * H) for g in order])
    Ws, Rs, Bs = [], [], []
    for sfx in param_suffixes(index, layer.directions):
        Ws.append(p[f"weight_ih{sfx}"][rows])
        Rs.append(p[f"weight_hh{sfx}"][rows])
        Bs.append(np.concatenate([p[f"bias_ih{sfx}"][rows], p[f"bias_hh{sfx}"][rows]]))
    return _f32(np.stack(Ws)), _f32(np.stack(Rs)), _f32(np.stack(Bs))


def _recurrent(g: _Graph, layer: Recurrent, x: str, states: Sequence[str], seq_lens: str):
    """The stack over x (T, B, D): returns y (T, B, F) and the final states
    [hN(, cN)], each (layers·dirs, B, H); states: [h0(, c0)] names or []."""
    dirs, H = layer.directions, layer.hidden_size
    finals: List[List[str]] = [[] for _ in range(2 if layer.cell == "lstm" else 1)]
    nonempty = ""
    if seq_lens and states:  # onnxruntime gives zeros as an empty sequence's final state; seqcore, the initial one
        nonempty = g.op1("Unsqueeze", [g.op1("Greater", [seq_lens, g.const("zero", np.array(0, np.int32))]),
                                       g.const("axes", np.array([0, 2], np.int64))])         # (1, B, 1)
    inp = x
    for index in range(layer.num_layers):
        W, R, B = _onnx_weights(layer, index)
        inits = ["", ""]
        if states:
            starts, ends, axes = (g.const("i", np.array([v], np.int64)) for v in
                                  (index * dirs, (index + 1) * dirs, 0))
            inits = [g.op1("Slice", [s, starts, ends, axes]) for s in states] + [""]
        inputs = [inp, g.const("W", W), g.const("R", R), g.const("B", B), seq_lens, inits[0]]
        attrs = dict(hidden_size=H, direction="bidirectional" if dirs == 2 else "forward")
        if layer.cell == "rnn" and layer.nonlinearity == "relu":
            attrs["activations"] = ["Relu"] * dirs
        if layer.cell == "lstm":
            inputs.append(inits[1])
        if layer.cell == "gru":
            attrs["linear_before_reset"] = 1
        outs = g.op(OP[layer.cell], inputs, 3 if layer.cell == "lstm" else 2, **attrs)
        Y = outs[0]                                                           # (T, dirs, B, H)
        for k, final in enumerate(outs[1:]):                                 # (dirs, B, H)
            finals[k].append(g.op1("Where", [nonempty, final, inits[k]]) if nonempty else final)
        if dirs == 1:
            inp = g.op1("Squeeze", [Y, g.const("axes", np.array([1], np.int64))])
        elif layer.merge == "concat":                                         # (T, B, [fwd, rev] H)
            inp = g.op1("Reshape", [g.op1("Transpose", [Y], perm=[0, 2, 1, 3]),
                                    g.const("shape", np.array([0, 0, -1], np.int64))])
        else:
            inp = g.op1("ReduceSum", [Y, g.const("axes", np.array([1], np.int64))], keepdims=0)
    return inp, [f[0] if len(f) == 1 else g.op1("Concat", f, axis=0) for f in finals]


def _linear(g: _Graph, layer, x: str) -> str:
    """x (..., in) -> (..., out)."""
    y = g.op1("MatMul", [x, g.const("weight_t", _f32(layer.weight).T)])
    return y if layer.bias is None else g.op1("Add", [y, g.const("bias", _f32(layer.bias))])


def _real_steps(g: _Graph, x: str, lengths: str) -> str:
    """A bool (T, B) mask: step t < lengths[b]."""
    T = g.op1("Gather", [g.op1("Shape", [x]), g.const("zero", np.array(0, np.int64))])
    steps = g.op1("Range", [g.const("zero", np.array(0, np.int64)), T, g.const("one", np.array(1, np.int64))])
    return g.op1("Less", [g.op1("Unsqueeze", [steps, g.const("axes", np.array([1], np.int64))]),
                          g.op1("Unsqueeze", [lengths, g.const("axes", np.array([0], np.int64))])])


def _pool(g: _Graph, model: SequenceClassifier, y: str, finals: List[str], lengths: Optional[str]) -> str:
    """The classifier's features (B, F) from y (T, B, F) or the final state."""
    rnn, zero_axis = model.rnn, g.const("axes", np.array([0], np.int64))
    if model.pool == "last":  # the top layer's final h of each direction, concatenated
        L, dirs = rnn.num_layers, rnn.directions
        top = g.op1("Slice", [finals[0], g.const("i", np.array([(L - 1) * dirs], np.int64)),
                              g.const("i", np.array([L * dirs], np.int64)), zero_axis])   # (dirs, B, H)
        return g.op1("Reshape", [g.op1("Transpose", [top], perm=[1, 0, 2]),
                                 g.const("shape", np.array([0, -1], np.int64))])
    if lengths is None:
        return g.op1("ReduceMean" if model.pool == "mean" else "ReduceMax", [y], axes=[0], keepdims=0)
    real = g.op1("Unsqueeze", [_real_steps(g, y, lengths), g.const("axes", np.array([2], np.int64))])  # (T, B, 1)
    n = g.op1("Cast", [lengths], to=TensorProto.FLOAT)
    if model.pool == "mean":  # padded steps are zeros already; masked all the same
        total = g.op1("ReduceSum", [g.op1("Mul", [y, g.op1("Cast", [real], to=TensorProto.FLOAT)]), zero_axis],
                      keepdims=0)
        count = g.op1("Max", [n, g.const("one", np.array(1, np.float32))])
        return g.op1("Div", [total, g.op1("Unsqueeze", [count, g.const("axes", np.array([1], np.int64))])])
    best = g.op1("ReduceMax", [g.op1("Where", [real, y, g.const("ninf", np.array(-np.inf, np.float32))])],
                 axes=[0], keepdims=0)
    nonempty = g.op1("Unsqueeze", [g.op1("Greater", [lengths, g.const("zero", np.array(0, np.int64))]),
                                   g.const("axes", np.array([1], np.int64))])      # (B, 1)
    return g.op1("Where", [nonempty, best, g.const("zero", np.array(0, np.float32))])  # an empty sequence: zeros


def _value_info(name: str, elem: int, shape: Sequence[Union[int, str]]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, list(shape))


def build(model: Model, *, lengths: bool = False, state: bool = True, vocabulary=None) -> onnx.ModelProto:
    """The ONNX model of ``model`` (see the module doc), checked by onnx.checker."""
    if isinstance(model, Recurrent):
        rnn = model
    elif isinstance(model, (LanguageModel, SequenceClassifier, SequenceTagger)):
        rnn = model.rnn
    else:
        raise TypeError("model: expected a seqcore.nn LanguageModel, SequenceClassifier, SequenceTagger, RNN, LSTM "
                        f"or GRU, got {type(model).__name__}")
    if rnn.proj_size:
        raise ValueError(f"proj_size: an LSTM with a projection (proj_size={rnn.proj_size}) has no ONNX export: "
                         "ONNX's LSTM operator cannot project h inside the recurrence")
    for name, flag in (("lengths", lengths), ("state", state)):
        if not isinstance(flag, bool):
            raise TypeError(f"{name}: expected a bool, got {type(flag).__name__}")
    g = _Graph()
    F, I64 = TensorProto.FLOAT, TensorProto.INT64
    inputs, outputs = [], []
    batch_first = isinstance(model, Recurrent) and model.batch_first

    # the input -> x (T, B, D)
    if isinstance(model, Recurrent):
        D = model.input_size
        inputs.append(_value_info("x", F, ("B", "T", D) if batch_first else ("T", "B", D)))
        x = g.op1("Transpose", ["x"], perm=[1, 0, 2]) if batch_first else "x"
    elif model.embedding is not None:
        inputs.append(_value_info("x", I64, ("T", "B")))
        x = g.op1("Gather", [g.const("embedding", _f32(model.embedding.weight)), "x"])
    elif isinstance(model, LanguageModel):  # one-hot ids
        inputs.append(_value_info("x", I64, ("T", "B")))
        V = model.vocab_size
        x = g.op1("OneHot", ["x", g.const("depth", np.array(V, np.int64)),
                             g.const("values", np.array([0, 1], np.float32))], axis=-1)
    else:
        inputs.append(_value_info("x", F, ("T", "B", model.input_size)))
        x = "x"

    seq_lens = ""
    if lengths:
        inputs.append(_value_info("lengths", I64, ("B",)))
        seq_lens = g.op1("Cast", ["lengths"], to=TensorProto.INT32)
    state_names = ["h0", "c0"][: 2 if rnn.cell == "lstm" else 1] if state else []
    state_shape = (rnn.num_layers * rnn.directions, "B", rnn.hidden_size)
    inputs += [_value_info(s, F, state_shape) for s in state_names]

    y, finals = _recurrent(g, rnn, x, state_names, seq_lens)
    if isinstance(model, SequenceClassifier):
        y = _linear(g, model.head, _pool(g, model, y, finals, "lengths" if lengths else None))
        out_shape: Tuple = ("B", model.num_classes)
    elif isinstance(model, (LanguageModel, SequenceTagger)):
        y = _linear(g, model.head, y)
        out_shape = ("T", "B", model.vocab_size if isinstance(model, LanguageModel) else model.num_classes)
    elif batch_first:
        y = g.op1("Transpose", [y], perm=[1, 0, 2])
        out_shape = ("B", "T", rnn.output_size)
    else:
        out_shape = ("T", "B", rnn.output_size)
    g.nodes.append(helper.make_node("Identity", [y], ["y"]))
    outputs.append(_value_info("y", F, out_shape))
    if state:
        for name, final in zip(["hN", "cN"], finals):
            g.nodes.append(helper.make_node("Identity", [final], [name]))
            outputs.append(_value_info(name, F, state_shape))

    graph = helper.make_graph(g.nodes, f"seqcore_{type(model).__name__}", inputs, outputs, g.initializers)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="seqcore")
    if vocabulary is not None:  # seqcore.text.Vocabulary.from_dict(json.loads(...)) reads it back
        helper.set_model_props(proto, {"seqcore.vocabulary": json.dumps(vocabulary.to_dict())})
    onnx.checker.check_model(proto, full_check=True)
    return proto


def export(model: Model, path: Union[str, os.PathLike], *, lengths: bool = False, state: bool = True,
           vocabulary=None) -> onnx.ModelProto:
    """Writes ``model`` (a seqcore.nn LanguageModel, SequenceClassifier,
    SequenceTagger, RNN, LSTM or GRU) to ``path`` as an ONNX model; returns it.

    ``lengths``: the graph takes a padded batch's lengths (B,) int64, each in
    [0, T] (ONNX's sequence_lens). ``state``: the graph takes the initial state
    (h0, and c0 for LSTM; zeros to start) and returns the final one (hN, cN),
    so that a stream can be continued. ``vocabulary`` (a seqcore.text.Vocabulary),
    when given, is stored as JSON in the model's metadata under
    "seqcore.vocabulary", for whoever serves it to map text to ids and back.
    Inputs and outputs: the module doc."""
    proto = build(model, lengths=lengths, state=state, vocabulary=vocabulary)
    onnx.save(proto, os.fspath(path))
    return proto
