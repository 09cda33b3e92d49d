"""The checks of the kernels' arguments, each error naming the argument; and
the cache a forward keeps for its backward."""

from __future__ import annotations

import math
from typing import Any, Optional, Tuple

import numpy as np

BACKENDS = ("native", "reference")
PRECISIONS = ("fp32", "bf16", "int8")
# Whether "native" runs the C++ cells (else it falls back to the reference).
NATIVE_CELLS = True


def checked_size(name: str, v) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise ValueError(f"{name}: expected an int of at least 1, got {v!r}")
    return int(v)


def checked_array(name: str, a: Any, dims: str, dtype: Optional[np.dtype] = None) -> np.ndarray:
    """Checks that `a` is a finite float32/float64 ndarray with as many
    dimensions as `dims` names ("(T, B, D)") and, if given, dtype `dtype`.
    Returns it C-contiguous."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name}: expected a numpy.ndarray {dims}, got {type(a).__name__}")
    if dtype is None and a.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name}: expected dtype float32 or float64, got {a.dtype}")
    if dtype is not None and a.dtype != dtype:
        raise TypeError(f"{name}: expected dtype {dtype} (the dtype of x), got {a.dtype}")
    ndim = len([d for d in dims.strip("()").split(",") if d.strip()])
    if a.ndim != ndim:
        raise ValueError(f"{name}: expected {ndim} dimensions {dims}, got shape {a.shape}")
    a = np.ascontiguousarray(a)
    if not all_finite(a):
        raise ValueError(f"{name}: contains NaN or inf")
    return a


def all_finite(a: np.ndarray) -> bool:
    """Whether every element of the C-contiguous float array `a` is finite.
    A large float32 array: whether the native sum of its squares (in
    float64, on the threads) is: NaN and inf carry through a sum of
    squares, and no float32's square (< 1.2e77) can overflow a float64
    sum. 3x faster than np.isfinite(a).all() on a 16 MB W_hh, which every
    call checks. Otherwise the element-wise check."""
    if a.dtype == np.float32 and a.size >= 1 << 16:
        from ._runtime import core  # (here, not at the top: _runtime imports this module)
        return math.isfinite(core.sum_of_squares(a))
    return bool(np.isfinite(a).all())


def expect_shape(name: str, a: np.ndarray, shape: Tuple[int, ...], dims: str) -> None:
    if a.shape != shape:
        raise ValueError(f"{name}: expected shape {dims} = {shape}, got {a.shape}")


def check_backend(backend: Optional[str]) -> None:
    if backend is not None and backend not in BACKENDS:
        raise ValueError(f"backend: expected 'native', 'reference' or None, got {backend!r}")


def check_precision(precision, dtype=np.float32) -> str:
    """Checks a precision ("fp32", "bf16" or "int8", see the module's
    docstring) for arrays of `dtype` and returns it; ValueError naming
    ``precision`` for any other value, and for "bf16" or "int8" with float64."""
    if not isinstance(precision, str) or precision not in PRECISIONS:
        raise ValueError(f"precision: expected 'fp32', 'bf16' or 'int8', got {precision!r}")
    if precision != "fp32" and np.dtype(dtype) != np.float32:
        raise ValueError(f"precision: {precision!r} needs float32 arrays, got {np.dtype(dtype)} "
                         "(float64 computes in float64: use precision='fp32')")
    return precision


def check_inference(precision: str, train: bool) -> None:
    """Precision "int8" is for inference: a training forward in it is refused,
    naming ``precision``."""
    if precision == "int8" and train:
        raise ValueError("precision: 'int8' is for inference (train=False) only; train in 'fp32' or 'bf16', "
                         "then set precision = 'int8' to serve")


def wants_bf16(precision, dtype) -> bool:
    """check_precision for a product that has "fp32" and "bf16" (not "int8",
    refused naming ``precision``); True for "bf16"."""
    if check_precision(precision, dtype) == "int8":
        raise ValueError("precision: this product takes 'fp32' or 'bf16'; 'int8' is the recurrent layers' "
                         "inference precision")
    return precision == "bf16"


def check_float_ndarray(name: str, a: Any) -> None:
    """Checks that `a` is a float32 or float64 ndarray (any shape, layout, values)."""
    if not isinstance(a, np.ndarray) or a.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name}: expected a float32 or float64 ndarray, got {getattr(a, 'dtype', type(a).__name__)}")


def backend_to_run(backend: Optional[str], x: np.ndarray, H: int) -> str:
    """The backend that will really run: None is "native"; empty sizes (T, B
    or H of 0) run the reference, which handles them without a kernel."""
    check_backend(backend)
    if backend == "reference" or not NATIVE_CELLS or min(x.shape[0], x.shape[1], H) == 0:
        return "reference"
    return "native"


def check_weights(G: int, x, W_ih, W_hh, biases, W_hr=None):
    """Checks x (T, B, D) and the weights of a cell with G gates: W_hh (G·H,
    H), or with an LSTM's projection W_hr (P, H), 0 < P < H, and W_hh (4H, P).
    Returns them C-contiguous (W_hr last), and H."""
    x = checked_array("x", x, "(T, B, D)")
    W_hh = checked_array("W_hh", W_hh, "(G·H, H)", x.dtype)
    if W_hr is None:
        H = W_hh.shape[1]
        expect_shape("W_hh", W_hh, (G * H, H), f"({G}·H, H)")
    else:
        W_hr = checked_array("W_hr", W_hr, "(P, H)", x.dtype)
        P, H = W_hr.shape
        if not 0 < P < H:
            raise ValueError(f"W_hr: expected shape (P, H) with 0 < P < H (proj_size below hidden_size, "
                             f"as torch.nn.LSTM), got {W_hr.shape}")
        expect_shape("W_hh", W_hh, (G * H, P), f"({G}·H, P) with a projection")
    W_ih = checked_array("W_ih", W_ih, "(G·H, D)", x.dtype)
    expect_shape("W_ih", W_ih, (G * H, x.shape[2]), f"({G}·H, D)")
    checked = []
    for name, b in biases:
        b = checked_array(name, b, "(G·H,)", x.dtype)
        expect_shape(name, b, (G * H,), f"({G}·H,)")
        checked.append(b)
    if W_hr is not None:
        checked.append(W_hr)
    return x, W_ih, W_hh, checked, H


NONLINEARITIES = ("tanh", "relu")


def check_nonlinearity(nonlinearity) -> str:
    """Checks an RNN's nonlinearity ("tanh" or "relu") and returns it;
    ValueError naming ``nonlinearity`` for any other value."""
    if not isinstance(nonlinearity, str) or nonlinearity not in NONLINEARITIES:
        raise ValueError(f"nonlinearity: expected 'tanh' or 'relu', got {nonlinearity!r}")
    return nonlinearity


def checked_state(name: str, s, x: np.ndarray, H: int) -> np.ndarray:
    """A (B, H) state; None means zeros."""
    if s is None:
        return np.zeros((x.shape[1], H), dtype=x.dtype)
    s = checked_array(name, s, "(B, H)", x.dtype)
    expect_shape(name, s, (x.shape[1], H), "(B, H)")
    return s


def checked_lengths(lengths, x: np.ndarray) -> Optional[np.ndarray]:
    """Sequence lengths of a padded batch: None (all T) or B integers in [0, T]."""
    if lengths is None:
        return None
    a = np.asarray(lengths)
    if a.size == 0 and not isinstance(lengths, np.ndarray):
        a = a.astype(np.int64)  # [] of an empty batch: numpy reads it as float64
    T, B = x.shape[0], x.shape[1]
    if a.dtype.kind not in "iu":
        raise TypeError(f"lengths: expected integers, got dtype {a.dtype}")
    if a.shape != (B,):
        raise ValueError(f"lengths: expected shape (B,) = ({B},), got {a.shape}")
    if B and (a.min() < 0 or a.max() > T):
        raise ValueError(f"lengths: expected values in [0, T] = [0, {T}], got [{a.min()}, {a.max()}]")
    return np.ascontiguousarray(a, dtype=np.int64)


def checked_flag(name: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected a bool, got {type(value).__name__}")
    return bool(value)


def checked_reverse(reverse) -> bool:
    return checked_flag("reverse", reverse)


def checked_grad(name: str, g, shape: Tuple[int, ...], dims: str, dtype) -> Optional[np.ndarray]:
    """An incoming gradient; None means no gradient there."""
    if g is None:
        return None
    g = checked_array(name, g, dims, dtype)
    expect_shape(name, g, shape, dims)
    return g


class Cache:
    """What ``<cell>_backward`` needs from ``<cell>_forward(train=True)``; opaque.
    S: the width of h and y (an LSTM's projection size P, else H);
    nonlinearity: an RNN's; proj_size: an LSTM's P, 0 without a projection."""

    __slots__ = ("cell", "backend", "dtype", "T", "B", "H", "S", "data", "precision", "nonlinearity",
                 "proj_size")

    def __init__(self, cell: str, backend: str, x: np.ndarray, H: int, data: Any, precision: str = "fp32",
                 nonlinearity: str = "tanh", proj_size: int = 0):
        self.cell, self.backend, self.dtype = cell, backend, x.dtype
        self.T, self.B, self.H = x.shape[0], x.shape[1], H
        self.S = proj_size or H
        self.data = data
        self.precision = precision
        self.nonlinearity, self.proj_size = nonlinearity, proj_size

    def __repr__(self) -> str:
        extra = (f", nonlinearity={self.nonlinearity}" if self.cell == "rnn" else "") + (
            f", proj_size={self.proj_size}" if self.proj_size else "")
        return (f"Cache({self.cell}, backend={self.backend}, dtype={self.dtype}, precision={self.precision}, "
                f"T={self.T}, B={self.B}, H={self.H}{extra})")


def checked_cache(cell: str, cache: Any) -> Cache:
    if not isinstance(cache, Cache):
        raise TypeError(f"cache: expected the Cache returned by {cell}_forward(train=True), "
                        f"got {type(cache).__name__}")
    if cache.cell != cell:
        raise ValueError(f"cache: this cache comes from {cache.cell}_forward, not {cell}_forward")
    return cache


def check_dy_dh(cache: Cache, dy, dh, dh_name: str = "dhT"):
    dims = "P" if cache.proj_size else "H"
    dy = checked_grad("dy", dy, (cache.T, cache.B, cache.S), f"(T, B, {dims})", cache.dtype)
    dh = checked_grad(dh_name, dh, (cache.B, cache.S), f"(B, {dims})", cache.dtype)
    return dy, dh
