"""Tiny Shakespeare: a character-level 2-layer LSTM language model, trained
with the Trainer and sampled from.

The corpus is one stream of characters; its last 10% is held out for
validation. Training reads the rest as 32 contiguous streams, 100 characters
at a time, with truncated BPTT (the state a chunk ends with starts the next
one; no gradient flows back past it). Model: embedding 64 -> LSTM 256 ×2 ->
linear to the vocabulary; Adam at 2e-3, its learning rate decaying along a
cosine to 2e-5 at step 5,000 (``--decay-steps``), gradients clipped to a
global norm of 5. The validation loss is printed every ``--eval-every`` steps in nats and
bits per character (ln 2 nats = 1 bit); training stops at ``--steps`` or
after ``--minutes``, whichever comes first, and prints a sample.

    python examples/shakespeare.py                       # 10 minutes at most
    python examples/shakespeare.py --minutes 2 --threads 2 --out runs/shakespeare
    python examples/shakespeare.py --max-chars 100000 --steps 50    # a quick look

The aim on a 2-core machine: a validation loss of 1.50 nats/char (2.16 bits)
or lower within the 10 minutes; bench/shakespeare.py measures the time it
takes, against PyTorch.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

import seqcore
from seqcore.generate import sample
from seqcore.nn import LanguageModel
from seqcore.text import Vocabulary, train_val_split
from seqcore.train import Adam, Constant, Cosine, Trainer, evaluate
from seqcore.train.schedules import Schedule

# ../shared/data/ beside the project's root (see its README); not copied in
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tinyshakespeare.txt"
# The configuration (bench/shakespeare.py trains the same one)
CONFIG: Dict[str, Any] = dict(embed=64, hidden=256, layers=2, seq_len=100, batch=32, lr=2e-3, clip=5.0,
                              val_frac=0.1, decay_steps=5000)


def schedule(lr: float, decay_steps: int) -> Schedule:
    """The learning rate of each step: ``lr`` decaying along a cosine to lr/100
    at ``decay_steps`` (about the steps 10 minutes allow on 2 cores), then
    flat; 0 steps: ``lr`` throughout."""
    return Cosine(lr, decay_steps) if decay_steps > 0 else Constant(lr)


def load_corpus(path: Path, max_chars: Optional[int] = None,
                val_frac: float = CONFIG["val_frac"]) -> Tuple[Vocabulary, np.ndarray, np.ndarray]:
    """(vocabulary, train ids (N,), validation ids (M,)): the text's first
    ``max_chars`` characters (None: all) at char level, the last ``val_frac``
    held out. A clear error when the file is missing."""
    if not path.is_file():
        raise FileNotFoundError(f"--data: {path} not found; the data lives in ../shared/data/ beside the "
                                f"project's root (see its README), or give --data PATH")
    text = path.read_text(encoding="utf-8")
    if max_chars is not None:
        text = text[:max_chars]
    vocab = Vocabulary.from_text(text, level="char")
    train, val = train_val_split(vocab.encode(text), val_frac)
    return vocab, train, val


def build_model(vocab_size: int, seed: int, config: Dict[str, Any] = CONFIG) -> LanguageModel:
    """Embedding -> stacked LSTM -> linear, float32, PyTorch's initialisation."""
    return LanguageModel(vocab_size, embed_size=config["embed"], hidden_size=config["hidden"],
                         num_layers=config["layers"], cell="lstm", seed=seed)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", type=Path, default=DATA, help="the corpus, a text file")
    p.add_argument("--max-chars", type=int, default=None, help="use only the corpus's first so many characters")
    p.add_argument("--steps", type=int, default=5000, help="training steps at most")
    p.add_argument("--minutes", type=float, default=10.0, help="training time at most (validation included)")
    p.add_argument("--eval-every", type=int, default=250, help="steps between validations")
    p.add_argument("--eval-batches", type=int, default=None, help="batches per validation (default: all)")
    p.add_argument("--embed", type=int, default=CONFIG["embed"])
    p.add_argument("--hidden", type=int, default=CONFIG["hidden"])
    p.add_argument("--layers", type=int, default=CONFIG["layers"])
    p.add_argument("--seq-len", type=int, default=CONFIG["seq_len"], help="steps of truncated BPTT")
    p.add_argument("--batch", type=int, default=CONFIG["batch"], help="contiguous streams")
    p.add_argument("--lr", type=float, default=CONFIG["lr"], help="Adam's initial learning rate")
    p.add_argument("--decay-steps", type=int, default=CONFIG["decay_steps"],
                   help="steps of the cosine decay of the learning rate to lr/100 (0: a constant lr)")
    p.add_argument("--clip", type=float, default=CONFIG["clip"], help="global-norm gradient clipping")
    p.add_argument("--threads", type=int, default=None, help="seqcore's threads (default: its own)")
    p.add_argument("--seed", type=int, default=0, help="seeds the initial weights and the sample")
    p.add_argument("--out", default=None, help="a directory for checkpoints and the loss curve")
    p.add_argument("--sample-length", type=int, default=500, help="characters to sample at the end")
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--quiet", action="store_true", help="no progress bar or validation lines")
    return p


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    p = parser()
    args = p.parse_args(argv)
    if args.minutes <= 0 or args.steps < 1:
        p.error(f"--minutes and --steps: expected > 0, got {args.minutes:g} and {args.steps}")
    if args.decay_steps < 0:
        p.error(f"--decay-steps: expected >= 0, got {args.decay_steps}")
    before = seqcore.get_num_threads()
    if args.threads is not None:
        seqcore.set_num_threads(args.threads)
    try:
        return run(args)
    finally:
        seqcore.set_num_threads(before)  # main() called from Python leaves the threads as they were


def run(args: argparse.Namespace) -> Dict[str, Any]:
    """The run of ``main``, at the threads already set."""
    vocab, train, val = load_corpus(args.data, args.max_chars)
    config = dict(CONFIG, embed=args.embed, hidden=args.hidden, layers=args.layers)
    model = build_model(len(vocab), args.seed, config)
    initial = evaluate(model, val, args.batch, args.seq_len, vocab, args.eval_batches)
    print(f"shakespeare: {len(train):,} training and {len(val):,} validation characters, {len(vocab)} symbols; "
          f"LSTM {args.embed}→{args.hidden}×{args.layers}, {model.num_params():,} params; batch {args.batch} × "
          f"{args.seq_len} steps, Adam {args.lr:g} (cosine decay over {args.decay_steps} steps), clip {args.clip:g}; {seqcore.get_num_threads()} threads; "
          f"at most {args.steps} steps or {args.minutes:g} min", flush=True)
    print(f"before training: validation loss {initial.loss:.4f} nats/char ({initial.bpc:.4f} bits/char)",
          flush=True)

    trainer = Trainer(model, train, val, vocab=vocab, optimizer=Adam(model, lr=args.lr), batch_size=args.batch,
                      seq_len=args.seq_len, steps=args.steps, clip_norm=args.clip,
                      schedule=schedule(args.lr, args.decay_steps), eval_every=args.eval_every,
                      eval_batches=args.eval_batches, out_dir=args.out,
                      checkpoint_every=1000 if args.out else None, progress=not args.quiet,
                      max_seconds=60 * args.minutes)
    result = trainer.fit()
    text = sample(model, vocab, args.sample_length, prime="\n", temperature=args.temperature, seed=args.seed)

    val_loss = result.val.loss if result.val is not None else math.nan
    # the rows of the loss curve time the training steps alone
    speeds = [r["tokens_per_s"] for r in result.history if r["tokens_per_s"]]
    tokens_per_s = float(np.median(speeds)) if speeds else math.nan
    budget = " (the time budget ran out)" if result.stop_reason == "done" and result.step < args.steps else ""
    print(f"\n{result.message}{budget}")
    print(f"validation loss {val_loss:.4f} nats/char ({val_loss / math.log(2):.4f} bits/char) after "
          f"{result.step} steps, {result.elapsed:.0f} s (training {tokens_per_s:,.0f} chars/s)")
    print(f"\nsample (temperature {args.temperature:g}):\n{text}", flush=True)
    return {"initial_val_loss": initial.loss, "val_loss": val_loss, "val_bpc": val_loss / math.log(2),
            "best_val_loss": result.best_val_loss, "steps": result.step, "seconds": result.elapsed,
            "tokens_per_s": tokens_per_s, "stop_reason": result.stop_reason, "sample": text,
            "history": result.history}


if __name__ == "__main__":
    main()
