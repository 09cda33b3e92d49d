"""The cells' functional kernels: rnn, lstm, gru *_forward / *_backward."""

from __future__ import annotations

from typing import Optional

import numpy as np

from .. import reference
from ._checks import (Cache, backend_to_run, check_dy_dh, check_inference, check_nonlinearity, check_precision,
                      check_weights, checked_cache, checked_flag, checked_grad, checked_lengths, checked_reverse,
                      checked_state)
from ._int8 import Int8Weights, int8_weights_for
from ._runtime import checked_threads, core


# ---------------------------------------------------------------------------
# the native kernels


def _native_forward(cell, x, h0, c0, W_ih, W_hh, b_ih, b_hh, train, lengths, reverse, num_threads, precision,
                    int8_weights=None, W_hr=None, relu=False):
    """Runs core.cell_forward (core.cell_forward_int8 in precision "int8");
    returns ((y, hT, cT), what backward needs)."""
    if precision == "int8":
        weights = int8_weights_for(cell, W_ih, W_hh, int8_weights, num_threads)
        return core.cell_forward_int8(cell, x, h0, c0, weights, b_ih, b_hh, lengths, reverse, num_threads,
                                      relu), None
    bf16 = precision == "bf16"
    y, hT, cT, ws_h, ws_gates, ws_c, ws_hn, ws_m = core.cell_forward(
        cell, x, h0, c0, W_ih, W_hh, b_ih, b_hh, train, lengths, reverse, num_threads, bf16, W_hr, relu)
    data = dict(x=x, W_ih=W_ih, W_hh=W_hh, ws_h=ws_h, ws_gates=ws_gates, ws_c=ws_c, ws_hn=ws_hn,
                lengths=lengths, reverse=reverse, num_threads=num_threads, bf16=bf16, ws_m=ws_m, W_hr=W_hr,
                relu=relu)
    return (y, hT, cT), data


def _native_backward(cache: Cache, dy, dhT, dcT):
    """Runs core.cell_backward -> (dx, dh0, dc0, dW_ih, dW_hh, db_ih, db_hh, dW_hr)."""
    return core.cell_backward(cache.cell, **cache.data, dy=dy, dhT=dhT, dcT=dcT)


def forward_workspace_bytes(cell: str, T: int, B: int, D: int, H: int, *, train: bool, dtype=np.float32,
                            proj_size: int = 0) -> int:
    """Bytes the native forward of `cell` allocates beyond its inputs and
    outputs. Inference needs O(B·H) whatever T is. proj_size: an LSTM's
    projection (0: none)."""
    for name, n in (("T", T), ("B", B), ("D", D), ("H", H), ("proj_size", proj_size)):
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 0 <= n < 2**40:
            raise ValueError(f"{name}: expected an int in [0, 2**40), got {n!r}")
    if proj_size and (cell != "lstm" or proj_size >= H):
        raise ValueError(f"proj_size: expected 0, or for an LSTM 0 < proj_size < H = {H}, got {proj_size}")
    # the native count is an int64: the sequence's buffers and the packed W_hh (4H × H)
    if ((T + 1) * B * (D + 4 * H + 1) + 4 * H * (H + 64)) * 16 >= 2**62:
        raise ValueError(f"T, B, D, H: a workspace for {(T, B, D, H)} does not fit in memory")
    return core.forward_workspace_bytes(cell, T, B, D, H, checked_flag("train", train), False,
                                         np.dtype(dtype) == np.float64, int(proj_size))


# ---------------------------------------------------------------------------
# vanilla RNN


def rnn_forward(x, h0, W_ih, W_hh, b, *, train: bool = True, backend: Optional[str] = None,
                lengths=None, reverse: bool = False, num_threads: Optional[int] = None,
                precision: str = "fp32", nonlinearity: str = "tanh", int8_weights: Optional[Int8Weights] = None):
    """Vanilla RNN over a whole sequence: h_t = φ(x_t W_ihᵀ + h_{t-1} W_hhᵀ + b),
    φ = tanh or relu (``nonlinearity``, as torch.nn.RNN).

    x (T, B, D); h0 (B, H) or None (zeros); W_ih (H, D); W_hh (H, H); b (H,).
    Returns y (T, B, H), hT (B, H) and the cache for rnn_backward (None when
    ``train`` is False: nothing is kept; the cache remembers the nonlinearity).
    ``precision``: "fp32", "bf16" (bfloat16 products, float32 arrays only) or
    "int8" (inference, float32; ``int8_weights``: W_ih and W_hh
    prepared by Int8Weights, else quantized in the call).
    """
    nonlinearity = check_nonlinearity(nonlinearity)
    x, W_ih, W_hh, (b,), H = check_weights(1, x, W_ih, W_hh, [("b", b)])
    h0 = checked_state("h0", h0, x, H)
    lengths, reverse, num_threads = checked_lengths(lengths, x), checked_reverse(reverse), checked_threads(num_threads)
    train = checked_flag("train", train)
    check_inference(check_precision(precision, x.dtype), train)
    backend = backend_to_run(backend, x, H)
    if backend == "native":
        (y, hT, _), data = _native_forward("rnn", x, h0, None, W_ih, W_hh, b, None, train, lengths, reverse,
                                           num_threads, precision, int8_weights, relu=nonlinearity == "relu")
    else:
        y, hT, data = reference.rnn_forward(x, h0, W_ih, W_hh, b, train=train, lengths=lengths, reverse=reverse,
                                            precision=precision, nonlinearity=nonlinearity)
    return y, hT, Cache("rnn", backend, x, H, data, precision, nonlinearity=nonlinearity) if train else None


def rnn_backward(dy, dhT, cache):
    """BPTT of rnn_forward. dy (T, B, H) or None: gradients at every step's
    output; dhT (B, H) or None: the gradient at the final state.

    Returns (dx, dh0, dW_ih, dW_hh, db).
    """
    cache = checked_cache("rnn", cache)
    dy, dhT = check_dy_dh(cache, dy, dhT)
    if cache.backend == "native":
        dx, dh0, _, dW_ih, dW_hh, db, _, _ = _native_backward(cache, dy, dhT, None)
        return dx, dh0, dW_ih, dW_hh, db
    return reference.rnn_backward(dy, dhT, cache.data)


# ---------------------------------------------------------------------------
# LSTM


def lstm_forward(x, h0, c0, W_ih, W_hh, b, *, train: bool = True, backend: Optional[str] = None,
                 lengths=None, reverse: bool = False, num_threads: Optional[int] = None,
                 precision: str = "fp32", W_hr=None, int8_weights: Optional[Int8Weights] = None):
    """LSTM over a whole sequence, gates i, f, g, o (update, forget, candidate, output).

    x (T, B, D); h0, c0 (B, H) or None (zeros); W_ih (4H, D); W_hh (4H, H);
    b (4H,). Returns y (T, B, H), hT, cT (B, H) and the cache for
    lstm_backward (None when ``train`` is False).
    ``precision``: "fp32", "bf16" (bfloat16 products, float32 arrays only) or
    "int8" (inference, float32, no W_hr; ``int8_weights``: W_ih and W_hh
    prepared by Int8Weights, else quantized in the call).
    ``W_hr`` (P, H), 0 < P < H: the projection of torch.nn.LSTM(proj_size=P),
    h_t = (o_t ⊙ tanh(c_t)) W_hrᵀ; then W_hh is (4H, P), h0, hT (B, P) and
    y (T, B, P).
    """
    x, W_ih, W_hh, (b, *proj), H = check_weights(4, x, W_ih, W_hh, [("b", b)], W_hr)
    W_hr = proj[0] if proj else None
    P = 0 if W_hr is None else W_hr.shape[0]
    if precision == "int8" and W_hr is not None:
        raise ValueError("precision: 'int8' runs LSTMs without a projection only (W_hr); use 'fp32' or 'bf16' "
                         "for proj_size > 0")
    h0, c0 = checked_state("h0", h0, x, P or H), checked_state("c0", c0, x, H)
    lengths, reverse, num_threads = checked_lengths(lengths, x), checked_reverse(reverse), checked_threads(num_threads)
    train = checked_flag("train", train)
    check_inference(check_precision(precision, x.dtype), train)
    backend = backend_to_run(backend, x, H)
    if backend == "native":
        (y, hT, cT), data = _native_forward("lstm", x, h0, c0, W_ih, W_hh, b, None, train, lengths, reverse,
                                           num_threads, precision, int8_weights, W_hr=W_hr)
    else:
        y, hT, cT, data = reference.lstm_forward(x, h0, c0, W_ih, W_hh, b, train=train, lengths=lengths,
                                                 reverse=reverse, precision=precision, W_hr=W_hr)
    return y, hT, cT, Cache("lstm", backend, x, H, data, precision, proj_size=P) if train else None


def lstm_backward(dy, dhT, dcT, cache):
    """BPTT of lstm_forward. dy (T, B, H), dhT and dcT (B, H), each or None
    (dy, dhT with P features when the forward had W_hr).

    Returns (dx, dh0, dc0, dW_ih, dW_hh, db), and dW_hr (P, H) last when the
    forward had W_hr.
    """
    cache = checked_cache("lstm", cache)
    dy, dhT = check_dy_dh(cache, dy, dhT)
    dcT = checked_grad("dcT", dcT, (cache.B, cache.H), "(B, H)", cache.dtype)
    if cache.backend == "native":
        dx, dh0, dc0, dW_ih, dW_hh, db, _, dW_hr = _native_backward(cache, dy, dhT, dcT)
        grads = (dx, dh0, dc0, dW_ih, dW_hh, db)
        return grads if dW_hr is None else grads + (dW_hr,)
    return reference.lstm_backward(dy, dhT, dcT, cache.data)


# ---------------------------------------------------------------------------
# GRU


def gru_forward(x, h0, W_ih, W_hh, b_ih, b_hh, *, train: bool = True, backend: Optional[str] = None,
                lengths=None, reverse: bool = False, num_threads: Optional[int] = None,
                precision: str = "fp32", int8_weights: Optional[Int8Weights] = None):
    """GRU over a whole sequence, gates r, z, n; the reset is applied after the
    recurrent product, as PyTorch and cuDNN do.

    x (T, B, D); h0 (B, H) or None (zeros); W_ih (3H, D); W_hh (3H, H);
    b_ih, b_hh (3H,). Returns y (T, B, H), hT (B, H) and the cache for
    gru_backward (None when ``train`` is False).
    ``precision``: "fp32", "bf16" (bfloat16 products, float32 arrays only) or
    "int8" (inference, float32; ``int8_weights``: W_ih and W_hh prepared by
    Int8Weights, else quantized in the call).
    """
    x, W_ih, W_hh, (b_ih, b_hh), H = check_weights(3, x, W_ih, W_hh, [("b_ih", b_ih), ("b_hh", b_hh)])
    h0 = checked_state("h0", h0, x, H)
    lengths, reverse, num_threads = checked_lengths(lengths, x), checked_reverse(reverse), checked_threads(num_threads)
    train = checked_flag("train", train)
    check_inference(check_precision(precision, x.dtype), train)
    backend = backend_to_run(backend, x, H)
    if backend == "native":
        (y, hT, _), data = _native_forward("gru", x, h0, None, W_ih, W_hh, b_ih, b_hh, train, lengths, reverse,
                                           num_threads, precision, int8_weights)
    else:
        y, hT, data = reference.gru_forward(x, h0, W_ih, W_hh, b_ih, b_hh, train=train, lengths=lengths,
                                            reverse=reverse, precision=precision)
    return y, hT, Cache("gru", backend, x, H, data, precision) if train else None


def gru_backward(dy, dhT, cache):
    """BPTT of gru_forward. dy (T, B, H) or None, dhT (B, H) or None.

    Returns (dx, dh0, dW_ih, dW_hh, db_ih, db_hh).
    """
    cache = checked_cache("gru", cache)
    dy, dhT = check_dy_dh(cache, dy, dhT)
    if cache.backend == "native":
        dx, dh0, _, dW_ih, dW_hh, db_ih, db_hh, _ = _native_backward(cache, dy, dhT, None)
        return dx, dh0, dW_ih, dW_hh, db_ih, db_hh
    return reference.gru_backward(dy, dhT, cache.data)
