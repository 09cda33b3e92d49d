"""The command line: `seqcore info | bench`."""

from __future__ import annotations

import argparse
import json
import sys
from typing import List, Optional

import numpy as np

from . import benchmark, ops
from .timing import format_table

def cmd_bench(args: argparse.Namespace) -> int:
    """Each cell's training step and inference at one configuration: seqcore
    native, the NumPy reference and torch (when installed), in tokens/s."""
    dtype = np.float64 if args.dtype == "float64" else np.float32
    config = (args.T, args.B, args.D, args.H)
    backends = ["native", "reference"] + (["torch"] if benchmark.torch_or_none() else [])
    n = args.threads or ops.get_num_threads()
    info = ops.info()
    print(f"seqcore {info['version']}  isa={info['isa']}  threads={n}  default backend: {info['backend']}")
    print("T={} B={} D={} H={} {}, tokens/s (median of {} runs)\n".format(*config, args.dtype, args.repeat))
    rows = []
    with benchmark.threads(n):
        for cell in benchmark.CELLS:
            tps = benchmark.measure_cell(cell, config, backends, repeat=args.repeat, min_time=0, dtype=dtype)
            for mode in ("train", "infer"):
                native = tps["native"][mode]
                row = [cell, mode] + [tps[b][mode] for b in backends]
                row += [native / tps[b][mode] for b in backends[1:]]
                rows.append(row)
    headers = ["cell", "step"] + backends + [f"native/{b}" for b in backends[1:]]
    print(format_table(headers, rows))
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    print(json.dumps(ops.info(), indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seqcore", description="Fast recurrent sequence models on the CPU.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("info", help="print the version, instruction set, threads and backend")
    p.set_defaults(run=cmd_info)

    p = sub.add_parser("bench", help="time each cell's training step and inference on random data")
    p.add_argument("--T", type=int, default=64, help="sequence length (default 64)")
    p.add_argument("--B", type=int, default=32, help="batch size (default 32)")
    p.add_argument("--D", type=int, default=128, help="input size (default 128)")
    p.add_argument("--H", type=int, default=256, help="hidden size (default 256)")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--threads", type=int, default=0, help="kernel threads (default: as configured)")
    p.add_argument("--repeat", type=int, default=5, help="timed runs per figure (default 5)")
    p.set_defaults(run=cmd_bench)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    for name in ("T", "B", "D", "H", "repeat"):
        if getattr(args, name, 1) < 1:
            print(f"seqcore: error: --{name} must be at least 1", file=sys.stderr)
            return 2
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
