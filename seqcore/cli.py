"""The command line: `seqcore train | sample | eval | export | bench | info`.

    seqcore train [CORPUS]     train a language model on a text file, printing its
                               progress, and a sample at the end; with no CORPUS,
                               on the standard library's own sources (see
                               ``stdlib_corpus``), so it needs no download
    seqcore sample DIR         text sampled from a trained run
    seqcore eval DIR CORPUS    validation loss, perplexity and bits per character on a text
    seqcore export DIR OUTPUT  the run's model as an ONNX file (the onnx extra)
    seqcore bench              time each cell's training step and inference
    seqcore info               version, instruction set, threads and backend

A run directory (``--out``, default ./seqcore-run) holds

    run.json      the run's settings: how to read its corpus, resume it, evaluate with it
    checkpoint/   the model, vocabulary, optimizer, random state and position in the data
    loss.csv      step, train_loss, val_loss, tokens_per_s, elapsed_s, lr
    loss.png      the loss curve, when matplotlib is installed (the "plot" extra)

``seqcore train --resume`` continues the run in ``--out`` with its saved
settings (flags given again override the training ones; the model's cannot
change). A run stops early on Ctrl-C, writing a checkpoint first.

Layout: one section a command, holding the function that runs it
(``cmd_<command>``) and the one that declares its flags
(``_add_<command>_parser``); what several commands share (reading a text,
the argument types, ``--threads`` and ``DIR``, run directories) comes first,
``build_parser`` and ``main`` last. The file is over 500 lines because the whole command line
reads best in one place: every flag next to the code that uses it.

Exit status: 0 done, 1 training stopped by a non-finite loss, 2 bad arguments
(with a message naming the argument), 130 interrupted by Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from . import benchmark, memory, ops
from ._atomic import atomic_write_json
from .generate import sample, sample_row_bytes, stream
from .nn import LanguageModel
from .text import UnknownTokenError, Vocabulary, train_val_split
from .text.corpus import STDLIB_MAX_CHARS, stdlib_corpus  # both were defined here: still cli.<name>
from .timing import format_table
from .train import SGD, Adam, AdamW, CheckpointError, Trainer, evaluate, load_checkpoint
from .train.footprint import language_model_footprint
from .train.schedules import SCHEDULES
from .train.trainer import CHECKPOINT_DIR, LOSS_CSV, LOSS_PNG

RUN_JSON = "run.json"
DEFAULT_OUT = "seqcore-run"
# The default run: about a minute and a half on 2 cores (see the README).
TRAIN_DEFAULTS: Dict[str, Any] = dict(
    corpus=None, level="char", lines=False, cell="lstm", embed=64, hidden=256, layers=1, dropout=0.0,
    seq_len=100, batch=32, steps=600, epochs=None, lr=6e-3, optimizer="adam", schedule="cosine", clip=5.0,
    clip_value=None, val_frac=0.05, eval_every=100, patience=None, checkpoint_every=200, seed=0,
    sample_length=400, temperature=0.8, precision="fp32")
# What a resumed run cannot change: the model and its optimizer's state, and how the text is read.
FIXED_ON_RESUME = ("level", "lines", "cell", "embed", "hidden", "layers", "dropout", "optimizer")
OPTIMIZERS = {"adam": Adam, "adamw": AdamW, "sgd": SGD}


class UsageError(Exception):
    """A bad argument found after parsing: exit 2 with the message."""


# ---------------------------------------------------------------------------
# reading a text


def read_text(path: str, what: str = "CORPUS") -> str:
    """A UTF-8 text file's contents; UsageError naming ``what`` otherwise."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except UnicodeDecodeError as e:
        raise UsageError(f"{what}: {path} is not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise UsageError(f"{what}: cannot read {path}: {e.strerror}") from None
    if not text:
        raise UsageError(f"{what}: {path} is empty")
    return text


def _lines(text: str) -> List[str]:
    """The non-blank lines of a text: the sequences of a --lines corpus."""
    return [line for line in text.splitlines() if line.strip()]


def _encode(vocab: Vocabulary, text: str, lines: bool):
    """A stream of ids, or with ``lines`` a list of id arrays, one a line."""
    return [vocab.encode(line) for line in _lines(text)] if lines else vocab.encode(text)


# ---------------------------------------------------------------------------
# argument types (each names what it expected), and the arguments several
# commands share


def _number_type(kind, check, expected: str):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not check(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value
    return parse


def _int_at_least(low: int):
    return _number_type(int, lambda v: v >= low, f"an int >= {low}")


_threads = _number_type(int, lambda v: 1 <= v <= ops.MAX_THREADS, f"an int in [1, {ops.MAX_THREADS}]")
_positive_float = _number_type(float, lambda v: 0 < v < math.inf, "a number > 0")
_non_negative_float = _number_type(float, lambda v: 0 <= v < math.inf, "a number >= 0")
_fraction = _number_type(float, lambda v: 0 <= v < 1, "a number in [0, 1)")
_probability = _number_type(float, lambda v: 0 < v <= 1, "a number in (0, 1]")


def _existing_file(text: str) -> str:
    if not os.path.exists(text):
        raise argparse.ArgumentTypeError(f"no such file: {text!r}")
    if os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text!r} is a directory, expected a text file")
    return text


def _existing_dir(text: str) -> str:
    if not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"no such directory: {text!r}")
    return text


def _add_threads(parser) -> None:
    """--threads, for the commands that run the kernels (train, sample, eval)."""
    parser.add_argument("--threads", metavar="N", type=_threads, help="kernel threads (default: all cores)")


def _add_run_dir(parser) -> None:
    """DIR, the run (or checkpoint) a command reads (sample, eval)."""
    parser.add_argument("dir", metavar="DIR", type=_existing_dir,
                        help="a run directory (seqcore train --out) or checkpoint")


def _set_threads(threads: Optional[int]) -> None:
    if threads:
        ops.set_num_threads(threads)


# ---------------------------------------------------------------------------
# run directories


def load_run(directory: str, need_vocab: bool = True) -> Tuple[Any, Dict[str, Any]]:
    """(checkpoint, settings) of a run directory, or of a checkpoint directory
    itself (settings then {}). UsageError when it is neither or unreadable, or
    (``need_vocab``) when it has no vocabulary."""
    if os.path.isdir(os.path.join(directory, CHECKPOINT_DIR)) or os.path.isfile(os.path.join(directory, RUN_JSON)):
        # a run: load_checkpoint also finds the checkpoint a save killed in
        # the middle of its directory swap left behind
        path = os.path.join(directory, CHECKPOINT_DIR)
    elif os.path.isfile(os.path.join(directory, "manifest.json")):
        path = directory
    else:
        raise UsageError(f"DIR: {directory} holds no seqcore run (no {CHECKPOINT_DIR}/ inside) and is not a "
                         f"checkpoint")
    try:
        ckpt = load_checkpoint(path)
    except (CheckpointError, FileNotFoundError) as e:
        raise UsageError(f"DIR: {e}") from None
    if need_vocab and ckpt.vocab is None:
        raise UsageError(f"DIR: the checkpoint {path} has no vocabulary")
    settings: Dict[str, Any] = {}
    run_json = os.path.join(directory, RUN_JSON)
    if path != directory and os.path.isfile(run_json):
        try:
            with open(run_json, encoding="utf-8") as f:
                settings = json.load(f)
        except (OSError, ValueError) as e:
            raise UsageError(f"DIR: {run_json} is unreadable: {e}") from None
        if not isinstance(settings, dict):
            raise UsageError(f"DIR: {run_json} is not a JSON object")
    return ckpt, settings


# ---------------------------------------------------------------------------
# train


def _flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def _train_settings(args: argparse.Namespace):
    """(settings, checkpoint to resume or None): the defaults, under the
    saved run's settings when resuming, under the flags given."""
    explicit = {k: getattr(args, k) for k in TRAIN_DEFAULTS if getattr(args, k, None) is not None}
    if "corpus" in explicit:
        explicit["corpus"] = os.path.abspath(explicit["corpus"])
    if "epochs" in explicit:
        explicit["steps"] = None
    if "steps" in explicit:
        explicit["epochs"] = None
    out = args.out
    if args.resume:
        if not os.path.isfile(os.path.join(out, RUN_JSON)):
            raise UsageError(f"--resume: {out} holds no run to resume (no {RUN_JSON} inside); "
                             f"give the run's --out, or train without --resume")
        ckpt, saved = load_run(out)
        saved = {k: v for k, v in saved.items() if k in TRAIN_DEFAULTS}
        for key in FIXED_ON_RESUME:
            if key in explicit and explicit[key] != saved.get(key, TRAIN_DEFAULTS[key]):
                raise UsageError(f"{_flag(key)}: the run in {out} has {saved.get(key, TRAIN_DEFAULTS[key])!r}; "
                                 f"a resumed run keeps its model, optimizer and way of reading the text")
        if ckpt.optimizer is None:
            raise UsageError(f"--resume: the checkpoint in {out} has no optimizer state")
        return {**TRAIN_DEFAULTS, **saved, **explicit}, ckpt
    if os.path.exists(out) and (not os.path.isdir(out) or os.listdir(out)):
        resumable = os.path.isfile(os.path.join(out, RUN_JSON)) and os.path.isdir(os.path.join(out, CHECKPOINT_DIR))
        hint = " (it holds a run: add --resume to continue it)" if resumable else ""
        raise UsageError(f"--out: {out} already exists and is not empty{hint}; choose another --out or remove it")
    return {**TRAIN_DEFAULTS, **explicit}, None


def _describe_corpus(settings: Dict[str, Any]) -> Tuple[str, str]:
    """(text, a description of it)."""
    if settings["corpus"] is not None:
        text = read_text(settings["corpus"])
        return text, f"{settings['corpus']} ({len(text):,} characters)"
    try:
        text, paths = stdlib_corpus()
    except FileNotFoundError as e:
        raise UsageError(f"CORPUS: none given, and {e}") from None
    version = ".".join(map(str, sys.version_info[:2]))
    names = [os.path.basename(p) for p in paths]
    return text, (f"the Python {version} standard library: {len(paths)} modules, {names[0]} to {names[-1]}, "
                  f"in {os.path.dirname(paths[0])} ({len(text):,} characters)")


def _split(settings: Dict[str, Any], data):
    """(train, val or None), checked big enough for the batch."""
    lines, batch = settings["lines"], settings["batch"]
    train, val = train_val_split(data, settings["val_frac"])
    if settings["val_frac"] > 0 and len(val) < (1 if lines else 2):
        raise UsageError(f"--val-frac: {settings['val_frac']} of {len(data):,} "
                         f"{'lines' if lines else 'tokens'} leaves {len(val)} for validation; "
                         f"raise it, or give 0 for no validation")
    if lines and len(train) == 0:
        raise UsageError("CORPUS: no line to train on")
    if not lines and len(train) // batch < 2:
        raise UsageError(f"--batch: {batch} streams of a training text of {len(train):,} tokens are shorter than "
                         f"2 tokens each; lower --batch or give a longer CORPUS")
    return train, (val if settings["val_frac"] > 0 else None)


def _communicator():
    """The MPI job's ``seqcore.distributed.Communicator`` (``--distributed``)."""
    try:
        from .distributed import Communicator
        return Communicator()
    except (ImportError, ValueError) as e:
        raise UsageError(f"--distributed: {e}") from None


def cmd_train(args: argparse.Namespace) -> int:
    """Trains a language model: see the module doc."""
    comm = _communicator() if args.distributed else None
    if comm is not None and comm.rank != 0:
        # rank 0 speaks for the job (errors still go to stderr)
        with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
            return _train(args, comm)
    return _train(args, comm)


def _refuse_what_cannot_fit(settings: Dict[str, Any], vocab_size: int, train) -> None:
    """Before the model is built: exit 2 where training it cannot fit in the
    memory available, naming the flags that make the larger part."""
    lines = settings["lines"]
    batch = settings["batch"]
    steps = max((len(s) for s in train), default=1) if lines else min(settings["seq_len"], max(len(train) // batch, 1))
    need = language_model_footprint(vocab_size, settings["embed"], settings["hidden"], settings["layers"],
                                    settings["cell"], np.float32, steps, batch,
                                    OPTIMIZERS[settings["optimizer"]].buffers())
    available = memory.available_bytes()
    if available is None or need.total <= available:
        return
    # the model's own size where it alone cannot fit, else a step's
    flags = ("--hidden, --layers, --embed" if need.parameters + need.optimizer > available
             else "--batch" if lines else "--seq-len, --batch")
    fmt = memory.format_bytes
    raise UsageError(f"{flags}: training this model needs {fmt(need.total)} (parameters and gradients "
                     f"{fmt(need.parameters)}, optimizer state {fmt(need.optimizer)}, a step of {batch} × {steps:,} "
                     f"tokens {fmt(need.step)}), more than the {fmt(available)} available; make them smaller")


def _train(args: argparse.Namespace, comm) -> int:
    settings, ckpt = _train_settings(args)
    _set_threads(args.threads)
    if settings["patience"] is not None and settings["val_frac"] == 0:
        raise UsageError("--patience: early stopping needs validation data (--val-frac > 0)")
    out = args.out
    text, described = _describe_corpus(settings)
    level, lines = settings["level"], settings["lines"]
    vocab = ckpt.vocab if ckpt is not None else Vocabulary.from_text(text, level=level)
    train, val = _split(settings, _encode(vocab, text, lines))
    if ckpt is not None:
        model, optimizer = ckpt.model, ckpt.optimizer
    else:
        _refuse_what_cannot_fit(settings, len(vocab), train)
        model = LanguageModel(len(vocab), settings["embed"], settings["hidden"], settings["layers"],
                              settings["cell"], settings["dropout"], seed=settings["seed"])
        optimizer = OPTIMIZERS[settings["optimizer"]](model, lr=settings["lr"])
    # The model trains (and its checkpoints keep) the run's precision; a
    # resumed run may change it: the master weights are float32 either way.
    model.precision = settings["precision"]
    optimizer.lr = settings["lr"]  # the schedule's base (a resumed optimizer holds the last lr used)
    try:
        trainer = Trainer(model, train, val, vocab=vocab, optimizer=optimizer, batch_size=settings["batch"],
                          seq_len=settings["seq_len"], steps=settings["steps"], epochs=settings["epochs"],
                          clip_value=settings["clip_value"], clip_norm=settings["clip"] or None,
                          schedule=settings["schedule"], eval_every=settings["eval_every"],
                          patience=settings["patience"], out_dir=out,
                          checkpoint_every=settings["checkpoint_every"], seed=settings["seed"],
                          progress=not args.quiet, distributed=comm)
        if ckpt is not None:
            trainer.restore(ckpt)
    except ValueError as e:
        raise UsageError(str(e)) from None
    except MemoryError as e:  # a step that cannot fit (a resumed run's larger --batch, say)
        raise UsageError(f"--seq-len, --batch: {e}") from None
    if comm is None or comm.rank == 0:
        os.makedirs(out, exist_ok=True)
        atomic_write_json(os.path.join(out, RUN_JSON), settings)

    unit = "char" if level == "char" else "token"
    rnn = model.rnn
    n_tokens = len(train) if not lines else sum(len(s) for s in train)
    print(f"corpus: {described}")
    print(f"vocabulary: {len(vocab)} {unit}s; training on {n_tokens:,} {unit}s"
          + (f", validating on {len(val):,} {'lines' if lines else unit + 's'}" if val is not None else ""))
    print(f"model: {settings['cell'].upper()}, {_plural(rnn.num_layers, 'layer')} of "
          f"{rnn.hidden_size}, embedding {settings['embed'] or 'one-hot'}: {model.num_params():,} parameters"
          + (", bfloat16 products" if model.precision == "bf16" else "") + "; "
          f"{type(optimizer).__name__} lr {settings['lr']:g} ({settings['schedule']})"
          + (f", clip norm {settings['clip']:g}" if settings["clip"] else "")
          + (f", clip value {settings['clip_value']:g}" if settings["clip_value"] else ""))
    print(f"training: {trainer.total_steps:,} steps of {settings['batch']} × {settings['seq_len']} {unit}s"
          + (f" from step {trainer.step:,}" if ckpt is not None else "")
          + f", {_plural(ops.get_num_threads(), 'thread')}"
          + (f" on each of {comm.size} MPI ranks ({settings['batch']} streams or lines shared among them)"
             if comm is not None else "") + f"; run directory {out}", flush=True)

    result = trainer.fit()

    speed = result.tokens / result.elapsed if result.elapsed > 0 else 0.0
    if result.stop_reason == "done" or args.quiet:  # otherwise the trainer has just printed it (stderr)
        print(result.message)
    print(f"{result.step:,} steps in {_duration(result.elapsed)} ({speed:,.0f} {unit}s/s overall)")
    if result.val is not None:
        best = (f" (best {result.best_val_loss:.4f} at step {result.best_step})"
                if result.best_step is not None and result.best_step != result.step else "")
        print(f"validation: loss {result.val.loss:.4f} nats/{unit}, perplexity {result.val.perplexity:.3f}, "
              f"{result.val.bpc:.4f} bits/{unit}{best}")
    curves = [f for f in (LOSS_CSV, LOSS_PNG) if os.path.isfile(os.path.join(out, f))]
    if curves:
        print(f"loss curve: {', '.join(os.path.join(out, f) for f in curves)}")
    if result.stop_reason == "non-finite":
        return 1
    if comm is not None and comm.rank != 0:
        return 130 if result.stop_reason == "interrupted" else 0
    prime = "\n" if level == "char" and "\n" in vocab else ""
    text = sample(model, vocab, settings["sample_length"], prime=prime, temperature=settings["temperature"],
                  seed=settings["seed"])
    print(f"sample (temperature {settings['temperature']:g}; more with `seqcore sample {out}`):")
    print(text, flush=True)
    return 130 if result.stop_reason == "interrupted" else 0


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _duration(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m}m{s:02d}s" if m else f"{seconds:.1f}s"


def _default(key: str) -> str:
    value = TRAIN_DEFAULTS[key]
    return f" (default {value:g})" if isinstance(value, float) else f" (default {value})"


def _add_train_parser(sub) -> None:
    """The arguments of ``seqcore train``, in groups: data, model, optimisation, run."""
    p = sub.add_parser(
        "train", help="train a language model on a text file (default: the standard library's sources)",
        description="Train a character- or word-level language model with teacher forcing and truncated "
                    "backpropagation through time, printing progress, validation results and a sample. "
                    "With no CORPUS, the text is the standard library's own Python sources, found at run time, "
                    "so nothing needs downloading. Writes the run directory --out (run.json, checkpoint/, "
                    "loss.csv, loss.png) and resumes it with --resume.")
    d = _default
    p.add_argument("corpus", metavar="CORPUS", nargs="?", type=_existing_file,
                   help="a UTF-8 text file (default: the standard library's *.py files, about 2 MB)")
    data = p.add_argument_group("data")
    data.add_argument("--level", choices=["char", "word"], help="tokens: characters or words" + d("level"))
    data.add_argument("--lines", action="store_true", default=None,
                      help="each non-blank line is a sequence of its own (padded batches), not one stream")
    data.add_argument("--seq-len", metavar="N", type=_int_at_least(1),
                      help="steps of truncated BPTT per chunk" + d("seq_len"))
    data.add_argument("--batch", metavar="N", type=_int_at_least(1), help="streams (or lines) per batch" + d("batch"))
    data.add_argument("--val-frac", metavar="F", type=_fraction,
                      help="share of the text held out at its end" + d("val_frac"))
    model = p.add_argument_group("model")
    model.add_argument("--cell", choices=["rnn", "lstm", "gru"], help="recurrent cell" + d("cell"))
    model.add_argument("--embed", metavar="N", type=_int_at_least(0),
                       help="embedding size, 0 for one-hot input" + d("embed"))
    model.add_argument("--hidden", metavar="N", type=_int_at_least(1), help="hidden units per layer" + d("hidden"))
    model.add_argument("--layers", metavar="N", type=_int_at_least(1), help="stacked recurrent layers" + d("layers"))
    model.add_argument("--dropout", metavar="P", type=_fraction,
                       help="dropout between layers and before the head" + d("dropout"))
    model.add_argument("--precision", choices=["fp32", "bf16"],
                       help="matrix products in float32, or with bfloat16 operands and float32 sums (faster "
                            "where the CPU has AMX or AVX512-BF16; weights, gates and the loss stay float32)"
                            + d("precision"))
    opt = p.add_argument_group("optimisation")
    length = opt.add_mutually_exclusive_group()
    length.add_argument("--steps", metavar="N", type=_int_at_least(1), help="optimizer steps in all" + d("steps"))
    length.add_argument("--epochs", metavar="N", type=_int_at_least(1),
                        help="passes over the training text, instead of --steps")
    opt.add_argument("--optimizer", choices=sorted(OPTIMIZERS), help="optimizer" + d("optimizer"))
    opt.add_argument("--lr", metavar="LR", type=_positive_float, help="learning rate" + d("lr"))
    opt.add_argument("--schedule", choices=list(SCHEDULES),
                     help="learning-rate schedule: constant, step (halved each quarter), cosine (to lr/100)"
                          + d("schedule"))
    opt.add_argument("--clip", metavar="NORM", type=_non_negative_float,
                     help="clip the gradients' global norm to this, 0 for no clipping" + d("clip"))
    opt.add_argument("--clip-value", metavar="X", type=_positive_float,
                     help="clip each gradient entry to [-x, x] (default off)")
    opt.add_argument("--seed", metavar="N", type=_int_at_least(0),
                     help="initial weights, data order and the sample" + d("seed"))
    run = p.add_argument_group("run")
    run.add_argument("--eval-every", metavar="N", type=_int_at_least(1),
                     help="steps between validations" + d("eval_every"))
    run.add_argument("--patience", metavar="N", type=_int_at_least(1),
                     help="stop after this many validations without improvement (default: never)")
    run.add_argument("--checkpoint-every", metavar="N", type=_int_at_least(1),
                     help="steps between checkpoints, besides the last" + d("checkpoint_every"))
    run.add_argument("--out", default=DEFAULT_OUT, metavar="DIR",
                     help=f"the run directory (default ./{DEFAULT_OUT})")
    run.add_argument("--resume", action="store_true",
                     help="continue the run in --out from its checkpoint, with its settings")
    _add_threads(run)
    run.add_argument("--distributed", action="store_true",
                     help="train on every rank of an MPI job (mpiexec -n R seqcore train ... --distributed), "
                          "each on its share of the batch; threads default to the node's cores / its ranks "
                          "(needs the mpi extra: pip install \"seqcore[mpi]\")")
    run.add_argument("--sample-length", metavar="N", type=_int_at_least(0),
                     help="tokens sampled at the end" + d("sample_length"))
    run.add_argument("--temperature", metavar="T", type=_positive_float,
                     help="of the sample at the end" + d("temperature"))
    run.add_argument("--quiet", action="store_true", help="no progress bar or validation lines")
    p.set_defaults(run=cmd_train, parser=p)


# ---------------------------------------------------------------------------
# sample


def cmd_sample(args: argparse.Namespace) -> int:
    """Prints the prime and a sample continuing it (char level: as it is drawn)."""
    _set_threads(args.threads)
    ckpt, _ = load_run(args.dir)
    vocab = ckpt.vocab
    if args.precision is not None:  # else the run's, which the checkpoint keeps
        try:
            ckpt.model.precision = args.precision
        except ValueError as e:
            raise UsageError(f"--precision: {e}") from None
    need = args.num_samples * sample_row_bytes(ckpt.model, vocab, args.length)
    available = memory.available_bytes()
    if available is not None and need > available:
        fmt = memory.format_bytes
        raise UsageError(f"--num-samples, --length: {args.num_samples:,} samples of {args.length:,} tokens need "
                         f"about {fmt(need)}, more than the {fmt(available)} available; make them smaller")
    # Without a prime, a char-level text starts after a newline (not printed).
    prime = args.prime if args.prime else ("\n" if vocab.level == "char" and "\n" in vocab else "")
    options = dict(prime=prime, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, seed=args.seed)
    try:
        if args.num_samples > 1:
            # drawn together; sample i is the one --seed (seed + i) gives alone
            texts = sample(ckpt.model, vocab, args.length, num_samples=args.num_samples, **options)
            for i, text in enumerate(texts):
                print(f"--- sample {i + 1} of {len(texts)}" +
                      (f" (seed {args.seed + i})" if args.seed is not None else "") + " ---")
                print(args.prime + text if vocab.level == "char" else
                      (f"{args.prime} {text}" if args.prime else text))
        elif vocab.level == "char":
            tokens = stream(ckpt.model, vocab, args.length, **options)
            sys.stdout.write(args.prime)
            for token in tokens:
                sys.stdout.write(token)
                sys.stdout.flush()
            sys.stdout.write("\n")
        else:
            text = sample(ckpt.model, vocab, args.length, **options)
            print(f"{args.prime} {text}" if args.prime else text)
    except UnknownTokenError as e:
        raise UsageError(f"--prime: {e}") from None
    return 0


def _add_sample_parser(sub) -> None:
    """The arguments of ``seqcore sample``."""
    p = sub.add_parser("sample", help="sample text from a trained run",
                       description="Print text sampled from the model of a run directory (or a checkpoint "
                                   "directory), one token at a time.")
    _add_run_dir(p)
    p.add_argument("--length", metavar="N", type=_int_at_least(0), default=500, help="tokens to sample (default 500)")
    p.add_argument("--temperature", metavar="T", type=_positive_float, default=0.8,
                   help="below 1 sharpens, above 1 flattens the distribution (default 0.8)")
    p.add_argument("--top-k", metavar="K", type=_int_at_least(1),
                   help="draw from the k most likely tokens only (default off)")
    p.add_argument("--top-p", metavar="P", type=_probability,
                   help="draw from the nucleus of this probability (default off)")
    p.add_argument("--seed", metavar="N", type=_int_at_least(0),
                   help="the same seed gives the same text (default: random)")
    p.add_argument("--prime", metavar="TEXT", default="",
                   help="text to continue (printed first; default: a new line)")
    p.add_argument("--num-samples", metavar="N", type=_int_at_least(1), default=1,
                   help="samples drawn at once, each under a '--- sample i of N ---' line; sample i is the one "
                        "--seed + i gives alone (default 1)")
    p.add_argument("--precision", choices=["fp32", "bf16", "int8"],
                   help="the products' precision while sampling (default: the run's); bf16 rounds the weights "
                        "to bfloat16 once: half the bytes a token, the logits of the model's bf16 forward; int8 "
                        "quantizes the recurrent weights once (per row, symmetric) and each step's rows: a "
                        "quarter of the bytes, the logits of the model's int8 forward")
    _add_threads(p)
    p.set_defaults(run=cmd_sample, parser=p)


# ---------------------------------------------------------------------------
# eval


def cmd_eval(args: argparse.Namespace) -> int:
    """Prints the loss, perplexity and bits per token of a run's model on a text."""
    _set_threads(args.threads)
    ckpt, settings = load_run(args.dir)
    vocab = ckpt.vocab
    lines = bool(settings.get("lines", False))
    data = _encode(vocab, read_text(args.corpus), lines)
    if (lines and not data) or (not lines and len(data) < 2):
        raise UsageError(f"CORPUS: {args.corpus} is too short to score (fewer than 2 tokens)")
    batch = args.batch or settings.get("batch", TRAIN_DEFAULTS["batch"])
    seq_len = args.seq_len or settings.get("seq_len", TRAIN_DEFAULTS["seq_len"])
    # a chunk's logits, their softmax's workspace and the layers' outputs (float32 or float64)
    rnn = ckpt.model.rnn
    itemsize = np.dtype(ckpt.model.dtype).itemsize
    need = batch * seq_len * itemsize * (3 * len(vocab) + 4 * rnn.num_layers * rnn.hidden_size * rnn.directions)
    available = memory.available_bytes()
    if available is not None and need > available:
        fmt = memory.format_bytes
        raise UsageError(f"--batch, --seq-len: scoring {batch:,} × {seq_len:,} tokens at a time needs about "
                         f"{fmt(need)}, more than the {fmt(available)} available; make them smaller")
    if args.precision is not None:  # else the run's
        try:
            ckpt.model.precision = args.precision
        except ValueError as e:
            raise UsageError(f"--precision: {e}") from None
    result = evaluate(ckpt.model, data, batch, seq_len, vocab)
    unit = "char" if vocab.level == "char" else "token"
    ids = np.concatenate(data) if lines else data
    unknown = int(np.count_nonzero(ids == vocab.unk_id)) if vocab.unk_id is not None else 0
    print(f"{args.corpus}: {result.tokens:,} {unit}s scored"
          + (f" ({unknown:,} not in the vocabulary, scored as <unk>)" if unknown else "")
          + f"; loss {result.loss:.4f} nats/{unit}, perplexity {result.perplexity:.3f}, "
            f"{result.bpc:.4f} bits/{unit}")
    return 0


def _add_eval_parser(sub) -> None:
    """The arguments of ``seqcore eval``."""
    p = sub.add_parser("eval", help="loss, perplexity and bits per character of a run's model on a text",
                       description="Score a text with the model of a run directory: the mean loss in nats "
                                   "per token, the perplexity exp(loss) and bits per token loss / ln 2 (bits "
                                   "per character at char level). The text is read as the run read its own.")
    _add_run_dir(p)
    p.add_argument("corpus", metavar="CORPUS", type=_existing_file, help="a UTF-8 text file")
    p.add_argument("--batch", metavar="N", type=_int_at_least(1),
                   help="streams read side by side (default: the run's)")
    p.add_argument("--seq-len", metavar="N", type=_int_at_least(1), help="steps per chunk (default: the run's)")
    p.add_argument("--precision", choices=["fp32", "bf16", "int8"],
                   help="the products' precision (default: the run's); int8: the recurrent weights quantized "
                        "once, int8 products with exact int32 sums")
    _add_threads(p)
    p.set_defaults(run=cmd_eval, parser=p)


# ---------------------------------------------------------------------------
# export


def cmd_export(args: argparse.Namespace) -> int:
    """Writes the model of a run (or checkpoint) as an ONNX file, with its
    vocabulary in the file's metadata (seqcore.onnx.export)."""
    try:
        from . import onnx as seqcore_onnx  # needs the onnx extra; `import seqcore` never loads it
    except ImportError as e:
        print(f"seqcore export: error: needs the onnx extra ({e}): pip install \"seqcore[onnx]\"", file=sys.stderr)
        return 1
    ckpt, _ = load_run(args.dir, need_vocab=False)
    parent = os.path.dirname(os.path.abspath(args.output))
    if os.path.isdir(args.output) or not os.path.isdir(parent):
        raise UsageError(f"OUTPUT: expected a file path in an existing directory, got {args.output!r}")
    proto = seqcore_onnx.export(ckpt.model, args.output, lengths=args.lengths, state=not args.no_state,
                                vocabulary=ckpt.vocab)
    names = lambda values: ", ".join(v.name for v in values)  # noqa: E731
    print(f"wrote {args.output}: {type(ckpt.model).__name__}, inputs {names(proto.graph.input)}, "
          f"outputs {names(proto.graph.output)} (ONNX opset {seqcore_onnx.OPSET})")
    return 0


def _add_export_parser(sub) -> None:
    """The arguments of ``seqcore export``."""
    p = sub.add_parser("export", help="write a run's model as an ONNX file (needs the onnx extra)",
                       description="Write the model of a run directory (or checkpoint) as an ONNX file that "
                                   "onnxruntime or any ONNX runtime serves without Python: ONNX's own "
                                   "LSTM/GRU/RNN operators, dynamic time and batch, the state in (h0, c0) "
                                   "and out (hN, cN), the vocabulary in the metadata. Needs "
                                   "pip install \"seqcore[onnx]\".")
    _add_run_dir(p)
    p.add_argument("output", metavar="OUTPUT", help="the ONNX file to write (e.g. model.onnx)")
    p.add_argument("--lengths", action="store_true", help="a padded batch's lengths as an input too")
    p.add_argument("--no-state", action="store_true",
                   help="no state inputs and outputs: every call starts from zeros")
    p.set_defaults(run=cmd_export, parser=p)


# ---------------------------------------------------------------------------
# bench


def cmd_bench(args: argparse.Namespace) -> int:
    """Each cell's training step and inference at one configuration: seqcore
    native, the NumPy reference and torch (when installed), in tokens/s."""
    for name in ("T", "B", "D", "H", "repeat"):
        if getattr(args, name) < 1:
            print(f"seqcore: error: --{name} must be at least 1", file=sys.stderr)
            return 2
    dtype = np.float64 if args.dtype == "float64" else np.float32
    if args.precision != "fp32" and dtype == np.float64:
        print(f"seqcore: error: --precision {args.precision} needs --dtype float32", file=sys.stderr)
        return 2
    config = (args.T, args.B, args.D, args.H)
    backends = ["native", "reference"] + (["torch"] if benchmark.torch_or_none() else [])
    n = args.threads or ops.get_num_threads()
    info = ops.info()
    print(f"seqcore {info['version']}  isa={info['isa']}  threads={n}  default backend: {info['backend']}")
    print("T={} B={} D={} H={} {} {}, tokens/s (median of {} runs)\n".format(*config, args.dtype, args.precision,
                                                                         args.repeat))
    rows = []
    with benchmark.threads(n):
        for cell in benchmark.CELLS:
            tps = benchmark.measure_cell(cell, config, backends, repeat=args.repeat, min_time=0, dtype=dtype,
                                         precision=args.precision)
            for mode in ("train", "infer"):
                if mode not in tps["native"]:  # int8: inference only
                    continue
                native = tps["native"][mode]
                row = [cell, mode] + [tps[b].get(mode, "-") for b in backends]
                row += [native / tps[b][mode] if mode in tps[b] else "-" for b in backends[1:]]
                rows.append(row)
    headers = ["cell", "step"] + backends + [f"native/{b}" for b in backends[1:]]
    print(format_table(headers, rows))
    return 0


def _add_bench_parser(sub) -> None:
    """The arguments of ``seqcore bench``."""
    p = sub.add_parser("bench", help="time each cell's training step and inference on random data")
    p.add_argument("--T", type=int, default=64, help="sequence length (default 64)")
    p.add_argument("--B", type=int, default=32, help="batch size (default 32)")
    p.add_argument("--D", type=int, default=128, help="input size (default 128)")
    p.add_argument("--H", type=int, default=256, help="hidden size (default 256)")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--precision", choices=["fp32", "bf16", "int8"], default="fp32",
                   help="matrix products in float32, or bfloat16 operands with float32 sums (torch: module and "
                        "input in bfloat16), or int8 inference (torch: quantize_dynamic's LSTM, GRU) "
                        "(default fp32)")
    p.add_argument("--threads", metavar="N", type=_threads, help="kernel threads (default: all cores)")
    p.add_argument("--repeat", type=int, default=5, help="timed runs per figure (default 5)")
    p.set_defaults(run=cmd_bench)


# ---------------------------------------------------------------------------
# info


def cmd_info(args: argparse.Namespace) -> int:
    """Prints ``seqcore.info()`` as JSON."""
    print(json.dumps(ops.info(), indent=2))
    return 0


def _add_info_parser(sub) -> None:
    """The arguments of ``seqcore info``."""
    p = sub.add_parser("info", help="print the version, instruction set, threads and backend")
    p.set_defaults(run=cmd_info)


# ---------------------------------------------------------------------------
# the parser, and main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seqcore", description="Fast recurrent sequence models on the CPU.")
    sub = parser.add_subparsers(dest="command", required=True)
    for add_parser in (_add_train_parser, _add_sample_parser, _add_eval_parser, _add_export_parser,
                       _add_info_parser, _add_bench_parser):
        add_parser(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except UsageError as e:
        args.parser.error(str(e))  # prints "seqcore <command>: error: ..." and exits with 2
    except KeyboardInterrupt:  # outside training's own handling (which saves first): no traceback
        print(f"seqcore {args.command}: interrupted", file=sys.stderr)
        return 130
    except MemoryError as e:  # sizes (--hidden, --embed, --batch, ...) too large for this machine
        print(f"seqcore {args.command}: error: out of memory ({e}); lower the sizes", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
