"""The Trainer: a language model with teacher forcing (step t sees the true
token t-1 and is scored on token t), a sequence classifier or a sequence
tagger, on the data shapes of ``seqcore.train.data`` (a stream with truncated
BPTT, padded sequences, or labelled sequences). Validation is
``seqcore.train.evaluation``, the progress bar ``seqcore.train.progress``,
the loss curve files ``seqcore.train.curves``. This file is over 500 lines
because it is the one class whose methods share the state of a run (its
position in the data, the carried state, the counters a checkpoint keeps).

One step: forward, softmax cross-entropy (mean over the counted tokens),
backward, clipping (by value, then by global norm), the learning rate from the
schedule, the optimizer's update::

    model = LanguageModel(len(vocab), 64, 256, 2)
    trainer = Trainer(model, train_ids, val_ids, vocab=vocab, optimizer=Adam(model, 2e-3),
                      steps=2000, clip_norm=5.0, schedule="cosine", eval_every=200,
                      out_dir="run", checkpoint_every=500)
    result = trainer.fit()          # result.val.loss, .perplexity, .bpc; result.history

What ``out_dir`` receives: ``checkpoint/`` (``save_checkpoint``: the model,
vocabulary, optimizer, random state and the trainer's position), written every
``checkpoint_every`` steps and at the end; ``loss.csv`` (step, train_loss,
val_loss, tokens_per_s, elapsed_s, lr) and, when matplotlib is importable,
``loss.png``, written with each checkpoint.

Resuming: build the same model, optimizer and trainer (same data and
settings), ``trainer.restore()`` (reads ``out_dir/checkpoint``), ``fit()``.
The checkpoint holds the position in the data, the carried TBPTT state
(base64 in ``extra``), the early-stopping counters and the random state of
the model, so N steps, save, resume, M steps gives bitwise the weights of
N + M steps straight (same threads).

Stopping. ``fit()`` returns a ``TrainResult`` whose ``stop_reason`` is
"done" (all steps), "time_budget" (``max_seconds`` of training spent: the
step that crossed it was the last, validated and saved as at any end),
"early_stopping" (``patience`` validations without a
better validation loss), "interrupted" (Ctrl-C: a checkpoint of the last
completed step is written, and ``fit`` returns normally) or "non-finite" (a
NaN or infinite output, loss or gradient: training stops with a message,
writing no checkpoint, so the last one written stays the last good one; with
``on_nonfinite="skip"`` such a step is skipped instead, its update not made,
and the carried state reset; an update that makes the weights themselves
non-finite stops training whatever the option, as it cannot be undone). When
``fit`` runs in the main thread, Ctrl-C during a step is acted on when the
step ends (a second Ctrl-C interrupts at once).

Data parallel: ``distributed=seqcore.distributed.Communicator()`` on every
rank of an MPI job trains on all of them, each on its rows of every batch,
with the step of one process on the whole batch (see ``seqcore.distributed``).

Progress: see ``seqcore.train.progress``; validation results as lines.
"""

from __future__ import annotations

import base64
import itertools
import math
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from .. import memory
from ..distributed import Communicator, batch_rows, row_range
from ..nn.language_model import LanguageModel
from ..nn.sequence_models import SequenceClassifier
from ..nn.losses import softmax_cross_entropy
from ..text.batches import StreamBatches, pad_batches
from ..text.vocab import Vocabulary
from .checkpoint import load_checkpoint, save_checkpoint
from .clip import clip_by_global_norm, clip_by_value
from .curves import CSV_COLUMNS, LOSS_CSV, LOSS_PNG, read_loss_csv, write_loss_csv, write_loss_plot
from .data import (LABELERS, Batch, Data, Model, check_data, check_id_range, check_labeled, is_stream,
                   labeled_batches, scored, sequence_batch, sequence_framing)
from .evaluation import Evaluation, evaluate
from .footprint import step_bytes
from .optim import Adam, Optimizer
from .progress import InterruptAtStepEnd, Progress
from .schedules import SCHEDULES, Constant, Schedule, make_schedule

# the public names this module had before it was split stay importable from it
__all__ = ["Trainer", "TrainResult", "Evaluation", "evaluate", "CHECKPOINT_DIR", "LOSS_CSV", "LOSS_PNG",
           "CSV_COLUMNS", "STOP_REASONS", "LABELERS", "write_loss_csv", "read_loss_csv", "write_loss_plot"]

CHECKPOINT_DIR = "checkpoint"
STOP_REASONS = ("done", "time_budget", "early_stopping", "interrupted", "non-finite")


# ---------------------------------------------------------------------------
# results


@dataclass
class TrainResult:
    """What ``Trainer.fit`` did. ``step``: steps taken in all (before a resume
    too); ``stop_reason``: one of ``STOP_REASONS``, ``message``: the same in
    words; ``train_loss``: the mean training loss of the last row of the
    curve; ``val``: the last validation (None without validation data);
    ``history``: the rows of loss.csv, as dicts; ``checkpoint``: the path of
    the checkpoint written at the end (None if none was)."""

    step: int
    stop_reason: str
    message: str
    train_loss: Optional[float]
    val: Optional[Evaluation]
    best_val_loss: Optional[float]
    best_step: Optional[int]
    skipped_steps: int
    elapsed: float
    tokens: int
    history: List[Dict[str, Any]] = field(default_factory=list)
    checkpoint: Optional[str] = None


# ---------------------------------------------------------------------------
# the carried state, in a checkpoint's extra (JSON)


def _encode_state(state) -> Optional[Dict[str, Any]]:
    """The TBPTT state (h, or (h, c) for LSTM) as JSON: each array's dtype,
    shape and bytes in base64, so that it comes back bitwise."""
    if state is None:
        return None
    arrays = state if isinstance(state, tuple) else (state,)
    return {"tuple": isinstance(state, tuple),
            "arrays": [{"dtype": a.dtype.name, "shape": list(a.shape),
                        "data": base64.b64encode(np.ascontiguousarray(a).tobytes()).decode("ascii")}
                       for a in arrays]}


def _decode_state(doc, dtype: np.dtype, where: str):
    if doc is None:
        return None
    try:
        arrays = []
        for entry in doc["arrays"]:
            if entry["dtype"] != dtype.name:
                raise ValueError(f"dtype {entry['dtype']!r}, the model's is {dtype.name}")
            a = np.frombuffer(base64.b64decode(entry["data"], validate=True), dtype=dtype)
            arrays.append(a.reshape([int(n) for n in entry["shape"]]).copy())
        return tuple(arrays) if doc["tuple"] else arrays[0]
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{where}: the carried state in the checkpoint is unreadable: {e}") from None


# ---------------------------------------------------------------------------
# the trainer


def _count(name: str, v, low: int = 1, none_ok: bool = True) -> Optional[int]:
    if v is None and none_ok:
        return None
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or v < low:
        raise ValueError(f"{name}: expected an int >= {low}{' or None' if none_ok else ''}, got {v!r}")
    return int(v)


def _positive(name: str, v) -> Optional[float]:
    if v is None:
        return None
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.number)) or not 0 < v < math.inf:
        raise ValueError(f"{name}: expected a number > 0 or None, got {v!r}")
    return float(v)


class Trainer:
    """Trains ``model`` on ``train_data`` (see the module doc): a
    ``seqcore.nn.LanguageModel`` with teacher forcing, or a
    ``SequenceClassifier`` / ``SequenceTagger`` on labelled sequences.

    Args:
        model: the model, trained in place.
        train_data: for a language model, a stream (1-D int array of ids) or
            a list of 1-D id arrays; for a classifier or tagger, a pair
            ``(inputs, labels)``.
        val_data: held-out data of the same kind, or None.
        vocab: the model's vocabulary: saved with checkpoints; for sequences,
            its ``<pad>`` pads and its ``<eos>`` starts and ends each one.
        optimizer: an Optimizer built on ``model`` (default: Adam at 2e-3).
        batch_size: a stream is read as ``batch_size`` streams; sequences
            come ``batch_size`` at a time.
        seq_len: a stream is read ``seq_len`` steps at a time (streams only).
        steps: how long, in steps (at most one of ``steps`` and ``epochs``;
            neither: one epoch).
        epochs: how long, in epochs.
        clip_value: clip every gradient entry to [-clip_value, clip_value].
        clip_norm: scale the gradients to a global L2 norm of at most this.
        schedule: None (the optimizer's lr throughout), "constant", "step",
            "cosine" (``schedules.make_schedule`` from the optimizer's lr now
            and the total steps), or a callable step -> lr.
        eval_every: steps between validations (None: only at the end).
        eval_batches: batches per validation (None: all of ``val_data``).
        patience: stop after this many validations in a row without a lower
            validation loss (None: never stop early).
        out_dir: where checkpoints and the loss curve go (None: nowhere).
        checkpoint_every: steps between checkpoints (None: only at the end).
        log_every: steps per row of the loss curve.
        on_nonfinite: "stop" or "skip" a step whose output, loss or gradient
            is NaN or infinite.
        progress: print a progress bar and validation results on stderr.
        callbacks: each called as ``callback(trainer)`` after every step.
        max_seconds: a training-time budget for this ``fit`` (validation
            included; None: none): the step that crosses it is the last.
        seed: the order of sequences in each epoch (streams are not shuffled).
        shuffle: shuffle sequences each epoch.
        distributed: a ``seqcore.distributed.Communicator`` to train on all
            its ranks (data parallel, MPI; None: this process alone). Every
            rank builds the same trainer; each trains on its rows of every
            batch of ``batch_size`` (the global batch), gradients are reduced
            after backward, and only rank 0 prints and writes ``out_dir``.
    """

    def __init__(self, model: Model, train_data: Data, val_data: Optional[Data] = None, *,
                 vocab: Optional[Vocabulary] = None, optimizer: Optional[Optimizer] = None,
                 batch_size: int = 32, seq_len: int = 100, steps: Optional[int] = None,
                 epochs: Optional[int] = None, clip_value: Optional[float] = None,
                 clip_norm: Optional[float] = None, schedule: Union[None, str, Schedule] = None,
                 eval_every: Optional[int] = None, eval_batches: Optional[int] = None,
                 patience: Optional[int] = None, out_dir: Optional[str] = None,
                 checkpoint_every: Optional[int] = None, log_every: int = 10, on_nonfinite: str = "stop",
                 progress: bool = True, callbacks: Sequence[Callable[["Trainer"], Any]] = (), seed: int = 0,
                 shuffle: bool = True, max_seconds: Optional[float] = None,
                 distributed: Optional[Communicator] = None) -> None:
        if not isinstance(model, (LanguageModel,) + LABELERS):
            raise TypeError(f"model: expected a seqcore.nn LanguageModel, SequenceClassifier or SequenceTagger, "
                            f"got {type(model).__name__}")
        if vocab is not None and not isinstance(vocab, Vocabulary):
            raise TypeError(f"vocab: expected a seqcore.text.Vocabulary or None, got {type(vocab).__name__}")
        if vocab is not None and model.vocab_size is None:
            raise ValueError("vocab: the model reads feature vectors (input_size), not token ids; give no vocab")
        if vocab is not None and len(vocab) != model.vocab_size:
            raise ValueError(f"vocab: has {len(vocab)} tokens, the model's vocab_size is {model.vocab_size}")
        if optimizer is None:
            optimizer = Adam(model, lr=2e-3)
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer: expected a seqcore.train.Optimizer, got {type(optimizer).__name__}")
        params = model.params
        if any(params.get(k) is not p for k, p in optimizer.params.items()):
            raise ValueError("optimizer: its parameters are not the model's; build it on the model")
        if steps is not None and epochs is not None:
            raise ValueError(f"steps, epochs: give one of them, not both (got steps={steps!r}, epochs={epochs!r})")
        if on_nonfinite not in ("stop", "skip"):
            raise ValueError(f"on_nonfinite: expected 'stop' or 'skip', got {on_nonfinite!r}")
        if patience is not None and val_data is None:
            raise ValueError("patience: early stopping needs val_data")
        self.model, self.vocab, self.optimizer = model, vocab, optimizer
        self.batch_size = _count("batch_size", batch_size, none_ok=False)
        self.seq_len = _count("seq_len", seq_len, none_ok=False)
        self.clip_value, self.clip_norm = _positive("clip_value", clip_value), _positive("clip_norm", clip_norm)
        self.eval_every, self.eval_batches = _count("eval_every", eval_every), _count("eval_batches", eval_batches)
        self.patience = _count("patience", patience)
        self.checkpoint_every = _count("checkpoint_every", checkpoint_every)
        self.log_every = _count("log_every", log_every, none_ok=False)
        self.on_nonfinite, self.progress, self.shuffle = on_nonfinite, bool(progress), bool(shuffle)
        self.callbacks = list(callbacks)
        for i, callback in enumerate(self.callbacks):
            if not callable(callback):
                raise TypeError(f"callbacks[{i}]: expected a callable callback(trainer), got {callback!r}")
        if max_seconds is not None and not (isinstance(max_seconds, (int, float)) and not isinstance(max_seconds, bool)
                                            and max_seconds > 0):
            raise ValueError(f"max_seconds: expected None or a number > 0, got {max_seconds!r}")
        self.max_seconds = max_seconds
        self.seed = _count("seed", seed, low=0, none_ok=False)
        if out_dir is not None and not isinstance(out_dir, (str, os.PathLike)):
            raise TypeError(f"out_dir: expected a path (str or os.PathLike) or None, got {type(out_dir).__name__}")
        self.out_dir = None if out_dir is None else os.fspath(out_dir)
        if distributed is not None and not isinstance(distributed, Communicator):
            raise TypeError(f"distributed: expected a seqcore.distributed.Communicator or None, got "
                            f"{type(distributed).__name__}")
        self.distributed = distributed
        self.progress = self.progress and self._is_writer

        # -- data
        if isinstance(model, LABELERS):
            self.mode = "labeled"
            self.train_data = check_labeled("train_data", train_data, model)
            self.val_data = None if val_data is None else check_labeled("val_data", val_data, model)
        else:
            self.train_data = check_data("train_data", train_data)
            self.val_data = None if val_data is None else check_data("val_data", val_data)
            self.mode = "stream" if is_stream(self.train_data) else "sequences"
        if self.mode != "labeled" and self.val_data is not None \
                and is_stream(self.val_data) != (self.mode == "stream"):
            raise TypeError("val_data: expected the same kind as train_data (a stream or a list of sequences)")
        if self.val_data is not None and is_stream(self.val_data) and len(self.val_data) < 2:
            raise ValueError(f"val_data: expected at least 2 ids (an input and its target), got {len(self.val_data)}")
        if self.mode == "stream":
            self._stream = StreamBatches(self.train_data, self.batch_size, self.seq_len)
            self.batches_per_epoch = len(self._stream)
        elif self.mode == "labeled":
            self.batches_per_epoch = math.ceil(len(self.train_data[0]) / self.batch_size)
        else:
            for i, s in enumerate(self.train_data):
                if not isinstance(s, np.ndarray) or s.ndim != 1 or s.dtype.kind not in "iu":
                    raise TypeError(f"train_data[{i}]: expected a 1-D integer numpy array")
            self.batches_per_epoch = math.ceil(len(self.train_data) / self.batch_size)
        if self.mode != "labeled":
            for name, data in (("train_data", self.train_data), ("val_data", self.val_data)):
                if data is not None:
                    check_id_range(name, data, model.vocab_size)
        self.steps = _count("steps", steps)
        self.epochs = _count("epochs", epochs)
        self.total_steps = self.steps if self.steps is not None else (self.epochs or 1) * self.batches_per_epoch

        # -- memory: the optimizer's state to come and one step, refused now if they cannot fit
        # (a rank of a distributed job steps on its share of the rows, checked on its own machine)
        longest = self._longest_batch()
        rows = self.batch_size if distributed is None else -(-self.batch_size // distributed.size)
        memory.require(optimizer.pending_state_bytes() + step_bytes(model, longest, rows),
                       f"Trainer: the optimizer's state and one training step (batch_size={self.batch_size}, "
                       f"{longest:,} steps a batch)", "make batch_size or seq_len (or the sequences) shorter")

        if schedule is None:
            schedule = Constant(optimizer.lr)
        elif isinstance(schedule, str):
            if schedule not in SCHEDULES:
                raise ValueError(f"schedule: expected one of {list(SCHEDULES)} or a callable, got {schedule!r}")
            schedule = make_schedule(schedule, optimizer.lr, self.total_steps)
        elif not callable(schedule):
            raise TypeError(f"schedule: expected None, a name or a callable step -> lr, got {schedule!r}")
        self.schedule = schedule

        # -- where training stands (all of it goes into a checkpoint)
        self.step = 0                    # steps taken (skipped ones included)
        self.epoch, self.batch_index = 0, 0  # the next batch
        self.state = None                # the carried TBPTT state (stream)
        self.best_val_loss: Optional[float] = None
        self.best_step: Optional[int] = None
        self.bad_evals = 0               # validations since the best one
        self.skipped = 0
        self.tokens = 0                  # training targets scored
        self.elapsed_before = 0.0        # seconds of training before a resume
        self.history: List[Dict[str, Any]] = []
        self.last_loss: Optional[float] = None
        self.last_val: Optional[Evaluation] = None
        self._updating = False           # between the update and the position's move
        self._started: Optional[float] = None  # perf_counter at fit()'s start
        self._step_tokens = 0                # targets scored in the last step (all ranks)
        self._interrupt: Optional[InterruptAtStepEnd] = None  # fit()'s Ctrl-C handler
        self._fit_started: Optional[float] = None
        self._stop_flags = (False, False)    # (Ctrl-C, out of time) on some rank, at the last step
        if distributed is not None:
            self._join(distributed)

    def _longest_batch(self) -> int:
        """The most time steps a training batch has: seq_len (at most a
        stream's length), or the longest sequence."""
        if self.mode == "stream":
            return min(self.seq_len, self._stream.streams.shape[1])
        sequences = self.train_data[0] if self.mode == "labeled" else self.train_data
        return max((len(s) for s in sequences), default=0)

    # -- data parallel ----------------------------------------------------------

    @property
    def _is_writer(self) -> bool:
        """Whether this process prints and writes files (rank 0, or alone)."""
        return self.distributed is None or self.distributed.rank == 0

    def _join(self, comm: Communicator) -> None:
        """Checks that every rank built the same trainer, and gives each rank
        its own dropout stream."""
        if self.mode == "stream" and self.batch_size < comm.size:
            raise ValueError(f"batch_size: {self.batch_size} streams cannot be shared by {comm.size} ranks; "
                             f"expected at least one stream per rank")
        comm.check_same((self.mode, self.out_dir is None, self.batch_size, self.seq_len, self.batches_per_epoch, self.total_steps,
                         self.seed, self.shuffle, sorted((k, p.shape, p.dtype.name)
                                                         for k, p in self.model.params.items())),
                        "the trainer's data, settings or model")
        comm.own_random_state(self.model)

    def _my_rows(self, B: int) -> Tuple[int, int]:
        if self.distributed is None:
            return 0, B
        return row_range(B, self.distributed.rank, self.distributed.size)

    # -- paths ----------------------------------------------------------------

    @property
    def checkpoint_path(self) -> Optional[str]:
        """``out_dir/checkpoint``, where the trainer writes (None without ``out_dir``)."""
        return None if self.out_dir is None else os.path.join(self.out_dir, CHECKPOINT_DIR)

    # -- data -----------------------------------------------------------------

    def _batches(self) -> Iterator[Tuple[int, int, Batch]]:
        """(epoch, index, batch) from the current position on, epoch after epoch."""
        epoch, start = self.epoch, self.batch_index
        while True:
            if self.mode == "stream":
                batches: Iterator[Batch] = ((x, y, None, None) for x, y in self._stream.iter(start))
            elif self.mode == "labeled":
                n = len(self.train_data[0])
                order = np.random.default_rng([self.seed, epoch]).permutation(n) if self.shuffle else np.arange(n)
                batches = labeled_batches(self.model, self.train_data, self.batch_size,
                                          order[start * self.batch_size:])
            else:
                pad, eos = sequence_framing(self.vocab)
                order = np.random.default_rng([self.seed, epoch])  # the same order for an epoch when resumed
                padded = pad_batches(self.train_data, self.batch_size, pad, shuffle=self.shuffle, seed=order,
                                     bos=eos, eos=eos)
                batches = (sequence_batch(p, n) for p, n in itertools.islice(padded, start, None))
            for index, batch in enumerate(batches, start):
                yield epoch, index, batch
            epoch, start = epoch + 1, 0

    # -- one step ---------------------------------------------------------------

    def _train_step(self, epoch: int, index: int, batch: Batch) -> Tuple[Optional[float], str]:
        """Forward, loss, backward, clipping, update, then the position moves
        to the next batch. Returns (loss, ""), or for a non-finite output, loss
        or gradient (None, what was non-finite) with nothing updated or moved."""
        if self.distributed is not None:
            return self._train_step_distributed(epoch, index, batch)
        inputs, targets, lengths, mask = batch
        model = self.model
        logits, state = model.forward(inputs, self.state, train=True, lengths=lengths)
        if not np.isfinite(logits).all():
            return None, "the model's output (logits) holds NaN or inf"
        loss, dlogits = softmax_cross_entropy(logits, targets, mask=mask)
        if not math.isfinite(loss):
            return None, f"the loss is {loss}"
        model.zero_grad()
        model.backward(dlogits)  # the carried state is a constant: no gradient into the chunk before
        grads = model.grads
        if not all(np.isfinite(g).all() for g in grads.values()):
            return None, "a gradient holds NaN or inf"
        self._step_tokens = scored(batch)
        return self._update(epoch, index, state, grads, loss)

    def _train_step_distributed(self, epoch: int, index: int, batch: Batch) -> Tuple[Optional[float], str]:
        """``_train_step`` on this rank's rows of the global batch, the
        gradients summed over the ranks between backward and clipping (see
        ``seqcore.distributed``). Every rank takes part in the reduction,
        whatever its batch gave, so that all take the same decisions."""
        model = self.model
        local = batch_rows(batch, *self._my_rows(batch[0].shape[1]))  # None: no rows here this step
        model.zero_grad()
        state, loss, count, bad_output, bad_loss = None, 0.0, 0, False, False
        if local is not None:
            inputs, targets, lengths, mask = local
            logits, state = model.forward(inputs, self.state, train=True, lengths=lengths)
            bad_output = not np.isfinite(logits).all()
            if not bad_output:
                loss, dlogits = softmax_cross_entropy(logits, targets, mask=mask)
                bad_loss = not math.isfinite(loss)
                if not bad_loss:
                    model.backward(dlogits)
                    count = scored(local)
        interrupt = self._interrupt is not None and self._interrupt.requested
        out_of_time = (self.max_seconds is not None and self._fit_started is not None
                       and time.perf_counter() - self._fit_started >= self.max_seconds)
        grads = model.grads
        totals = self.distributed.reduce_step(grads, count, loss, bad_output, bad_loss, interrupt, out_of_time)
        self._stop_flags = (totals.interrupt, totals.out_of_time)
        if totals.problem:
            return None, totals.problem
        self._step_tokens = int(round(totals.count))
        return self._update(epoch, index, state, grads, totals.loss)

    def _update(self, epoch: int, index: int, state, grads: Dict[str, np.ndarray],
                loss: float) -> Tuple[Optional[float], str]:
        """Clipping, the learning rate, the optimizer's step, the move."""
        if self.clip_value is not None:
            clip_by_value(grads, self.clip_value)
        if self.clip_norm is not None:
            clip_by_global_norm(grads, self.clip_norm)
        lr = self.schedule(self.step)
        if isinstance(lr, bool) or not isinstance(lr, (int, float, np.number)) or not 0 < lr < math.inf:
            raise ValueError(f"schedule: returned {lr!r} at step {self.step}; expected a number > 0")
        self.optimizer.lr = float(lr)
        # From here until the position has moved, an interrupt would leave the
        # weights ahead of the step count: no checkpoint is written then.
        self._updating = True
        self.optimizer.step()
        self._advance(epoch, index, state if self.mode == "stream" else None)
        self._updating = False
        return loss, ""

    def _advance(self, epoch: int, index: int, state) -> None:
        """One step taken on batch ``index`` of ``epoch``: the position moves on."""
        self.step += 1
        self.epoch, self.batch_index = (epoch + 1, 0) if index + 1 == self.batches_per_epoch else (epoch, index + 1)
        self.state = state

    def _weights_finite(self) -> bool:
        return all(np.isfinite(p).all() for p in self.model.params.values())

    # -- evaluation -------------------------------------------------------------

    def evaluate(self, data: Optional[Data] = None) -> Evaluation:
        """The loss, perplexity and bpc on ``data`` (default: the validation
        data), at most ``eval_batches`` batches. Distributed, every rank must
        call it: each scores its rows and the sums are reduced."""
        data = self.val_data if data is None else data
        if data is None:
            raise ValueError("data: no data given and the trainer has no val_data")
        return evaluate(self.model, data, self.batch_size, self.seq_len, self.vocab, self.eval_batches,
                        distributed=self.distributed)

    def _validate(self, progress: Progress) -> Tuple[Evaluation, bool]:
        """Runs a validation; returns it and whether patience has run out."""
        result = self.evaluate()
        self.last_val = result
        if math.isfinite(result.loss) and (self.best_val_loss is None or result.loss < self.best_val_loss):
            self.best_val_loss, self.best_step, self.bad_evals = result.loss, self.step, 0
            mark = " (best)"
        else:
            self.bad_evals += 1
            mark = f" (best {self.best_val_loss:.4f} at step {self.best_step})" if self.best_step is not None else ""
        if result.accuracy is not None:
            progress.write(f"step {self.step}: validation loss {result.loss:.4f} nats/label, accuracy "
                           f"{result.accuracy:.4f}{mark}")
        else:
            unit = "char" if self.vocab is not None and self.vocab.level == "char" else "token"
            progress.write(f"step {self.step}: validation loss {result.loss:.4f} nats/{unit}, perplexity "
                           f"{result.perplexity:.3f}, {result.bpc:.4f} bits/{unit}{mark}")
        return result, self.patience is not None and self.bad_evals >= self.patience

    # -- checkpoints ------------------------------------------------------------

    def _extra(self, state) -> Dict[str, Any]:
        return {"trainer": {
            "mode": self.mode, "batch_size": self.batch_size, "seq_len": self.seq_len,
            "batches_per_epoch": self.batches_per_epoch, "seed": self.seed, "shuffle": self.shuffle,
            "epoch": self.epoch, "batch_index": self.batch_index,
            "state": _encode_state(state), "best_val_loss": self.best_val_loss, "best_step": self.best_step,
            "bad_evals": self.bad_evals, "skipped": self.skipped, "tokens": self.tokens,
            "elapsed": self._elapsed()}}

    def save(self) -> Optional[str]:
        """Writes the checkpoint and the loss curve into ``out_dir`` (nothing
        without one); returns the checkpoint's path. Refuses (ValueError,
        nothing written) weights holding NaN or inf. Distributed: every rank
        calls it (the carried state of all rows is gathered), rank 0 writes."""
        if self.out_dir is None:
            return None
        state = self.state if self.distributed is None else self.distributed.gather_rows(self.state)
        if not self._is_writer:
            return self.checkpoint_path
        os.makedirs(self.out_dir, exist_ok=True)
        save_checkpoint(self.checkpoint_path, self.model, self.optimizer, self.vocab, step=self.step,
                        extra=self._extra(state))
        self.write_curves()
        return self.checkpoint_path

    def write_curves(self) -> None:
        """loss.csv, and loss.png when matplotlib is importable, into ``out_dir``
        (by rank 0 only when distributed)."""
        if self.out_dir is None or not self._is_writer:
            return
        os.makedirs(self.out_dir, exist_ok=True)
        write_loss_csv(os.path.join(self.out_dir, LOSS_CSV), self.history)
        write_loss_plot(os.path.join(self.out_dir, LOSS_PNG), self.history)

    def restore(self, checkpoint=None) -> None:
        """Continues from a checkpoint a Trainer wrote (a path, a loaded
        ``Checkpoint``, or None for ``out_dir/checkpoint``): the model's
        weights and random state, the optimizer's state, the position in the
        data, the carried state, the early-stopping counters and the loss
        curve up to that step. The data and settings must be the run's own;
        distributed, every rank restores (from a path all of them can read),
        and the number of ranks may differ from the run's that wrote it."""
        if checkpoint is None:
            if self.checkpoint_path is None:
                raise ValueError("checkpoint: none given and the trainer has no out_dir")
            checkpoint = self.checkpoint_path
        ckpt = checkpoint if hasattr(checkpoint, "restore_into") else load_checkpoint(checkpoint)
        doc = ckpt.extra.get("trainer")
        if not isinstance(doc, dict):
            raise ValueError(f"checkpoint: {ckpt.path} was not written by a Trainer (no 'trainer' in extra)")
        try:
            mine = {"mode": self.mode, "batch_size": self.batch_size, "seq_len": self.seq_len,
                    "batches_per_epoch": self.batches_per_epoch, "seed": self.seed, "shuffle": self.shuffle}
            for key, value in mine.items():
                if doc[key] != value:
                    raise ValueError(f"checkpoint: {ckpt.path} was trained with {key} {doc[key]!r}, this trainer has "
                                     f"{value!r}; resume with the same data and settings")
            state = _decode_state(doc["state"], self.model.dtype, ckpt.path)
            position = (int(doc["epoch"]), int(doc["batch_index"]))
            counters = (doc["best_val_loss"], doc["best_step"], int(doc["bad_evals"]), int(doc["skipped"]),
                        int(doc["tokens"]), float(doc["elapsed"]))
        except (KeyError, TypeError) as e:
            raise ValueError(f"checkpoint: {ckpt.path}: the trainer's entry in extra is incomplete: {e!r}") from None
        if ckpt.model is not self.model or ckpt.optimizer is not self.optimizer:
            ckpt.restore_into(self.model, self.optimizer)
        if self.distributed is not None:
            # the checkpoint holds the state of the global batch's rows: this rank's are its own
            lo, hi = self._my_rows(self.batch_size)
            if state is not None:
                state = tuple(a[:, lo:hi].copy() for a in state) if isinstance(state, tuple) \
                    else state[:, lo:hi].copy()
            self.distributed.own_random_state(self.model)
        self.step, (self.epoch, self.batch_index), self.state = ckpt.step, position, state
        (self.best_val_loss, self.best_step, self.bad_evals, self.skipped, self.tokens,
         self.elapsed_before) = counters
        self.history = []
        if self.out_dir is not None:
            try:
                self.history = [r for r in read_loss_csv(os.path.join(self.out_dir, LOSS_CSV))
                                if r["step"] is not None and r["step"] <= self.step]
            except (OSError, ValueError, KeyError):
                pass  # no curve, or an unreadable one: it starts again here

    # -- the loop ---------------------------------------------------------------

    def _elapsed(self) -> float:
        """Seconds of training, before a resume included."""
        return self.elapsed_before + (time.perf_counter() - self._started if self._started is not None else 0.0)

    def fit(self) -> TrainResult:
        """Trains until ``total_steps`` (or early stopping, a non-finite loss,
        Ctrl-C); see the module doc. Returns a ``TrainResult``."""
        self._started = time.perf_counter()
        fit_started = self._started
        start_step = self.step
        progress = Progress(self.progress, self.total_steps, self.step,
                            "seq/s" if isinstance(self.model, SequenceClassifier) else "tok/s")
        # the current loss-curve row: its loss sum, scored tokens, seconds in steps
        loss_sum, tokens, seconds = 0.0, 0, 0.0
        tokens_per_s = 0.0
        stop_reason, message = "done", ""
        if self.distributed is not None:  # every rank starts from rank 0's weights
            self.distributed.broadcast_params(self.model.params)
        try:
            at_once = (None if self.distributed is None else
                       lambda: self.distributed.abort("interrupted twice (Ctrl-C): no checkpoint of this step"))
            with InterruptAtStepEnd(at_once) as interrupt:
                self._interrupt, self._fit_started = interrupt, fit_started
                batches = self._batches()
                while self.step < self.total_steps:
                    epoch, index, batch = next(batches)
                    if index == 0:
                        self.state = None  # a new epoch: the streams start over
                    t0 = time.perf_counter()
                    loss, problem = self._train_step(epoch, index, batch)
                    seconds += time.perf_counter() - t0
                    if loss is None and self.on_nonfinite == "stop":
                        stop_reason = "non-finite"
                        message = f"stopped at step {self.step + 1}: {problem}; the weights were not updated"
                        break
                    if loss is None:
                        self.skipped += 1
                        self._advance(epoch, index, None)  # the state the bad step gave is dropped
                        progress.write(f"step {self.step}: skipped ({problem})")
                    else:
                        if not self._weights_finite():
                            stop_reason = "non-finite"
                            message = (f"stopped at step {self.step}: the update made the weights NaN or inf "
                                       f"(is the learning rate too high?)")
                            break
                        n = self._step_tokens
                        loss_sum, tokens = loss_sum + loss * n, tokens + n
                        self.tokens += n
                        self.last_loss = loss

                    out_of_time = (self.max_seconds is not None
                                   and time.perf_counter() - fit_started >= self.max_seconds)
                    if self.distributed is not None:  # as agreed in the step's reduction
                        out_of_time = self._stop_flags[1]
                    last = self.step == self.total_steps or out_of_time
                    val, early_stop = None, False
                    if self.val_data is not None and (
                            last or (self.eval_every is not None and self.step % self.eval_every == 0)):
                        val, early_stop = self._validate(progress)
                    if val is not None or last or self.step % self.log_every == 0:
                        tokens_per_s = tokens / seconds if seconds > 0 else 0.0
                        self.history.append({"step": self.step, "train_loss": loss_sum / tokens if tokens else None,
                                             "val_loss": None if val is None else val.loss,
                                             "tokens_per_s": tokens_per_s, "elapsed_s": self._elapsed(),
                                             "lr": self.optimizer.lr,
                                             "val_accuracy": None if val is None else val.accuracy})
                        loss_sum, tokens, seconds = 0.0, 0, 0.0
                    # shown: the current row's mean loss and speed, else the last row's
                    progress.update(self.step, loss_sum / tokens if tokens else self.last_loss,
                                    tokens / seconds if tokens and seconds > 0 else tokens_per_s)
                    if self.checkpoint_every is not None and self.step % self.checkpoint_every == 0 and not last:
                        self.save()
                    for callback in self.callbacks:
                        callback(self)
                    if early_stop:
                        stop_reason = "early_stopping"
                        message = (f"stopped early at step {self.step}: no better validation loss in "
                                   f"{self.patience} validations (best {self.best_val_loss:.4f} at step "
                                   f"{self.best_step})")
                        break
                    if interrupt.requested if self.distributed is None else self._stop_flags[0]:
                        raise KeyboardInterrupt
                    if out_of_time and self.step < self.total_steps:
                        stop_reason = "time_budget"
                        message = f"stopped at step {self.step}: the time budget of {self.max_seconds:g} s ran out"
                        break
        except KeyboardInterrupt:
            stop_reason, message = "interrupted", f"interrupted at step {self.step}"
        finally:
            progress.close()

        if stop_reason == "done":
            message = f"done: {self.step - start_step} steps" + (f", to step {self.step}" if start_step else "")
        checkpoint = None
        if stop_reason == "non-finite" or self._updating:
            # the weights are suspect (non-finite) or half-updated: keep the last checkpoint
            if self._updating:
                self._updating = False
                message += ", in the middle of the weight update"
            message += "; no checkpoint was written"
            if self.out_dir is not None:
                message += f", the last one in {self.checkpoint_path} stays"
            if stop_reason == "non-finite":
                message += ". Try a lower learning rate, gradient clipping, or on_nonfinite='skip'"
            self.write_curves()
        else:
            checkpoint = self.save()
            if checkpoint is not None:
                message += f"; checkpoint saved to {checkpoint}"
        if stop_reason != "done":
            progress.write(f"seqcore: {message}")
        self.elapsed_before, self._started = self._elapsed(), None
        return self._result(stop_reason, message, checkpoint)

    def _result(self, stop_reason: str, message: str, checkpoint: Optional[str]) -> TrainResult:
        train_loss = next((r["train_loss"] for r in reversed(self.history) if r["train_loss"] is not None), None)
        return TrainResult(step=self.step, stop_reason=stop_reason, message=message,
                           train_loss=train_loss, val=self.last_val, best_val_loss=self.best_val_loss,
                           best_step=self.best_step, skipped_steps=self.skipped, elapsed=self._elapsed(),
                           tokens=self.tokens, history=list(self.history), checkpoint=checkpoint)
