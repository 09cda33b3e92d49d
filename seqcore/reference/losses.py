"""Softmax cross-entropy of rows of logits in NumPy: the oracle of the
native fused kernel (csrc/optim/softmax_cross_entropy.h), which agrees with
it to rounding (its exponential and its sums are its own)."""

from __future__ import annotations

from typing import Tuple

import numpy as np


def softmax_cross_entropy_rows(z: np.ndarray, targets: np.ndarray, weights: np.ndarray) -> Tuple[float, np.ndarray]:
    """z (N, V) finite logits, targets (N,) in [0, V), weights (N,) float64 (0
    where a row does not count). Returns (Σ of the negative log-likelihoods
    of the rows of nonzero weight, in float64; dz (N, V) in z's dtype), where
    dz_i = w_i · (softmax(z_i) − onehot(t_i))."""
    rows = np.arange(z.shape[0])
    s = z - z.max(axis=1, keepdims=True)  # (N, V); one array of that size, reused for the gradient
    s_t = s[rows, targets]                # (N,) the target's shifted logit
    dz = np.exp(s, out=s)
    total = dz.sum(axis=1)                # (N,) >= 1
    nll = (np.log(total) - s_t)[weights != 0]  # -log softmax(z)[t]
    dz *= (weights / total).astype(z.dtype)[:, None]
    dz[rows, targets] -= weights.astype(z.dtype)
    return float(nll.sum(dtype=np.float64)), dz
