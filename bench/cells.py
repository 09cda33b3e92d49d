"""Tokens per second of each cell's training step and inference: seqcore
native, the NumPy reference and torch.nn.RNN/LSTM/GRU (when installed), side
by side in one run, at 1 and 2 threads; and the training step's GFLOP/s as a
share of NumPy's matmul peak measured in the same run.

    python bench/cells.py [--cells lstm gru] [--threads 1 2] [--json out.json]

A training step is forward + backward with input and weight gradients, from
a gradient at every step's output. Run it on a quiet machine; for NumPy's
peak, unset OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE in the command if set.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys

import numpy as np

import seqcore
from seqcore import benchmark
from seqcore.timing import format_table

# (T, B, D, H)
CONFIGS = [(100, 1, 64, 128), (200, 8, 64, 64), (64, 32, 128, 256), (100, 64, 256, 512), (50, 16, 512, 1024)]


def geomean(values):
    values = [v for v in values if v]
    return float(np.exp(np.mean(np.log(values)))) if values else float("nan")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", nargs="+", default=list(benchmark.CELLS), choices=benchmark.CELLS)
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--configs", nargs="+", type=int, default=None,
                        help="indices into the configuration list (default: all)")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per figure (median)")
    parser.add_argument("--no-reference", action="store_true", help="skip the (slow) NumPy reference")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    args = parser.parse_args(argv)

    configs = [CONFIGS[i] for i in args.configs] if args.configs is not None else CONFIGS
    backends = ["native"] + ([] if args.no_reference else ["reference"])
    if benchmark.torch_or_none() is not None:
        backends.append("torch")
    info = seqcore.info()
    print(f"seqcore {info['version']}, isa {info['isa']}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cpus; torch {'yes' if 'torch' in backends else 'not installed'}")
    for blas in benchmark.blas_info():
        print(f"numpy BLAS: {blas.get('internal_api')} {blas.get('version')} kernel {blas.get('architecture')}")
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        if var in os.environ:
            print(f"note: {var}={os.environ[var]} is set; it may slow NumPy's matmul")

    records = []
    for n in args.threads:
        with benchmark.threads(n):
            peak = benchmark.numpy_matmul_gflops(2048, np.float32)
            print(f"\n== {n} thread(s): numpy matmul 2048³ float32 peak {peak:.1f} GFLOP/s ==")
            rows = []
            for cell in args.cells:
                for config in configs:
                    tps = benchmark.measure_cell(cell, config, backends, repeat=args.repeat)
                    for mode in ("train", "infer"):
                        native = tps["native"][mode]
                        gflops = benchmark.cell_flops(cell, *config, train=mode == "train") * native / np.prod(config[:2]) / 1e9
                        record = dict(cell=cell, T=config[0], B=config[1], D=config[2], H=config[3], threads=n,
                                      step=mode, peak_gflops=peak, native_gflops=gflops,
                                      **{f"{b}_tokens_per_s": tps[b].get(mode) for b in backends})
                        for b in backends[1:]:
                            record[f"native_over_{b}"] = native / tps[b][mode]
                        records.append(record)
                        rows.append([cell, "{}x{}x{}x{}".format(*config), mode]
                                    + [tps[b][mode] for b in backends]
                                    + [record[f"native_over_{b}"] for b in backends[1:]]
                                    + [gflops, 100 * gflops / peak])
            headers = (["cell", "T×B×D×H", "step"] + [f"{b} tok/s" for b in backends]
                       + [f"×{b}" for b in backends[1:]] + ["GFLOP/s", "% peak"])
            print(format_table(headers, rows))
            if "torch" in backends:
                for cell in args.cells:
                    for mode in ("train", "infer"):
                        ratios = [r["native_over_torch"] for r in records
                                  if r["cell"] == cell and r["threads"] == n and r["step"] == mode]
                        print(f"{cell} {mode}: native/torch geometric mean {geomean(ratios):.2f}, "
                              f"min {min(ratios):.2f}")
            sys.stdout.flush()

    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(info=info, records=records), f, indent=1)
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
