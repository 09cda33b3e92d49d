"""A language model over token ids: embedding (or one-hot) → stacked RNN, LSTM
or GRU → dropout → linear to the vocabulary, at every step.

It knows nothing of text: ids in, next-token logits out. Trained with
teacher forcing (step t sees the true token t-1 and predicts token t), and
stepped one token at a time with the state carried for sampling.
"""

from __future__ import annotations

from typing import Any, Dict, Iterator, Optional, Tuple

import numpy as np

from .. import memory, ops
from .layers import Dropout, Embedding, Linear, check_dtype, check_size
from .module import Layer
from .recurrent import GRU, LSTM, RNN, parameter_count
from .stepper import Stepper

RECURRENT = {"rnn": RNN, "lstm": LSTM, "gru": GRU}


class RecurrentNetwork(Layer):
    """What the models share: children "embedding" (when ids go through
    one), "rnn" and "head", for parameter names; ``config()``."""

    embedding: Optional[Embedding]
    rnn: Layer
    head: Linear
    _config: Dict[str, Any]

    def config(self) -> Dict[str, Any]:
        """The constructor's arguments (JSON-ready), to build the same model again
        (``precision`` as it is now)."""
        return dict(self._config, precision=self.precision)

    @property
    def precision(self) -> str:
        """The precision of the recurrent layer's and the head's products,
        "fp32", "bf16" or, for inference, "int8" (float32 models; see
        seqcore.ops: the recurrent layers in int8, the head in float32); may
        be changed between calls: train in "fp32" or "bf16", then set "int8"
        to serve."""
        return self.rnn.precision

    @precision.setter
    def precision(self, value) -> None:
        value = ops.check_precision(value, self.dtype)
        self.rnn.precision = self.head.precision = value

    def children(self) -> Iterator[Tuple[str, Layer]]:
        if self.embedding is not None:
            yield "embedding", self.embedding
        yield "rnn", self.rnn
        yield "head", self.head


class LanguageModel(RecurrentNetwork):
    """ids (T, B) -> logits (T, B, vocab_size).

    embed_size=0 feeds one-hot vectors (the textbook path; the recurrent
    layer's input size is then vocab_size). Children, for parameter names:
    "embedding" (unless one-hot), "rnn", "head". precision: see
    RecurrentNetwork.precision.
    """

    def __init__(self, vocab_size: int, embed_size: int = 64, hidden_size: int = 256, num_layers: int = 2,
                 cell: str = "lstm", dropout: float = 0.0, dtype=np.float32, seed: Optional[int] = None,
                 precision: str = "fp32") -> None:
        super().__init__()
        if cell not in RECURRENT:
            raise ValueError(f"cell: expected one of {sorted(RECURRENT)}, got {cell!r}")
        if isinstance(embed_size, bool) or not isinstance(embed_size, (int, np.integer)) or embed_size < 0:
            raise ValueError(f"embed_size: expected an int >= 0 (0: one-hot input), got {embed_size!r}")
        vocab_size = check_size("vocab_size", vocab_size)
        H, L, E = check_size("hidden_size", hidden_size), check_size("num_layers", num_layers), int(embed_size)
        require_memory(self, dict(vocab_size=vocab_size, embed_size=E, hidden_size=H, num_layers=L),
                       language_model_parameter_count(vocab_size, E, H, L, cell), dtype,
                       "make embed_size, hidden_size or num_layers smaller")
        seeds = np.random.SeedSequence(seed).spawn(4)
        self.embedding = (Embedding(vocab_size, embed_size, dtype=dtype, seed=int_seed(seeds[0]))
                          if embed_size > 0 else None)
        self.rnn = RECURRENT[cell](embed_size or vocab_size, hidden_size, num_layers=num_layers,
                                   dropout=dropout, dtype=dtype, seed=int_seed(seeds[1]), precision=precision)
        self.dropout = Dropout(dropout, seed=int_seed(seeds[2]))
        self.head = Linear(hidden_size, vocab_size, dtype=dtype, seed=int_seed(seeds[3]), precision=precision)
        self.vocab_size, self.dtype = vocab_size, self.rnn.dtype
        # from the checked sizes (the layers check them, naming each)
        self._config = dict(vocab_size=vocab_size, embed_size=int(embed_size), hidden_size=self.rnn.hidden_size,
                            num_layers=self.rnn.num_layers, cell=cell, dropout=self.rnn.dropout,
                            dtype=self.dtype.name)

    def _inputs(self, ids, train: bool) -> np.ndarray:
        ids = np.asarray(ids)
        if ids.ndim != 2:
            raise ValueError(f"ids: expected shape (T, B), got {ids.shape}")
        if self.embedding is not None:
            return self.embedding.forward(ids, train=train)
        if ids.dtype.kind not in "iu":
            raise TypeError(f"ids: expected integers, got dtype {ids.dtype}")
        if ids.size and (ids.min() < 0 or ids.max() >= self.vocab_size):
            raise ValueError(f"ids: expected values in [0, {self.vocab_size}), got [{ids.min()}, {ids.max()}]")
        return np.eye(self.vocab_size, dtype=self.dtype)[ids]  # one-hot (T, B, V)

    def forward(self, ids, state=None, train: bool = True, lengths=None):
        """ids (T, B) integers; state: the recurrent layer's (None: zeros).
        Returns (logits (T, B, V), state)."""
        x = self._inputs(ids, train)
        y, state = self.rnn.forward(x, state, train=train, lengths=lengths)
        return self.head.forward(self.dropout.forward(y, train=train), train=train), state

    def stepper(self, batch_size: int = 1, num_threads: Optional[int] = 1,
                precision: Optional[str] = None) -> "Stepper":
        """This model prepared for generation, ``batch_size`` rows one token at
        a time: weights copied and packed once, one native call a token (see
        seqcore.nn.stepper); num_threads: the most threads of a step;
        precision: the products' ("fp32", "bf16" or "int8"; None: the model's)."""
        return Stepper(self, batch_size, num_threads, precision)

    def backward(self, dlogits: np.ndarray, dstate=None) -> None:
        """dlogits (T, B, V); dstate: gradient at the returned state or None.
        Accumulates into grads."""
        dy = self.dropout.backward(self.head.backward(dlogits))
        dx = self.rnn.backward(dy, dstate)
        if self.embedding is not None:
            self.embedding.backward(dx)


def language_model_parameter_count(vocab_size: int, embed_size: int, hidden_size: int, num_layers: int,
                                   cell: str) -> int:
    """The parameters of a LanguageModel of these (checked) sizes: embedding
    (none for one-hot), recurrent layers, head."""
    return (vocab_size * embed_size + parameter_count(cell, embed_size or vocab_size, hidden_size, num_layers)
            + (hidden_size + 1) * vocab_size)


def require_memory(model: Layer, sizes: Dict[str, int], count: int, dtype, advice: str) -> None:
    """Before a model builds its layers: MemoryError unless ``count``
    parameters fit in the memory available (so a model too large fails at
    once, not after building its first layers). Their gradients are not
    counted: zeros whose pages are not touched until a backward writes them."""
    args = ", ".join(f"{k}={v}" for k, v in sizes.items())
    memory.require(count * check_dtype(dtype).itemsize, f"{type(model).__name__}({args})'s parameters", advice)


def int_seed(seed_sequence: np.random.SeedSequence) -> int:
    """An int seed drawn from ``seed_sequence``: what a model gives each of its layers."""
    return int(seed_sequence.generate_state(1)[0])
