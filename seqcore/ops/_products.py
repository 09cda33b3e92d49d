"""Matrix product, Adam, the sum of squares, softmax cross-entropy: the
native kernels outside the cells."""

from __future__ import annotations

import math
from typing import Optional, Tuple

import numpy as np

from .. import reference
from ._checks import check_backend, check_float_ndarray, wants_bf16
from ._runtime import core


def matmul(a: np.ndarray, b: np.ndarray, *, trans_a: bool = False, trans_b: bool = False,
           out: Optional[np.ndarray] = None, accumulate: bool = False, precision: str = "fp32") -> np.ndarray:
    """op(a) @ op(b) for 2-D float32/float64 arrays of one dtype, with seqcore's
    own matrix product: the kernels' threads (not NumPy's BLAS pool, whose
    spinning threads would fight them for the cores) and a result that does
    not depend on the thread count. op(a) is a.T when trans_a. Into ``out``
    (C-contiguous, written in place) when given; with ``accumulate`` the
    product is added to it. ``precision="bf16"`` (float32): op(a) and op(b)
    rounded to bfloat16, float32 sums (see the module's docstring)."""
    for name, m in (("a", a), ("b", b)):
        if not isinstance(m, np.ndarray) or m.ndim != 2 or m.dtype not in (np.float32, np.float64):
            raise TypeError(f"{name}: expected a 2-D float32 or float64 ndarray")
    if b.dtype != a.dtype:
        raise TypeError(f"b: expected dtype {a.dtype} (the dtype of a), got {b.dtype}")
    bf16 = wants_bf16(precision, a.dtype)
    M, K = (a.shape[1], a.shape[0]) if trans_a else a.shape
    Kb, N = (b.shape[1], b.shape[0]) if trans_b else b.shape
    if Kb != K:
        raise ValueError(f"b: op(a) is {(M, K)}, so op(b) must have {K} rows, got {(Kb, N)}")
    if out is None:
        if accumulate:
            raise ValueError("accumulate: needs out")
        out = np.empty((M, N), dtype=a.dtype)
    elif not isinstance(out, np.ndarray) or out.dtype != a.dtype or out.shape != (M, N):
        got = f"{out.dtype} {out.shape}" if isinstance(out, np.ndarray) else type(out).__name__
        raise TypeError(f"out: expected a {a.dtype} ndarray of shape {(M, N)}, got {got}")
    elif not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError("out: expected a C-contiguous, writeable array (the product is written in place)")
    core.gemm(np.ascontiguousarray(a), np.ascontiguousarray(b), out, trans_a, trans_b, 1.0,
               1.0 if accumulate else 0.0, bf16)
    return out


def adam_update(p: np.ndarray, g: np.ndarray, m: np.ndarray, v: np.ndarray, *, lr: float, beta1: float,
                beta2: float, eps: float, step: int, backend: Optional[str] = None) -> None:
    """Adam step number ``step`` (1, 2, …) in place on the parameter p and its
    moments m, v, from the gradient g: torch's operations in torch's order
    (seqcore.reference.adam_update). The native kernel fuses them into one
    pass and gives the reference's results bit for bit. p, m, v: float32 or
    float64 ndarrays of g's shape and dtype, writeable, and for the native
    kernel C-contiguous (the reference updates any view in place)."""
    check_backend(backend)
    check_float_ndarray("p", p)
    for name, a in (("g", g), ("m", m), ("v", v)):
        if not isinstance(a, np.ndarray) or a.dtype != p.dtype or a.shape != p.shape:
            got = f"{a.dtype} {a.shape}" if isinstance(a, np.ndarray) else type(a).__name__
            raise TypeError(f"{name}: expected a {p.dtype} ndarray of p's shape {p.shape}, got {got}")
    for name, a in (("p", p), ("m", m), ("v", v)):
        if not a.flags.writeable or (backend != "reference" and not a.flags.c_contiguous):
            raise ValueError(f"{name}: expected a C-contiguous, writeable array (updated in place)")
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 1:
        raise ValueError(f"step: expected an int >= 1, got {step!r}")
    if backend == "reference":
        reference.adam_update(p, g, m, v, lr=lr, beta1=beta1, beta2=beta2, eps=eps, step=step)
        return
    core.adam(p, np.ascontiguousarray(g), m, v, beta1, beta2, eps, lr / (1 - beta1 ** step),
               math.sqrt(1 - beta2 ** step))


def sum_of_squares(a: np.ndarray) -> float:
    """Σ a², accumulated in float64 (float32 squares overflow past 1.8e19),
    for a float32 or float64 ndarray of any shape and layout; NaN or inf
    where a holds one. Blocks of 64 Ki elements shared out to the threads,
    their sums added in order: the result depends on the array alone, not
    on the threads."""
    check_float_ndarray("a", a)
    return float(core.sum_of_squares(np.ascontiguousarray(a)))


def read_stream(a: np.ndarray, repeats: int = 1, num_threads: Optional[int] = None) -> Tuple[float, float]:
    """The bandwidth probe (bench/bandwidth.py): ``num_threads`` threads
    (None: get_num_threads()) each read their share of ``a`` (a 1-D,
    C-contiguous float32 or float64 array) ``repeats`` times with the
    kernels' vector loads. Returns (the seconds from the first thread's
    start to the last one's end, the sum of what was read)."""
    check_float_ndarray("a", a)
    if isinstance(repeats, bool) or not isinstance(repeats, (int, np.integer)) or repeats < 1:
        raise ValueError(f"repeats: expected an int >= 1, got {repeats!r}")
    if num_threads is not None and (isinstance(num_threads, bool) or not isinstance(num_threads, (int, np.integer))
                                    or num_threads < 1):
        raise ValueError(f"num_threads: expected None or an int >= 1, got {num_threads!r}")
    seconds, total = core.read_stream(a, int(repeats), int(num_threads or 0))
    return float(seconds), float(total)


def softmax_cross_entropy_rows(z: np.ndarray, targets: np.ndarray, weights: np.ndarray, *,
                               backend: Optional[str] = None) -> Tuple[float, np.ndarray]:
    """Softmax cross-entropy of the rows of z (N, V), float32 or float64,
    finite, against targets (N,) integers in [0, V), weighted by weights
    (N,) (0: the row does not count). Returns (the sum of the rows' negative
    log-likelihoods where the weight is not 0, in float64; dz (N, V) in z's
    dtype), dz_i = w_i · (softmax(z_i) − onehot(t_i)). The native kernel
    fuses the passes and shares the rows out to the threads (the same bits
    at any thread count); the reference (seqcore.reference) is the NumPy
    code it replaces, equal to rounding. seqcore.nn.softmax_cross_entropy
    checks and shapes the arguments."""
    check_backend(backend)
    check_float_ndarray("z", z)
    if z.ndim != 2:
        raise ValueError(f"z: expected shape (N, V), got {z.shape}")
    N, V = z.shape
    targets = np.ascontiguousarray(targets, dtype=np.int64)
    weights = np.ascontiguousarray(weights, dtype=np.float64)
    if targets.shape != (N,) or weights.shape != (N,):
        raise ValueError(f"targets, weights: expected shape ({N},), got {targets.shape} and {weights.shape}")
    if N and (V == 0 or targets.min() < 0 or targets.max() >= V):
        raise ValueError(f"targets: expected values in [0, V) = [0, {V})")
    if backend == "reference" or N == 0:
        return reference.softmax_cross_entropy_rows(z, targets, weights)
    loss, dz = core.softmax_cross_entropy(np.ascontiguousarray(z), targets, weights)
    return float(loss), dz
