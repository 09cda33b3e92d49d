"""Exact elementwise functions of the reference, computed without overflow."""

import numpy as np


def sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + e^-x), in the dtype of x; e^-|x| never overflows."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


def tanh(x: np.ndarray) -> np.ndarray:
    """numpy's tanh, in the dtype of x."""
    return np.tanh(x)


def relu(x: np.ndarray) -> np.ndarray:
    """max(x, 0), in the dtype of x."""
    return np.maximum(x, 0).astype(x.dtype, copy=False)
