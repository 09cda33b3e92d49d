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
PROC_CGROUP = "/proc/self/cgroup"  # this process's cgroups, one a line


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
    """The tightest limit of this process's memory cgroup and its ancestors,
    less what they use (page cache that can be dropped, inactive_file, not
    counted as used); cgroup v2, or v1's memory controller."""
    try:
        with open(PROC_CGROUP) as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":        # v2: limits in /sys/fs/cgroup/<path>/memory.max
            root, files = CGROUP, ("memory.max", "memory.current", "inactive_file")
        elif "memory" in controllers.split(","):
            root, files = os.path.join(CGROUP, "memory"), ("memory.limit_in_bytes", "memory.usage_in_bytes",
                                                             "total_inactive_file")
        else:
            continue
        found = []
        parts = [p for p in path.split("/") if p]
        for depth in range(len(parts), -1, -1):  # the cgroup, then its parents up to the root
            left = _cgroup_left(os.path.join(root, *parts[:depth]), *files)
            if left is not None:
                found.append(left)
        return min(found) if found else None
    return None


def _cgroup_left(folder: str, limit_file: str, usage_file: str, inactive_key: str) -> Optional[int]:
    try:
        with open(os.path.join(folder, limit_file)) as f:
            limit = f.read().strip()
        with open(os.path.join(folder, usage_file)) as f:
            usage = int(f.read().strip())
    except (OSError, ValueError):
        return None
    if not limit.isdigit() or int(limit) >= 1 << 60:  # "max", or v1's "no limit" (2**63 rounded to pages)
        return None
    inactive = 0
    try:
        with open(os.path.join(folder, "memory.stat")) as f:
            for line in f:
                key, _, value = line.partition(" ")
                if key == inactive_key:
                    inactive = int(value)
    except (OSError, ValueError):
        pass
    return max(int(limit) - (usage - inactive), 0)
