"""LSTM, step by step, as in the textbook, with PyTorch's gate order.

Shapes: x (T, B, D), h and c (B, H), W_ih (4H, D), W_hh (4H, H), b (4H,)
— b is the one bias (PyTorch's b_ih + b_hh). Gates, in this order:

    i = σ(·)     update gate Γu          f = σ(·)     forget gate Γf
    g = tanh(·)  candidate c̃             o = σ(·)     output gate Γo
    c_t = f ⊙ c_{t-1} + i ⊙ g            h_t = o ⊙ tanh(c_t)

Backward, with dh = ∂L/∂h_t (from the output and from step t+1) and dc the
gradient reaching c_t from step t+1:

    dc_t  = dc + dh ⊙ o ⊙ (1 − tanh²(c_t))      (all paths into c_t)
    do    = dh ⊙ tanh(c_t)
    di    = dc_t ⊙ g          dg = dc_t ⊙ i       df = dc_t ⊙ c_{t-1}
    dc_{t-1} = dc_t ⊙ f

then through the nonlinearities (σ' = σ(1−σ), tanh' = 1−tanh²). The course
notes print dc̃ and dΓu with an extra factor i_t and use c̃_{t-1} for c_{t-1}
in dΓf; tests/test_reference.py proves these by finite differences.

With a projection (PyTorch's proj_size P, 0 < P < H), W_hr (P, H):

    m_t = o ⊙ tanh(c_t)      h_t = m_t W_hrᵀ    (B, P)

h, y and W_hh's second dimension have P features, c has H. Backward, dh
(B, P) goes through the projection first, dm = dh W_hr, dW_hr += dhᵀ m,
then dm takes dh's place above.
"""

from typing import Optional, Tuple

import numpy as np

from .activations import sigmoid, tanh
from .bf16 import matmul_for
from .sequences import gather, iteration_times, scatter


def lstm_cell_forward(x_t, h_prev, c_prev, W_ih, W_hh, b, mm=np.matmul, W_hr=None):
    """One step. Returns h_next (B, H; (B, P) with W_hr), c_next (B, H) and
    gates (B, 4H) = [i, f, g, o] after their nonlinearities. mm: the matrix
    product (see bf16.py)."""
    H = c_prev.shape[1]
    a = mm(x_t, W_ih.T) + mm(h_prev, W_hh.T) + b  # pre-activations (B, 4H)
    i = sigmoid(a[:, 0 * H:1 * H])
    f = sigmoid(a[:, 1 * H:2 * H])
    g = tanh(a[:, 2 * H:3 * H])
    o = sigmoid(a[:, 3 * H:4 * H])
    c_next = f * c_prev + i * g
    h_next = o * tanh(c_next)
    if W_hr is not None:
        h_next = mm(h_next, W_hr.T)  # the projection: m_t W_hrᵀ (B, P)
    return h_next, c_next, np.concatenate([i, f, g, o], axis=1)


def lstm_cell_backward(dh_next, dc_next, gates, c_next, x_t, h_prev, c_prev, W_ih, W_hh, mm=np.matmul,
                       W_hr=None):
    """One step back. dh_next (B, H; (B, P) with W_hr), dc_next (B, H): the
    whole gradients at h_next and the gradient reaching c_next from later
    steps.

    Returns (dx_t, dh_prev, dc_prev, dW_ih, dW_hh, db) for this step alone,
    and dW_hr last with W_hr.
    """
    H = c_next.shape[1]
    i, f, g, o = (gates[:, k * H:(k + 1) * H] for k in range(4))
    tc = tanh(c_next)
    dW_hr = None
    if W_hr is not None:
        dW_hr = mm(dh_next.T, o * tc)  # dhᵀ m
        dh_next = mm(dh_next, W_hr)  # dm (B, H)
    dc = dc_next + dh_next * o * (1 - tc**2)
    do = dh_next * tc
    di = dc * g
    dg = dc * i
    df = dc * c_prev
    dc_prev = dc * f
    # gradients of the pre-activations (B, 4H), gate order i, f, g, o
    da = np.concatenate([di * i * (1 - i), df * f * (1 - f), dg * (1 - g**2), do * o * (1 - o)], axis=1)
    grads = (mm(da, W_ih), mm(da, W_hh), dc_prev, mm(da.T, x_t), mm(da.T, h_prev), da.sum(axis=0))
    return grads if W_hr is None else grads + (dW_hr,)


def lstm_forward(x, h0, c0, W_ih, W_hh, b, train: bool = True, lengths=None,
                 reverse: bool = False, precision: str = "fp32",
                 W_hr=None) -> Tuple[np.ndarray, np.ndarray, np.ndarray, Optional[dict]]:
    """Whole sequence (a padded batch with `lengths`, see sequences.py), its
    products in `precision` ("fp32": x's dtype; "bf16": see bf16.py); W_hr
    (P, H): the projection, or None.
    Returns y (T, B, P), hT (B, P), cT (B, H) (P = H without W_hr) and the
    cache for lstm_backward (None when train is False)."""
    T, (B, P), H = x.shape[0], h0.shape, c0.shape[1]
    times = iteration_times(T, B, lengths, reverse)
    xs = gather(x, times)  # by iteration
    hs = np.empty((T + 1, B, P), dtype=x.dtype)  # states before iteration s
    cs = np.empty((T + 1, B, H), dtype=x.dtype)
    gates = np.zeros((T, B, 4 * H), dtype=x.dtype)
    hs[0], cs[0] = h0, c0
    for s in range(T):
        active = (times[s] >= 0)[:, None]
        h, c, gates[s] = lstm_cell_forward(xs[s], hs[s], cs[s], W_ih, W_hh, b, matmul_for(precision), W_hr)
        hs[s + 1] = np.where(active, h, hs[s])
        cs[s + 1] = np.where(active, c, cs[s])
    y = scatter(hs[1:], times)
    cache = dict(xs=xs, hs=hs, cs=cs, gates=gates, times=times, W_ih=W_ih, W_hh=W_hh,
                 precision=precision, W_hr=W_hr) if train else None
    return y, hs[T], cs[T], cache


def lstm_backward(dy, dhT, dcT, cache):
    """BPTT. dy (T, B, P) or None; dhT (B, P), dcT (B, H) or None (P = H
    without a projection).

    Returns (dx, dh0, dc0, dW_ih, dW_hh, db), and dW_hr last when the forward
    had W_hr.
    """
    xs, hs, cs, gates, times, W_ih, W_hh = (
        cache[k] for k in ("xs", "hs", "cs", "gates", "times", "W_ih", "W_hh"))
    T = xs.shape[0]
    dys = None if dy is None else gather(dy, times)
    dxs = np.zeros_like(xs)
    W_hr = cache.get("W_hr")
    dW_ih, dW_hh, db = np.zeros_like(W_ih), np.zeros_like(W_hh), np.zeros(W_hh.shape[0], xs.dtype)
    dW_hr = None if W_hr is None else np.zeros_like(W_hr)
    dh = np.zeros_like(hs[0]) if dhT is None else dhT.copy()
    dc = np.zeros_like(cs[0]) if dcT is None else dcT.copy()
    for s in reversed(range(T)):
        active = (times[s] >= 0)[:, None]
        if dys is not None:
            dh = dh + dys[s]
        # an inactive row passes dh and dc on unchanged
        dh_in, dc_in = np.where(active, dh, 0), np.where(active, dc, 0)
        dxs[s], dh_prev, dc_prev, dWi, dWh, dbt, *dWr = lstm_cell_backward(
            dh_in, dc_in, gates[s], cs[s + 1], xs[s], hs[s], cs[s], W_ih, W_hh,
            matmul_for(cache.get("precision", "fp32")), W_hr)
        dh, dc = np.where(active, dh_prev, dh), np.where(active, dc_prev, dc)
        dW_ih += dWi
        dW_hh += dWh
        db += dbt
        if W_hr is not None:
            dW_hr += dWr[0]
    grads = (scatter(dxs, times), dh, dc, dW_ih, dW_hh, db)
    return grads if W_hr is None else grads + (dW_hr,)
