"""Layers against torch: a 2-layer bidirectional LSTM and GRU at (T, B, D, H) =
(64, 32, 128, 256), on a full batch and on a variable-length batch (lengths
uniform in [T/4, T]) against torch's PackedSequence path, training steps
(forward + backward with every gradient) and inference, tokens per second.

    python bench/layers.py [--threads 1 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

import seqcore
from seqcore import benchmark
from seqcore.nn import GRU, LSTM
from seqcore.timing import format_table, median_seconds

T, B, D, H = 64, 32, 128, 256


def seqcore_steps(layer, x, lengths):
    dy = np.ones((x.shape[0], x.shape[1], layer.output_size), x.dtype)

    def train():
        layer.forward(x, lengths=lengths)
        layer.backward(dy)

    def infer():
        layer.forward(x, lengths=lengths, train=False)

    return train, infer


def torch_steps(torch, layer, x, lengths):
    cls = torch.nn.LSTM if isinstance(layer, LSTM) else torch.nn.GRU
    t = cls(layer.input_size, layer.hidden_size, num_layers=layer.num_layers, bidirectional=True)
    t.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in layer.torch_state_dict().items()})
    xt = torch.from_numpy(x).requires_grad_()
    lt = None if lengths is None else torch.from_numpy(lengths)

    def run():
        inp = xt if lt is None else torch.nn.utils.rnn.pack_padded_sequence(xt, lt, enforce_sorted=False)
        y, _ = t(inp)
        return y if lt is None else torch.nn.utils.rnn.pad_packed_sequence(y, total_length=x.shape[0])[0]

    def train():
        t.zero_grad(set_to_none=True)
        xt.grad = None
        y = run()
        y.backward(torch.ones_like(y))

    def infer():
        with torch.inference_mode():
            run()

    return train, infer


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args(argv)
    torch = benchmark.torch_or_none()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T, B, D)).astype(np.float32)
    lengths = rng.integers(T // 4, T + 1, size=B)
    print(f"seqcore {seqcore.__version__}, isa {seqcore.info()['isa']}; 2-layer bidirectional, "
          f"T={T} B={B} D={D} H={H}; variable lengths uniform in [{T // 4}, {T}] "
          f"(mean {lengths.mean():.1f}); tokens/s count the padded T·B")
    records = []
    for n in args.threads:
        rows = []
        with benchmark.threads(n):
            for cls in (LSTM, GRU):
                layer = cls(D, H, num_layers=2, bidirectional=True, seed=0)
                for batch, lens in (("full", None), ("variable", lengths)):
                    ours = seqcore_steps(layer, x, lens)
                    theirs = torch_steps(torch, layer, x, lens) if torch else (None, None)
                    for k, step in enumerate(("train", "infer")):
                        tps = T * B / median_seconds(ours[k], repeat=args.repeat, warmup=1, min_time=0.3)
                        tt = T * B / median_seconds(theirs[k], repeat=args.repeat, warmup=1, min_time=0.3) if torch else None
                        rec = dict(cell=cls.cell, batch=batch, step=step, threads=n, seqcore_tokens_per_s=tps,
                                   torch_tokens_per_s=tt, ratio=tps / tt if tt else None)
                        records.append(rec)
                        rows.append([cls.cell, batch, step, tps] + ([tt, rec["ratio"]] if torch else []))
        print(f"\n== {n} thread(s) ==")
        headers = ["cell", "batch", "step", "seqcore tok/s"] + (["torch tok/s", "×torch"] if torch else [])
        print(format_table(headers, rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(records, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
