"""GRU, step by step, as in the textbook, with PyTorch's (and cuDNN's) form.

Shapes: x (T, B, D), h (B, H), W_ih (3H, D), W_hh (3H, H), b_ih and b_hh
(3H,). Gates, in this order:

    r = σ(x W_irᵀ + b_ir + h W_hrᵀ + b_hr)          reset
    z = σ(x W_izᵀ + b_iz + h W_hzᵀ + b_hz)          update
    n = tanh(x W_inᵀ + b_in + r ⊙ (h W_hnᵀ + b_hn))  candidate: the reset
                                                     is applied after the
                                                     recurrent product
    h_t = (1 − z) ⊙ n + z ⊙ h_{t-1}

Backward, with dh = ∂L/∂h_t and hn = h_{t-1} W_hnᵀ + b_hn kept from forward:

    dn = dh ⊙ (1 − z)         dz = dh ⊙ (h_{t-1} − n)
    ân = dn ⊙ (1 − n²)        âz = dz ⊙ z(1 − z)        âr = ân ⊙ hn ⊙ r(1 − r)

The pre-activation gradients are [âr, âz, ân] on the input side and
[âr, âz, ân ⊙ r] on the recurrent side (r scales the recurrent n block);
dh_{t-1} = dh ⊙ z + [âr, âz, ân ⊙ r] W_hh.
"""

from typing import Optional, Tuple

import numpy as np

from .activations import sigmoid, tanh
from .bf16 import matmul_for
from .sequences import gather, iteration_times, scatter


def gru_cell_forward(x_t, h_prev, W_ih, W_hh, b_ih, b_hh, mm=np.matmul):
    """One step. Returns h_next (B, H), gates (B, 3H) = [r, z, n] after their
    nonlinearities, and hn (B, H) = h_prev W_hnᵀ + b_hn (needed by backward).
    mm: the matrix product (see bf16.py)."""
    H = h_prev.shape[1]
    gx = mm(x_t, W_ih.T) + b_ih  # (B, 3H)
    gh = mm(h_prev, W_hh.T) + b_hh  # (B, 3H)
    r = sigmoid(gx[:, 0 * H:1 * H] + gh[:, 0 * H:1 * H])
    z = sigmoid(gx[:, 1 * H:2 * H] + gh[:, 1 * H:2 * H])
    hn = gh[:, 2 * H:3 * H]
    n = tanh(gx[:, 2 * H:3 * H] + r * hn)
    h_next = (1 - z) * n + z * h_prev
    return h_next, np.concatenate([r, z, n], axis=1), hn


def gru_cell_backward(dh_next, gates, hn, x_t, h_prev, W_ih, W_hh, mm=np.matmul):
    """One step back. dh_next (B, H) is the whole gradient at h_next.

    Returns (dx_t, dh_prev, dW_ih, dW_hh, db_ih, db_hh) for this step alone.
    """
    H = h_prev.shape[1]
    r, z, n = (gates[:, k * H:(k + 1) * H] for k in range(3))
    dn = dh_next * (1 - z)
    dz = dh_next * (h_prev - n)
    dan = dn * (1 - n**2)  # pre-activation of n
    dr = dan * hn
    dar = dr * r * (1 - r)
    daz = dz * z * (1 - z)
    dgx = np.concatenate([dar, daz, dan], axis=1)  # input side (B, 3H)
    dgh = np.concatenate([dar, daz, dan * r], axis=1)  # recurrent side (B, 3H)
    dh_prev = dh_next * z + mm(dgh, W_hh)
    return mm(dgx, W_ih), dh_prev, mm(dgx.T, x_t), mm(dgh.T, h_prev), dgx.sum(axis=0), dgh.sum(axis=0)


def gru_forward(x, h0, W_ih, W_hh, b_ih, b_hh, train: bool = True, lengths=None,
                reverse: bool = False, precision: str = "fp32") -> Tuple[np.ndarray, np.ndarray, Optional[dict]]:
    """Whole sequence (a padded batch with `lengths`, see sequences.py), its
    products in `precision` ("fp32": x's dtype; "bf16": see bf16.py).
    Returns y (T, B, H), hT (B, H) and the cache for gru_backward (None when
    train is False)."""
    T, (B, H) = x.shape[0], h0.shape
    times = iteration_times(T, B, lengths, reverse)
    xs = gather(x, times)  # by iteration
    hs = np.empty((T + 1, B, H), dtype=x.dtype)  # states before iteration s
    gates = np.zeros((T, B, 3 * H), dtype=x.dtype)
    hns = np.zeros((T, B, H), dtype=x.dtype)
    hs[0] = h0
    for s in range(T):
        active = (times[s] >= 0)[:, None]
        h, gates[s], hns[s] = gru_cell_forward(xs[s], hs[s], W_ih, W_hh, b_ih, b_hh, matmul_for(precision))
        hs[s + 1] = np.where(active, h, hs[s])
    y = scatter(hs[1:], times)
    cache = dict(xs=xs, hs=hs, gates=gates, hn=hns, times=times, W_ih=W_ih, W_hh=W_hh,
                 precision=precision) if train else None
    return y, hs[T], cache


def gru_backward(dy, dhT, cache):
    """BPTT. dy (T, B, H) or None, dhT (B, H) or None.

    Returns (dx, dh0, dW_ih, dW_hh, db_ih, db_hh).
    """
    xs, hs, gates, hns, times, W_ih, W_hh = (
        cache[k] for k in ("xs", "hs", "gates", "hn", "times", "W_ih", "W_hh"))
    T = xs.shape[0]
    dys = None if dy is None else gather(dy, times)
    dxs = np.zeros_like(xs)
    dW_ih, dW_hh = np.zeros_like(W_ih), np.zeros_like(W_hh)
    db_ih, db_hh = np.zeros(W_hh.shape[0], xs.dtype), np.zeros(W_hh.shape[0], xs.dtype)
    dh = np.zeros_like(hs[0]) if dhT is None else dhT.copy()
    for s in reversed(range(T)):
        active = (times[s] >= 0)[:, None]
        if dys is not None:
            dh = dh + dys[s]
        dh_in = np.where(active, dh, 0)  # an inactive row passes dh on unchanged
        dxs[s], dh_prev, dWi, dWh, dbi, dbh = gru_cell_backward(dh_in, gates[s], hns[s], xs[s], hs[s], W_ih, W_hh,
                                                                matmul_for(cache.get("precision", "fp32")))
        dh = np.where(active, dh_prev, dh)
        dW_ih += dWi
        dW_hh += dWh
        db_ih += dbi
        db_hh += dbh
    return scatter(dxs, times), dh, dW_ih, dW_hh, db_ih, db_hh
