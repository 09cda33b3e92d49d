"""Losses, each returning ``(loss, grad)``: the loss as a Python float and its
gradient with respect to the prediction (same shape and dtype), ready for the
last layer's ``backward``. Softmax helpers for sampling live here too.

Shapes: logits (..., V) with any leading dims (a (T, B, V) sequence or (B, V)),
targets (...) integers in [0, V).
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from .. import ops

REDUCTIONS = ("mean", "sum")


# ---------------------------------------------------------------------------
# argument checks


def _float_array(name: str, a) -> np.ndarray:
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name}: expected a numpy.ndarray, got {type(a).__name__}")
    if a.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name}: expected dtype float32 or float64, got {a.dtype}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name}: contains NaN or inf")
    return a


def _reduction(reduction: str) -> str:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction: expected 'mean' or 'sum', got {reduction!r}")
    return reduction


def check_temperature(temperature: float) -> float:
    """``temperature`` as a float > 0 (softmax, sampling); ValueError naming it."""
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float, np.number)) \
            or not 0 < temperature < np.inf:
        raise ValueError(f"temperature: expected a number > 0, got {temperature!r}")
    return float(temperature)


def _mask(mask, shape: Tuple[int, ...]) -> np.ndarray:
    """A 0/1 (or bool) mask of targets' shape, as bool."""
    m = np.asarray(mask)
    if m.shape != shape:
        raise ValueError(f"mask: expected the shape of targets {shape}, got {m.shape}")
    if m.dtype == bool:
        return m
    if m.dtype.kind not in "iuf" or not np.isin(m, (0, 1)).all():
        raise ValueError("mask: expected bools or the numbers 0 and 1")
    return m != 0


# ---------------------------------------------------------------------------
# softmax


def _shifted(z: np.ndarray, axis: int) -> np.ndarray:
    """z minus its max along ``axis`` (a new array): every entry <= 0 and the
    largest 0, so exp never overflows and the sum of exps is >= 1."""
    return z - z.max(axis=axis, keepdims=True)


def log_softmax(logits: np.ndarray, axis: int = -1, temperature: float = 1.0) -> np.ndarray:
    """log softmax(logits / temperature) along ``axis``; logits' shape and dtype."""
    logits = _float_array("logits", logits)
    t = check_temperature(temperature)
    s = _shifted(logits / t if t != 1 else logits, axis)
    s -= np.log(np.exp(s).sum(axis=axis, keepdims=True))
    return s


def softmax(logits: np.ndarray, axis: int = -1, temperature: float = 1.0) -> np.ndarray:
    """softmax(logits / temperature) along ``axis``: probabilities summing to 1;
    logits' shape and dtype. Lower temperatures sharpen, higher flatten."""
    logits = _float_array("logits", logits)
    t = check_temperature(temperature)
    e = np.exp(_shifted(logits / t if t != 1 else logits, axis))
    e /= e.sum(axis=axis, keepdims=True)
    return e


# ---------------------------------------------------------------------------
# cross-entropy


def softmax_cross_entropy(logits: np.ndarray, targets, ignore_index: Optional[int] = None, mask=None,
                          reduction: str = "mean") -> Tuple[float, np.ndarray]:
    """Cross-entropy of softmax(logits) against integer targets, and dlogits.

    logits (..., V) float32/float64; targets (...) integers. Positions whose
    target is ``ignore_index``, or where ``mask`` (targets' shape, 0/1 or bool)
    is 0, count for nothing and get a zero gradient; the targets there may be
    anything. "mean" divides the sum by the number of counted positions (none
    counted: loss 0.0 and a zero gradient), "sum" does not divide.
    Returns (loss, dlogits (..., V) in logits' dtype).
    """
    logits = _float_array("logits", logits)
    if logits.ndim == 0 or logits.shape[-1] == 0:
        raise ValueError(f"logits: expected shape (..., V) with V >= 1, got {logits.shape}")
    reduction = _reduction(reduction)
    V = logits.shape[-1]
    targets = np.asarray(targets)
    if targets.dtype.kind not in "iu":
        raise TypeError(f"targets: expected integers, got dtype {targets.dtype}")
    if targets.shape != logits.shape[:-1]:
        raise ValueError(f"targets: expected the leading shape of logits {logits.shape[:-1]}, got {targets.shape}")
    if ignore_index is not None and (isinstance(ignore_index, bool)
                                     or not isinstance(ignore_index, (int, np.integer))):
        raise TypeError(f"ignore_index: expected None or an int, got {ignore_index!r}")

    # counted (...): the positions that make the loss
    counted = np.ones(targets.shape, bool) if mask is None else _mask(mask, targets.shape)
    if ignore_index is not None:
        counted = counted & (targets != ignore_index)  # not &=: counted may be the caller's mask
    bad = counted & ((targets < 0) | (targets >= V))
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"targets: expected values in [0, V) = [0, {V}) where counted, "
                         f"got {targets[where]} at {where}")

    z = logits.reshape(-1, V)  # (N, V)
    c = counted.reshape(-1)    # (N,)
    t = np.where(c, targets.reshape(-1), 0)  # uncounted rows read column 0, then are zeroed
    n = int(c.sum())
    scale = 1.0 / n if reduction == "mean" and n > 0 else 1.0
    # d/dz of -log softmax(z)[t] = softmax(z) - onehot(t), times w: scale where counted, else 0
    total, dz = ops.softmax_cross_entropy_rows(z, t, c * scale)
    loss = total * scale
    return loss, dz.reshape(logits.shape)


def mean_squared_error(pred: np.ndarray, target, reduction: str = "mean") -> Tuple[float, np.ndarray]:
    """Σ (pred - target)², divided by pred.size for "mean" (an empty pred: 0.0).

    pred float32/float64 (any shape); target numbers of the same shape,
    compared in pred's dtype. Returns (loss, dpred in pred's shape and dtype).
    """
    pred = _float_array("pred", pred)
    reduction = _reduction(reduction)
    target = np.asarray(target)
    if target.dtype.kind not in "iuf":
        raise TypeError(f"target: expected numbers, got dtype {target.dtype}")
    if target.shape != pred.shape:
        raise ValueError(f"target: expected the shape of pred {pred.shape}, got {target.shape}")
    if not np.isfinite(target).all():
        raise ValueError("target: contains NaN or inf")
    diff = pred - target.astype(pred.dtype, copy=False)
    scale = 1.0 / pred.size if reduction == "mean" and pred.size > 0 else 1.0
    loss = float(np.square(diff).sum(dtype=np.float64)) * scale
    diff *= 2 * scale
    return loss, diff


# ---------------------------------------------------------------------------
# the same, as objects


class CrossEntropyLoss:
    """``softmax_cross_entropy`` with ``ignore_index`` and ``reduction`` fixed:
    ``loss, dlogits = CrossEntropyLoss(ignore_index=0)(logits, targets, mask=None)``."""

    def __init__(self, ignore_index: Optional[int] = None, reduction: str = "mean") -> None:
        self.ignore_index = ignore_index
        self.reduction = _reduction(reduction)

    def __call__(self, logits: np.ndarray, targets, mask=None) -> Tuple[float, np.ndarray]:
        return softmax_cross_entropy(logits, targets, self.ignore_index, mask, self.reduction)


class MSELoss:
    """``mean_squared_error`` with ``reduction`` fixed: ``loss, dpred = MSELoss()(pred, target)``."""

    def __init__(self, reduction: str = "mean") -> None:
        self.reduction = _reduction(reduction)

    def __call__(self, pred: np.ndarray, target) -> Tuple[float, np.ndarray]:
        return mean_squared_error(pred, target, self.reduction)
