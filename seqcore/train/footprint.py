"""What training a model needs in memory, estimated before anything is
allocated, so that sizes that cannot fit are refused at once (with the
estimate, what is available and what to change) instead of after minutes
of building, or at the first step.

Three parts, in bytes of the model's dtype:

- parameters: the weights and their gradients (2 arrays a parameter);
- optimizer: its state (Adam's two moments, SGD's momentum buffer);
- step: one training step's activations and workspace when its backward
  starts: what every recurrent layer keeps for it and its output, the rest
  of the largest layer's forward workspace, the layers' input, the head's
  logits and their gradient.

It counts what is certainly allocated at once, not every temporary: a lower
bound of the need (tests/test_memory_limits.py checks it against the peak
memory of real steps), so that what it refuses cannot fit.
"""

from __future__ import annotations

from dataclasses import dataclass
import numpy as np

from .. import ops
from ..nn import SequenceClassifier
from ..nn.language_model import language_model_parameter_count
from ..nn.recurrent import GATES

HUGE = 2 ** 62  # bytes: a workspace the kernels' int64 count cannot hold


@dataclass(frozen=True)
class Footprint:
    parameters: int
    optimizer: int
    step: int

    @property
    def total(self) -> int:
        return self.parameters + self.optimizer + self.step


def recurrent_step_bytes(cell: str, input_size: int, hidden_size: int, num_layers: int, directions: int,
                         output_size: int, T: int, B: int, dtype, proj_size: int = 0) -> int:
    """One training step of a stacked recurrent layer over (T, B) inputs: what
    every layer and direction keeps from its forward for the backward (the
    states h, T·B·H, and for LSTM and GRU the gates, T·B·G·H, and c or h·W_hn,
    T·B·H) and every layer's output (T, B, output_size), all alive from the
    top layer's forward to its backward; plus the larger of what the top
    layer needs on top of that in its forward (the rest of its workspace as
    the kernels count it, ``ops.forward_workspace_bytes``) and in its
    backward (the gradient at its output, the gate gradients dG, T·B·G·H a
    direction, and dx). A lower bound of the peak: the lower layers' buffers,
    freed as they go, are not counted. An LSTM's projection (proj_size P)
    keeps h with P features and m = o ⊙ tanh(c), T·B·H, besides."""
    itemsize, G, H = np.dtype(dtype).itemsize, GATES[cell], hidden_size
    # one direction's: h, the gates (LSTM, GRU), c (LSTM) or h·W_hn (GRU); m with a projection
    kept = (T * B * (proj_size or H) + T * B * H * ((G + 1 if G > 1 else 0) + (1 if proj_size else 0))) * itemsize
    D_top = input_size if num_layers == 1 else output_size
    try:
        forward_rest = ops.forward_workspace_bytes(cell, T, B, D_top, H, train=True, dtype=dtype,
                                                   proj_size=proj_size) - kept
    except ValueError:  # sizes beyond any machine
        return HUGE
    backward = directions * T * B * (G * H + D_top) * itemsize + T * B * output_size * itemsize  # and dy
    return (num_layers * (directions * kept + T * B * output_size * itemsize)
            + max(directions * forward_rest, backward, 0))


def head_step_bytes(input_size: int, classes: int, T: int, B: int, per_step: bool, dtype) -> int:
    """The recurrent layer's input (T, B, input_size: embedded, one-hot or
    features) and the head's logits and their gradient (per step, or per
    sequence for a classifier)."""
    rows = T * B if per_step else B
    return (T * B * input_size + 2 * rows * classes) * np.dtype(dtype).itemsize


def language_model_footprint(vocab_size: int, embed_size: int, hidden_size: int, num_layers: int, cell: str,
                             dtype, seq_len: int, batch_size: int, optimizer_buffers: int) -> Footprint:
    """A LanguageModel of these (checked) sizes, trained on (seq_len, batch_size)
    batches, before it is built. ``optimizer_buffers``: arrays the size of a
    parameter the optimizer keeps for each (Adam 2)."""
    itemsize = np.dtype(dtype).itemsize
    count = language_model_parameter_count(vocab_size, embed_size, hidden_size, num_layers, cell)
    D, T, B = embed_size or vocab_size, seq_len, batch_size
    step = (recurrent_step_bytes(cell, D, hidden_size, num_layers, 1, hidden_size, T, B, dtype)
            + head_step_bytes(D, vocab_size, T, B, True, dtype))
    return Footprint(2 * count * itemsize, optimizer_buffers * count * itemsize, step)


def step_bytes(model, T: int, B: int) -> int:
    """One training step of a built model (a LanguageModel, SequenceClassifier
    or SequenceTagger) on (T, B) batches, a lower bound."""
    rnn = model.rnn
    return (recurrent_step_bytes(rnn.cell, rnn.input_size, rnn.hidden_size, rnn.num_layers, rnn.directions,
                                 rnn.output_size, T, B, rnn.dtype, rnn.proj_size)
            + head_step_bytes(rnn.input_size, model.head.out_features, T, B,
                              not isinstance(model, SequenceClassifier), rnn.dtype))
