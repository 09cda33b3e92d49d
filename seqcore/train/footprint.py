"""What training a model needs in memory, estimated before anything is
allocated, so that sizes that cannot fit are refused at once (with the
estimate, what is available and what to change) instead of after minutes
of building, or at the first step.

Three parts, in bytes of the model's dtype:

- parameters: the weights and their gradients (2 arrays a parameter);
- optimizer: its state (Adam's two moments, SGD's momentum buffer);
- step: one training step's activations and workspace: every recurrent
  layer's and direction's forward workspace as the kernels count it
  (``ops.forward_workspace_bytes``, what backward keeps included), its
  outputs, the gate gradients and the input gradient of its backward; the
  embedding's output; the head's logits, probabilities and their gradient.

It counts what is certainly allocated, not every temporary: a lower bound
of the need, so that what it refuses cannot fit.
"""

from __future__ import annotations

from dataclasses import dataclass
import numpy as np

from .. import ops
from ..nn import SequenceClassifier
from ..nn.recurrent import GATES, parameter_count

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
                         output_size: int, T: int, B: int, dtype) -> int:
    """One training step of a stacked recurrent layer over (T, B) inputs."""
    itemsize, G, H = np.dtype(dtype).itemsize, GATES[cell], hidden_size

    def layer(D: int) -> int:
        try:
            workspace = ops.forward_workspace_bytes(cell, T, B, D, H, train=True, dtype=dtype)
        except ValueError:  # sizes beyond any machine
            return HUGE
        # per direction: forward workspace, y (T, B, H), dG (T, B, G·H), dx (T, B, D);
        # per layer: the merged output and its gradient (T, B, output_size)
        return directions * (workspace + T * B * (H + G * H + D) * itemsize) + 2 * T * B * output_size * itemsize

    # layers past the first are alike: no loop over a mistyped 10⁸ layers
    return layer(input_size) + (num_layers - 1) * (layer(output_size) if num_layers > 1 else 0)


def language_model_footprint(vocab_size: int, embed_size: int, hidden_size: int, num_layers: int, cell: str,
                             dtype, seq_len: int, batch_size: int, optimizer_buffers: int) -> Footprint:
    """A LanguageModel of these (checked) sizes, trained on (seq_len, batch_size)
    batches, before it is built. ``optimizer_buffers``: arrays the size of a
    parameter the optimizer keeps for each (Adam 2)."""
    itemsize = np.dtype(dtype).itemsize
    D = embed_size or vocab_size
    count = vocab_size * embed_size + parameter_count(cell, D, hidden_size, num_layers) + (hidden_size + 1) * vocab_size
    T, B = seq_len, batch_size
    step = (recurrent_step_bytes(cell, D, hidden_size, num_layers, 1, hidden_size, T, B, dtype)
            + T * B * (D + 3 * vocab_size) * itemsize)
    return Footprint(2 * count * itemsize, optimizer_buffers * count * itemsize, step)


def step_bytes(model, T: int, B: int) -> int:
    """One training step of a built model (a LanguageModel, SequenceClassifier
    or SequenceTagger) on (T, B) batches: its recurrent layer, its input (T, B,
    input_size: embedded, one-hot or features) and its head's logits (per
    step, or per sequence for a classifier)."""
    rnn = model.rnn
    steps = 1 if isinstance(model, SequenceClassifier) else T
    return (recurrent_step_bytes(rnn.cell, rnn.input_size, rnn.hidden_size, rnn.num_layers, rnn.directions,
                                 rnn.output_size, T, B, rnn.dtype)
            + (T * B * rnn.input_size + 3 * steps * B * model.head.out_features) * rnn.dtype.itemsize)
