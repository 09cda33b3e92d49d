"""Tokens per second of one training step of the Shakespeare model
(examples/shakespeare.py's CONFIG: embedding 64, LSTM 256×2, batch 32 × 100;
forward, loss, backward, global-norm clipping, Adam) in precision "fp32" and
"bf16", the two taking turns step by step on the same batches in one
process, so that whatever else loads the machine slows both alike.

    python bench/shakespeare_step.py [--threads 2] [--rounds 9] [--clock wall|cpu]

--clock cpu (1 thread only) counts this thread's CPU time: steadier on a
shared machine. The quality of the two precisions (validation loss by step):
bench/shakespeare.py --libraries seqcore --precision fp32|bf16.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

import seqcore
from seqcore import timing
from seqcore.nn import softmax_cross_entropy
from seqcore.text import StreamBatches
from seqcore.train import Adam
from seqcore.train.clip import clip_by_global_norm


def load_example():
    path = Path(__file__).resolve().parents[1] / "examples" / "shakespeare.py"
    spec = importlib.util.spec_from_file_location("shakespeare_example", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=9, help="steps of each precision (median)")
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall")
    p.add_argument("--max-chars", type=int, default=300_000, help="of the corpus (the batches' source)")
    args = p.parse_args(argv)
    if args.clock == "cpu" and args.threads != 1:
        p.error("--clock cpu needs --threads 1 (other threads' work would not count)")
    example = load_example()
    seqcore.set_num_threads(args.threads)
    vocab, train, _ = example.load_corpus(example.DATA, args.max_chars)
    cfg = example.CONFIG
    batches = StreamBatches(train, cfg["batch"], cfg["seq_len"])

    def trainer_step(precision):
        model = example.build_model(len(vocab), 0)
        model.precision = precision
        optimizer = Adam(model, lr=cfg["lr"])
        carried = {"state": None, "index": 0}

        def step():
            x, y = batches[carried["index"] % len(batches)]
            carried["index"] += 1
            logits, carried["state"] = model.forward(x, carried["state"])
            _, dlogits = softmax_cross_entropy(logits, y)
            model.zero_grad()
            model.backward(dlogits)
            clip_by_global_norm(model.grads, cfg["clip"])
            optimizer.step()
        return step

    clock = time.thread_time if args.clock == "cpu" else time.perf_counter
    seconds = timing.median_seconds_in_turns({p: trainer_step(p) for p in ("fp32", "bf16")},
                                             rounds=args.rounds, warmup=2, clock=clock)
    tokens = cfg["batch"] * cfg["seq_len"]
    info = seqcore.info()
    print(f"seqcore {info['version']}, isa {info['isa']}, {args.threads} thread(s), {args.clock} clock, "
          f"median of {args.rounds} steps each: fp32 {tokens / seconds['fp32']:,.0f} tokens/s, "
          f"bf16 {tokens / seconds['bf16']:,.0f} tokens/s, bf16/fp32 {seconds['fp32'] / seconds['bf16']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
