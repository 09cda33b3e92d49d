"""A LanguageModel prepared for generation: ``model.stepper(batch_size)``.

The stepper copies the model's weights once (the recurrent ones packed for
the kernels), keeps the state of ``batch_size`` rows, and runs embedding →
every layer → head for one token in one native call, allocating nothing::

    stepper = model.stepper(batch_size=4)
    logits = stepper.step([eos, eos, eos, eos])   # (4, V); the state moves on
    logits = stepper.step(next_ids)

Each row's logits are, bit for bit, those that ``model.forward(ids (1, 1),
state, train=False)`` gives that row alone with the same state: rows do not
depend on one another, and stepping gives what the step-by-step forward
gives.

Fresh weights. The copies are taken again (``refresh``) before a step when
seqcore has written parameters in place since they were taken: an
optimiser's step, ``load_state_dict``, a distributed broadcast (see
``seqcore.nn.module.params_version``); so a stepper kept across training
steps never runs stale weights. Writes a user makes directly into the arrays
(``model.head.weight[...] = w``) cannot be seen: call ``refresh()`` after
them.
"""

from __future__ import annotations

from typing import Any, Optional, Tuple, Union

import numpy as np

from .. import ops
from .module import params_version

State = Union[np.ndarray, Tuple[np.ndarray, np.ndarray]]


class Stepper:
    """A ``LanguageModel`` prepared for stepping ``batch_size`` rows, one
    token at a time (see the module doc).

    Rows: ``step(ids)`` with n <= batch_size ids runs rows [0, n); the other
    rows keep their state. num_threads: the most threads of a step (None:
    seqcore.get_num_threads()); default 1 (see seqcore.ops.NativeStepper);
    the logits are the same whatever the threads. precision: the products'
    precision, "fp32", "bf16" or "int8" (float32 models); None: the model's.
    In "bf16" the weights are rounded to bfloat16 once and each row's logits
    are those of the model's forward in precision "bf16" (bit for bit),
    which reads half the bytes a token; in "int8" the recurrent weights are
    quantized once (the head stays float32) and each row's logits are those
    of the model's forward in "int8" (bit for bit): a quarter of the bytes. ``keep(rows)`` moves the state of the given rows to
    the front, so that rows that are done (a sample that ended) cost nothing
    more.
    """

    def __init__(self, model, batch_size: int = 1, num_threads: Optional[int] = 1,
                 precision: Optional[str] = None) -> None:
        rnn = getattr(model, "rnn", None)
        if rnn is None or getattr(rnn, "cell", None) not in ("rnn", "lstm", "gru") or rnn.directions != 1:
            raise TypeError(f"model: expected a seqcore.nn.LanguageModel (one direction), got {type(model).__name__}")
        if precision is None:
            precision = getattr(model, "precision", "fp32")
        self.model = model
        self.precision = ops.check_precision(precision, model.dtype)
        self._version = params_version()
        self._native = ops.NativeStepper(rnn.cell, batch_size, *self._weights(), num_threads=num_threads,
                                         precision=self.precision)
        self.batch_size, self.vocab_size = self._native.batch_size, self._native.vocab_size
        self.dtype = self._native.dtype

    def _weights(self) -> Tuple[Any, ...]:
        """The model's weights, in NativeStepper's arguments."""
        m, rnn = self.model, self.model.rnn
        p = rnn.params
        L = rnn.num_layers
        W_ih = [p[f"weight_ih_l{l}"] for l in range(L)]
        W_hh = [p[f"weight_hh_l{l}"] for l in range(L)]
        if rnn.cell == "gru":
            b_ih, b_hh = [p[f"bias_ih_l{l}"] for l in range(L)], [p[f"bias_hh_l{l}"] for l in range(L)]
        else:  # the kernels' one bias, summed as the layer's forward sums it
            b_ih, b_hh = [p[f"bias_ih_l{l}"] + p[f"bias_hh_l{l}"] for l in range(L)], None
        embedding = m.embedding.weight if m.embedding is not None else None
        return embedding, W_ih, W_hh, b_ih, b_hh, m.head.weight, m.head.bias

    # -- weights --------------------------------------------------------------

    def refresh(self) -> None:
        """Copies the model's weights again; the state is kept."""
        kept = [(s, s.copy()) for s in (self._native.h, self._native.c) if s is not None]
        self._version = params_version()
        self._native.refresh(*self._weights())
        for s, copy in kept:
            s[...] = copy

    def _check_fresh(self) -> None:
        if params_version() != self._version:
            self.refresh()

    @property
    def nbytes(self) -> int:
        """Bytes the stepper holds: the weights' copies and the state."""
        return self._native.nbytes

    # -- state ----------------------------------------------------------------

    def reset(self, state: Optional[State] = None) -> None:
        """Sets the state of every row: zeros (None), or a state as the model's
        forward returns it, h (and c for LSTM) of shape (num_layers, B, H)
        with B = batch_size, or B = 1 for the same state in every row."""
        parts = (self._native.h,) + ((self._native.c,) if self._native.c is not None else ())
        if state is None:
            for s in parts:
                s[...] = 0
            return
        given = state if isinstance(state, tuple) else (state,)
        L, B, H = self._native.h.shape
        if len(given) != len(parts):
            raise TypeError(f"state: expected {'a tuple (h, c)' if len(parts) == 2 else 'an array h'}, as the "
                            f"model's forward returns it")
        for name, s in zip(("h", "c"), given):
            if not isinstance(s, np.ndarray) or s.dtype != self.dtype or s.ndim != 3 or \
                    s.shape[0] != L or s.shape[1] not in (1, B) or s.shape[2] != H:
                got = f"{s.dtype} {s.shape}" if isinstance(s, np.ndarray) else type(s).__name__
                raise ValueError(f"state: expected {name} as a {self.dtype} array of shape (num_layers, B, H) = "
                                 f"({L}, {B} or 1, {H}), got {got}")
            if not np.isfinite(s).all():
                raise ValueError(f"state: {name} contains NaN or inf")
        for dst, s in zip(parts, given):
            dst[...] = s

    @property
    def state(self) -> State:
        """A copy of the state of every row, as the model's forward gives it:
        h, or (h, c) for LSTM, each (num_layers, batch_size, H)."""
        if self._native.c is not None:
            return self._native.h.copy(), self._native.c.copy()
        return self._native.h.copy()

    def keep(self, rows) -> None:
        """Moves the state of ``rows`` (distinct row indices, in the order
        wanted) to rows [0, len(rows)); the rows after hold what they held."""
        rows = np.asarray(rows)
        if rows.dtype.kind not in "iu" or rows.ndim != 1:
            raise TypeError(f"rows: expected a 1-D array of row indices, got {rows!r}")
        if rows.size and (rows.min() < 0 or rows.max() >= self.batch_size or len(np.unique(rows)) != rows.size):
            raise ValueError(f"rows: expected distinct indices in [0, {self.batch_size}), got {rows.tolist()}")
        for s in (self._native.h, self._native.c):
            if s is not None:
                s[:, : rows.size] = s[:, rows]  # fancy indexing copies first

    # -- steps ----------------------------------------------------------------

    def _ids(self, ids) -> np.ndarray:
        a = np.asarray(ids)
        if a.dtype.kind not in "iu" or a.ndim != 1:
            raise TypeError(f"ids: expected a 1-D sequence of integer token ids, got {ids!r}")
        return np.ascontiguousarray(a, dtype=np.int64)  # the native side checks n and [0, V)

    def step(self, ids) -> np.ndarray:
        """ids (n,) with n <= batch_size: the next input token of rows [0, n).
        Returns their logits (n, V) for the token after, a view of the
        stepper's own array, overwritten by the next step (copy it to keep
        it). The state of rows [0, n) moves on by one token."""
        ids = self._ids(ids)
        self._check_fresh()
        return self._native.step(ids)

    def drawer(self, **draw):
        """A function step_draw(ids, u, out): ``step(ids)``, then out[r] = the
        token drawn for row r with the uniform number u[r]
        (seqcore.ops.NativeStepper.drawer; ``draw``: temperature, top_k,
        top_p, pad_id, bound once). ids, out int64 and u float64, (n,) and
        C-contiguous: the loop of seqcore.generate."""
        native = self._native.drawer(**draw)

        def step_draw(ids: np.ndarray, u: np.ndarray, out: np.ndarray) -> None:
            if params_version() != self._version:
                self.refresh()
            native(ids, u, out)
        return step_draw
