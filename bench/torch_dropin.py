"""A plain PyTorch training loop with and without seqcore.torch.convert():
the speed a PyTorch user gets from one line.

    python bench/torch_dropin.py                        # LSTM, GRU, RNN; float32 and bf16 autocast; 2 threads
    python bench/torch_dropin.py --cells gru --precisions bf16 --rounds 4 --json dropin.json

The model is the Shakespeare one (examples/shakespeare.py's CONFIG):
torch.nn.Embedding 64 -> torch.nn.LSTM 256 ×2 -> torch.nn.Linear, and the
same with torch.nn.GRU and torch.nn.RNN; trained with cross-entropy, clip_grad_norm_(5) and
torch.optim.Adam(2e-3) on 32 streams of 100 characters of Tiny Shakespeare,
the state carried from chunk to chunk (truncated BPTT). The two copies of the
model start from the same weights and see the same batches; the only change is
``seqcore.torch.convert(model)`` on one of them. They take turns of --block
steps, --rounds times, so that whatever else slows the shared machine slows
both alike. With --precisions bf16 both copies run their forward and loss
under ``torch.autocast("cpu", dtype=torch.bfloat16)``, as a PyTorch user
asks for bfloat16 (torch's LSTM and RNN then compute in bfloat16, its GRU in
float32; the converted modules run seqcore's bf16 products). Reported:
training tokens per second (the median of the steps'
rates after each turn's first step) and the ratio, plus each copy's last loss
(the two follow the same path, up to float32 rounding).
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

import seqcore
from seqcore import benchmark
from seqcore.text import StreamBatches
from seqcore.timing import format_table



def load_example():
    """examples/shakespeare.py (CONFIG, DATA, load_corpus) as a module; it is not on sys.path."""
    path = Path(__file__).resolve().parents[1] / "examples" / "shakespeare.py"
    spec = importlib.util.spec_from_file_location("shakespeare_example", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def build(torch, cell: str, vocab_size: int, cfg: Dict[str, object], seed: int):
    """Embedding -> torch.nn.LSTM/GRU -> Linear, torch's own initialisation."""
    nn = torch.nn

    class CharModel(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embedding = nn.Embedding(vocab_size, cfg["embed"])
            self.rnn = getattr(nn, cell.upper())(cfg["embed"], cfg["hidden"], cfg["layers"])
            self.head = nn.Linear(cfg["hidden"], vocab_size)

        def forward(self, ids, state=None):
            """ids (T, B) -> logits (T, B, V), state."""
            y, state = self.rnn(self.embedding(ids), state)
            return self.head(y), state

    torch.manual_seed(seed)
    return CharModel()


class Loop:
    """One copy of the model and its ordinary training loop, stepped in turns."""

    def __init__(self, torch, model, batches: StreamBatches, cfg: Dict[str, object], autocast: bool) -> None:
        self.torch, self.model, self.batches, self.cfg, self.autocast = torch, model, batches, cfg, autocast
        self.optimizer = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
        self.state, self.index = None, 0
        self.rates: List[float] = []
        self.loss = float("nan")

    def turn(self, steps: int) -> None:
        """``steps`` training steps; the rate of all but the first is recorded."""
        torch, F = self.torch, self.torch.nn.functional
        self.model.train()
        for k in range(steps):
            start = time.perf_counter()
            if self.index == 0:
                self.state = None  # a new epoch: the streams start over
            x, y = self.batches[self.index]
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.autocast):
                logits, state = self.model(torch.from_numpy(x), self.state)
                loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), torch.from_numpy(y).reshape(-1))
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg["clip"])
            self.optimizer.step()
            self.state = tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()
            self.index = (self.index + 1) % len(self.batches)
            self.loss = loss.item()
            if k > 0:  # the first step of a turn pays for the other copy's caches
                self.rates.append(y.size / (time.perf_counter() - start))

    def validation_loss(self, batches: StreamBatches) -> float:
        """Nats per character over the held-out text (every batch, the state
        carried), in eval mode, under the same autocast as the training."""
        torch, F = self.torch, self.torch.nn.functional
        self.model.eval()
        total, count, state = 0.0, 0, None
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.autocast):
            for i in range(len(batches)):
                x, y = batches[i]
                logits, state = self.model(torch.from_numpy(x), state)
                total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(),
                                         torch.from_numpy(y).reshape(-1), reduction="sum").item()
                count += y.size
        return total / count


def bench_cell(torch, cell: str, precision: str, batches: StreamBatches, validation: Optional[StreamBatches],
               vocab_size: int, cfg, args, log) -> Dict[str, object]:
    plain_model = build(torch, cell, vocab_size, cfg, args.seed)
    converted_model = seqcore.torch.convert(copy.deepcopy(plain_model))
    autocast = precision == "bf16"
    loops = {"torch": Loop(torch, plain_model, batches, cfg, autocast),
             "seqcore.torch": Loop(torch, converted_model, batches, cfg, autocast)}
    for r in range(args.rounds):
        for name in (("torch", "seqcore.torch") if r % 2 == 0 else ("seqcore.torch", "torch")):
            loops[name].turn(args.block)
        log(f"{cell} {precision} round {r + 1}/{args.rounds}: " + ", ".join(
            f"{name} {np.median(loop.rates):,.0f} tokens/s (loss {loop.loss:.4f})" for name, loop in loops.items()))
    rates = {name: float(np.median(loop.rates)) for name, loop in loops.items()}
    result = dict(cell=cell, precision=precision, steps=args.rounds * args.block, torch_tokens_per_s=rates["torch"],
                  seqcore_torch_tokens_per_s=rates["seqcore.torch"], ratio=rates["seqcore.torch"] / rates["torch"],
                  torch_last_loss=loops["torch"].loss, seqcore_torch_last_loss=loops["seqcore.torch"].loss)
    if validation is not None:
        result.update(torch_validation_loss=loops["torch"].validation_loss(validation),
                      seqcore_torch_validation_loss=loops["seqcore.torch"].validation_loss(validation))
    return result


def main(argv: Optional[List[str]] = None) -> Dict[str, object]:
    example = load_example()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--cells", nargs="+", choices=("lstm", "gru", "rnn"), default=["lstm", "gru", "rnn"])
    p.add_argument("--precisions", nargs="+", choices=("fp32", "bf16"), default=["fp32", "bf16"],
                   help="bf16: both copies under torch.autocast('cpu', dtype=torch.bfloat16)")
    p.add_argument("--threads", type=int, default=2, help="for torch, seqcore (the converted modules use "
                   "torch's count) and NumPy's BLAS")
    p.add_argument("--rounds", type=int, default=24, help="turns of each copy")
    p.add_argument("--block", type=int, default=5, help="steps of a turn (the first one's rate is left out)")
    p.add_argument("--hidden", type=int, default=example.CONFIG["hidden"], help="the recurrent layers' size")
    p.add_argument("--data", type=Path, default=example.DATA)
    p.add_argument("--max-chars", type=int, default=None, help="use only the corpus's first so many characters")
    p.add_argument("--seed", type=int, default=0, help="the initial weights")
    p.add_argument("--validate", action="store_true",
                   help="at the end, each copy's loss on the held-out text (nats per character)")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    p.add_argument("--quiet", action="store_true", help="print only the report")
    args = p.parse_args(argv)
    if args.rounds < 1 or args.block < 2 or args.threads < 1:
        p.error("--rounds, --threads: expected >= 1; --block: expected >= 2")
    torch = benchmark.torch_or_none()
    if torch is None:
        p.error("this benchmark needs torch (pip install torch)")
    import seqcore.torch  # noqa: F401  (the module under test; needs torch)

    log = (lambda s: None) if args.quiet else (lambda s: print(s, flush=True))
    cfg = dict(example.CONFIG, hidden=args.hidden)
    vocab, train, held_out = example.load_corpus(args.data, args.max_chars)
    batches = StreamBatches(train, cfg["batch"], cfg["seq_len"])
    validation = StreamBatches(held_out, cfg["batch"], cfg["seq_len"]) if args.validate else None
    info = seqcore.info()
    print(f"seqcore {info['version']}, isa {info['isa']}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cpus; torch {torch.__version__}; {args.threads} threads")
    print(f"embedding {cfg['embed']}, {'/'.join(c.upper() for c in args.cells)} {cfg['hidden']}×{cfg['layers']}, batch {cfg['batch']} × "
          f"{cfg['seq_len']}, {len(vocab)} symbols; Adam {cfg['lr']:g}, clip {cfg['clip']:g}; "
          f"{args.rounds} turns of {args.block} steps each", flush=True)
    results = []
    with benchmark.threads(args.threads):
        for cell in args.cells:
            for precision in args.precisions:
                results.append(bench_cell(torch, cell, precision, batches, validation, len(vocab), cfg, args, log))
    rows = [[r["cell"].upper(), "bf16 autocast" if r["precision"] == "bf16" else "float32", round(r["torch_tokens_per_s"]), round(r["seqcore_torch_tokens_per_s"]),
             f"{r['ratio']:.2f}×", f"{r['torch_last_loss']:.4f}", f"{r['seqcore_torch_last_loss']:.4f}"]
            for r in results]
    print()
    header = ["model", "precision", "torch tokens/s", "converted tokens/s", "ratio", "torch loss", "converted loss"]
    if args.validate:
        header += ["torch validation", "converted validation"]
        for row, r in zip(rows, results):
            row += [f"{r['torch_validation_loss']:.4f}", f"{r['seqcore_torch_validation_loss']:.4f}"]
    print(format_table(header, rows), flush=True)
    out: Dict[str, object] = dict(info=info, torch=torch.__version__, threads=args.threads, rounds=args.rounds,
                                  block=args.block, config=cfg, results=results)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
        print(f"\nwrote {args.json}")
    return out


if __name__ == "__main__":
    main()
