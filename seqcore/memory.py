"""What the machine has, and refusing a size that cannot fit before anything
is built.

``require(nbytes, what, advice)`` raises a MemoryError that says what needs
how much, what is available and what to change, in microseconds, instead of
minutes spent building layers or a 298 GiB allocation that pushes other
people's jobs into swap before it fails. The layers check their parameters
(and gradients) this way, the Trainer a training step's whole need, the CLI
before it builds a model. Available: the kernel's MemAvailable, less where a
cgroup limits this process to less; where neither is known nothing is refused.

numpy-free and seqcore-free: any module may import it.
"""

from __future__ import annotations

import os
from typing import Optional

CGROUP = "/sys/fs/cgroup"


def available_bytes() -> Optional[int]:
    """Bytes this process can still allocate without swapping: MemAvailable of
    /proc/meminfo, or the cgroup's limit less its usage where smaller; None
    where the system says neither."""
    found = [n for n in (_meminfo_available(), _cgroup_available()) if n is not None]
    if not found and hasattr(os, "sysconf"):
        try:
            found.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError):
            pass
    return min(found) if found else None


def require(nbytes: int, what: str, advice: str) -> None:
    """MemoryError unless ``nbytes`` fit in what is available: "<what> need
    <n> GiB, more than the <m> GiB available; <advice>"."""
    available = available_bytes()
    if available is not None and nbytes > available:
        raise MemoryError(f"{what} need {format_bytes(nbytes)}, more than the {format_bytes(available)} "
                          f"available; {advice}")


def format_bytes(n: int) -> str:
    """1536 -> '1.5 KiB'; binary units up to EiB."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(size) < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} EiB"


def _meminfo_available() -> Optional[int]:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_available() -> Optional[int]:
    """cgroup v2's memory.max less memory.current, or v1's limit less usage."""
    for limit_file, usage_file in (("memory.max", "memory.current"),
                                   ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes")):
        try:
            with open(os.path.join(CGROUP, limit_file)) as f:
                limit = f.read().strip()
            with open(os.path.join(CGROUP, usage_file)) as f:
                usage = int(f.read().strip())
        except (OSError, ValueError):
            continue
        if limit.isdigit() and int(limit) < 1 << 60:  # "max", or v1's "no limit" of 2**63 rounded to pages
            return max(int(limit) - usage, 0)
    return None
