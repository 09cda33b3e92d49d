"""Timing and tables for the benchmarks (bench/ and `seqcore bench`)."""

from __future__ import annotations

import math
import statistics
import time
from typing import Callable, Dict, List, Sequence


def median_seconds(fn: Callable[[], object], repeat: int = 5, warmup: int = 1, min_time: float = 0.0) -> float:
    """Median wall time of fn() over `repeat` runs after `warmup` runs. With
    min_time > 0, runs are repeated until their total reaches it."""
    for _ in range(warmup):
        fn()
    times: List[float] = []
    while len(times) < repeat or sum(times) < min_time:
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    times.sort()
    n = len(times)
    return times[n // 2] if n % 2 else 0.5 * (times[n // 2 - 1] + times[n // 2])


def median_seconds_in_turns(fns: Dict[str, Callable[[], object]], rounds: int = 7, warmup: int = 1,
                           clock: Callable[[], float] = time.perf_counter,
                           min_time: float = 0.0) -> Dict[str, float]:
    """Median time of each fn, the fns taking turns: every round runs each
    once, so a machine that slows down (other processes, clocks) slows them
    alike and their ratios hold. clock: wall time by default;
    time.thread_time counts only this thread's CPU time, which on a shared
    machine measures single-threaded work without the time others took.
    With min_time > 0, a fn's turn is as many calls as bring its rounds to
    about min_time in all (sized by the last warm-up call), timed together:
    a fast fn is not timed one short call at a time."""
    number: Dict[str, int] = {}
    for k, fn in fns.items():
        took = 0.0
        for _ in range(max(warmup, 1 if min_time > 0 else 0)):
            start = clock()
            fn()
            took = clock() - start
        number[k] = max(1, math.ceil(min_time / rounds / took)) if min_time > 0 and took > 0 else 1
    times: Dict[str, List[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            start = clock()
            for _ in range(number[k]):
                fn()
            times[k].append((clock() - start) / number[k])
    return {k: float(statistics.median(v)) for k, v in times.items()}


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain text table: columns as wide as their widest cell, numbers right-aligned."""
    cells = [[str(h) for h in headers]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    numeric = [all(_is_number(row[i]) for row in rows) if rows else False for i in range(len(headers))]
    lines = []
    for k, r in enumerate(cells):
        parts = [c.rjust(w) if numeric[i] else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))]
        lines.append("  ".join(parts).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _cell(v: object) -> str:
    if isinstance(v, float):
        if abs(v) >= 100:
            return f"{v:,.0f}"
        return f"{v:.3g}" if abs(v) >= 0.001 or v == 0 else f"{v:.2e}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return str(v)
