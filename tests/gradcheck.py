"""Central finite differences in float64 for any scalar function of arrays
(the oracle of every layer's and loss's backward)."""

import numpy as np

EPS = 1e-6


def numerical_gradient(f, a: np.ndarray, eps: float = EPS) -> np.ndarray:
    """d f() / d a by central differences, moving each entry of ``a`` in place
    (f reads ``a``); ``a`` is left as it was."""
    g = np.zeros_like(a, dtype=np.float64)
    for idx in np.ndindex(a.shape):
        old = a[idx]
        a[idx] = old + eps
        up = f()
        a[idx] = old - eps
        down = f()
        a[idx] = old
        g[idx] = (up - down) / (2 * eps)
    return g


def assert_close_to_numerical(analytic: np.ndarray, numerical: np.ndarray, rtol: float = 1e-7) -> None:
    """Max absolute error relative to the largest entry of the numerical gradient."""
    assert analytic.shape == numerical.shape
    err = np.max(np.abs(analytic - numerical), initial=0) / max(np.max(np.abs(numerical), initial=0), 1e-12)
    assert err < rtol, f"relative error {err:.2e}"
