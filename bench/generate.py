"""Sampling speed: characters per second of seqcore.generate.sample on its
stepper, one sample and N at once, in precision "fp32", "bf16" and "int8", at 1
thread and at --threads (default 2) threads a step, against the reference
path (one forward a token and the NumPy draw: how sample ran before the
stepper) and a plain PyTorch loop (nn.LSTM one step at a time with the state
carried, softmax and torch.multinomial, at 1 thread), in one process.

    python bench/generate.py [--threads 2] [--length 2000] [--samples 64] [--rounds 5] [--json PATH]

Models (random weights, so every character is drawn; no <eos> stop):
  char-rnn     1-layer LSTM 128, embedding 32, 83 characters
  shakespeare  2-layer LSTM 256, embedding 64, 65 characters (the Shakespeare bench's model)

The contestants take turns, one run each per round (--rounds rounds), and
the figures are medians over the rounds, so that a machine shared with
others slows all of them alike. N samples are N rows of --length characters
each; their chars/s counts all N·length characters.
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
from seqcore.generate import sample
from seqcore.nn import LanguageModel
from seqcore.text import Vocabulary
from seqcore.timing import format_table

MODELS = {
    "char-rnn": dict(chars=80, embed_size=32, hidden_size=128, num_layers=1),
    "shakespeare": dict(chars=62, embed_size=64, hidden_size=256, num_layers=2),
}


class Stepped:
    """The model, whose stepper takes `threads` threads a step (sample makes
    it with its defaults otherwise)."""

    def __init__(self, model, threads: int):
        self.model, self.threads = model, threads

    def __getattr__(self, name):
        return getattr(self.model, name)

    def stepper(self, batch_size: int = 1):
        return self.model.stepper(batch_size, num_threads=self.threads)


def in_precision(model, precision: str):
    """A copy of the model in `precision` ("bf16", "int8"; the same float32 weights)."""
    copy = LanguageModel(**dict(model.config(), precision=precision))
    copy.load_state_dict(model.state_dict())
    return copy


class ForwardOnly:
    """The model without its stepper: sample takes the reference path."""

    def __init__(self, model):
        self.model, self.vocab_size = model, model.vocab_size

    def forward(self, ids, state=None, train=True):
        return self.model.forward(ids, state, train=train)


def make(name: str):
    spec = MODELS[name]
    vocab = Vocabulary([chr(33 + i) for i in range(spec["chars"])])  # + <pad> <unk> <eos>
    model = LanguageModel(len(vocab), spec["embed_size"], spec["hidden_size"], spec["num_layers"], cell="lstm",
                          seed=0)
    return vocab, model


def torch_sampler(model, threads: int):
    """A plain PyTorch loop with the model's weights: (length, rows, seed) -> ids (length, rows)."""
    import torch
    torch.set_num_threads(threads)
    lstm = torch.nn.LSTM(model.embedding.embedding_dim, model.rnn.hidden_size, model.rnn.num_layers)
    lstm.load_state_dict({k: torch.from_numpy(v) for k, v in model.rnn.torch_state_dict().items()})
    embedding = torch.nn.Embedding.from_pretrained(torch.from_numpy(model.embedding.weight))
    head = torch.nn.Linear(model.rnn.hidden_size, model.vocab_size)
    head.load_state_dict({"weight": torch.from_numpy(model.head.weight), "bias": torch.from_numpy(model.head.bias)})

    def run(length: int, rows: int, seed: int):
        generator = torch.Generator().manual_seed(seed)
        x = torch.zeros(rows, dtype=torch.long)
        state, out = None, []
        with torch.inference_mode():
            for _ in range(length):
                y, state = lstm(embedding(x)[None], state)  # one step, (1, rows, H)
                p = torch.softmax(head(y[0]), dim=-1)
                x = torch.multinomial(p, 1, generator=generator)[:, 0]
                out.append(x)
        return torch.stack(out)
    return run


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--threads", type=int, default=2,
                        help="threads a step of the stepper's second rows (default: %(default)s; torch: 1)")
    parser.add_argument("--length", type=int, default=2000, help="characters a sample (default: %(default)s)")
    parser.add_argument("--samples", type=int, default=64, help="N of the N-samples rows (default: %(default)s)")
    parser.add_argument("--reference-length", type=int, default=200,
                        help="characters of the reference path's sample, the slow one (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=5, help="turns of every contestant (median; default: 5)")
    parser.add_argument("--no-torch", action="store_true", help="leave PyTorch out")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    seqcore.set_num_threads(args.threads)  # the reference path's forward: 1 thread (T = B = 1)
    try:
        import torch
    except ImportError:
        torch = None
    with_torch = torch is not None and not args.no_torch
    print(f"sampling on {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, 1 and {args.threads} "
          f"thread(s),"
          f" seqcore {seqcore.__version__} ({seqcore.info()['isa']})"
          + (f", torch {torch.__version__}" if with_torch else "")
          + ", load average %.1f %.1f %.1f" % os.getloadavg())

    records, rows = [], []
    for name in args.models:
        vocab, model = make(name)
        L, N = args.length, args.samples
        bf16, int8 = in_precision(model, "bf16"), in_precision(model, "int8")
        contestants = []
        for who, m in (("seqcore", model), (f"seqcore, {args.threads} threads", Stepped(model, args.threads)),
                       ("seqcore bf16", bf16), (f"seqcore bf16, {args.threads} threads", Stepped(bf16, args.threads)),
                       ("seqcore int8", int8), (f"seqcore int8, {args.threads} threads", Stepped(int8, args.threads))):
            contestants += [
                (who, 1, L, lambda m=m: sample(m, vocab, L, seed=1, stop_at_eos=False)),
                (who, N, L, lambda m=m: sample(m, vocab, L, seed=1, stop_at_eos=False, num_samples=N))]
        contestants.append(("seqcore, reference path", 1, args.reference_length,
                            lambda: sample(ForwardOnly(model), vocab, args.reference_length, seed=1, stop_at_eos=False)))
        if with_torch:
            run = torch_sampler(model, 1)
            contestants += [("torch loop", 1, L, lambda: run(L, 1, 1)), ("torch loop", N, L, lambda: run(L, N, 1))]
        times = [[] for _ in contestants]
        for c in contestants:  # warm-up: packing, first calls, torch's pools
            c[3]()
        for _ in range(args.rounds):
            for i, (_, _, _, fn) in enumerate(contestants):
                start = time.perf_counter()
                fn()
                times[i].append(time.perf_counter() - start)
        base = None
        for (who, n, length, _), ts in zip(contestants, times):
            seconds = float(np.median(ts))
            chars_per_s = n * length / seconds
            if who == "seqcore" and n == 1:
                base = chars_per_s
            records.append(dict(model=name, library=who, samples=n, chars=n * length, seconds=seconds,
                                chars_per_s=chars_per_s, us_per_char=1e6 / chars_per_s, times=ts))
            rows.append([name, who, n, n * length, chars_per_s, 1e6 / chars_per_s, chars_per_s / base])
            print(f"  {name:<12} {who:<24} {n:>3} sample(s) {chars_per_s:>12,.0f} chars/s", file=sys.stderr,
                  flush=True)

    print(format_table(["model", "library", "samples", "chars", "chars/s", "us/char", "x seqcore 1"], rows))
    print("load average at the end: %.1f %.1f %.1f" % os.getloadavg())
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(dict(time=time.strftime("%Y-%m-%dT%H:%M:%S"), threads=args.threads, info=seqcore.info(),
                           load=os.getloadavg(),
                           records=records), f, indent=1)
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
