"""What the Trainer and ``evaluate`` train on: the checks of the data and its
batches. Three shapes of data (see ``seqcore.text``):

- a stream, one 1-D array of ids (a book, source code): read as
  ``batch_size`` contiguous streams, ``seq_len`` steps at a time, with
  truncated BPTT: the state a chunk ends with is the next chunk's initial
  state, detached (no gradient flows from one chunk into the one before). The
  state starts from zeros at each epoch.
- a set of sequences, a list of 1-D arrays (one name a line): padded batches,
  each sequence framed by ``<eos>`` when the vocabulary has one, the loss
  masked at the padding, shuffled each epoch from ``seed``.
- labelled sequences, for a ``SequenceClassifier`` or ``SequenceTagger``
  (``seqcore.nn``): a pair ``(inputs, labels)``. ``inputs``: a list of 1-D id
  arrays (a model with ``vocab_size``; 0 pads) or of (T_i, input_size) float
  arrays (a model with ``input_size``); ``labels``: one int per sequence
  (classifier) or one 1-D int array per sequence, as long as it (tagger).
  Padded batches with lengths, shuffled each epoch from ``seed``; the loss is
  the mean over sequences (classifier) or over real steps (tagger), and
  validation also reports the accuracy.

A batch is ``(inputs, targets, lengths or None, mask or None)`` (``Batch``).
"""

from __future__ import annotations

from typing import Any, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..nn.language_model import LanguageModel
from ..nn.sequence_models import SequenceClassifier, SequenceTagger
from ..text.batches import length_mask, next_token_pairs
from ..text.vocab import Vocabulary

LABELERS = (SequenceClassifier, SequenceTagger)
Model = Union[LanguageModel, SequenceClassifier, SequenceTagger]
# a stream, a list of sequences, or (inputs, labels) for a labeler
Data = Union[np.ndarray, Sequence[np.ndarray], Tuple[Sequence[np.ndarray], Any]]
# (inputs (T, B), targets (T, B), lengths (B,) or None, mask (T, B) or None)
Batch = Tuple[np.ndarray, np.ndarray, Optional[np.ndarray], Optional[np.ndarray]]


def is_stream(data) -> bool:
    """Whether ``data`` is a stream (a 1-D array of ids), not a list of sequences."""
    return isinstance(data, np.ndarray) and data.ndim == 1


def check_data(name: str, data) -> Data:
    """A language model's data, a stream of integer ids or a non-empty list of
    sequences, returned as it is; TypeError or ValueError naming ``name``."""
    if is_stream(data):
        if data.dtype.kind not in "iu":
            raise TypeError(f"{name}: expected integer ids, got dtype {data.dtype}")
        return data
    if isinstance(data, (str, bytes, np.ndarray)) or not isinstance(data, Sequence):
        raise TypeError(f"{name}: expected a 1-D array of ids (a stream) or a list of 1-D arrays (sequences), "
                        f"got {type(data).__name__}" + (f" of shape {data.shape}" if isinstance(data, np.ndarray)
                                                        else ""))
    if len(data) == 0:
        raise ValueError(f"{name}: expected at least one sequence, got an empty list")
    return data


def check_id_range(name: str, data: Data, vocab_size: int) -> None:
    """Every id of a stream or of each sequence in [0, vocab_size): checked
    before training, not at the step (or validation) that meets a bad one."""
    for i, ids in ([(None, data)] if is_stream(data) else enumerate(data)):
        ids = np.asarray(ids)
        if ids.size and (ids.min() < 0 or ids.max() >= vocab_size):
            where = name if i is None else f"{name}[{i}]"
            raise ValueError(f"{where}: expected ids in [0, vocab_size) = [0, {vocab_size}), got "
                             f"[{ids.min()}, {ids.max()}]")


def sequence_batch(padded: np.ndarray, lengths: np.ndarray) -> Batch:
    inputs, targets, lengths = next_token_pairs(padded, lengths)
    return inputs, targets, lengths, length_mask(lengths, len(targets))


def scored(batch: Batch) -> int:
    """The targets a batch's loss counts (its mean is over them)."""
    return int(batch[1].size if batch[3] is None else batch[3].sum())


def sequence_framing(vocab: Optional[Vocabulary]) -> Tuple[int, Optional[int]]:
    """(pad id, the <eos> that starts and ends each sequence, or None)."""
    if vocab is None:
        return 0, None
    return (vocab.pad_id if vocab.pad_id is not None else 0), vocab.eos_id


def check_labeled(name: str, data, model: Model) -> Tuple[List[np.ndarray], Any]:
    """``(inputs, labels)`` for a classifier or tagger, checked and converted:
    (a list of 1-D int64 id arrays or of (T_i, input_size) arrays in the
    model's dtype, labels: an int64 array (N,) for a classifier, a list of
    1-D int64 arrays as long as their inputs for a tagger)."""
    kind = type(model).__name__
    if isinstance(data, (str, bytes, np.ndarray)) or not isinstance(data, Sequence) or len(data) != 2:
        raise TypeError(f"{name}: expected a pair (inputs, labels) for a {kind}, got {type(data).__name__}")
    inputs, labels = data
    if isinstance(inputs, (str, bytes)) or not isinstance(inputs, (Sequence, np.ndarray)) or len(inputs) == 0:
        raise ValueError(f"{name}: expected inputs as a non-empty list of sequences, got {type(inputs).__name__}")
    ids = model.vocab_size is not None
    checked = []
    for i, x in enumerate(inputs):
        x = np.asarray(x)
        if ids and (x.ndim != 1 or x.dtype.kind not in "iu"):
            raise TypeError(f"{name}: inputs[{i}]: expected a 1-D array of token ids, got {x.dtype} {x.shape}")
        if not ids and (x.ndim != 2 or x.shape[1] != model.input_size or x.dtype.kind not in "fiu"):
            raise TypeError(f"{name}: inputs[{i}]: expected a (T, input_size) = (T, {model.input_size}) array of "
                            f"numbers, got {x.dtype} {x.shape}")
        if len(x) == 0:
            raise ValueError(f"{name}: inputs[{i}]: expected at least one step, got an empty sequence")
        if not ids and x.dtype.kind == "f" and not np.isfinite(x).all():
            raise ValueError(f"{name}: inputs[{i}]: expected finite features, got NaN or inf")
        checked.append(x.astype(np.int64 if ids else model.dtype, copy=False))
    if ids:
        check_id_range(f"{name}: inputs", checked, model.vocab_size)
    C = model.num_classes
    if isinstance(model, SequenceClassifier):
        y = np.asarray(labels)
        if y.dtype.kind not in "iu" or y.shape != (len(checked),):
            raise ValueError(f"{name}: expected labels as {len(checked)} integers (one per sequence), got "
                             f"{y.dtype} {y.shape}")
        tags = [y]
    else:
        if isinstance(labels, (str, bytes)) or not isinstance(labels, (Sequence, np.ndarray)) \
                or len(labels) != len(checked):
            raise ValueError(f"{name}: expected labels as {len(checked)} integer arrays (one per sequence)")
        tags = [np.asarray(t) for t in labels]
        for i, (t, x) in enumerate(zip(tags, checked)):
            if t.dtype.kind not in "iu" or t.shape != (len(x),):
                raise ValueError(f"{name}: labels[{i}]: expected {len(x)} integers (one per step of "
                                 f"inputs[{i}]), got {t.dtype} {t.shape}")
        y = tags
    for t in tags:
        if t.min() < 0 or t.max() >= C:
            raise ValueError(f"{name}: expected labels in [0, num_classes) = [0, {C}), got [{t.min()}, {t.max()}]")
    return checked, (y.astype(np.int64) if isinstance(y, np.ndarray) else [t.astype(np.int64) for t in y])


def labeled_batches(model: Model, data: Tuple[List[np.ndarray], Any], batch_size: int,
                    order: np.ndarray) -> Iterator[Batch]:
    """The sequences in ``order``, ``batch_size`` at a time, padded with
    zeros: (x (T, B) ids or (T, B, D) features, targets (B,) for a classifier
    or (T, B) for a tagger, lengths (B,), mask (T, B) for a tagger)."""
    inputs, labels = data
    for k in range(0, len(order), batch_size):
        idx = order[k:k + batch_size]
        lengths = np.array([len(inputs[i]) for i in idx], np.int64)
        T = int(lengths.max())
        x = np.zeros((T, len(idx)) + inputs[idx[0]].shape[1:], inputs[idx[0]].dtype)
        for b, i in enumerate(idx):
            x[:lengths[b], b] = inputs[i]
        if isinstance(model, SequenceClassifier):
            yield x, labels[idx], lengths, None
            continue
        y = np.zeros((T, len(idx)), np.int64)
        for b, i in enumerate(idx):
            y[:lengths[b], b] = labels[i]
        yield x, y, lengths, length_mask(lengths, T)
