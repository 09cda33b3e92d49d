"""The float32 sigmoid and tanh of seqcore._core (the vector code the cells
fuse into their time loops) against float64 NumPy over every float32 input,
or every --stride-th bit pattern: the figures activations.h states.

    python bench/activation_error.py                  # all 2^32 inputs, the default ISA
    python bench/activation_error.py --isa avx2 --stride 4
    python bench/activation_error.py --against /tmp/before.so   # + bitwise against another build

Prints, per function, the maximum error in ulps of the exact value over the
results that are normal numbers (ulp(v) = 2^(floor(log2|v|) - 23)), the
maximum relative and absolute errors, the input where the ulp maximum is,
and how many results are NaN where the input is not (must be 0). With
--against, also how many results differ in any bit from another build's
(a .so of seqcore._core, as bench/ab_builds.py loads them) at the same ISA. The
float64 oracle's own error (~1e-16) is 2^-29 of a float32 ulp.
"""

from __future__ import annotations

import argparse
import time
from typing import List

import numpy as np

from seqcore import _core
from seqcore.timing import format_table

CHUNK = 1 << 24


def ulp32(v: np.ndarray) -> np.ndarray:
    """ulp of the exact float32 values v (held in float64)."""
    _, e = np.frexp(np.abs(v))
    return np.ldexp(np.ones_like(v), np.maximum(e - 24, -149))


def measure(name: str, stride: int, other=None) -> List[object]:
    f = getattr(_core, name)
    g = getattr(other, name) if other is not None else None
    differ = 0
    tiny = float(np.finfo(np.float32).tiny)
    worst_ulp, worst_x, worst_rel, worst_abs, bad_nan, count = 0.0, 0.0, 0.0, 0.0, 0, 0
    for start in range(0, 1 << 32, CHUNK * stride):
        bits = np.arange(start, min(start + CHUNK * stride, 1 << 32), stride, dtype=np.uint64)
        x = bits.astype(np.uint32).view(np.float32)
        y32 = f(x)
        if g is not None:
            differ += int(np.count_nonzero(y32.view(np.uint32) != g(x).view(np.uint32)))
        y = y32.astype(np.float64)
        with np.errstate(over="ignore", invalid="ignore"):
            xr = x.astype(np.float64)
            ref = 1 / (1 + np.exp(-xr)) if name == "sigmoid" else np.tanh(xr)
        nan_in = np.isnan(x)
        bad_nan += int(np.count_nonzero(np.isnan(y) & ~nan_in))
        keep = ~nan_in
        y, ref, xk = y[keep], ref[keep], x[keep]
        count += xk.size
        err = np.abs(y - ref)
        worst_abs = max(worst_abs, float(err.max()))
        normal = np.abs(ref) >= tiny
        e, r = err[normal], ref[normal]
        if r.size == 0:  # e.g. sigmoid of the most negative floats: 0, flushed
            continue
        ulps = e / ulp32(r)
        i = int(np.argmax(ulps))
        if ulps[i] > worst_ulp:
            worst_ulp, worst_x = float(ulps[i]), float(xk[normal][i])
        worst_rel = max(worst_rel, float(np.max(e / np.abs(r))))
    row = [name, f"{worst_ulp:.3f}", f"{worst_rel:.3g}", f"{worst_abs:.3g}", repr(worst_x), bad_nan, count]
    return row + ([differ] if other is not None else [])


def main(argv: List[str] = None) -> List[List[object]]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--isa", default=None, help="instruction set to measure (default: the best this CPU runs)")
    p.add_argument("--stride", type=int, default=1, help="every stride-th bit pattern of all 2^32")
    p.add_argument("--funcs", nargs="+", choices=["sigmoid", "tanh"], default=["sigmoid", "tanh"])
    p.add_argument("--against", metavar="SO", default=None,
                   help="another build of seqcore._core: count the results that differ from its bitwise")
    args = p.parse_args(argv)
    if args.stride < 1:
        p.error("--stride: expected >= 1")
    if args.isa is not None:
        if args.isa not in _core.isas():
            p.error(f"--isa: expected one of {_core.isas()}, got {args.isa!r}")
        _core.set_isa(args.isa)
    other = None
    if args.against is not None:
        from ab_builds import load_build  # bench/ is the script's directory, first on sys.path
        other = load_build(args.against, "against")
        other.set_isa(_core.isa())
    t0 = time.perf_counter()
    rows = [measure(name, args.stride, other) for name in args.funcs]
    print(f"float32, ISA {_core.isa()}, every {args.stride}th "
          f"bit pattern of 2^32, oracle float64 NumPy ({time.perf_counter() - t0:.0f} s)")
    print(format_table(["function", "max ulp", "max rel", "max abs", "x at max ulp", "NaN from non-NaN",
                        "inputs"] + (["differ from --against"] if other is not None else []), rows))
    return rows


if __name__ == "__main__":
    main()
