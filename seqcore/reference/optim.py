"""Optimizer updates in NumPy: the oracle of the native fused ones
(csrc/optim/), which give these results bit for bit."""

from __future__ import annotations

import math

import numpy as np


def adam_update(p: np.ndarray, g: np.ndarray, m: np.ndarray, v: np.ndarray, *, lr: float, beta1: float,
                beta2: float, eps: float, step: int) -> None:
    """Adam step number ``step`` (1, 2, …) in place on p and its moments m, v.
    The operations and their order are torch's (_single_tensor_adam), for the
    same rounding; each Python float meets the arrays in their dtype."""
    m += (1 - beta1) * (g - m)  # torch's lerp: the same as beta1·m + (1 - beta1)·g
    v *= beta2
    v += (1 - beta2) * g * g
    step_size = lr / (1 - beta1 ** step)
    denom = np.sqrt(v) / math.sqrt(1 - beta2 ** step)
    denom += eps
    p -= step_size * m / denom
