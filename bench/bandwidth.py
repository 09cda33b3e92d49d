"""The read-bandwidth probe: bytes a second that seqcore's kernels read, with
their own vector loads, from buffers that live in L2, in L3 and in memory, at
1 and 2 threads (each thread reads its share over and over), so that every
memory-bound figure can be given as a share of what the machine delivers.
bench/cells.py gives the small-batch inference steps as a share of the probe
at the size of their W_hh.

    python bench/bandwidth.py [--threads 1 2] [--sizes-mb 0.5 1 ...] [--json out.json]

The cache sizes are read from the kernel (/sys/devices/system/cpu); a share
of a level's size per thread says where the buffer lives.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys

import seqcore
from seqcore import benchmark
from seqcore.timing import format_table


def cache_sizes() -> dict:
    """{"L1d": bytes, "L2": ..., "L3": ...} of cpu0, as sysfs gives them (an
    L3 a VM reports may be the host's)."""
    sizes = {}
    root = "/sys/devices/system/cpu/cpu0/cache"
    for entry in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        try:
            level = open(f"{root}/{entry}/level").read().strip()
            kind = open(f"{root}/{entry}/type").read().strip()
            size = open(f"{root}/{entry}/size").read().strip()
        except OSError:
            continue
        if kind == "Instruction":
            continue
        scale = {"K": 2**10, "M": 2**20, "G": 2**30}.get(size[-1], 1)
        sizes[f"L{level}{'d' if level == '1' else ''}"] = int(size.rstrip("KMG")) * scale
    return sizes


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--sizes-mb", nargs="+", type=float, default=[0.5, 1, 2, 4, 8, 16, 32, 64, 512],
                        help="buffer sizes, MB (2^20 bytes), all threads together")
    parser.add_argument("--rounds", type=int, default=5, help="timings per figure (median)")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    for name, values in (("threads", args.threads), ("sizes-mb", args.sizes_mb)):
        if any(v <= 0 for v in values):
            parser.error(f"--{name}: expected numbers > 0")
    info = seqcore.info()
    caches = cache_sizes()
    print(f"seqcore {info['version']}, isa {info['isa']}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cpus; caches (cpu0) "
          + ", ".join(f"{k} {v / 2**20:g} MB" for k, v in caches.items()))
    records, rows = [], []
    for mb in args.sizes_mb:
        row = [f"{mb:g}"]
        for n in args.threads:
            with benchmark.threads(n):
                rate = benchmark.read_bandwidth(int(mb * 2**20), rounds=args.rounds)
            records.append(dict(bytes=int(mb * 2**20), threads=n, bytes_per_s=rate))
            row.append(rate / 1e9)
        rows.append(row)
    print(format_table(["MB"] + [f"{n} thread(s) GB/s" for n in args.threads], rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(info=info, caches=caches, records=records), f, indent=1)
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
