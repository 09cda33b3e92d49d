"""Data-parallel training with MPI on this machine: training tokens per
second of one global batch (--batch streams × --seq-len chars of
tinyshakespeare, a 2-layer LSTM) on 1 rank × 1 thread, 2 ranks × 1 thread
and 1 rank × 2 threads, and what the gradient allreduce costs per step.

    python bench/distributed.py [--batch 32] [--seq-len 100] [--hidden 256] [--steps 20] [--rounds 1] [--json PATH]

Each configuration is one ``mpiexec -n R`` job running this file with
``--worker``; tokens/s is the global batch's targets over the median step
time (rank 0's clock, steps after the first --warmup). "allreduce in step" is
the time a step spends in the gradient reduction, waiting for the slower
rank included; "allreduce alone" times the same buffer reduced back to back
after training (the communication itself). Needs the mpi extra.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "tinyshakespeare.txt"
CONFIGS = [(1, 1), (2, 1), (1, 2)]  # (ranks, threads per rank)


def worker(args) -> None:
    """One configuration, on every rank of the job; rank 0 prints a JSON line."""
    from seqcore import ops
    from seqcore.distributed import Communicator
    from seqcore.nn import LanguageModel
    from seqcore.text import Vocabulary
    from seqcore.train import Adam, Trainer

    comm = Communicator(threads=args.threads)
    text = args.data.read_text(encoding="utf-8")
    vocab = Vocabulary.from_text(text, level="char")
    ids = vocab.encode(text)
    model = LanguageModel(len(vocab), 64, args.hidden, 2, cell="lstm", seed=0)
    stamps = []
    trainer = Trainer(model, ids, optimizer=Adam(model, 2e-3), batch_size=args.batch, seq_len=args.seq_len,
                      steps=args.warmup + args.steps, clip_norm=5.0, progress=False, distributed=comm,
                      callbacks=[lambda t: stamps.append(time.perf_counter())])
    comm.barrier()
    stamps.append(time.perf_counter())
    result = trainer.fit()
    steps = np.diff(stamps)[args.warmup:]
    in_step = comm.allreduce_seconds / comm.allreduce_calls

    # the same buffer, reduced back to back: the communication alone
    n = sum(g.size for g in model.grads.values()) + 6
    buf = np.ones(n, dtype=model.dtype)
    comm.barrier()
    times = []
    for _ in range(20):
        t0 = time.perf_counter()
        comm.allreduce_(buf)
        times.append(time.perf_counter() - t0)
    if comm.rank == 0:
        tokens_per_step = args.batch * args.seq_len
        print(json.dumps({"ranks": comm.size, "threads": ops.get_num_threads(), "step_s": float(np.median(steps)),
                          "tokens_per_s": tokens_per_step / float(np.median(steps)),
                          "allreduce_in_step_ms": in_step * 1e3, "allreduce_alone_ms": float(np.median(times)) * 1e3,
                          "gradient_mb": n * buf.itemsize / 1e6, "params": model.num_params(),
                          "steps": result.step}), flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the text (default: %(default)s)")
    parser.add_argument("--batch", type=int, default=32, help="streams in the global batch")
    parser.add_argument("--seq-len", type=int, default=100)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20, help="timed steps")
    parser.add_argument("--warmup", type=int, default=3, help="steps before timing")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run the configurations this many times in turn and keep each one's fastest "
                             "(other work on the cores only slows a run down)")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args)
        return 0

    from seqcore.timing import format_table
    mpiexec = shutil.which("mpiexec", path=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    if mpiexec is None:
        sys.exit("bench/distributed.py: no mpiexec; pip install \"seqcore[mpi]\"")
    best = {}
    load = os.getloadavg()[0]  # other work on the cores skews every figure
    for ranks, threads in CONFIGS * args.rounds:
        command = [mpiexec, "-n", str(ranks), sys.executable, os.path.abspath(__file__), "--worker",
                   "--threads", str(threads), "--data", str(args.data), "--batch", str(args.batch),
                   "--seq-len", str(args.seq_len), "--hidden", str(args.hidden), "--steps", str(args.steps),
                   "--warmup", str(args.warmup)]
        print(f"  {ranks} rank(s) × {threads} thread(s) ...", file=sys.stderr, flush=True)
        done = subprocess.run(command, capture_output=True, text=True, timeout=1800)
        if done.returncode != 0:
            sys.exit(f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}")
        record = json.loads(done.stdout.strip().splitlines()[-1])
        if (ranks, threads) not in best or record["tokens_per_s"] > best[ranks, threads]["tokens_per_s"]:
            best[ranks, threads] = record
    records, rows = [best[c] for c in CONFIGS], []
    for (ranks, threads), record in zip(CONFIGS, records):
        rows.append([f"{ranks} × {threads}", record["tokens_per_s"], record["step_s"] * 1e3,
                     record["allreduce_in_step_ms"] if ranks > 1 else "-",
                     record["allreduce_alone_ms"] if ranks > 1 else "-"])
    base = records[0]["tokens_per_s"]
    for row, record in zip(rows, records):
        row.insert(2, record["tokens_per_s"] / base)
    print(f"seqcore data-parallel training, {platform.processor() or platform.machine()}, {os.cpu_count()} cores: "
          f"2-layer LSTM {args.hidden} ({records[0]['params']:,} parameters, gradient buffer "
          f"{records[0]['gradient_mb']:.1f} MB), global batch {args.batch} × {args.seq_len} chars, "
          f"median of {args.steps} steps, best of {args.rounds} round(s); load average {load:.2f} before, "
          f"{os.getloadavg()[0]:.2f} after")
    print(format_table(["ranks × threads", "tokens/s", "speed-up", "step ms", "allreduce in step ms",
                        "allreduce alone ms"], rows))
    if args.json:
        Path(args.json).write_text(json.dumps(records, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
