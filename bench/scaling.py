"""Tokens per second by threads: how seqcore and torch scale from 1 thread to
every core, each measured alone and the two alternated call by call in one
process (where two OpenMP runtimes meet), for the cells of bench/cells.py
(training step and inference), the 2-layer bidirectional LSTM of
bench/layers.py and the Shakespeare model's whole training step.

    python bench/scaling.py                                # 1, 2, 4, … up to the cores
    python bench/scaling.py --threads 1 2 4 8 16 --json scaling.json --png scaling.png
    python bench/scaling.py --quick                        # LSTM only, shorter figures
    python bench/scaling.py --from-json scaling.json --png scaling.png   # plot an earlier run

"alone" is a run of one library's calls (seqcore's, then torch's, in turns);
"alternated" times the same calls when each seqcore call is followed by a
torch call and the other way round, so each library's thread pool meets the
other's. Speed-up is tokens/s against the first thread count's. A figure is
the median call of at least --repeat calls and --min-time seconds, after one
call of warm-up. Sized to run in under 9 minutes on a 16-core machine with
the default thread counts (about 2 with --quick); without torch, only
seqcore runs. The PNG (matplotlib, the `plot` extra) plots seqcore's and
torch's speed-up against threads, training and inference side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cells as cells_bench  # noqa: E402  (bench/cells.py: the five configurations)

import seqcore  # noqa: E402
from seqcore import benchmark  # noqa: E402
from seqcore.nn import LSTM, LanguageModel  # noqa: E402
from seqcore.timing import format_table  # noqa: E402
from seqcore.train import Adam  # noqa: E402

Step = Callable[[], None]
# The Shakespeare example's model and batch (examples/shakespeare.py CONFIG)
SHAKESPEARE = dict(vocab=68, embed=64, hidden=256, layers=2, seq_len=100, batch=32, lr=2e-3, clip=5.0)
# bench/layers.py's 2-layer bidirectional LSTM
LAYER = (64, 32, 128, 256)


def default_threads() -> List[int]:
    """1, 2, 4, … up to the cores, and the cores."""
    cores = os.cpu_count() or 1
    counts = [1]
    while counts[-1] * 2 <= cores:
        counts.append(counts[-1] * 2)
    return counts if counts[-1] == cores else counts + [cores]


# ---------------------------------------------------------------------------
# workloads: (name, step, T×B tokens per call, seqcore step, torch step or None)

def cell_workloads(cell_names: Sequence[str], configs: Sequence[Tuple[int, int, int, int]]):
    for cell in cell_names:
        for T, B, D, H in configs:
            args = benchmark.cell_arguments(cell, T, B, D, H)
            for train in (True, False):
                yield (f"{cell} {T}x{B}x{D}x{H}", "train" if train else "infer", T * B,
                       benchmark.seqcore_step(cell, args, "native", train), benchmark.torch_step(cell, args, train))


def layer_workloads(torch):
    T, B, D, H = LAYER
    rng = np.random.default_rng(0)
    layer = LSTM(D, H, num_layers=2, bidirectional=True, seed=0)
    x = rng.standard_normal((T, B, D)).astype(np.float32)
    dy = np.ones((T, B, layer.output_size), np.float32)

    def train():
        layer.forward(x)
        layer.backward(dy)

    def infer():
        layer.forward(x, train=False)

    t_train = t_infer = None
    if torch is not None:
        t = torch.nn.LSTM(D, H, num_layers=2, bidirectional=True)
        t.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in layer.torch_state_dict().items()})
        xt = torch.from_numpy(x).requires_grad_()

        def t_train():
            t.zero_grad(set_to_none=True)
            xt.grad = None
            y, _ = t(xt)
            y.backward(torch.ones_like(y))

        def t_infer():
            with torch.inference_mode():
                t(xt)

    name = f"bilstm2 {T}x{B}x{D}x{H}"
    yield name, "train", T * B, train, t_train
    yield name, "infer", T * B, infer, t_infer


def shakespeare_workload(torch):
    """The example's training step: embedding, 2 LSTM layers, head, softmax
    cross-entropy, global-norm clipping, Adam (as the Trainer runs it), on
    random characters."""
    c = SHAKESPEARE
    rng = np.random.default_rng(0)
    ids = rng.integers(0, c["vocab"], (c["seq_len"] + 1, c["batch"]))
    x, y = ids[:-1], ids[1:]
    model = LanguageModel(c["vocab"], embed_size=c["embed"], hidden_size=c["hidden"], num_layers=c["layers"],
                          cell="lstm", seed=0)
    step = benchmark.language_model_step(model, Adam(model, lr=c["lr"]), x, y, c["clip"])

    t_step = None
    if torch is not None:
        nn = torch.nn
        emb, rnn = nn.Embedding(c["vocab"], c["embed"]), nn.LSTM(c["embed"], c["hidden"], c["layers"])
        head = nn.Linear(c["hidden"], c["vocab"])
        params = [*emb.parameters(), *rnn.parameters(), *head.parameters()]
        t_opt = torch.optim.Adam(params, lr=c["lr"])
        xt, yt = torch.from_numpy(x), torch.from_numpy(y).reshape(-1)

        def t_step():
            out, _ = rnn(emb(xt))
            loss = nn.functional.cross_entropy(head(out).reshape(-1, c["vocab"]), yt)
            t_opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(params, c["clip"])
            t_opt.step()

    yield "shakespeare step", "train", c["seq_len"] * c["batch"], step, t_step


# ---------------------------------------------------------------------------
# timing

def seconds(fn: Step) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def enough(times: List[float], repeat: int, min_time: float) -> bool:
    return len(times) >= repeat and sum(times) >= min_time


def alone(fn: Step, repeat: int, min_time: float) -> float:
    """Median seconds of fn's calls, run back to back."""
    fn()
    times: List[float] = []
    while not enough(times, repeat, min_time):
        times.append(seconds(fn))
    return float(np.median(times))


def alternated(a: Step, b: Step, repeat: int, min_time: float) -> Tuple[float, float]:
    """Median seconds of a's and b's calls, a and b called in turn."""
    a(), b()
    ta: List[float] = []
    tb: List[float] = []
    while not (enough(ta, repeat, min_time) and enough(tb, repeat, min_time)):
        ta.append(seconds(a))
        tb.append(seconds(b))
    return float(np.median(ta)), float(np.median(tb))


def measure(workloads, threads: Sequence[int], repeat: int, min_time: float, log) -> List[Dict[str, object]]:
    records = []
    for n in threads:
        with benchmark.threads(n):
            for name, step, tokens, ours, theirs in workloads:
                rec: Dict[str, object] = dict(workload=name, step=step, threads=n, tokens=tokens)
                rec["seqcore"] = tokens / alone(ours, repeat, min_time)
                if theirs is not None:
                    rec["torch"] = tokens / alone(theirs, repeat, min_time)
                    s, t = alternated(ours, theirs, repeat, min_time)
                    rec["seqcore_alternated"], rec["torch_alternated"] = tokens / s, tokens / t
                records.append(rec)
                log(f"  {n:>3} threads  {name:<24} {step}  seqcore {rec['seqcore']:>12,.0f} tok/s")
    return records


# ---------------------------------------------------------------------------
# report

def add_speedups(records: List[Dict[str, object]]) -> None:
    first: Dict[Tuple[str, str, str], float] = {}
    for r in records:
        for lib in ("seqcore", "torch"):
            if lib in r:
                key = (r["workload"], r["step"], lib)
                first.setdefault(key, r[lib])
                r[f"{lib}_speedup"] = r[lib] / first[key]


def table(records: List[Dict[str, object]]) -> str:
    def fig(r, k):
        return r.get(k, "-")

    rows = []
    for r in sorted(records, key=lambda r: (r["workload"], r["step"], r["threads"])):
        ratio = r["seqcore"] / r["torch"] if "torch" in r else "-"
        alt = r["seqcore_alternated"] / r["seqcore"] if "torch" in r else "-"
        rows.append([r["workload"], r["step"], r["threads"], r["seqcore"], fig(r, "torch"), ratio,
                     r["seqcore_speedup"], fig(r, "torch_speedup"), fig(r, "seqcore_alternated"),
                     fig(r, "torch_alternated"), alt])
    return format_table(["workload", "step", "threads", "seqcore tok/s", "torch tok/s", "×torch", "seqcore ×1st",
                         "torch ×1st", "seqcore alt tok/s", "torch alt tok/s", "seqcore alt/alone"], rows)


def plot(records: List[Dict[str, object]], path: str) -> bool:
    """Speed-up against threads, one line per workload (seqcore solid, torch
    dashed), training and inference side by side. False without matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, axes = plt.subplots(1, 2, figsize=(13, 5), sharey=True)
    threads = sorted({r["threads"] for r in records})
    for ax, step in zip(axes, ("train", "infer")):
        names = sorted({r["workload"] for r in records if r["step"] == step})
        for i, name in enumerate(names):
            rs = sorted((r for r in records if r["workload"] == name and r["step"] == step), key=lambda r: r["threads"])
            color = f"C{i % 10}"
            ax.plot([r["threads"] for r in rs], [r["seqcore_speedup"] for r in rs], "-o", color=color, label=name)
            if all("torch_speedup" in r for r in rs):
                ax.plot([r["threads"] for r in rs], [r["torch_speedup"] for r in rs], "--", color=color, alpha=0.6)
        ax.plot(threads, [t / threads[0] for t in threads], ":", color="grey", label="linear")
        ax.set_xscale("log", base=2)
        ax.set_xticks(threads)
        ax.set_xticklabels([str(t) for t in threads])
        ax.set_xlabel("threads")
        ax.set_title(f"{step}: seqcore (solid), torch (dashed)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
    axes[0].set_ylabel(f"tokens/s against {threads[0]} thread(s)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def main(argv: Optional[List[str]] = None) -> Dict[str, object]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--threads", nargs="+", type=int, default=default_threads())
    p.add_argument("--cells", nargs="+", default=["lstm", "gru"], choices=benchmark.CELLS)
    p.add_argument("--configs", nargs="+", type=int, default=None,
                   help="indices into bench/cells.py's configurations (default: all)")
    p.add_argument("--workloads", nargs="+", default=["cells", "layer", "shakespeare"],
                   choices=["cells", "layer", "shakespeare"])
    p.add_argument("--repeat", type=int, default=3, help="calls per figure at least")
    p.add_argument("--min-time", type=float, default=0.2, help="seconds of calls per figure at least")
    p.add_argument("--quick", action="store_true", help="LSTM only, --min-time 0.05")
    p.add_argument("--no-torch", action="store_true", help="seqcore only")
    p.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    p.add_argument("--png", metavar="PATH", help="also plot the speed-ups (needs matplotlib)")
    p.add_argument("--quiet", action="store_true", help="print only the table")
    p.add_argument("--from-json", metavar="PATH",
                   help="measure nothing: the table (and --png) of an earlier run's --json, e.g. one "
                        "from a machine without matplotlib")
    args = p.parse_args(argv)
    if args.from_json:
        earlier = json.loads(Path(args.from_json).read_text())
        print(earlier["header"])
        print(table(earlier["records"]))
        if args.png:
            print(f"plot: {args.png}" if plot(earlier["records"], args.png)
                  else "plot: matplotlib is not installed (the plot extra)")
        return earlier
    if any(n < 1 for n in args.threads) or args.repeat < 1 or args.min_time < 0:
        p.error("--threads: expected counts >= 1; --repeat >= 1; --min-time >= 0")
    if args.quick:
        args.cells, args.min_time = ["lstm"], 0.05
    threads = sorted(set(args.threads))
    torch = None if args.no_torch else benchmark.torch_or_none()
    configs = cells_bench.CONFIGS if args.configs is None else [cells_bench.CONFIGS[i] for i in args.configs]

    workloads = []
    if "cells" in args.workloads:
        workloads += list(cell_workloads(args.cells, configs))
    if "layer" in args.workloads:
        workloads += list(layer_workloads(torch))
    if "shakespeare" in args.workloads:
        workloads += list(shakespeare_workload(torch))
    if torch is None:
        workloads = [(n, s, k, ours, None) for n, s, k, ours, _ in workloads]

    info = seqcore.info()
    header = (f"seqcore {info['version']}, isa {info['isa']}, {platform.processor() or platform.machine()}, "
              f"{os.cpu_count()} cpus; torch {torch.__version__ if torch else 'not measured'}; "
              f"threads {' '.join(map(str, threads))}")
    print(header, flush=True)
    log = (lambda s: None) if args.quiet else (lambda s: print(s, file=sys.stderr, flush=True))
    started = time.perf_counter()
    records = measure(workloads, threads, args.repeat, args.min_time, log)
    add_speedups(records)
    print(table(records))
    print(f"({time.perf_counter() - started:.0f} s)")
    result = dict(header=header, threads=threads, cpus=os.cpu_count(), seqcore=info,
                  torch=torch.__version__ if torch else None, records=records)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    if args.png:
        print(f"plot: {args.png}" if plot(records, args.png) else "plot: matplotlib is not installed (the plot extra)")
    return result


if __name__ == "__main__":
    main()
