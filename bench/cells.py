"""Tokens per second of each cell's training step and inference: seqcore
native, the NumPy reference and torch.nn.RNN/LSTM/GRU (when installed), side
by side in one run, at 1 and 2 threads; and the training step's GFLOP/s as a
share of NumPy's matmul peak measured in the same run.

    python bench/cells.py [--cells lstm gru] [--threads 1 2] [--json out.json]
    python bench/cells.py --precision bf16 [--rounds 7] ...
    python bench/cells.py --precision int8 [--rounds 7] [--extra] ...

With --precision bf16: seqcore in bfloat16 beside seqcore in float32 and
torch in bfloat16 (module, input and gradient in torch.bfloat16, faster
than torch.autocast here: bench/torch_bf16_modes.py), the three taking
turns call by call (medians of --rounds), with the ratios to each.

With --precision int8 (inference only): seqcore in int8 (weights quantized
once) beside seqcore in bfloat16 and float32, torch's quantize_dynamic
LSTM/GRU (qint8 weights; torch has no dynamically quantized RNN) and torch
in float32, in turns; --extra adds the issue's 100×1×256×1024.

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
import time

import numpy as np

import seqcore
from seqcore import benchmark, timing
from seqcore.timing import format_table

# (T, B, D, H)
CONFIGS = [(100, 1, 64, 128), (200, 8, 64, 64), (64, 32, 128, 256), (100, 64, 256, 512), (50, 16, 512, 1024),
           (100, 1, 256, 1024)]


# Inference at batches up to this size is bound by reading W_hh each step:
# the table gives its rate as a share of the bandwidth probe's.
SMALL_BATCH = 4


def onnxruntime_or_none():
    """onnxruntime where it and onnx (seqcore.onnx's export) are installed
    (the onnx extra), else None."""
    try:
        import onnxruntime
        import seqcore.onnx  # noqa: F401 (onnx itself)
    except ImportError:
        return None
    return onnxruntime


def onnxruntime_step(cell: str, args: tuple):
    """Inference of the same layer (ops.<cell>_forward's `args`, float32) in
    ONNX Runtime, or None without onnx and onnxruntime (the onnx extra): a
    seqcore.nn layer with these weights exported by seqcore.onnx (no state
    inputs), run by a session of the current thread count's intra-op
    threads, spinning off (a spinning pool would hold the cores in the other
    contestants' turns)."""
    onnxruntime = onnxruntime_or_none()
    if onnxruntime is None:
        return None
    x = args[0]
    if x.dtype != np.float32:
        return None
    W_ih, W_hh = (args[3], args[4]) if cell == "lstm" else (args[2], args[3])
    D, H = x.shape[2], W_hh.shape[1]
    layer = getattr(seqcore.nn, benchmark.TORCH_CLASS[cell])(D, H)
    b_ih, b_hh = (args[4], args[5]) if cell == "gru" else (args[-1], np.zeros_like(args[-1]))
    layer.load_state_dict({"weight_ih_l0": W_ih, "weight_hh_l0": W_hh, "bias_ih_l0": b_ih, "bias_hh_l0": b_hh})
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = seqcore.get_num_threads()
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    proto = seqcore.onnx.build(layer, state=False)
    session = onnxruntime.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
    feed = {"x": x}

    def infer():
        session.run(None, feed)

    return infer


def onnxruntime_contestant(cell: str, args: tuple, train: bool, precision: str):
    """benchmark.measure_cell's `others` entry: ONNX Runtime for float32 inference."""
    return None if train or precision != "fp32" else onnxruntime_step(cell, args)


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
    parser.add_argument("--precision", choices=["fp32", "bf16", "int8"], default="fp32",
                        help="bf16: seqcore and torch in bfloat16 beside seqcore in float32, in turns; int8: "
                             "inference, seqcore int8/bf16/fp32 beside torch's quantize_dynamic and fp32")
    parser.add_argument("--extra", action="store_true", help="with --precision int8: also 100×1×256×1024")
    parser.add_argument("--rounds", type=int, default=7, help="turns per figure with --precision bf16 (median)")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="with --precision bf16 at 1 thread: cpu counts this thread's CPU time only "
                             "(steadier on a shared machine)")
    args = parser.parse_args(argv)
    if args.precision == "bf16":
        return main_bf16(args)
    if args.precision == "int8":
        return main_int8(args)

    configs = [CONFIGS[i] for i in args.configs] if args.configs is not None else CONFIGS
    backends = ["native"] + ([] if args.no_reference else ["reference"])
    if benchmark.torch_or_none() is not None:
        backends.append("torch")
    if onnxruntime_or_none() is not None:
        backends.append("onnxruntime")
    info = seqcore.info()
    print(f"seqcore {info['version']}, isa {info['isa']}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cpus; torch {'yes' if 'torch' in backends else 'not installed'}; onnxruntime "
          f"{'yes (inference: the layer as seqcore.onnx exports it)' if 'onnxruntime' in backends else 'not installed'}")
    for blas in benchmark.blas_info():
        print(f"numpy BLAS: {blas.get('internal_api')} {blas.get('version')} kernel {blas.get('architecture')}")
    if benchmark.threadpoolctl is None:
        print("note: threadpoolctl is not installed (pip install .[bench]): NumPy's matmul peak below is "
              "taken on all of its BLAS threads at every thread count")
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        if var in os.environ:
            print(f"note: {var}={os.environ[var]} is set; it may slow NumPy's matmul")

    records = []
    for n in args.threads:
        with benchmark.threads(n):
            peak = benchmark.numpy_matmul_gflops(2048, np.float32)
            print(f"\n== {n} thread(s): numpy matmul 2048³ float32 peak {peak:.1f} GFLOP/s ==")
            rows, streams = [], []
            for cell in args.cells:
                for config in configs:
                    tps = benchmark.measure_cell(cell, config, backends, repeat=args.repeat,
                                                 others={"onnxruntime": onnxruntime_contestant})
                    for mode in ("train", "infer"):
                        native = tps["native"][mode]
                        gflops = benchmark.cell_flops(cell, *config, train=mode == "train") * native / np.prod(config[:2]) / 1e9
                        record = dict(cell=cell, T=config[0], B=config[1], D=config[2], H=config[3], threads=n,
                                      step=mode, peak_gflops=peak, native_gflops=gflops,
                                      **{f"{b}_tokens_per_s": tps[b].get(mode) for b in backends})
                        for b in backends[1:]:
                            if mode in tps[b]:
                                record[f"native_over_{b}"] = native / tps[b][mode]
                        if mode == "infer" and config[1] <= SMALL_BATCH:
                            # a step reads W_hh whole: its bytes a second against the probe's at that size
                            weights = benchmark.recurrent_weight_bytes(cell, config[3])
                            record["W_hh_bytes_per_s"] = weights * native / config[1]
                            record["probe_bytes_per_s"] = benchmark.read_bandwidth(weights)
                            streams.append([cell, "{}x{}x{}x{}".format(*config), weights / 2**20,
                                            record["W_hh_bytes_per_s"] / 1e9, record["probe_bytes_per_s"] / 1e9,
                                            100 * record["W_hh_bytes_per_s"] / record["probe_bytes_per_s"]])
                        records.append(record)
                        rows.append([cell, "{}x{}x{}x{}".format(*config), mode]
                                    + [tps[b].get(mode, "-") for b in backends]
                                    + [record.get(f"native_over_{b}", "-") for b in backends[1:]]
                                    + [gflops, 100 * gflops / peak])
            headers = (["cell", "T×B×D×H", "step"] + [f"{b} tok/s" for b in backends]
                       + [f"×{b}" for b in backends[1:]] + ["GFLOP/s", "% peak"])
            print(format_table(headers, rows))
            for other in [b for b in ("torch", "onnxruntime") if b in backends]:
                for cell in args.cells:
                    for mode in ("train", "infer"):
                        ratios = [r[f"native_over_{other}"] for r in records if r["cell"] == cell
                                  and r["threads"] == n and r["step"] == mode and f"native_over_{other}" in r]
                        if ratios:
                            print(f"{cell} {mode}: native/{other} geometric mean {geomean(ratios):.2f}, "
                                  f"min {min(ratios):.2f}")
            if streams:
                print(f"\nInference at B <= {SMALL_BATCH}: W_hh read once a step, against the probe "
                      "(bench/bandwidth.py) reading as many bytes at these threads")
                print(format_table(["cell", "T×B×D×H", "W_hh MB", "W_hh GB/s", "probe GB/s", "% probe"], streams))
            sys.stdout.flush()

    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(info=info, records=records), f, indent=1)
        print(f"\nwrote {args.json}")
    return 0


def main_bf16(args) -> int:
    """The --precision bf16 tables: seqcore bf16, seqcore fp32 and torch
    bf16 (when installed) in turns."""
    configs = [CONFIGS[i] for i in args.configs] if args.configs is not None else CONFIGS
    if args.clock == "cpu" and args.threads != [1]:
        print("bench/cells.py: --clock cpu needs --threads 1 (other threads' work would not count)", file=sys.stderr)
        return 2
    clock = time.thread_time if args.clock == "cpu" else time.perf_counter
    torch = benchmark.torch_or_none()
    info = seqcore.info()
    print(f"seqcore {info['version']}, isa {info['isa']} (of {', '.join(info['isas'])}), "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cpus; "
          f"torch {torch.__version__ + ' (bfloat16 module and input)' if torch else 'not installed'}; "
          f"medians of {args.rounds} turns, {args.clock} clock")
    records = []
    for n in args.threads:
        with benchmark.threads(n):
            print(f"\n== {n} thread(s) ==")
            rows = []
            for cell in args.cells:
                for config in configs:
                    T, B, D, H = config
                    cargs = benchmark.cell_arguments(cell, T, B, D, H)
                    for mode in ("train", "infer"):
                        train = mode == "train"
                        fns = {"bf16": benchmark.seqcore_step(cell, cargs, "native", train, "bf16"),
                               "fp32": benchmark.seqcore_step(cell, cargs, "native", train, "fp32")}
                        if torch is not None:
                            fns["torch_bf16"] = benchmark.torch_step(cell, cargs, train, "bf16")
                        seconds = timing.median_seconds_in_turns(fns, rounds=args.rounds, clock=clock)
                        tps = {k: T * B / v for k, v in seconds.items()}
                        record = dict(cell=cell, T=T, B=B, D=D, H=H, threads=n, step=mode,
                                      **{f"{k}_tokens_per_s": v for k, v in tps.items()},
                                      bf16_over_fp32=tps["bf16"] / tps["fp32"])
                        row = ([cell, "{}x{}x{}x{}".format(*config), mode, tps["bf16"], tps["fp32"]]
                               + ([tps["torch_bf16"]] if torch else []) + [record["bf16_over_fp32"]])
                        if torch is not None:
                            record["bf16_over_torch_bf16"] = tps["bf16"] / tps["torch_bf16"]
                            row.append(record["bf16_over_torch_bf16"])
                        records.append(record)
                        rows.append(row)
            headers = (["cell", "T×B×D×H", "step", "seqcore bf16 tok/s", "seqcore fp32 tok/s"]
                       + (["torch bf16 tok/s"] if torch else []) + ["×seqcore fp32"]
                       + (["×torch bf16"] if torch else []))
            print(format_table(headers, rows))
            sys.stdout.flush()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(info=info, precision="bf16", records=records), f, indent=1)
        print(f"\nwrote {args.json}")
    return 0


def main_int8(args) -> int:
    """The --precision int8 tables (inference): seqcore int8, bf16, fp32 and
    torch's quantize_dynamic and float32 modules (when installed), in turns."""
    configs = [CONFIGS[i] for i in args.configs] if args.configs is not None else list(CONFIGS)
    if args.extra:
        configs.append((100, 1, 256, 1024))
    torch = benchmark.torch_or_none()
    info = seqcore.info()
    print(f"seqcore {info['version']}, isa {info['isa']} (of {', '.join(info['isas'])}), "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cpus; "
          f"torch {torch.__version__ if torch else 'not installed'}; inference tokens/s, "
          f"medians of {args.rounds} turns")
    records = []
    for n in args.threads:
        with benchmark.threads(n):
            print(f"\n== {n} thread(s) ==")
            rows = []
            for cell in args.cells:
                for config in configs:
                    T, B, D, H = config
                    cargs = benchmark.cell_arguments(cell, T, B, D, H)
                    fns = {p: benchmark.seqcore_step(cell, cargs, "native", False, p) for p in ("int8", "bf16", "fp32")}
                    if torch is not None:
                        q = benchmark.torch_step(cell, cargs, False, "int8")
                        if q is not None:
                            fns["torch_int8"] = q
                        fns["torch_fp32"] = benchmark.torch_step(cell, cargs, False, "fp32")
                    seconds = timing.median_seconds_in_turns(fns, rounds=args.rounds)
                    tps = {k: T * B / v for k, v in seconds.items()}
                    record = dict(cell=cell, T=T, B=B, D=D, H=H, threads=n, step="infer",
                                  **{f"{k}_tokens_per_s": v for k, v in tps.items()})
                    for other in ("bf16", "fp32", "torch_int8", "torch_fp32"):
                        if other in tps:
                            record[f"int8_over_{other}"] = tps["int8"] / tps[other]
                    records.append(record)
                    rows.append([cell, "{}x{}x{}x{}".format(*config), tps["int8"], tps["bf16"], tps["fp32"],
                                 tps.get("torch_int8", "-"), tps.get("torch_fp32", "-"),
                                 record.get("int8_over_torch_int8", "-"), record["int8_over_bf16"]])
            headers = ["cell", "T×B×D×H", "seqcore int8", "seqcore bf16", "seqcore fp32", "torch int8 (dynamic)",
                       "torch fp32", "int8/torch int8", "int8/bf16"]
            print(format_table(headers, rows))
            sys.stdout.flush()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(info=info, precision="int8", records=records), f, indent=1)
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
