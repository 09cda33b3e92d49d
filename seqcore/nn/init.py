"""Initial values of parameters, drawn straight into the layer's dtype.

The numbers are numpy's float64 draws (``rng.uniform``, ``rng.standard_normal``)
rounded to the dtype, so one seed gives the same model in float32 and
float64, as before; but they are drawn a chunk at a time into the final
array, so a float32 model never holds a float64 copy of its weights (a
large model briefly needed three times its weights' memory). numpy's
generators draw the same numbers in chunks as in one call.
"""

from __future__ import annotations

from typing import Callable, Tuple

import numpy as np

CHUNK = 1 << 20  # entries drawn at a time: an 8 MiB float64 temporary


def uniform(rng: np.random.Generator, bound: float, shape: Tuple[int, ...], dtype,
            chunk: int = CHUNK) -> np.ndarray:
    """rng.uniform(-bound, bound, shape) in ``dtype``."""
    return _filled(lambda n: rng.uniform(-bound, bound, n), shape, dtype, chunk)


def normal(rng: np.random.Generator, shape: Tuple[int, ...], dtype, chunk: int = CHUNK) -> np.ndarray:
    """rng.standard_normal(shape) in ``dtype``."""
    return _filled(rng.standard_normal, shape, dtype, chunk)


def _filled(draw: Callable[[int], np.ndarray], shape: Tuple[int, ...], dtype, chunk: int) -> np.ndarray:
    out = np.empty(shape, dtype)
    flat = out.reshape(-1)  # a view: out is contiguous
    for start in range(0, flat.size, chunk):
        stop = min(start + chunk, flat.size)
        flat[start:stop] = draw(stop - start)
    return out
