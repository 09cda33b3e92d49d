"""Vanilla RNN (tanh or ReLU), step by step, as in the textbook.

Shapes: x (T, B, D), h (B, H), W_ih (H, D), W_hh (H, H), b (H,) — b is the
one bias (PyTorch's b_ih + b_hh).

    h_t = φ(x_t W_ihᵀ + h_{t-1} W_hhᵀ + b)      φ = tanh or relu (nonlinearity)

Backward through φ: tanh' = 1 − h², relu' = 1 where h > 0, else 0 (as
PyTorch: the gradient at 0 is 0).

The loss is a sum over steps: dy[t] = ∂L/∂h_t from the output at step t,
and dhT = ∂L/∂h_T from the final state.
"""

from typing import Optional, Tuple

import numpy as np

from .activations import relu, tanh
from .bf16 import matmul_for
from .sequences import gather, iteration_times, scatter


NONLINEARITIES = {"tanh": tanh, "relu": relu}


def rnn_cell_forward(x_t, h_prev, W_ih, W_hh, b, mm=np.matmul, nonlinearity: str = "tanh"):
    """One step. x_t (B, D), h_prev (B, H) -> h_next (B, H). mm: the matrix
    product (see bf16.py)."""
    return NONLINEARITIES[nonlinearity](mm(x_t, W_ih.T) + mm(h_prev, W_hh.T) + b)


def rnn_cell_backward(dh_next, h_next, x_t, h_prev, W_ih, W_hh, mm=np.matmul, nonlinearity: str = "tanh"):
    """One step back. dh_next (B, H) is the whole gradient at h_next.

    Returns (dx_t, dh_prev, dW_ih, dW_hh, db) for this step alone.
    """
    if nonlinearity == "relu":
        da = np.where(h_next > 0, dh_next, 0)  # through relu: (B, H)
    else:
        da = dh_next * (1 - h_next**2)  # through tanh: (B, H)
    return mm(da, W_ih), mm(da, W_hh), mm(da.T, x_t), mm(da.T, h_prev), da.sum(axis=0)


def rnn_forward(x, h0, W_ih, W_hh, b, train: bool = True, lengths=None,
                reverse: bool = False, precision: str = "fp32",
                nonlinearity: str = "tanh") -> Tuple[np.ndarray, np.ndarray, Optional[dict]]:
    """Whole sequence (a padded batch with `lengths`, see sequences.py), its
    products in `precision` ("fp32": x's dtype; "bf16": see bf16.py).
    Returns y (T, B, H), hT (B, H) and the cache for rnn_backward (None when
    train is False)."""
    T, (B, H) = x.shape[0], h0.shape
    times = iteration_times(T, B, lengths, reverse)
    xs = gather(x, times)  # by iteration
    hs = np.empty((T + 1, B, H), dtype=x.dtype)  # hs[s] is the state before iteration s
    hs[0] = h0
    for s in range(T):
        active = (times[s] >= 0)[:, None]
        hs[s + 1] = np.where(active, rnn_cell_forward(xs[s], hs[s], W_ih, W_hh, b, matmul_for(precision),
                                                           nonlinearity), hs[s])
    y = scatter(hs[1:], times)
    cache = dict(xs=xs, hs=hs, times=times, W_ih=W_ih, W_hh=W_hh, precision=precision,
                 nonlinearity=nonlinearity) if train else None
    return y, hs[T], cache


def rnn_backward(dy, dhT, cache):
    """BPTT. dy (T, B, H) or None, dhT (B, H) or None.

    Returns (dx, dh0, dW_ih, dW_hh, db).
    """
    xs, hs, times, W_ih, W_hh = (cache[k] for k in ("xs", "hs", "times", "W_ih", "W_hh"))
    T = xs.shape[0]
    dys = None if dy is None else gather(dy, times)
    dxs = np.zeros_like(xs)
    dW_ih, dW_hh, db = np.zeros_like(W_ih), np.zeros_like(W_hh), np.zeros(W_hh.shape[0], xs.dtype)
    dh = np.zeros_like(hs[0]) if dhT is None else dhT.copy()
    for s in reversed(range(T)):
        active = (times[s] >= 0)[:, None]
        if dys is not None:
            dh = dh + dys[s]
        dh_in = np.where(active, dh, 0)  # an inactive row passes dh on unchanged
        dxs[s], dh_prev, dWi, dWh, dbt = rnn_cell_backward(dh_in, hs[s + 1], xs[s], hs[s], W_ih, W_hh,
                                                           matmul_for(cache.get("precision", "fp32")),
                                                           cache.get("nonlinearity", "tanh"))
        dh = np.where(active, dh_prev, dh)
        dW_ih += dWi
        dW_hh += dWh
        db += dbt
    return scatter(dxs, times), dh, dW_ih, dW_hh, db
