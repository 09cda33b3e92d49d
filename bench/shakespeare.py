"""Quality and speed on Tiny Shakespeare: the example's 2-layer LSTM language
model trained with seqcore and with PyTorch, in the same run, at the same
threads, from the same initial weights, on the same batches in the same order.
The two take turns, --block steps each (50 by default), so that whatever else
slows the machine down over the run slows both alike.

    python bench/shakespeare.py                    # 10 minutes of training per library
    python bench/shakespeare.py --minutes 0.5      # a smoke run
    python bench/shakespeare.py --threads 2 --json shakespeare.json
    python bench/shakespeare.py --profile          # where seqcore's step spends its time
    python bench/shakespeare.py --precision bf16    # both in bfloat16 (see below)

Both train embedding 64 -> LSTM 256 ×2 -> linear (examples/shakespeare.py's
CONFIG) with Adam at 2e-3 decaying along a cosine to 2e-5 at step 5,000 (the
example's schedule, by step: the faster library gets further down it in the
same time) and gradients clipped to a global norm of 5, on 32
streams of 100 characters with truncated BPTT (the state carried from chunk
to chunk, reset at each epoch), the last 10% of the text held out. seqcore
runs through its Trainer; PyTorch is torch.nn.Embedding -> torch.nn.LSTM ->
torch.nn.Linear, F.cross_entropy, clip_grad_norm_ and torch.optim.Adam,
loaded with the seqcore model's initial weights (their names are torch's).

Reported for each: training tokens per second (the median over the steps
after a warm-up) and the ratio seqcore / torch; the validation loss (nats per
character, the whole held-out text) every --eval-every steps; and the
training time to reach a validation loss of 1.55 and 1.50, if it does within
the budget. Times count training steps only: the clock stops while a
validation runs, and --minutes is training time. A time to a target is that
of the first validation at or below it, so it is late by up to --eval-every
steps. Without torch installed, only seqcore runs.

--precision bf16: seqcore's model in precision "bf16" (bfloat16 products,
float32 sums and master weights), torch under torch.autocast("cpu",
bfloat16) (float32 master weights too; a model cast to bfloat16 would keep
its weights and Adam's moments in bfloat16, which trains worse). Run it
with --libraries seqcore and each --precision at the same --seed and
--steps to compare the two precisions' validation loss step by step.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import numpy as np

import seqcore
from seqcore import benchmark
from seqcore.text import StreamBatches
from seqcore.timing import format_table
from seqcore.train import Adam, Trainer, evaluate

TARGETS = (1.55, 1.50)  # nats per character
WARMUP_STEPS = 10       # steps left out of the median speed


def load_example():
    """examples/shakespeare.py as a module (not on sys.path; the name
    "shakespeare" is this file's when it runs as a script)."""
    path = Path(__file__).resolve().parents[1] / "examples" / "shakespeare.py"
    spec = importlib.util.spec_from_file_location("shakespeare_example", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------------------
# what a run records, whichever library


@dataclass
class Run:
    """One library's training: each step's seconds and tokens, and the
    validations as (step, training seconds so far, loss in nats/char)."""

    library: str
    step_seconds: List[float] = field(default_factory=list)
    step_tokens: List[int] = field(default_factory=list)
    evals: List[Tuple[int, float, float]] = field(default_factory=list)

    @property
    def steps(self) -> int:
        return len(self.step_seconds)

    @property
    def train_seconds(self) -> float:
        return float(sum(self.step_seconds))

    def tokens_per_s(self) -> float:
        """The median over the steps after the warm-up (a quarter of them when
        there are few) of tokens / seconds."""
        skip = WARMUP_STEPS if self.steps > 2 * WARMUP_STEPS else self.steps // 4
        rates = np.array(self.step_tokens[skip:]) / np.array(self.step_seconds[skip:])
        return float(np.median(rates)) if rates.size else math.nan

    def time_to(self, target: float) -> Optional[Tuple[float, int]]:
        """(training seconds, step) of the first validation at or below target, or None."""
        return next(((s, step) for step, s, loss in self.evals if loss <= target), None)

    def summary(self) -> Dict[str, object]:
        best = min((loss for _, _, loss in self.evals), default=math.nan)
        out: Dict[str, object] = dict(library=self.library, steps=self.steps, train_seconds=self.train_seconds,
                                      tokens_per_s=self.tokens_per_s(),
                                      final_val_loss=self.evals[-1][2] if self.evals else math.nan,
                                      best_val_loss=best, evals=[list(e) for e in self.evals])
        for t in TARGETS:
            hit = self.time_to(t)
            out[f"seconds_to_{t:.2f}"], out[f"step_to_{t:.2f}"] = hit if hit else (None, None)
        return out


class Recorder:
    """The loop control both libraries share: call ``step_done(tokens)``
    after each training step; it times the step, validates every
    ``eval_every`` steps and at the end (its clock stopped meanwhile), and
    returns False once the training time reaches ``budget_s`` or the steps
    ``max_steps``."""

    def __init__(self, run: Run, validate: Callable[[], float], budget_s: float, max_steps: Optional[int],
                 eval_every: int, log: Callable[[str], None]) -> None:
        self.run, self.validate, self.budget_s, self.max_steps = run, validate, budget_s, max_steps
        self.eval_every, self.log = eval_every, log
        self.last = 0.0

    def start(self) -> None:
        """Validates the initial model (step 0), then starts the clock."""
        self._validate()
        self.last = time.perf_counter()

    def resume(self) -> None:
        """Restarts the clock after the other library's turn."""
        self.last = time.perf_counter()

    def _validate(self) -> None:
        loss = self.validate()
        r = self.run
        r.evals.append((r.steps, r.train_seconds, loss))
        self.log(f"{r.library:>7}  step {r.steps:5d}  {r.train_seconds:6.1f} s  validation loss {loss:.4f} "
                 f"nats/char ({loss / math.log(2):.4f} bits/char)")

    def step_done(self, tokens: int) -> bool:
        now = time.perf_counter()
        r = self.run
        r.step_seconds.append(now - self.last)
        r.step_tokens.append(int(tokens))
        done = r.train_seconds >= self.budget_s or (self.max_steps is not None and r.steps >= self.max_steps)
        if done or r.steps % self.eval_every == 0:
            self._validate()
        self.last = time.perf_counter()
        return not done


# ---------------------------------------------------------------------------
# seqcore: the Trainer, as the example runs it


def train_seqcore(example, vocab, train: np.ndarray, val: np.ndarray, init: Dict[str, np.ndarray], args,
                  log: Callable[[str], None], between_turns: Callable[[], None]) -> Run:
    """Trains through the Trainer, calling ``between_turns`` (the other
    library's turn) after every ``args.block`` steps, its clock stopped."""
    cfg = example.CONFIG
    model = example.build_model(len(vocab), args.seed)
    model.load_state_dict(init)
    model.precision = args.precision
    run = Run("seqcore")
    recorder = Recorder(run, lambda: evaluate(model, val, cfg["batch"], cfg["seq_len"], vocab,
                                              args.eval_batches).loss,
                        60 * args.minutes, args.steps, args.eval_every, log)
    tokens_before = [0]

    def callback(trainer: Trainer) -> None:
        tokens, tokens_before[0] = trainer.tokens - tokens_before[0], trainer.tokens
        if not recorder.step_done(tokens):
            trainer.total_steps = trainer.step  # the Trainer has no time budget: end the loop here
        elif run.steps % args.block == 0:
            between_turns()
            recorder.resume()
    # validation is the recorder's (timed apart), so the Trainer gets none
    trainer = Trainer(model, train, None, vocab=vocab, optimizer=Adam(model, lr=cfg["lr"]),
                      batch_size=cfg["batch"], seq_len=cfg["seq_len"], steps=args.steps or 10**9,
                      clip_norm=cfg["clip"], schedule=example.schedule(cfg["lr"], cfg["decay_steps"]),
                      progress=False, callbacks=[callback])
    recorder.start()
    trainer.fit()
    return run


# ---------------------------------------------------------------------------
# PyTorch: the same model, optimizer, batches and clipping


def torch_model(torch, vocab_size: int, cfg: Dict[str, object], init: Dict[str, np.ndarray]):
    """Embedding -> LSTM -> Linear under the seqcore model's parameter names
    (embedding.weight, rnn.weight_ih_l0, …, head.bias), loaded from ``init``."""
    nn = torch.nn

    class CharLSTM(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embedding = nn.Embedding(vocab_size, cfg["embed"])
            self.rnn = nn.LSTM(cfg["embed"], cfg["hidden"], cfg["layers"])
            self.head = nn.Linear(cfg["hidden"], vocab_size)

        def forward(self, ids, state=None):
            """ids (T, B) -> logits (T, B, V), (h, c)."""
            y, state = self.rnn(self.embedding(ids), state)
            return self.head(y), state

    model = CharLSTM()
    model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in init.items()})  # strict: every name
    return model


def torch_evaluate(torch, model, val: np.ndarray, batch: int, seq_len: int, max_batches: Optional[int],
                   precision: str = "fp32") -> float:
    """Mean nats per character on the held-out stream, batched as
    seqcore.train.evaluate batches a stream (at most ``batch`` streams, each
    at least one chunk long, the state carried)."""
    B = max(1, min(batch, len(val) // (seq_len + 1)))
    total, count, state = 0.0, 0, None
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
        for i, (x, y) in enumerate(StreamBatches(val, B, seq_len)):
            if max_batches is not None and i >= max_batches:
                break
            logits, state = model(torch.from_numpy(x), state)
            total += float(torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]),
                                                             torch.from_numpy(y).reshape(-1), reduction="sum"))
            count += y.size
    return total / count


def train_torch(torch, example, vocab, train: np.ndarray, val: np.ndarray, init: Dict[str, np.ndarray], args,
                log: Callable[[str], None], run: Run) -> Iterator[None]:
    """Trains into ``run``, a generator that yields after every ``args.block``
    steps (the other library's turn, its clock stopped) and ends when done."""
    cfg = example.CONFIG
    model = torch_model(torch, len(vocab), cfg, init)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
    schedule = example.schedule(cfg["lr"], cfg["decay_steps"])  # the Trainer's, by step
    batches = StreamBatches(train, cfg["batch"], cfg["seq_len"])  # the Trainer's batches, in its order
    recorder = Recorder(run, lambda: torch_evaluate(torch, model, val, cfg["batch"], cfg["seq_len"],
                                                    args.eval_batches, args.precision),
                        60 * args.minutes, args.steps, args.eval_every, log)
    model.train()
    recorder.start()
    state, index = None, 0
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.precision == "bf16")
    while True:
        if index == 0:
            state = None  # a new epoch: the streams start over, as in the Trainer
        x, y = batches[index]
        with autocast:
            logits, state = model(torch.from_numpy(x), state)
        loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]),
                                                 torch.from_numpy(y).reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg["clip"])
        for group in optimizer.param_groups:
            group["lr"] = schedule(run.steps)
        optimizer.step()
        state = tuple(s.detach().float() for s in state)  # truncated BPTT: no gradient into the chunk before
        index = (index + 1) % len(batches)
        if not recorder.step_done(y.size):
            return
        if run.steps % args.block == 0:
            yield
            recorder.resume()


# ---------------------------------------------------------------------------
# --profile: where seqcore's step spends its time


def profile_seqcore(example, vocab, train: np.ndarray, args) -> Dict[str, object]:
    """Times each part of seqcore's training step (benchmark.StepProfile) over
    --profile-steps steps on the corpus's batches, after 3 of warm-up, and
    prints the table: ms per step and share of the step."""
    cfg = example.CONFIG
    model = example.build_model(len(vocab), args.seed)
    model.precision = args.precision
    optimizer = Adam(model, lr=cfg["lr"])
    batches = StreamBatches(train, cfg["batch"], cfg["seq_len"])
    steps = [benchmark.language_model_step(model, optimizer, *batches[i % len(batches)], cfg["clip"])
             for i in range(min(len(batches), 8))]
    for i in range(3):
        steps[i % len(steps)]()
    profile = benchmark.StepProfile()
    with profile.timing(model, optimizer) as run:
        for i in range(args.profile_steps):
            run(steps[i % len(steps)])
    rows = profile.rows()
    print(f"\n== seqcore's training step, {args.threads} thread(s), {args.profile_steps} steps: where the time goes ==")
    print(format_table(["part", "ms per step", "share"], [[k, ms, f"{share:.1%}"] for k, ms, share in rows]))
    tokens = cfg["batch"] * cfg["seq_len"]
    print(f"{tokens * 1e3 / rows[-1][1]:,.0f} tokens/s; the recurrent layers "
          f"{sum(share for k, _, share in rows if k.startswith('rnn')):.1%} of the step")
    return {k: dict(ms=ms, share=share) for k, ms, share in rows}


# ---------------------------------------------------------------------------
# the report


def _fmt_time(hit: Optional[Tuple[float, int]]) -> str:
    return f"{hit[0]:.0f} s (step {hit[1]})" if hit else "not reached"


def report(runs: List[Run]) -> str:
    steps = sorted({step for r in runs for step, _, _ in r.evals})
    by_step = [{step: (s, loss) for step, s, loss in r.evals} for r in runs]
    rows = []
    for step in steps:
        row: List[object] = [step]
        for evals in by_step:
            s, loss = evals.get(step, (None, None))
            row += ["" if loss is None else f"{loss:.4f}", "" if s is None else f"{s:.1f}"]
        rows.append(row)
    headers = ["step"] + [h for r in runs for h in (f"{r.library} val", f"{r.library} s")]
    lines = ["== validation loss (nats/char) and training seconds, by step ==", format_table(headers, rows), "",
             "== summary =="]
    summary = [[r.library, r.steps, f"{r.train_seconds:.1f}", round(r.tokens_per_s()),
                f"{r.evals[-1][2]:.4f}", f"{min(e[2] for e in r.evals):.4f}"]
               + [_fmt_time(r.time_to(t)) for t in TARGETS] for r in runs]
    lines.append(format_table(["library", "steps", "train s", "tokens/s", "final val", "best val"]
                              + [f"time to {t:.2f}" for t in TARGETS], summary))
    if len(runs) == 2:
        lines.append(f"\nseqcore / torch tokens per second: {runs[0].tokens_per_s() / runs[1].tokens_per_s():.2f}×")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> Dict[str, object]:
    example = load_example()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--minutes", type=float, default=10.0, help="training time per library")
    p.add_argument("--steps", type=int, default=None, help="also stop at so many steps")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="for seqcore, NumPy's BLAS and torch")
    p.add_argument("--eval-every", type=int, default=100, help="steps between validations")
    p.add_argument("--block", type=int, default=50, help="steps of each library's turn")
    p.add_argument("--eval-batches", type=int, default=None, help="batches per validation (default: all)")
    p.add_argument("--libraries", nargs="+", choices=("seqcore", "torch"), default=["seqcore", "torch"])
    p.add_argument("--data", type=Path, default=example.DATA)
    p.add_argument("--max-chars", type=int, default=None, help="use only the corpus's first so many characters")
    p.add_argument("--seed", type=int, default=0, help="the initial weights")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    p.add_argument("--quiet", action="store_true", help="print only the report")
    p.add_argument("--profile", action="store_true",
                   help="instead of training: where seqcore's step spends its time, part by part")
    p.add_argument("--profile-steps", type=int, default=20, help="steps timed by --profile")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                   help="bf16: seqcore in precision 'bf16', torch under autocast to bfloat16")
    args = p.parse_args(argv)
    if args.minutes <= 0 or args.eval_every < 1 or args.block < 1 or (args.steps is not None and args.steps < 1):
        p.error("--minutes, --eval-every, --block, --steps: expected > 0")
    log = (lambda s: None) if args.quiet else (lambda s: print(s, flush=True))

    torch = benchmark.torch_or_none() if "torch" in args.libraries else None
    vocab, train, val = example.load_corpus(args.data, args.max_chars)
    cfg = example.CONFIG
    init = example.build_model(len(vocab), args.seed).state_dict()  # both libraries start from these
    info = seqcore.info()
    print(f"seqcore {info['version']}, isa {info['isa']}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cpus; torch {torch.__version__ if torch else 'not installed: seqcore only'}; "
          f"{args.threads} threads; precision {args.precision}")
    print(f"{len(train):,} training and {len(val):,} validation characters, {len(vocab)} symbols; embedding "
          f"{cfg['embed']}, LSTM {cfg['hidden']}×{cfg['layers']}, batch {cfg['batch']} × {cfg['seq_len']}, Adam "
          f"{cfg['lr']:g} (cosine decay over {cfg['decay_steps']} steps), global-norm clip {cfg['clip']:g}; {args.minutes:g} min of training per library"
          + (f" or {args.steps} steps" if args.steps else "") + f", validation every {args.eval_every} steps"
          + (f", turns of {args.block} steps" if torch is not None and "seqcore" in args.libraries else ""),
          flush=True)

    if args.profile:
        if args.profile_steps < 1:
            p.error("--profile-steps: expected >= 1")
        with benchmark.threads(args.threads):
            parts = profile_seqcore(example, vocab, train, args)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(dict(info=info, threads=args.threads, config=cfg, profile=parts), f, indent=1)
        return dict(profile=parts)

    runs = []
    with benchmark.threads(args.threads):
        torch_turns: Iterator[None] = iter(())
        if torch is not None:
            torch_run = Run("torch")
            torch_turns = train_torch(torch, example, vocab, train, val, init, args, log, torch_run)
        if "seqcore" in args.libraries:
            runs.append(train_seqcore(example, vocab, train, val, init, args, log,
                                      between_turns=lambda: next(torch_turns, None)))
        for _ in torch_turns:  # what is left of torch's budget once seqcore's is spent
            pass
        if torch is not None:
            runs.append(torch_run)
    print()
    print(report(runs), flush=True)

    result: Dict[str, object] = dict(
        info=info, torch=torch.__version__ if torch else None, threads=args.threads, minutes=args.minutes,
        steps=args.steps, eval_every=args.eval_every, precision=args.precision, config=cfg, train_chars=len(train), val_chars=len(val),
        vocab_size=len(vocab), runs={r.library: r.summary() for r in runs})
    if len(runs) == 2:
        result["tokens_per_s_ratio"] = runs[0].tokens_per_s() / runs[1].tokens_per_s()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
        print(f"\nwrote {args.json}")
    return result


if __name__ == "__main__":
    main()
