"""Central finite differences in float64 for any scalar function of arrays
(the oracle of every layer's and loss's backward): seqcore's public
``numerical_gradient``, which tests/test_gradient_check.py checks, and the
tests' comparison."""

import numpy as np

from seqcore.gradient_check import EPS, numerical_gradient  # noqa: F401 (the tests import both from here)


def assert_close_to_numerical(analytic: np.ndarray, numerical: np.ndarray, rtol: float = 1e-7) -> None:
    """Max absolute error relative to the largest entry of the numerical gradient."""
    assert analytic.shape == numerical.shape
    err = np.max(np.abs(analytic - numerical), initial=0) / max(np.max(np.abs(numerical), initial=0), 1e-12)
    assert err < rtol, f"relative error {err:.2e}"
