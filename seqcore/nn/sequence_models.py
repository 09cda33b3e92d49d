"""Models that label sequences, as the Trainer trains them:

- ``SequenceClassifier`` (many-to-one): one label per sequence, read from the
  recurrent layer's final state (``pool="last"``: each direction's state at
  the end of its own pass, at each sequence's own last step) or from its
  outputs pooled over the real steps (``"mean"``, ``"max"``);
- ``SequenceTagger`` (many-to-many, Tx = Ty): one label per step.

Both: input -> stacked, optionally bidirectional RNN/LSTM/GRU over the padded
batch (``lengths=``) -> dropout -> Linear to ``num_classes`` logits. The input
is token ids (T, B) through an Embedding when ``vocab_size`` is given, or
feature vectors (T, B, input_size) as they are otherwise. Time-major, as the
recurrent layers. What fills the padding does not matter: ``lengths`` keeps
it out of the states, the outputs and the pooling.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from .language_model import RECURRENT, RecurrentNetwork, int_seed, require_memory
from .layers import Dropout, Embedding, Linear, check_size
from .recurrent import parameter_count

POOLS = ("last", "mean", "max")


class _Labeler(RecurrentNetwork):
    """The body both models share: input, recurrent layer, dropout, head."""

    def __init__(self, num_classes: int, vocab_size: Optional[int] = None, input_size: Optional[int] = None,
                 embed_size: int = 64, hidden_size: int = 128, num_layers: int = 1, cell: str = "lstm",
                 bidirectional: bool = False, dropout: float = 0.0, dtype=np.float32,
                 seed: Optional[int] = None, precision: str = "fp32") -> None:
        super().__init__()
        if cell not in RECURRENT:
            raise ValueError(f"cell: expected one of {sorted(RECURRENT)}, got {cell!r}")
        if (vocab_size is None) == (input_size is None):
            raise ValueError(f"vocab_size, input_size: give one of them (token ids or feature vectors), "
                             f"got vocab_size={vocab_size!r}, input_size={input_size!r}")
        self.num_classes = check_size("num_classes", num_classes)
        self.vocab_size = None if vocab_size is None else check_size("vocab_size", vocab_size)
        self.input_size = None if input_size is None else check_size("input_size", input_size)
        embed_size = check_size("embed_size", embed_size)
        H, L = check_size("hidden_size", hidden_size), check_size("num_layers", num_layers)
        D = embed_size if self.vocab_size is not None else self.input_size
        rnn_out = H * (2 if bidirectional else 1)
        require_memory(self, dict(num_classes=self.num_classes, vocab_size=self.vocab_size, input_size=self.input_size,
                                  embed_size=embed_size, hidden_size=H, num_layers=L),
                       (self.vocab_size or 0) * embed_size + parameter_count(cell, D, H, L, bool(bidirectional))
                       + (rnn_out + 1) * self.num_classes, dtype,
                       "make hidden_size, num_layers, embed_size or input_size smaller")
        seeds = np.random.SeedSequence(seed).spawn(4)
        self.embedding = (Embedding(self.vocab_size, embed_size, dtype=dtype, seed=int_seed(seeds[0]))
                          if self.vocab_size is not None else None)
        self.rnn = RECURRENT[cell](embed_size if self.embedding is not None else self.input_size, hidden_size,
                                   num_layers=num_layers, bidirectional=bidirectional, dropout=dropout,
                                   dtype=dtype, seed=int_seed(seeds[1]), precision=precision)
        self.dropout = Dropout(dropout, seed=int_seed(seeds[2]))
        self.head = Linear(self.rnn.output_size, self.num_classes, dtype=dtype, seed=int_seed(seeds[3]),
                           precision=precision)
        self.dtype = self.rnn.dtype
        # from the checked sizes (the layers check them, naming each)
        rnn = self.rnn
        self._config = dict(num_classes=self.num_classes, vocab_size=self.vocab_size, input_size=self.input_size,
                            embed_size=embed_size, hidden_size=rnn.hidden_size, num_layers=rnn.num_layers,
                            cell=cell, bidirectional=rnn.bidirectional, dropout=rnn.dropout, dtype=self.dtype.name)

    def _encode(self, x, state, train: bool, lengths):
        """x -> the recurrent layer's (y (T, B, F), state)."""
        if self.embedding is not None:
            ids = np.asarray(x)
            if ids.ndim != 2:
                raise ValueError(f"x: expected token ids of shape (T, B), got {ids.shape}")
            x = self.embedding.forward(ids, train=train)
        return self.rnn.forward(x, state, train=train, lengths=lengths)

    def _decode(self, dy: np.ndarray, dstate) -> Optional[np.ndarray]:
        """The gradient at the recurrent layer's outputs and state -> dx
        (feature input) or None (ids: the embedding takes it)."""
        dx = self.rnn.backward(dy, dstate)
        if self.embedding is None:
            return dx
        self.embedding.backward(dx)
        return None


class SequenceClassifier(_Labeler):
    """x (T, B) ids or (T, B, input_size) features, lengths (B,) -> logits
    (B, num_classes): one label per sequence (see the module doc).

    ``pool``: "last" (the top layer's final state of each direction,
    concatenated), "mean" or "max" (of the outputs over each sequence's real
    steps). Children, for parameter names: "embedding" (ids only), "rnn",
    "head".
    """

    def __init__(self, num_classes: int, vocab_size: Optional[int] = None, input_size: Optional[int] = None,
                 pool: str = "last", **kwargs) -> None:
        if pool not in POOLS:
            raise ValueError(f"pool: expected one of {POOLS}, got {pool!r}")
        super().__init__(num_classes, vocab_size, input_size, **kwargs)
        self.pool = pool
        self._config["pool"] = pool
        self._saved: Optional[tuple] = None

    def forward(self, x, state=None, train: bool = True, lengths=None):
        """x: ids (T, B) integers (with ``vocab_size``) or features (T, B,
        input_size); state: the recurrent layer's, or None for zeros; lengths:
        B sequence lengths of a padded batch (None: all T). Returns (logits
        (B, num_classes), the recurrent layer's final state)."""
        y, final = self._encode(x, state, train, lengths)
        T, B, F = y.shape
        n = np.full(B, T, np.int64) if lengths is None else np.asarray(lengths, np.int64)
        argmax = None
        if self.pool == "last":
            h = final[0] if isinstance(final, tuple) else final     # (layers·dirs, B, H)
            feats = np.concatenate(list(h[-self.rnn.directions:]), axis=1)  # (B, dirs·H), y's feature order
        elif self.pool == "mean":
            # padded steps output zeros: the sum over T is the sum over the real steps
            feats = y.sum(axis=0) / np.maximum(n, 1)[:, None].astype(y.dtype)
        else:
            real = np.arange(T)[:, None] < n[None, :]                 # (T, B)
            argmax = np.where(real[:, :, None], y, -np.inf).argmax(axis=0) if T else np.zeros((B, F), np.int64)
            feats = np.take_along_axis(y, argmax[None], axis=0)[0] if T else np.zeros((B, F), y.dtype)
            feats = np.where((n > 0)[:, None], feats, 0).astype(y.dtype)  # an empty sequence pools to zeros
        self._saved = (y.shape, n, argmax, isinstance(final, tuple)) if train else None
        logits = self.head.forward(self.dropout.forward(feats, train=train), train=train)
        return logits, final

    def backward(self, dlogits: np.ndarray, dstate=None) -> Optional[np.ndarray]:
        """dlogits (B, num_classes); dstate: gradient at the returned state or
        None. Accumulates into grads; returns dx for feature input (None for ids)."""
        if self._saved is None:
            raise RuntimeError("backward: call forward(train=True) first")
        (T, B, F), n, argmax, lstm = self._saved
        self._saved = None
        dfeats = self.dropout.backward(self.head.backward(dlogits))  # (B, F)
        dy = np.zeros((T, B, F), dfeats.dtype)
        if self.pool == "last":
            H, dirs = self.rnn.hidden_size, self.rnn.directions
            dh = np.zeros((self.rnn.num_layers * dirs, B, H), dfeats.dtype)
            dh[-dirs:] = np.stack(np.split(dfeats, dirs, axis=1))
            if dstate is not None:
                dh += dstate[0] if lstm else dstate
            dstate = (dh, np.zeros_like(dh) if dstate is None else dstate[1]) if lstm else dh
        elif self.pool == "mean":
            real = (np.arange(T)[:, None] < n[None, :])[:, :, None]
            dy[...] = np.where(real, dfeats / np.maximum(n, 1)[:, None].astype(dfeats.dtype), 0)
        elif T:
            np.put_along_axis(dy, argmax[None], np.where((n > 0)[:, None], dfeats, 0)[None], axis=0)
        return self._decode(dy, dstate)


class SequenceTagger(_Labeler):
    """x (T, B) ids or (T, B, input_size) features, lengths (B,) -> logits
    (T, B, num_classes): one label per step (the loss masks the padding).
    Children, for parameter names: "embedding" (ids only), "rnn", "head"."""

    def forward(self, x, state=None, train: bool = True, lengths=None):
        """x, state, lengths as for ``SequenceClassifier.forward``. Returns
        (logits (T, B, num_classes): one label's logits a step, the recurrent
        layer's final state)."""
        y, final = self._encode(x, state, train, lengths)
        return self.head.forward(self.dropout.forward(y, train=train), train=train), final

    def backward(self, dlogits: np.ndarray, dstate=None) -> Optional[np.ndarray]:
        """dlogits (T, B, num_classes). Accumulates into grads; returns dx for
        feature input (None for ids)."""
        return self._decode(self.dropout.backward(self.head.backward(dlogits)), dstate)
