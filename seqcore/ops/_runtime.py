"""The backend runtime: the extension loaded (the package's one import of
seqcore._core), the ISA and the threads, the thread plans, and fork."""

from __future__ import annotations

import contextlib
import math
import os
import warnings
from typing import Any, Dict, Iterator, Optional

import numpy as np

from .._version import __version__
from ._checks import NATIVE_CELLS, checked_flag, checked_size

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
        from .. import _core as core
    finally:
        if not chosen:
            del os.environ["GOMP_SPINCOUNT"]
    return core


core = _load_core()

ISAS = ("scalar", "avx2", "avx2_vnni", "avx512", "avx512_vnni", "avx512_bf16", "amx_bf16")

# ---------------------------------------------------------------------------
# runtime

# GNU OpenMP cannot run a parallel region in a child forked after its parent
# ran one: the child waits forever for the parent's pool threads, which fork
# did not copy. So in a forked child every kernel runs on one thread (the
# results are bitwise those at any thread count). Worker processes that need
# several threads each: multiprocessing's "spawn" (or "forkserver") start method.
_FORKED = False


def after_fork_in_child() -> None:
    global _FORKED
    _FORKED = True
    core.set_num_threads(1)


os.register_at_fork(after_in_child=after_fork_in_child)


def forked() -> bool:
    """Whether this process was forked from one that had imported seqcore
    (its kernels then run on one thread: see _FORKED)."""
    return _FORKED


def info() -> Dict[str, Any]:
    """What the native backend runs on: version, ISA in use, ISAs this CPU has,
    OpenMP, threads, and what the default backend actually runs."""
    return {
        "version": __version__,
        "isa": core.isa(),
        "isas": list(core.isas()),
        "openmp": bool(core.openmp()),
        "threads": core.get_num_threads(),
        "backend": "native" if NATIVE_CELLS else "reference",
    }


def get_num_threads() -> int:
    """Threads the native kernels use (default: OMP_NUM_THREADS, else the cores)."""
    return core.get_num_threads()


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
    core.set_num_threads(int(n))


def set_isa(name: str) -> None:
    """Uses the kernels of another instruction set ("scalar", "avx2",
    "avx2_vnni", "avx512", "avx512_vnni", "avx512_bf16", "amx_bf16") from now
    on, as SEQCORE_ISA does at start-up. The "_vnni" ones differ from their
    base only in precision "int8"'s products (vpdpbusd); "avx512_bf16" and
    "amx_bf16" from "avx512_vnni" in "bf16"'s, and "amx_bf16" in "int8"'s
    (AMX-INT8 tiles)."""
    if name not in ISAS:
        raise ValueError(f"name: expected one of {', '.join(map(repr, ISAS))}, got {name!r}")
    if name not in core.isas():
        raise ValueError(f"name: this CPU does not support {name!r} (it has {core.isas()})")
    core.set_isa(name)


# Far past any machine's cores: a larger count is a mistake, and OpenMP would
# try to start that many threads (failing, or exhausting memory, in C).
MAX_THREADS = 1024


def checked_threads(n) -> int:
    """Threads for one call: None (0 to the kernels) is seqcore.get_num_threads();
    always 1 in a forked child (see _FORKED)."""
    if n is None:
        return 1 if _FORKED else 0
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= MAX_THREADS:
        raise ValueError(f"num_threads: expected None or an int in [1, {MAX_THREADS}], got {n!r}")
    return 1 if _FORKED else int(n)


def plan_threads(cell: str, T: int, B: int, H: int, train: bool = True,
                 num_threads: Optional[int] = None) -> int:
    """Threads the time loop of a call is worth: each step's work per thread
    against a step's synchronisation (csrc/plan.h gives the cost model), in
    [1, num_threads] (default seqcore.get_num_threads()). The loop also uses
    at most one thread per unit of hidden units (16 with AVX-512 float32);
    the rest of the offered threads sit the loop out."""
    if cell not in ("rnn", "lstm", "gru"):
        raise ValueError(f"cell: expected 'rnn', 'lstm' or 'gru', got {cell!r}")
    return core.plan_threads(cell, checked_size("T", T), checked_size("B", B), checked_size("H", H), checked_flag("train", train),
                              checked_threads(num_threads))


def plan_product_threads(M: int, N: int, K: int, num_threads: Optional[int] = None) -> int:
    """Threads a matrix product (M,K)·(K,N) is worth: 1, or all of num_threads
    (default seqcore.get_num_threads()) when one thread would take more than
    twice what starting the team costs."""
    return core.plan_product_threads(checked_size("M", M), checked_size("N", N), checked_size("K", K), checked_threads(num_threads))


def plan_stream_threads(nbytes: float, num_threads: Optional[int] = None) -> int:
    """Threads a memory-bound pass over ``nbytes`` bytes (Adam, the sum of
    squares, the softmax cross-entropy) is worth: 1, or all of num_threads
    (default seqcore.get_num_threads()) when sharing it saves more than a
    team costs, counting how late the loops have measured the threads to be
    (csrc/plan.h)."""
    if isinstance(nbytes, bool) or not isinstance(nbytes, (int, float, np.integer, np.floating)) \
            or not 0 <= nbytes < math.inf:
        raise ValueError(f"nbytes: expected a number >= 0, got {nbytes!r}")
    return core.plan_stream_threads(float(nbytes), checked_threads(num_threads))


def thread_plan_costs() -> Dict[str, float]:
    """The cost model's constants: multiply-adds per ns (rate, product_rate),
    bytes per ns of a memory-bound pass (stream_rate),
    the gates' work per gate column (epilogue, in multiply-adds) and the ns of
    a step's synchronisation and of a parallel region (csrc/plan.h)."""
    return dict(core.plan_costs())


@contextlib.contextmanager
def every_thread_works() -> Iterator[None]:
    """Within the block, threads are not planned: every offered thread takes
    part (at most one per unit of work). For tests of the schedules."""
    before = core.thread_planning()
    core.set_thread_planning(False)
    try:
        yield
    finally:
        core.set_thread_planning(before)
