"""Vanilla RNN (tanh), step by step, as in the textbook.

Shapes: x (T, B, D), h (B, H), W_ih (H, D), W_hh (H, H), b (H,) — b is the
one bias (PyTorch's b_ih + b_hh).

    h_t = tanh(x_t W_ihᵀ + h_{t-1} W_hhᵀ + b)

The loss is a sum over steps: dy[t] = ∂L/∂h_t from the output at step t,
and dhT = ∂L/∂h_T from the final state.
"""

from typing import Optional, Tuple

import numpy as np

from .activations import tanh


def rnn_cell_forward(x_t, h_prev, W_ih, W_hh, b):
    """One step. x_t (B, D), h_prev (B, H) -> h_next (B, H)."""
    return tanh(x_t @ W_ih.T + h_prev @ W_hh.T + b)


def rnn_cell_backward(dh_next, h_next, x_t, h_prev, W_ih, W_hh):
    """One step back. dh_next (B, H) is the whole gradient at h_next.

    Returns (dx_t, dh_prev, dW_ih, dW_hh, db) for this step alone.
    """
    da = dh_next * (1 - h_next**2)  # through tanh: (B, H)
    return da @ W_ih, da @ W_hh, da.T @ x_t, da.T @ h_prev, da.sum(axis=0)


def rnn_forward(x, h0, W_ih, W_hh, b, train: bool = True) -> Tuple[np.ndarray, np.ndarray, Optional[dict]]:
    """Whole sequence. Returns y (T, B, H), hT (B, H) and the cache for rnn_backward
    (None when train is False)."""
    T = x.shape[0]
    y = np.empty((T,) + h0.shape, dtype=x.dtype)
    h = h0
    for t in range(T):
        h = rnn_cell_forward(x[t], h, W_ih, W_hh, b)
        y[t] = h
    cache = dict(x=x, h0=h0, y=y, W_ih=W_ih, W_hh=W_hh) if train else None
    return y, h, cache


def rnn_backward(dy, dhT, cache):
    """BPTT. dy (T, B, H) or None, dhT (B, H) or None.

    Returns (dx, dh0, dW_ih, dW_hh, db).
    """
    x, h0, y, W_ih, W_hh = (cache[k] for k in ("x", "h0", "y", "W_ih", "W_hh"))
    T = x.shape[0]
    dx = np.zeros_like(x)
    dW_ih, dW_hh, db = np.zeros_like(W_ih), np.zeros_like(W_hh), np.zeros(W_hh.shape[0], x.dtype)
    dh = np.zeros_like(h0) if dhT is None else dhT.copy()
    for t in reversed(range(T)):
        if dy is not None:
            dh = dh + dy[t]
        h_prev = y[t - 1] if t > 0 else h0
        dx[t], dh, dWi, dWh, dbt = rnn_cell_backward(dh, y[t], x[t], h_prev, W_ih, W_hh)
        dW_ih += dWi
        dW_hh += dWh
        db += dbt
    return dx, dh, dW_ih, dW_hh, db
