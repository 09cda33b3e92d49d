"""Functional kernels: ``*_forward`` / ``*_backward`` for each cell, and the backend runtime.

This is the only module that calls the extension ``seqcore._core``.
"""

from __future__ import annotations

import os
from typing import Any, Dict, List

from . import _core
from ._version import __version__


def info() -> Dict[str, Any]:
    """What the native backend runs on: version, ISA in use, ISAs this CPU has, OpenMP, threads."""
    return {
        "version": __version__,
        "isa": _core.isa(),
        "isas": list(_core.isas()),
        "openmp": bool(_core.openmp()),
        "threads": _core.get_num_threads(),
        "backend": "reference",
    }


def get_num_threads() -> int:
    """Threads the native kernels use (default: OMP_NUM_THREADS, else the cores)."""
    return _core.get_num_threads()


def set_num_threads(n: int) -> None:
    """Sets the threads the native kernels use for later calls; ``n`` >= 1."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"n: expected an int, got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"n: the number of threads must be at least 1, got {n}")
    _core.set_num_threads(n)


def set_isa(name: str) -> None:
    """Uses the kernels of another instruction set ("scalar", "avx2", "avx512") from now on."""
    if name not in ("scalar", "avx2", "avx512"):
        raise ValueError(f"name: expected one of 'scalar', 'avx2', 'avx512', got {name!r}")
    if name not in _core.isas():
        raise ValueError(f"name: this CPU does not support {name!r} (it has {_core.isas()})")
    _core.set_isa(name)
