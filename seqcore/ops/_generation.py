"""Generation: the draw of the next token and the prepared stepper."""

from __future__ import annotations

from typing import Any, Optional, Tuple

import numpy as np

from ._checks import check_precision, checked_array
from ._runtime import checked_threads, core


# ---------------------------------------------------------------------------
# generation


def draw(logits: np.ndarray, u: np.ndarray, out: Optional[np.ndarray] = None, *, temperature: float = 1.0,
         top_k: Optional[int] = None, top_p: Optional[float] = None, pad_id: Optional[int] = None) -> np.ndarray:
    """The next token of each row of logits (n, V), float32 or float64, drawn
    with the uniform number u[r] in [0, 1) (u: n floats): from
    softmax(logits / temperature), <pad> (``pad_id``) never drawn, cut to the
    ``top_k`` most likely tokens, then to the nucleus of probability
    ``top_p``; the first token whose cumulative probability exceeds u[r].
    The operations of seqcore.generate's reference draw, in float64 and in
    its order (numpy's sums). Returns out (n,) int64 (written in place when
    given)."""
    logits = checked_array("logits", logits, "(n, V)")
    u = np.ascontiguousarray(u, dtype=np.float64)
    if u.shape != logits.shape[:1] or not ((u >= 0) & (u < 1)).all():
        raise ValueError(f"u: expected {logits.shape[0]} numbers in [0, 1), got {u!r}")
    out = np.empty(len(u), np.int64) if out is None else out
    if not core.draw(logits, u, out, float(temperature), 0 if top_k is None else int(top_k),
                      1.0 if top_p is None else float(top_p), -1 if pad_id is None else int(pad_id)):
        raise FloatingPointError(f"logits: softmax(logits / temperature) is not finite (temperature "
                                 f"{temperature} overflows the logits)")
    return out


class NativeStepper:
    """A language model prepared for generation, one token at a time, for up
    to ``batch_size`` rows: ids (n,) -> embedding (or one-hot) -> the L layers
    of one cell kind -> head -> logits (n, V), in one native call a token.

    The weights are copied (W_hh packed for the kernels) when it is made and
    by ``refresh``; a step allocates nothing.

    num_threads: the most threads a step uses (None: seqcore.get_num_threads()),
    as many as its work pays for, each owning the same hidden units of every
    layer (so two cores' caches hold twice the weights one holds); the
    results do not depend on them. Default 1: a step takes microseconds, less
    than a thread waits for a core on a busy machine. Row r of a step gets, bit for
    bit, the logits a one-row ``forward`` of the same layers gives it (see
    csrc/generate/stepper.h), whatever the other rows.

    cell: "rnn", "lstm" or "gru"; embedding (V, D) or None (one-hot, D = V);
    W_ih[l] (G·H, D or H), W_hh[l] (G·H, H), b_ih[l] (G·H,) (RNN, LSTM: the one
    bias b_ih + b_hh), b_hh[l] (G·H,) for GRU (else None); head_W (V, H),
    head_b (V,) or None. All float32 or all float64.

    precision: the products' ("fp32", or "bf16" for float32: the weights
    rounded to bfloat16 once, each row's logits those of a one-row forward
    in precision "bf16", bit for bit, on every ISA; or "int8" for float32:
    the recurrent weights quantized once, each row's logits those of a
    one-row forward in "int8" (the head in float32), bit for bit, on every
    ISA).
    """

    def __init__(self, cell: str, batch_size: int, embedding, W_ih, W_hh, b_ih, b_hh, head_W, head_b,
                 num_threads: Optional[int] = 1, precision: str = "fp32") -> None:
        if cell not in ("rnn", "lstm", "gru"):
            raise ValueError(f"cell: expected 'rnn', 'lstm' or 'gru', got {cell!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size: expected an int >= 1, got {batch_size!r}")
        head_W = checked_array("head_W", head_W, "(V, H)")
        self.cell, self.dtype = cell, head_W.dtype
        self.precision = check_precision(precision, self.dtype)
        weights = self._weights(embedding, W_ih, W_hh, b_ih, b_hh, head_W, head_b)
        V, GH = head_W.shape[0], weights[2][0].shape[0]
        from .. import ops  # the package's STEPPER_TABLE_BYTES, which tests and fuzz/ change
        table = V * GH * self.dtype.itemsize <= ops.STEPPER_TABLE_BYTES
        native = core.StepperF64 if self.dtype == np.float64 else core.StepperF32
        self._native = native(cell, int(batch_size), *weights, table, self.precision == "bf16",
                              self.precision == "int8")
        self.batch_size, self.vocab_size = int(batch_size), V
        self.num_threads = checked_threads(num_threads)  # checked now; 0: seqcore.get_num_threads() at each step
        self.num_layers, self.hidden_size = len(weights[2]), head_W.shape[1]
        self.h = self._native.state(0)  # (L, B, H) views into the native buffer
        self.c = self._native.state(1) if cell == "lstm" else None
        self._logits = self._native.logits()  # (B, V)

    def _weights(self, embedding, W_ih, W_hh, b_ih, b_hh, head_W, head_b) -> Tuple[Any, ...]:
        """The arguments checked (dtype, finite) and C-contiguous; the native
        side checks the shapes, naming each."""
        dt = self.dtype
        if not isinstance(W_hh, (list, tuple)) or not W_hh:
            raise TypeError("W_hh: expected a list with one array per layer")
        for name, seq in (("W_ih", W_ih), ("b_ih", b_ih)) + ((("b_hh", b_hh),) if self.cell == "gru" else ()):
            if not isinstance(seq, (list, tuple)) or len(seq) != len(W_hh):
                raise TypeError(f"{name}: expected a list with one array per layer ({len(W_hh)})")
        one = lambda name, a, dims: checked_array(name, a, dims, dt)  # noqa: E731
        return (None if embedding is None else one("embedding", embedding, "(V, D)"),
                [one("W_ih", a, "(G·H, D)") for a in W_ih], [one("W_hh", a, "(G·H, H)") for a in W_hh],
                [one("b_ih", a, "(G·H,)") for a in b_ih],
                [one("b_hh", a, "(G·H,)") for a in b_hh] if self.cell == "gru" else None,
                head_W if head_W.dtype == dt else one("head_W", head_W, "(V, H)"),
                None if head_b is None else one("head_b", head_b, "(V,)"))

    def refresh(self, embedding, W_ih, W_hh, b_ih, b_hh, head_W, head_b) -> None:
        """Copies and packs the weights again (same sizes); zeroes the state."""
        head_W = checked_array("head_W", head_W, "(V, H)", self.dtype)
        self._native.refresh(*self._weights(embedding, W_ih, W_hh, b_ih, b_hh, head_W, head_b))

    def step(self, ids: np.ndarray) -> np.ndarray:
        """ids (n,) int64 with n <= batch_size -> logits (n, V) of rows [0, n),
        a view of the stepper's own array (overwritten by the next step)."""
        self._native.step(ids, self.num_threads)
        return self._logits[: len(ids)]

    def drawer(self, *, temperature: float = 1.0, top_k: Optional[int] = None, top_p: Optional[float] = None,
               pad_id: Optional[int] = None):
        """A function step_draw(ids, u, out): ``step(ids)``, then out[r] = the
        next token of row r, drawn with the uniform number u[r] in [0, 1)
        from softmax(logits / temperature) with <pad> (``pad_id``) never
        drawn and the top-k / top-p cut, as seqcore.generate's reference draw
        does it (in float64, in its order). ids, out (n,) int64 and u (n,)
        float64, C-contiguous (unchecked here: the native side checks them).
        The options are bound once: the function is a sampling loop's step."""
        native = self._native.step_draw
        options = (float(temperature), 0 if top_k is None else int(top_k), 1.0 if top_p is None else float(top_p),
                   -1 if pad_id is None else int(pad_id), self.num_threads)

        def step_draw(ids: np.ndarray, u: np.ndarray, out: np.ndarray) -> None:
            if not native(ids, u, out, *options):
                raise FloatingPointError("logits: the model gave NaN or infinite logits, or logits / temperature "
                                         "overflowed; its weights may have diverged")
        return step_draw

    @property
    def nbytes(self) -> int:
        """Bytes of the native buffer: the weights' copies and the state."""
        return self._native.nbytes
