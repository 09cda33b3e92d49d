"""Functional kernels: ``*_forward`` / ``*_backward`` for each cell, and the backend runtime.

Shapes (G = 1 for RNN, 4 for LSTM, 3 for GRU): x (T, B, D), y (T, B, H),
h0, c0, hT, cT (B, H), W_ih (G·H, D), W_hh (G·H, H), b, b_ih, b_hh (G·H,).
Gate order as PyTorch: LSTM i, f, g, o; GRU r, z, n. For RNN and LSTM, ``b``
is the one bias (PyTorch's b_ih + b_hh). An RNN's ``nonlinearity`` is "tanh"
or "relu". An LSTM with a projection (PyTorch's proj_size P, 0 < P < H)
takes ``W_hr`` (P, H): h_t = (o_t ⊙ tanh(c_t)) W_hrᵀ, and then W_hh is
(4H, P), h0, hT, y have P features, c0, cT keep H.

Padded batches: ``lengths`` (B integers in [0, T]) gives each sequence's
length; steps past it leave the state unchanged and output zeros, and the
final state is taken at each sequence's own last step. ``reverse=True`` runs
each sequence backwards from its own end (the reverse direction of a
bidirectional layer); y stays in time order. ``num_threads`` sets the
threads of one call (default: seqcore.get_num_threads()); backward uses the
forward's.

Precision: ``precision="fp32"`` (the default) computes in the arrays' dtype,
float32 or float64. ``precision="bf16"`` (float32 arrays only) reads every
matrix product's operands — inputs, states, weights, gradients — rounded to
bfloat16 (nearest even, as torch; see seqcore.reference.bf16) and sums in
float32: AMX tiles where the CPU has them (isa "amx_bf16"), AVX512-BF16's
vdpbf16ps (isa "avx512_bf16"), a float32 product of the rounded operands
elsewhere. Gate nonlinearities,
the cell state, the biases and every array in or out stay float32. The
cache remembers the precision and backward follows it.

Every argument is checked here, with an error naming it. Inputs that are not
C-contiguous are copied to C-contiguous arrays (the one conversion made);
dtypes are never converted: all arrays of one call share x's dtype, float32
or float64.

This is the only module that calls the extension ``seqcore._core``.
"""

from __future__ import annotations

import contextlib
import math
import os
import warnings
from typing import Any, Dict, Iterator, Optional, Tuple

import numpy as np

from . import reference
from ._version import __version__

# How long seqcore's idle OpenMP threads spin before they sleep. GNU OpenMP
# reads GOMP_SPINCOUNT once, as it loads, and by default spins 300,000
# pauses (10-40 ms) after every parallel region: in a process that also runs
# torch's or a BLAS's thread pool, seqcore's threads would keep spinning
# through the other library's work and take its cores (measured on 16 cores
# beside torch: LSTM inference 20× slower than alone). Unless the user chose
# (GOMP_SPINCOUNT or OMP_WAIT_POLICY set), the runtime that loads with the
# extension (the wheel's own copy of libgomp) spins 3,000 pauses, about
# 0.1 ms: longer than the gap between the regions of a call, or between the
# calls of a training step, so those still find the threads awake. The
# variable is set only while the extension loads; where the runtime is
# loaded already (a build on the system's libgomp, which torch loaded
# first) it changes nothing. The time loops' own waits spin, then yield
# (csrc/threads.h).
SPIN_COUNT = 3000


def _load_core():
    chosen = "GOMP_SPINCOUNT" in os.environ or "OMP_WAIT_POLICY" in os.environ
    if not chosen:
        os.environ["GOMP_SPINCOUNT"] = str(SPIN_COUNT)
    try:
        from . import _core as core
    finally:
        if not chosen:
            del os.environ["GOMP_SPINCOUNT"]
    return core


_core = _load_core()

BACKENDS = ("native", "reference")
PRECISIONS = ("fp32", "bf16")
ISAS = ("scalar", "avx2", "avx512", "avx512_bf16", "amx_bf16")
# Whether "native" runs the C++ cells (else it falls back to the reference).
_NATIVE_CELLS = True


# ---------------------------------------------------------------------------
# runtime

# GNU OpenMP cannot run a parallel region in a child forked after its parent
# ran one: the child waits forever for the parent's pool threads, which fork
# did not copy. So in a forked child every kernel runs on one thread (the
# results are bitwise those at any thread count). Worker processes that need
# several threads each: multiprocessing's "spawn" (or "forkserver") start method.
_FORKED = False


def _after_fork_in_child() -> None:
    global _FORKED
    _FORKED = True
    _core.set_num_threads(1)


os.register_at_fork(after_in_child=_after_fork_in_child)


def info() -> Dict[str, Any]:
    """What the native backend runs on: version, ISA in use, ISAs this CPU has,
    OpenMP, threads, and what the default backend actually runs."""
    return {
        "version": __version__,
        "isa": _core.isa(),
        "isas": list(_core.isas()),
        "openmp": bool(_core.openmp()),
        "threads": _core.get_num_threads(),
        "backend": "native" if _NATIVE_CELLS else "reference",
    }


def get_num_threads() -> int:
    """Threads the native kernels use (default: OMP_NUM_THREADS, else the cores)."""
    return _core.get_num_threads()


def set_num_threads(n: int) -> None:
    """Sets the threads the native kernels use for later calls; ``n`` >= 1.

    In a process forked from one that had imported seqcore the kernels run on
    one thread whatever ``n`` (with a RuntimeWarning when ``n`` > 1): GNU
    OpenMP cannot start threads after fork. Worker processes that need
    several threads: ``multiprocessing.get_context("spawn")``."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"n: expected an int, got {type(n).__name__}")
    if not 1 <= n <= MAX_THREADS:
        raise ValueError(f"n: the number of threads must be in [1, {MAX_THREADS}], got {n}")
    if _FORKED and n > 1:
        warnings.warn("seqcore: this process was forked from one that had imported seqcore; its kernels "
                      "run on one thread (OpenMP cannot start threads after fork). Start worker processes "
                      "with multiprocessing's 'spawn' method to use several threads in each.", RuntimeWarning,
                      stacklevel=2)
        n = 1
    _core.set_num_threads(int(n))


def set_isa(name: str) -> None:
    """Uses the kernels of another instruction set ("scalar", "avx2", "avx512",
    "avx512_bf16", "amx_bf16") from now on, as SEQCORE_ISA does at start-up.
    The last two differ from "avx512" only in precision "bf16"'s products."""
    if name not in ISAS:
        raise ValueError(f"name: expected one of {', '.join(map(repr, ISAS))}, got {name!r}")
    if name not in _core.isas():
        raise ValueError(f"name: this CPU does not support {name!r} (it has {_core.isas()})")
    _core.set_isa(name)


def _size(name: str, v) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise ValueError(f"{name}: expected an int of at least 1, got {v!r}")
    return int(v)


def plan_threads(cell: str, T: int, B: int, H: int, train: bool = True,
                 num_threads: Optional[int] = None) -> int:
    """Threads the time loop of a call is worth: each step's work per thread
    against a step's synchronisation (csrc/plan.h gives the cost model), in
    [1, num_threads] (default seqcore.get_num_threads()). The loop also uses
    at most one thread per unit of hidden units (16 with AVX-512 float32);
    the rest of the offered threads sit the loop out."""
    if cell not in ("rnn", "lstm", "gru"):
        raise ValueError(f"cell: expected 'rnn', 'lstm' or 'gru', got {cell!r}")
    return _core.plan_threads(cell, _size("T", T), _size("B", B), _size("H", H), _flag("train", train),
                              _num_threads(num_threads))


def plan_product_threads(M: int, N: int, K: int, num_threads: Optional[int] = None) -> int:
    """Threads a matrix product (M,K)·(K,N) is worth: 1, or all of num_threads
    (default seqcore.get_num_threads()) when one thread would take more than
    twice what starting the team costs."""
    return _core.plan_product_threads(_size("M", M), _size("N", N), _size("K", K), _num_threads(num_threads))


def plan_stream_threads(nbytes: float, num_threads: Optional[int] = None) -> int:
    """Threads a memory-bound pass over ``nbytes`` bytes (Adam, the sum of
    squares, the softmax cross-entropy) is worth: 1, or all of num_threads
    (default seqcore.get_num_threads()) when sharing it saves more than a
    team costs, counting how late the loops have measured the threads to be
    (csrc/plan.h)."""
    if isinstance(nbytes, bool) or not isinstance(nbytes, (int, float, np.integer, np.floating)) \
            or not 0 <= nbytes < math.inf:
        raise ValueError(f"nbytes: expected a number >= 0, got {nbytes!r}")
    return _core.plan_stream_threads(float(nbytes), _num_threads(num_threads))


def thread_plan_costs() -> Dict[str, float]:
    """The cost model's constants: multiply-adds per ns (rate, product_rate),
    bytes per ns of a memory-bound pass (stream_rate),
    the gates' work per gate column (epilogue, in multiply-adds) and the ns of
    a step's synchronisation and of a parallel region (csrc/plan.h)."""
    return dict(_core.plan_costs())


@contextlib.contextmanager
def _every_thread_works() -> Iterator[None]:
    """Within the block, threads are not planned: every offered thread takes
    part (at most one per unit of work). For tests of the schedules."""
    before = _core.thread_planning()
    _core.set_thread_planning(False)
    try:
        yield
    finally:
        _core.set_thread_planning(before)


# ---------------------------------------------------------------------------
# matrix product


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
    bf16 = _precision(precision, a.dtype)
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
    _core.gemm(np.ascontiguousarray(a), np.ascontiguousarray(b), out, trans_a, trans_b, 1.0,
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
    _check_backend(backend)
    _float_ndarray("p", p)
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
    _core.adam(p, np.ascontiguousarray(g), m, v, beta1, beta2, eps, lr / (1 - beta1 ** step),
               math.sqrt(1 - beta2 ** step))


def sum_of_squares(a: np.ndarray) -> float:
    """Σ a², accumulated in float64 (float32 squares overflow past 1.8e19),
    for a float32 or float64 ndarray of any shape and layout; NaN or inf
    where a holds one. Blocks of 64 Ki elements shared out to the threads,
    their sums added in order: the result depends on the array alone, not
    on the threads."""
    _float_ndarray("a", a)
    return float(_core.sum_of_squares(np.ascontiguousarray(a)))


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
    _check_backend(backend)
    _float_ndarray("z", z)
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
    loss, dz = _core.softmax_cross_entropy(np.ascontiguousarray(z), targets, weights)
    return float(loss), dz


# ---------------------------------------------------------------------------
# argument checks


def _array(name: str, a: Any, dims: str, dtype: Optional[np.dtype] = None) -> np.ndarray:
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
    if not np.isfinite(a).all():
        raise ValueError(f"{name}: contains NaN or inf")
    return np.ascontiguousarray(a)


def _expect_shape(name: str, a: np.ndarray, shape: Tuple[int, ...], dims: str) -> None:
    if a.shape != shape:
        raise ValueError(f"{name}: expected shape {dims} = {shape}, got {a.shape}")


def _check_backend(backend: Optional[str]) -> None:
    if backend is not None and backend not in BACKENDS:
        raise ValueError(f"backend: expected 'native', 'reference' or None, got {backend!r}")


def check_precision(precision, dtype=np.float32) -> str:
    """Checks a precision ("fp32" or "bf16", see the module's docstring) for
    arrays of `dtype` and returns it; ValueError naming ``precision`` for any
    other value, and for "bf16" with float64."""
    if not isinstance(precision, str) or precision not in PRECISIONS:
        raise ValueError(f"precision: expected 'fp32' or 'bf16', got {precision!r}")
    if precision == "bf16" and np.dtype(dtype) != np.float32:
        raise ValueError(f"precision: 'bf16' needs float32 arrays, got {np.dtype(dtype)} "
                         "(float64 computes in float64: use precision='fp32')")
    return precision


def _precision(precision, dtype) -> bool:
    """check_precision; True for "bf16"."""
    return check_precision(precision, dtype) == "bf16"


def _float_ndarray(name: str, a: Any) -> None:
    """Checks that `a` is a float32 or float64 ndarray (any shape, layout, values)."""
    if not isinstance(a, np.ndarray) or a.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name}: expected a float32 or float64 ndarray, got {getattr(a, 'dtype', type(a).__name__)}")


def _backend(backend: Optional[str], x: np.ndarray, H: int) -> str:
    """The backend that will really run: None is "native"; empty sizes (T, B
    or H of 0) run the reference, which handles them without a kernel."""
    _check_backend(backend)
    if backend == "reference" or not _NATIVE_CELLS or min(x.shape[0], x.shape[1], H) == 0:
        return "reference"
    return "native"


def _check_weights(G: int, x, W_ih, W_hh, biases, W_hr=None):
    """Checks x (T, B, D) and the weights of a cell with G gates: W_hh (G·H,
    H), or with an LSTM's projection W_hr (P, H), 0 < P < H, and W_hh (4H, P).
    Returns them C-contiguous (W_hr last), and H."""
    x = _array("x", x, "(T, B, D)")
    W_hh = _array("W_hh", W_hh, "(G·H, H)", x.dtype)
    if W_hr is None:
        H = W_hh.shape[1]
        _expect_shape("W_hh", W_hh, (G * H, H), f"({G}·H, H)")
    else:
        W_hr = _array("W_hr", W_hr, "(P, H)", x.dtype)
        P, H = W_hr.shape
        if not 0 < P < H:
            raise ValueError(f"W_hr: expected shape (P, H) with 0 < P < H (proj_size below hidden_size, "
                             f"as torch.nn.LSTM), got {W_hr.shape}")
        _expect_shape("W_hh", W_hh, (G * H, P), f"({G}·H, P) with a projection")
    W_ih = _array("W_ih", W_ih, "(G·H, D)", x.dtype)
    _expect_shape("W_ih", W_ih, (G * H, x.shape[2]), f"({G}·H, D)")
    checked = []
    for name, b in biases:
        b = _array(name, b, "(G·H,)", x.dtype)
        _expect_shape(name, b, (G * H,), f"({G}·H,)")
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


def _state(name: str, s, x: np.ndarray, H: int) -> np.ndarray:
    """A (B, H) state; None means zeros."""
    if s is None:
        return np.zeros((x.shape[1], H), dtype=x.dtype)
    s = _array(name, s, "(B, H)", x.dtype)
    _expect_shape(name, s, (x.shape[1], H), "(B, H)")
    return s


def _lengths(lengths, x: np.ndarray) -> Optional[np.ndarray]:
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


# Far past any machine's cores: a larger count is a mistake, and OpenMP would
# try to start that many threads (failing, or exhausting memory, in C).
MAX_THREADS = 1024


def _num_threads(n) -> int:
    """Threads for one call: None (0 to the kernels) is seqcore.get_num_threads();
    always 1 in a forked child (see _FORKED)."""
    if n is None:
        return 1 if _FORKED else 0
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= MAX_THREADS:
        raise ValueError(f"num_threads: expected None or an int in [1, {MAX_THREADS}], got {n!r}")
    return 1 if _FORKED else int(n)


def _flag(name: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected a bool, got {type(value).__name__}")
    return bool(value)


def _reverse(reverse) -> bool:
    return _flag("reverse", reverse)


def _grad(name: str, g, shape: Tuple[int, ...], dims: str, dtype) -> Optional[np.ndarray]:
    """An incoming gradient; None means no gradient there."""
    if g is None:
        return None
    g = _array(name, g, dims, dtype)
    _expect_shape(name, g, shape, dims)
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


def _cache(cell: str, cache: Any) -> Cache:
    if not isinstance(cache, Cache):
        raise TypeError(f"cache: expected the Cache returned by {cell}_forward(train=True), "
                        f"got {type(cache).__name__}")
    if cache.cell != cell:
        raise ValueError(f"cache: this cache comes from {cache.cell}_forward, not {cell}_forward")
    return cache


def _check_dy_dh(cache: Cache, dy, dh, dh_name: str = "dhT"):
    dims = "P" if cache.proj_size else "H"
    dy = _grad("dy", dy, (cache.T, cache.B, cache.S), f"(T, B, {dims})", cache.dtype)
    dh = _grad(dh_name, dh, (cache.B, cache.S), f"(B, {dims})", cache.dtype)
    return dy, dh


# ---------------------------------------------------------------------------
# the native kernels


def _native_forward(cell, x, h0, c0, W_ih, W_hh, b_ih, b_hh, train, lengths, reverse, num_threads, bf16,
                    W_hr=None, relu=False):
    """Runs _core.cell_forward; returns ((y, hT, cT), what backward needs)."""
    y, hT, cT, ws_h, ws_gates, ws_c, ws_hn, ws_m = _core.cell_forward(
        cell, x, h0, c0, W_ih, W_hh, b_ih, b_hh, train, lengths, reverse, num_threads, bf16, W_hr, relu)
    data = dict(x=x, W_ih=W_ih, W_hh=W_hh, ws_h=ws_h, ws_gates=ws_gates, ws_c=ws_c, ws_hn=ws_hn,
                lengths=lengths, reverse=reverse, num_threads=num_threads, bf16=bf16, ws_m=ws_m, W_hr=W_hr,
                relu=relu)
    return (y, hT, cT), data


def _native_backward(cache: Cache, dy, dhT, dcT):
    """Runs _core.cell_backward -> (dx, dh0, dc0, dW_ih, dW_hh, db_ih, db_hh, dW_hr)."""
    return _core.cell_backward(cache.cell, **cache.data, dy=dy, dhT=dhT, dcT=dcT)


def forward_workspace_bytes(cell: str, T: int, B: int, D: int, H: int, *, train: bool, dtype=np.float32,
                            proj_size: int = 0) -> int:
    """Bytes the native forward of `cell` allocates beyond its inputs and
    outputs. Inference needs O(B·H) whatever T is. proj_size: an LSTM's
    projection (0: none)."""
    for name, n in (("T", T), ("B", B), ("D", D), ("H", H), ("proj_size", proj_size)):
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 0 <= n < 2**40:
            raise ValueError(f"{name}: expected an int in [0, 2**40), got {n!r}")
    if proj_size and (cell != "lstm" or proj_size >= H):
        raise ValueError(f"proj_size: expected 0, or for an LSTM 0 < proj_size < H = {H}, got {proj_size}")
    # the native count is an int64: the sequence's buffers and the packed W_hh (4H × H)
    if ((T + 1) * B * (D + 4 * H + 1) + 4 * H * (H + 64)) * 16 >= 2**62:
        raise ValueError(f"T, B, D, H: a workspace for {(T, B, D, H)} does not fit in memory")
    return _core.forward_workspace_bytes(cell, T, B, D, H, _flag("train", train), False,
                                         np.dtype(dtype) == np.float64, int(proj_size))


# ---------------------------------------------------------------------------
# vanilla RNN


def rnn_forward(x, h0, W_ih, W_hh, b, *, train: bool = True, backend: Optional[str] = None,
                lengths=None, reverse: bool = False, num_threads: Optional[int] = None,
                precision: str = "fp32", nonlinearity: str = "tanh"):
    """Vanilla RNN over a whole sequence: h_t = φ(x_t W_ihᵀ + h_{t-1} W_hhᵀ + b),
    φ = tanh or relu (``nonlinearity``, as torch.nn.RNN).

    x (T, B, D); h0 (B, H) or None (zeros); W_ih (H, D); W_hh (H, H); b (H,).
    Returns y (T, B, H), hT (B, H) and the cache for rnn_backward (None when
    ``train`` is False: nothing is kept; the cache remembers the nonlinearity).
    ``precision``: "fp32" or "bf16" (bfloat16 products, float32 arrays only).
    """
    nonlinearity = check_nonlinearity(nonlinearity)
    x, W_ih, W_hh, (b,), H = _check_weights(1, x, W_ih, W_hh, [("b", b)])
    h0 = _state("h0", h0, x, H)
    lengths, reverse, num_threads = _lengths(lengths, x), _reverse(reverse), _num_threads(num_threads)
    train = _flag("train", train)
    bf16 = _precision(precision, x.dtype)
    backend = _backend(backend, x, H)
    if backend == "native":
        (y, hT, _), data = _native_forward("rnn", x, h0, None, W_ih, W_hh, b, None, train, lengths, reverse,
                                           num_threads, bf16, relu=nonlinearity == "relu")
    else:
        y, hT, data = reference.rnn_forward(x, h0, W_ih, W_hh, b, train=train, lengths=lengths, reverse=reverse,
                                            precision=precision, nonlinearity=nonlinearity)
    return y, hT, Cache("rnn", backend, x, H, data, precision, nonlinearity=nonlinearity) if train else None


def rnn_backward(dy, dhT, cache):
    """BPTT of rnn_forward. dy (T, B, H) or None: gradients at every step's
    output; dhT (B, H) or None: the gradient at the final state.

    Returns (dx, dh0, dW_ih, dW_hh, db).
    """
    cache = _cache("rnn", cache)
    dy, dhT = _check_dy_dh(cache, dy, dhT)
    if cache.backend == "native":
        dx, dh0, _, dW_ih, dW_hh, db, _, _ = _native_backward(cache, dy, dhT, None)
        return dx, dh0, dW_ih, dW_hh, db
    return reference.rnn_backward(dy, dhT, cache.data)


# ---------------------------------------------------------------------------
# LSTM


def lstm_forward(x, h0, c0, W_ih, W_hh, b, *, train: bool = True, backend: Optional[str] = None,
                 lengths=None, reverse: bool = False, num_threads: Optional[int] = None,
                 precision: str = "fp32", W_hr=None):
    """LSTM over a whole sequence, gates i, f, g, o (update, forget, candidate, output).

    x (T, B, D); h0, c0 (B, H) or None (zeros); W_ih (4H, D); W_hh (4H, H);
    b (4H,). Returns y (T, B, H), hT, cT (B, H) and the cache for
    lstm_backward (None when ``train`` is False).
    ``precision``: "fp32" or "bf16" (bfloat16 products, float32 arrays only).
    ``W_hr`` (P, H), 0 < P < H: the projection of torch.nn.LSTM(proj_size=P),
    h_t = (o_t ⊙ tanh(c_t)) W_hrᵀ; then W_hh is (4H, P), h0, hT (B, P) and
    y (T, B, P).
    """
    x, W_ih, W_hh, (b, *proj), H = _check_weights(4, x, W_ih, W_hh, [("b", b)], W_hr)
    W_hr = proj[0] if proj else None
    P = 0 if W_hr is None else W_hr.shape[0]
    h0, c0 = _state("h0", h0, x, P or H), _state("c0", c0, x, H)
    lengths, reverse, num_threads = _lengths(lengths, x), _reverse(reverse), _num_threads(num_threads)
    train = _flag("train", train)
    bf16 = _precision(precision, x.dtype)
    backend = _backend(backend, x, H)
    if backend == "native":
        (y, hT, cT), data = _native_forward("lstm", x, h0, c0, W_ih, W_hh, b, None, train, lengths, reverse,
                                           num_threads, bf16, W_hr=W_hr)
    else:
        y, hT, cT, data = reference.lstm_forward(x, h0, c0, W_ih, W_hh, b, train=train, lengths=lengths,
                                                 reverse=reverse, precision=precision, W_hr=W_hr)
    return y, hT, cT, Cache("lstm", backend, x, H, data, precision, proj_size=P) if train else None


def lstm_backward(dy, dhT, dcT, cache):
    """BPTT of lstm_forward. dy (T, B, H), dhT and dcT (B, H), each or None
    (dy, dhT with P features when the forward had W_hr).

    Returns (dx, dh0, dc0, dW_ih, dW_hh, db), and dW_hr (P, H) last when the
    forward had W_hr.
    """
    cache = _cache("lstm", cache)
    dy, dhT = _check_dy_dh(cache, dy, dhT)
    dcT = _grad("dcT", dcT, (cache.B, cache.H), "(B, H)", cache.dtype)
    if cache.backend == "native":
        dx, dh0, dc0, dW_ih, dW_hh, db, _, dW_hr = _native_backward(cache, dy, dhT, dcT)
        grads = (dx, dh0, dc0, dW_ih, dW_hh, db)
        return grads if dW_hr is None else grads + (dW_hr,)
    return reference.lstm_backward(dy, dhT, dcT, cache.data)


# ---------------------------------------------------------------------------
# GRU


def gru_forward(x, h0, W_ih, W_hh, b_ih, b_hh, *, train: bool = True, backend: Optional[str] = None,
                lengths=None, reverse: bool = False, num_threads: Optional[int] = None,
                precision: str = "fp32"):
    """GRU over a whole sequence, gates r, z, n; the reset is applied after the
    recurrent product, as PyTorch and cuDNN do.

    x (T, B, D); h0 (B, H) or None (zeros); W_ih (3H, D); W_hh (3H, H);
    b_ih, b_hh (3H,). Returns y (T, B, H), hT (B, H) and the cache for
    gru_backward (None when ``train`` is False).
    ``precision``: "fp32" or "bf16" (bfloat16 products, float32 arrays only).
    """
    x, W_ih, W_hh, (b_ih, b_hh), H = _check_weights(3, x, W_ih, W_hh, [("b_ih", b_ih), ("b_hh", b_hh)])
    h0 = _state("h0", h0, x, H)
    lengths, reverse, num_threads = _lengths(lengths, x), _reverse(reverse), _num_threads(num_threads)
    train = _flag("train", train)
    bf16 = _precision(precision, x.dtype)
    backend = _backend(backend, x, H)
    if backend == "native":
        (y, hT, _), data = _native_forward("gru", x, h0, None, W_ih, W_hh, b_ih, b_hh, train, lengths, reverse,
                                           num_threads, bf16)
    else:
        y, hT, data = reference.gru_forward(x, h0, W_ih, W_hh, b_ih, b_hh, train=train, lengths=lengths,
                                            reverse=reverse, precision=precision)
    return y, hT, Cache("gru", backend, x, H, data, precision) if train else None


def gru_backward(dy, dhT, cache):
    """BPTT of gru_forward. dy (T, B, H) or None, dhT (B, H) or None.

    Returns (dx, dh0, dW_ih, dW_hh, db_ih, db_hh).
    """
    cache = _cache("gru", cache)
    dy, dhT = _check_dy_dh(cache, dy, dhT)
    if cache.backend == "native":
        dx, dh0, _, dW_ih, dW_hh, db_ih, db_hh, _ = _native_backward(cache, dy, dhT, None)
        return dx, dh0, dW_ih, dW_hh, db_ih, db_hh
    return reference.gru_backward(dy, dhT, cache.data)


# ---------------------------------------------------------------------------
# generation

# Layer 0's x W_ihᵀ is kept for every id (one row copied a step instead of a
# product) when that table takes at most this many bytes.
STEPPER_TABLE_BYTES = 16 << 20


def draw(logits: np.ndarray, u: np.ndarray, out: Optional[np.ndarray] = None, *, temperature: float = 1.0,
         top_k: Optional[int] = None, top_p: Optional[float] = None, pad_id: Optional[int] = None) -> np.ndarray:
    """The next token of each row of logits (n, V), float32 or float64, drawn
    with the uniform number u[r] in [0, 1) (u: n floats): from
    softmax(logits / temperature), <pad> (``pad_id``) never drawn, cut to the
    ``top_k`` most likely tokens, then to the nucleus of probability
    ``top_p``; the first token whose cumulative probability exceeds u[r].
    The operations of seqcore.generate's reference draw, in float64 and in
    its order (numpy's sums). Returns out (n,) int64 (written in place when
    given)."""
    logits = _array("logits", logits, "(n, V)")
    u = np.ascontiguousarray(u, dtype=np.float64)
    if u.shape != logits.shape[:1] or not ((u >= 0) & (u < 1)).all():
        raise ValueError(f"u: expected {logits.shape[0]} numbers in [0, 1), got {u!r}")
    out = np.empty(len(u), np.int64) if out is None else out
    if not _core.draw(logits, u, out, float(temperature), 0 if top_k is None else int(top_k),
                      1.0 if top_p is None else float(top_p), -1 if pad_id is None else int(pad_id)):
        raise FloatingPointError(f"logits: softmax(logits / temperature) is not finite (temperature "
                                 f"{temperature} overflows the logits)")
    return out


class NativeStepper:
    """A language model prepared for generation, one token at a time, for up
    to ``batch_size`` rows: ids (n,) -> embedding (or one-hot) -> the L layers
    of one cell kind -> head -> logits (n, V), in one native call a token.

    The weights are copied (W_hh packed for the kernels) when it is made and
    by ``refresh``; a step allocates nothing.

    num_threads: the most threads a step uses (None: seqcore.get_num_threads()),
    as many as its work pays for, each owning the same hidden units of every
    layer (so two cores' caches hold twice the weights one holds); the
    results do not depend on them. Default 1: a step takes microseconds, less
    than a thread waits for a core on a busy machine. Row r of a step gets, bit for
    bit, the logits a one-row ``forward`` of the same layers gives it (see
    csrc/generate/stepper.h), whatever the other rows.

    cell: "rnn", "lstm" or "gru"; embedding (V, D) or None (one-hot, D = V);
    W_ih[l] (G·H, D or H), W_hh[l] (G·H, H), b_ih[l] (G·H,) (RNN, LSTM: the one
    bias b_ih + b_hh), b_hh[l] (G·H,) for GRU (else None); head_W (V, H),
    head_b (V,) or None. All float32 or all float64.

    precision: the products' ("fp32", or "bf16" for float32: the weights
    rounded to bfloat16 once, each row's logits those of a one-row forward
    in precision "bf16", bit for bit, on every ISA).
    """

    def __init__(self, cell: str, batch_size: int, embedding, W_ih, W_hh, b_ih, b_hh, head_W, head_b,
                 num_threads: Optional[int] = 1, precision: str = "fp32") -> None:
        if cell not in ("rnn", "lstm", "gru"):
            raise ValueError(f"cell: expected 'rnn', 'lstm' or 'gru', got {cell!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size: expected an int >= 1, got {batch_size!r}")
        head_W = _array("head_W", head_W, "(V, H)")
        self.cell, self.dtype = cell, head_W.dtype
        self.precision = check_precision(precision, self.dtype)
        weights = self._weights(embedding, W_ih, W_hh, b_ih, b_hh, head_W, head_b)
        V, GH = head_W.shape[0], weights[2][0].shape[0]
        table = V * GH * self.dtype.itemsize <= STEPPER_TABLE_BYTES
        native = _core.StepperF64 if self.dtype == np.float64 else _core.StepperF32
        self._native = native(cell, int(batch_size), *weights, table, self.precision == "bf16")
        self.batch_size, self.vocab_size = int(batch_size), V
        self.num_threads = _num_threads(num_threads)  # checked now; 0: seqcore.get_num_threads() at each step
        self.num_layers, self.hidden_size = len(weights[2]), head_W.shape[1]
        self.h = self._native.state(0)  # (L, B, H) views into the native buffer
        self.c = self._native.state(1) if cell == "lstm" else None
        self._logits = self._native.logits()  # (B, V)

    def _weights(self, embedding, W_ih, W_hh, b_ih, b_hh, head_W, head_b) -> Tuple[Any, ...]:
        """The arguments checked (dtype, finite) and C-contiguous; the native
        side checks the shapes, naming each."""
        dt = self.dtype
        if not isinstance(W_hh, (list, tuple)) or not W_hh:
            raise TypeError("W_hh: expected a list with one array per layer")
        for name, seq in (("W_ih", W_ih), ("b_ih", b_ih)) + ((("b_hh", b_hh),) if self.cell == "gru" else ()):
            if not isinstance(seq, (list, tuple)) or len(seq) != len(W_hh):
                raise TypeError(f"{name}: expected a list with one array per layer ({len(W_hh)})")
        one = lambda name, a, dims: _array(name, a, dims, dt)  # noqa: E731
        return (None if embedding is None else one("embedding", embedding, "(V, D)"),
                [one("W_ih", a, "(G·H, D)") for a in W_ih], [one("W_hh", a, "(G·H, H)") for a in W_hh],
                [one("b_ih", a, "(G·H,)") for a in b_ih],
                [one("b_hh", a, "(G·H,)") for a in b_hh] if self.cell == "gru" else None,
                head_W if head_W.dtype == dt else one("head_W", head_W, "(V, H)"),
                None if head_b is None else one("head_b", head_b, "(V,)"))

    def refresh(self, embedding, W_ih, W_hh, b_ih, b_hh, head_W, head_b) -> None:
        """Copies and packs the weights again (same sizes); zeroes the state."""
        head_W = _array("head_W", head_W, "(V, H)", self.dtype)
        self._native.refresh(*self._weights(embedding, W_ih, W_hh, b_ih, b_hh, head_W, head_b))

    def step(self, ids: np.ndarray) -> np.ndarray:
        """ids (n,) int64 with n <= batch_size -> logits (n, V) of rows [0, n),
        a view of the stepper's own array (overwritten by the next step)."""
        self._native.step(ids, self.num_threads)
        return self._logits[: len(ids)]

    def drawer(self, *, temperature: float = 1.0, top_k: Optional[int] = None, top_p: Optional[float] = None,
               pad_id: Optional[int] = None):
        """A function step_draw(ids, u, out): ``step(ids)``, then out[r] = the
        next token of row r, drawn with the uniform number u[r] in [0, 1)
        from softmax(logits / temperature) with <pad> (``pad_id``) never
        drawn and the top-k / top-p cut, as seqcore.generate's reference draw
        does it (in float64, in its order). ids, out (n,) int64 and u (n,)
        float64, C-contiguous (unchecked here: the native side checks them).
        The options are bound once: the function is a sampling loop's step."""
        native = self._native.step_draw
        options = (float(temperature), 0 if top_k is None else int(top_k), 1.0 if top_p is None else float(top_p),
                   -1 if pad_id is None else int(pad_id), self.num_threads)

        def step_draw(ids: np.ndarray, u: np.ndarray, out: np.ndarray) -> None:
            if not native(ids, u, out, *options):
                raise FloatingPointError("logits: the model gave NaN or infinite logits, or logits / temperature "
                                         "overflowed; its weights may have diverged")
        return step_draw

    @property
    def nbytes(self) -> int:
        """Bytes of the native buffer: the weights' copies and the state."""
        return self._native.nbytes
