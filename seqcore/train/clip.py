"""Gradient clipping, in place, before an optimiser's step.

``grads`` is a dict name -> ndarray (``layer.grads``) or any iterable of
float ndarrays; the arrays themselves are changed.
"""

from __future__ import annotations

import math
from typing import Iterable, List, Mapping, Union

import numpy as np

from .. import ops

Grads = Union[Mapping[str, np.ndarray], Iterable[np.ndarray]]


def _arrays(grads: Grads) -> List[np.ndarray]:
    arrays = list(grads.values()) if isinstance(grads, Mapping) else list(grads)
    for i, g in enumerate(arrays):
        if not isinstance(g, np.ndarray) or g.dtype not in (np.float32, np.float64):
            raise TypeError(f"grads: expected float32 or float64 numpy.ndarrays, got "
                            f"{getattr(g, 'dtype', type(g).__name__)} (entry {i})")
        if not g.flags.writeable:
            raise ValueError(f"grads: entry {i} is read-only; clipping changes the gradients in place")
    return arrays


def _positive(name: str, v) -> float:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)) \
            or not 0 < v < math.inf:
        raise ValueError(f"{name}: expected a number > 0, got {v!r}")
    return float(v)


def clip_by_value(grads: Grads, clip_value: float) -> None:
    """Clips every gradient entry to [-clip_value, clip_value] in place, as
    torch.nn.utils.clip_grad_value_ (the course clips to [-5, 5])."""
    c = _positive("clip_value", clip_value)
    for g in _arrays(grads):
        np.clip(g, -c, c, out=g)


def clip_by_global_norm(grads: Grads, max_norm: float) -> float:
    """Scales all gradients together, in place, so that their joint L2 norm is
    at most ``max_norm``, as torch.nn.utils.clip_grad_norm_: by
    max_norm / (norm + 1e-6) when that is below 1. Returns the norm before
    clipping (computed in float64). A NaN or infinite norm leaves the
    gradients unchanged (torch would scale them by 0 or NaN): check the value
    returned to skip such a step.
    """
    max_norm = _positive("max_norm", max_norm)
    arrays = _arrays(grads)
    # Σ of squares in float64 (float32 squares overflow early), natively: one
    # pass, and not np.dot, whose BLAS threads would fight the kernels'
    total = math.sqrt(sum(ops.sum_of_squares(g) for g in arrays))
    coef = max_norm / (total + 1e-6)
    if coef < 1:
        for g in arrays:
            g *= coef
    return total
