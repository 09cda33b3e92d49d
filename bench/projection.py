"""An LSTM with a projection (proj_size) against torch's: seqcore.nn.LSTM and
torch.nn.LSTM with the same weights, float32, one training step (forward +
backward of y.sum()) and one inference call, the two libraries in turns
round by round; median milliseconds and torch's time over seqcore's.

    python bench/projection.py --threads 2
"""

from __future__ import annotations

import argparse
import time
from typing import Callable, Dict, List

import numpy as np
import torch

import seqcore
from seqcore import nn
from seqcore.timing import format_table


def main(argv: List[str] = None) -> List[List[object]]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=12, help="calls of each per case (the first 2 left out)")
    p.add_argument("--shape", default="100x32x256x512", metavar="TxBxDxH")
    p.add_argument("--proj", type=int, nargs="+", default=[0, 128, 256], help="proj_size values (0: none)")
    args = p.parse_args(argv)
    T, B, D, H = (int(v) for v in args.shape.split("x"))
    torch.set_num_threads(args.threads)
    seqcore.set_num_threads(args.threads)
    x = np.random.default_rng(0).standard_normal((T, B, D)).astype(np.float32)
    tx = torch.tensor(x, requires_grad=True)
    rows = []
    for P in args.proj:
        theirs = torch.nn.LSTM(D, H, proj_size=P)
        ours = nn.LSTM(D, H, proj_size=P, seed=0)
        ours.load_torch_state_dict(theirs.state_dict())

        def s_train() -> None:
            y, _ = ours.forward(x)
            ours.backward(np.ones_like(y))

        def t_train() -> None:
            y, _ = theirs(tx)
            y.sum().backward()

        def t_infer() -> None:
            with torch.no_grad():
                theirs(tx)

        calls: Dict[str, Callable[[], object]] = {
            "seqcore train": s_train, "torch train": t_train,
            "seqcore infer": lambda: ours.forward(x, train=False), "torch infer": t_infer}
        times: Dict[str, List[float]] = {k: [] for k in calls}
        for _ in range(args.rounds):
            for k, f in calls.items():
                t0 = time.perf_counter()
                f()
                times[k].append(time.perf_counter() - t0)
        ms = {k: 1e3 * float(np.median(v[2:])) for k, v in times.items()}
        rows.append([P, ms["seqcore train"], ms["torch train"], ms["torch train"] / ms["seqcore train"],
                     ms["seqcore infer"], ms["torch infer"], ms["torch infer"] / ms["seqcore infer"]])
    print(f"LSTM T×B×D×H = {T}×{B}×{D}×{H}, float32, {args.threads} threads, {args.rounds} rounds in turns; "
          "median ms")
    print(format_table(["proj_size", "seqcore train", "torch train", "torch / seqcore", "seqcore infer",
                        "torch infer", "torch / seqcore"],
                       [[r[0]] + [f"{v:.1f}" if i % 3 != 2 else f"{v:.2f}" for i, v in enumerate(r[1:])]
                        for r in rows]))
    return rows


if __name__ == "__main__":
    main()
