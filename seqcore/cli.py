"""The command line: `seqcore info | bench`."""

from __future__ import annotations

import argparse
import json
import sys
from typing import List, Optional

import numpy as np

from . import ops
from .timing import format_table, median_seconds

CELLS = ("rnn", "lstm", "gru")
GATES = {"rnn": 1, "lstm": 4, "gru": 3}


def _cell_arrays(cell: str, T: int, B: int, D: int, H: int, dtype, seed: int):
    """Random inputs of a cell in ops' argument order (states left as None)."""
    rng = np.random.default_rng(seed)
    G = GATES[cell]
    k = 1 / np.sqrt(H)
    u = lambda *shape: rng.uniform(-k, k, shape).astype(dtype)  # noqa: E731
    x = rng.standard_normal((T, B, D)).astype(dtype)
    states = (None, None) if cell == "lstm" else (None,)
    biases = (u(G * H), u(G * H)) if cell == "gru" else (u(G * H),)
    return (x,) + states + (u(G * H, D), u(G * H, H)) + biases


def bench_cells(T: int, B: int, D: int, H: int, dtype, backends: List[str], repeat: int) -> List[list]:
    """Times each cell's forward (inference) and training step (forward + backward)."""
    rows = []
    for cell in CELLS:
        args = _cell_arrays(cell, T, B, D, H, dtype, seed=0)
        forward = getattr(ops, f"{cell}_forward")
        backward = getattr(ops, f"{cell}_backward")
        dy = np.ones((T, B, H), dtype)

        def infer():
            forward(*args, train=False, backend=backend)

        def train_step():
            out = forward(*args, train=True, backend=backend)
            backward(dy, *([None] * (len(out) - 2)), out[-1])

        for backend in backends:
            t_inf = median_seconds(infer, repeat=repeat)
            t_train = median_seconds(train_step, repeat=repeat)
            rows.append([cell, backend, t_inf * 1e3, t_train * 1e3, T * B / t_inf, T * B / t_train])
    return rows


def cmd_bench(args: argparse.Namespace) -> int:
    if args.threads:
        ops.set_num_threads(args.threads)
    dtype = np.float64 if args.dtype == "float64" else np.float32
    info = ops.info()
    print(f"seqcore {info['version']}  isa={info['isa']}  threads={info['threads']}  "
          f"native backend runs: {info['backend']}")
    print(f"T={args.T} B={args.B} D={args.D} H={args.H} {args.dtype}, median of {args.repeat} runs\n")
    rows = bench_cells(args.T, args.B, args.D, args.H, dtype, ["native", "reference"], args.repeat)
    print(format_table(["cell", "backend", "infer ms", "train ms", "infer tok/s", "train tok/s"], rows))
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    print(json.dumps(ops.info(), indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seqcore", description="Fast recurrent sequence models on the CPU.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("info", help="print the version, instruction set, threads and backend")
    p.set_defaults(run=cmd_info)

    p = sub.add_parser("bench", help="time each cell's forward and backward on random data")
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
