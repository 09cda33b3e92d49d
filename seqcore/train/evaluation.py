"""Scoring a model on held-out data: ``evaluate`` gives an ``Evaluation``
(the mean loss in nats per token, perplexity, bits per character, and the
accuracy of a classifier or tagger), on the data shapes of
``seqcore.train.data``, without dropout, over MPI ranks when distributed.
The Trainer's validations call it."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Iterator, Optional

import numpy as np

from ..distributed import Communicator, batch_rows, row_range
from ..nn.losses import log_softmax
from ..text.batches import StreamBatches, pad_batches
from ..text.vocab import Vocabulary
from .data import (LABELERS, Batch, Data, Model, check_data, check_labeled, is_stream, labeled_batches,
                   sequence_batch, sequence_framing)


@dataclass
class Evaluation:
    """The loss of a model on held-out data: ``loss`` in nats per token (the
    mean over ``tokens`` scored tokens, or scored labels for a labeler), and
    for a classifier or tagger the ``accuracy`` (None for a language model)."""

    loss: float
    tokens: int
    accuracy: Optional[float] = None

    @property
    def perplexity(self) -> float:
        """exp(loss): the number of equally likely tokens the model hesitates between."""
        return math.exp(self.loss) if self.loss < 700 else math.inf

    @property
    def bpc(self) -> float:
        """loss / ln 2: bits per character at char level (bits per token otherwise)."""
        return self.loss / math.log(2)

    def __str__(self) -> str:
        if self.accuracy is not None:
            return f"loss {self.loss:.4f} nats/label, accuracy {self.accuracy:.4f}"
        return f"loss {self.loss:.4f} nats/token, perplexity {self.perplexity:.3f}, bpc {self.bpc:.4f}"


def _stream_eval_batches(ids: np.ndarray, batch_size: int, seq_len: int) -> StreamBatches:
    """Evaluation reads a stream as at most ``batch_size`` streams, fewer when
    it is short, so that each stream is at least one chunk long."""
    B = max(1, min(batch_size, len(ids) // (seq_len + 1)))
    return StreamBatches(ids, B, seq_len)


def evaluate(model: Model, data: Data, batch_size: int = 32, seq_len: int = 100,
             vocab: Optional[Vocabulary] = None, max_batches: Optional[int] = None, *,
             distributed: Optional[Communicator] = None) -> Evaluation:
    """The mean loss (nats per token) of ``model`` on ``data``, without dropout:
    a stream (1-D ids) read as in training with the state carried from chunk
    to chunk (at most ``batch_size`` streams), a list of sequences in padded
    batches (framed by the vocabulary's ``<eos>``, padding not counted), or
    for a classifier or tagger ``(inputs, labels)`` in padded batches (then
    the loss is per label, and the accuracy is reported too).
    ``max_batches``: score only the first so many batches (None: all). A
    non-finite output gives a loss of NaN. With ``distributed`` (a
    ``seqcore.distributed.Communicator``), each rank scores its rows of every
    batch and the sums are added over the ranks: every rank returns the
    evaluation of the whole data."""
    if not isinstance(model, LABELERS):
        data = check_data("data", data)
    labeler = isinstance(model, LABELERS)
    total, count, correct = 0.0, 0, 0
    if labeler:
        labeled = check_labeled("data", data, model)
        batches: Iterator[Batch] = labeled_batches(model, labeled, batch_size, np.arange(len(labeled[0])))
    elif is_stream(data):
        if len(data) < 2:
            raise ValueError(f"data: expected at least 2 ids (an input and its target), got {len(data)}")
        batches = ((x, y, None, None) for x, y in _stream_eval_batches(data, batch_size, seq_len))
    else:
        pad, eos = sequence_framing(vocab)
        batches = (sequence_batch(p, n) for p, n in pad_batches(data, batch_size, pad, bos=eos, eos=eos))
    state, finite = None, True
    for batch in itertools.islice(batches, max_batches):
        if distributed is not None:  # this rank's rows only
            batch = batch_rows(batch, *row_range(batch[0].shape[1], distributed.rank, distributed.size))
            if batch is None:
                continue
        inputs, targets, lengths, mask = batch
        logits, state = model.forward(inputs, state if lengths is None else None, train=False, lengths=lengths)
        if not np.isfinite(logits).all():
            finite = False
            break
        # -log p(target) at each step (T, B), or of each sequence (B,)
        nll = -np.take_along_axis(log_softmax(logits), targets[..., None], axis=-1)[..., 0]
        if mask is not None:
            nll = nll[mask]
        total += float(nll.sum(dtype=np.float64))
        count += nll.size
        if labeler:
            hits = logits.argmax(axis=-1) == targets
            correct += int((hits if mask is None else hits[mask]).sum())
    if distributed is not None:
        sums = distributed.sum([total, count, correct, not finite], "the validation's sums")
        total, count, correct, finite = float(sums[0]), int(sums[1]), int(sums[2]), sums[3] == 0
    if not finite:
        return Evaluation(math.nan, count, math.nan if labeler else None)
    accuracy = (correct / count if count else math.nan) if labeler else None
    return Evaluation(total / count if count else math.nan, count, accuracy)
