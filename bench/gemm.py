"""The matrix product seqcore._core.gemm against NumPy's matmul (OpenBLAS),
in GFLOP/s at 1 and 2 threads, measured side by side in one run.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/gemm.py [--json PATH]

OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE make a current NumPy pick slower
kernels: unset them for the run (the header says which kernel OpenBLAS runs).
NumPy's threads are set with threadpoolctl (`pip install .[bench]`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from typing import Dict, List, Optional

import numpy as np

from seqcore import _core
from seqcore.timing import format_table, median_seconds

try:
    import threadpoolctl
except ImportError:  # numpy then runs with however many threads it likes
    threadpoolctl = None

PAUSE = 0.3  # seconds; OpenBLAS's threads spin up to ~0.1 s after a call
MIN_TIME = 0.05  # seconds of timed runs per round at least (small shapes run more)

# (M, N, K, trans_a, trans_b, dtype, what it is)
SHAPES = [
    (2048, 2048, 2048, False, False, np.float32, "square"),
    (2048, 2048, 2048, False, False, np.float64, "square"),
    (6400, 2048, 256, False, True, np.float32, "X W_ih^T (T*B=6400, 4H=2048, D=256)"),
    (6400, 2048, 256, False, False, np.float32, "same, B not transposed"),
    (3200, 4096, 1024, False, True, np.float32, "X W_ih^T (T*B=3200, 4H=4096, D=1024)"),
    (2048, 512, 6400, True, False, np.float32, "dW = dG^T X (4H=2048, D=512, T*B=6400)"),
    (6400, 512, 2048, False, False, np.float32, "dX = dG W_ih"),
    (64, 2048, 512, False, True, np.float32, "h W_hh^T, one step (B=64, 4H=2048, H=512)"),
    (1, 2048, 512, False, True, np.float32, "same, B=1 (sampling)"),
]


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def blas_info() -> List[Dict[str, object]]:
    """threadpoolctl's view of the BLAS NumPy uses (kernel = 'architecture')."""
    if threadpoolctl is None:
        return []
    return [i for i in threadpoolctl.threadpool_info() if i.get("user_api") == "blas"]


class numpy_threads:
    """Limits NumPy's BLAS to n threads inside the block (when threadpoolctl is there)."""

    def __init__(self, n: int):
        self.limiter = None
        if threadpoolctl is not None:
            self.limiter = threadpoolctl.threadpool_limits(limits=n, user_api="blas")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.limiter is not None:
            self.limiter.restore_original_limits()


def operands(M: int, N: int, K: int, trans_a: bool, trans_b: bool, dtype, seed: int = 0):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((K, M) if trans_a else (M, K)).astype(dtype)
    b = rng.standard_normal((N, K) if trans_b else (K, N)).astype(dtype)
    return a, b


def check(a, b, trans_a: bool, trans_b: bool, got: np.ndarray) -> None:
    """A sanity check before timing: a wrong kernel is not worth timing."""
    want = (a.T if trans_a else a) @ (b.T if trans_b else b)
    err = np.max(np.abs(got - want)) / max(np.max(np.abs(want)), 1e-30)
    tol = 1e-4 if got.dtype == np.float32 else 1e-10
    if not err < tol:
        sys.exit(f"seqcore's product is wrong: relative error {err:.2e}")


def busy_cpu_seconds() -> Optional[float]:
    """CPU seconds the machine has been busy so far, all processes (and, in a VM,
    time the host gave to others): from /proc/stat, Linux only."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(v) for v in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # less idle, iowait


def measure(M, N, K, trans_a, trans_b, dtype, threads: int, repeat: int, rounds: int):
    """Median seconds of seqcore and of numpy, taken in alternating rounds so
    that both see the same machine, and the CPUs that other processes kept
    busy meanwhile (None where unknown): a figure above ~0.1 means noise."""
    a, b = operands(M, N, K, trans_a, trans_b, dtype)
    op_a, op_b = (a.T if trans_a else a), (b.T if trans_b else b)
    c_ours = np.empty((M, N), dtype)
    c_numpy = np.empty((M, N), dtype)

    def ours():
        _core.gemm(a, b, c_ours, trans_a=trans_a, trans_b=trans_b)

    def theirs():
        np.matmul(op_a, op_b, out=c_numpy)

    _core.set_num_threads(threads)
    with numpy_threads(threads):
        ours()
        check(a, b, trans_a, trans_b, c_ours)
        busy0, own0, wall0 = busy_cpu_seconds(), time.process_time(), time.perf_counter()
        t_ours, t_numpy = [], []
        for _ in range(rounds):
            # A pause before each library's turn: the other's threads spin
            # for a while after their last call and would steal its cores.
            time.sleep(PAUSE)
            t_ours.append(median_seconds(ours, repeat=repeat, warmup=1, min_time=MIN_TIME))
            time.sleep(PAUSE)
            t_numpy.append(median_seconds(theirs, repeat=repeat, warmup=1, min_time=MIN_TIME))
        busy1, own1, wall1 = busy_cpu_seconds(), time.process_time(), time.perf_counter()
    others = None
    if busy0 is not None and busy1 is not None:
        others = max(0.0, (busy1 - busy0) - (own1 - own0)) / (wall1 - wall0)
    return float(np.median(t_ours)), float(np.median(t_numpy)), others


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", default="1,2", help="thread counts, comma separated (default 1,2)")
    p.add_argument("--repeat", type=int, default=3, help="timed runs per round (default 3)")
    p.add_argument("--rounds", type=int, default=5, help="alternating rounds (default 5)")
    p.add_argument("--isa", default=None, help="instruction set (default: the best this CPU has)")
    p.add_argument("--quick", action="store_true", help="only the 2048 cubes")
    p.add_argument("--shape", action="append", metavar="MxNxK",
                   help="only the rows of this shape (may be repeated)")
    p.add_argument("--json", metavar="PATH", help="also write the figures to PATH")
    args = p.parse_args(argv)

    if args.isa:
        _core.set_isa(args.isa)
    thread_counts = [int(t) for t in args.threads.split(",")]
    shapes = SHAPES[:2] if args.quick else SHAPES
    if args.shape:
        shapes = [s for s in shapes if f"{s[0]}x{s[1]}x{s[2]}" in args.shape]

    blas = blas_info()
    print(f"seqcore {_core.__version__}, isa {_core.isa()}; {cpu_name()}, {os.cpu_count()} CPUs")
    print(f"numpy {np.__version__}; python {platform.python_version()}")
    if blas:
        for i in blas:
            print(f"BLAS: {i.get('internal_api')} {i.get('version')}, "
                  f"kernel {i.get('architecture')}, {i.get('threading_layer')} threads "
                  f"(max {i.get('num_threads')}), {i.get('filepath')}")
    else:
        print("BLAS: threadpoolctl is not installed, so numpy's threads are not controlled")
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        if os.environ.get(var):
            print(f"warning: {var}={os.environ[var]} is set: OpenBLAS may run a slower kernel")
    print(f"median of {args.rounds} rounds x {args.repeat} runs each, seqcore and numpy "
          "alternating;")
    print("others' CPUs: CPUs kept busy by other processes meanwhile (noise when above "
          "~0.1)\n")

    rows, records = [], []
    before = _core.get_num_threads()
    try:
        for M, N, K, trans_a, trans_b, dtype, what in shapes:
            flop = 2.0 * M * N * K
            for threads in thread_counts:
                t_ours, t_numpy, others = measure(M, N, K, trans_a, trans_b, dtype, threads,
                                                  args.repeat, args.rounds)
                ours, theirs = flop / t_ours / 1e9, flop / t_numpy / 1e9
                op = ("A^T" if trans_a else "A") + " " + ("B^T" if trans_b else "B")
                rows.append([f"{M}x{N}x{K}", op, np.dtype(dtype).name, threads, round(ours, 1),
                             round(theirs, 1), round(ours / theirs, 3),
                             "?" if others is None else round(others, 2), what])
                records.append(dict(M=M, N=N, K=K, trans_a=trans_a, trans_b=trans_b,
                                    dtype=np.dtype(dtype).name, threads=threads,
                                    seqcore_gflops=ours, numpy_gflops=theirs, ratio=ours / theirs,
                                    seqcore_seconds=t_ours, numpy_seconds=t_numpy,
                                    other_cpus_busy=others, what=what))
                print(f"  {M}x{N}x{K} {op} {np.dtype(dtype).name} {threads} threads: "
                      f"seqcore {ours:.1f}, numpy {theirs:.1f} GFLOP/s", flush=True)
    finally:
        _core.set_num_threads(before)

    print()
    print(format_table(["M x N x K", "op", "dtype", "threads", "seqcore GFLOP/s", "numpy GFLOP/s",
                        "ratio", "others' CPUs", ""], rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(seqcore=_core.__version__, isa=_core.isa(), cpu=cpu_name(),
                           numpy=np.__version__, blas=blas, repeat=args.repeat, rounds=args.rounds,
                           results=records), f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
