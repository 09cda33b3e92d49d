"""From ids to what a model trains on: one-hot vectors, contiguous streams for
truncated BPTT, padded batches of a set of sequences, a held-out split.

Every array is time-major, as the layers take it: (T, B) ids, (T, B, V)
one-hot. Ids are int64.

Two shapes of corpus:

- One long text (Shakespeare): ``train_val_split`` holds out its end, and
  ``StreamBatches`` cuts each part into ``batch_size`` contiguous streams read
  ``seq_len`` steps at a time, so that the state a chunk ends with is the
  right initial state of the next chunk::

      ids = vocab.encode(text)
      train, val = train_val_split(ids, 0.1)
      batches = StreamBatches(train, batch_size=32, seq_len=100)
      state = None
      for inputs, targets in batches:          # (T, B) each, T = seq_len
          y, state = model.forward(embed(inputs), state)  # carry the state

- A set of short sequences (one dinosaur name a line): ``pad_batches`` pads
  them into (T, B) batches with their lengths; for a language model,
  ``next_token_pairs`` turns each batch into inputs and targets shifted by
  one, and ``length_mask`` gives the mask of the targets that count::

      names = [vocab.encode(line) for line in text.splitlines()]
      for padded, lengths in pad_batches(names, 32, vocab.pad_id, bos=vocab.eos_id,
                                         eos=vocab.eos_id, shuffle=True, seed=epoch):
          inputs, targets, lengths = next_token_pairs(padded, lengths)
          mask = length_mask(lengths, len(targets))  # (T, B) bool
"""

from __future__ import annotations

import math
from typing import Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

Seed = Union[None, int, np.random.Generator]


# ---------------------------------------------------------------------------
# argument checks


def _size(name: str, v) -> int:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or v < 1:
        raise ValueError(f"{name}: expected an int >= 1, got {v!r}")
    return int(v)


def _id(name: str, v) -> int:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or v < 0:
        raise ValueError(f"{name}: expected an id (an int >= 0), got {v!r}")
    return int(v)


def _ids_1d(name: str, ids) -> np.ndarray:
    a = np.asarray(ids)
    if a.dtype.kind not in "iu" and not (a.size == 0 and a.dtype.kind == "f"):
        raise TypeError(f"{name}: expected integer ids, got dtype {a.dtype}")
    if a.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array of ids, got shape {a.shape}")
    return a.astype(np.int64, copy=False)


# ---------------------------------------------------------------------------
# one-hot


def one_hot(ids, vocab_size: int, dtype=np.float32) -> np.ndarray:
    """ids (...) integers in [0, vocab_size) -> (..., vocab_size) of ``dtype``,
    1 at each id and 0 elsewhere (the textbook input x<t>)."""
    vocab_size = _size("vocab_size", vocab_size)
    ids = np.asarray(ids)
    if ids.dtype.kind not in "iu" and not (ids.size == 0 and ids.dtype.kind == "f"):
        raise TypeError(f"ids: expected integers, got dtype {ids.dtype}")
    if ids.size and (ids.min() < 0 or ids.max() >= vocab_size):
        raise ValueError(f"ids: expected values in [0, vocab_size) = [0, {vocab_size}), "
                         f"got [{ids.min()}, {ids.max()}]")
    out = np.zeros(ids.shape + (vocab_size,), dtype=np.dtype(dtype))
    flat = ids.reshape(-1).astype(np.int64, copy=False)
    out.reshape(-1)[np.arange(flat.size, dtype=np.int64) * vocab_size + flat] = 1
    return out


# ---------------------------------------------------------------------------
# one long stream, for truncated BPTT


class StreamBatches:
    """One id stream as ``batch_size`` contiguous streams, read ``seq_len``
    steps at a time, as char-rnn and PyTorch's word_language_model do.

    ids (N,) are cut into B = ``batch_size`` streams of S = N // B tokens;
    stream b is ids[b*S : (b+1)*S]. The N % B tokens at the end (``dropped``)
    are left out. Chunk i holds steps [i*L, i*L + L) of every stream
    (L = ``seq_len``): inputs (L, B) and targets (L, B), the same streams one
    step later. Chunk i+1 starts where chunk i stopped, so column b of
    consecutive chunks is one text and the state carries over. Every token
    but the first of each stream is a target once per epoch; the last chunk is
    shorter when S - 1 is not a multiple of L (``drop_last`` leaves it out).

    ``len(batches)`` is the number of chunks per epoch; ``batches[i]`` is
    chunk i; ``batches.iter(start=i)`` resumes an epoch at chunk i. The
    streams are a view of ``ids``; each chunk is a fresh C-contiguous int64
    array.
    """

    def __init__(self, ids, batch_size: int, seq_len: int, drop_last: bool = False) -> None:
        ids = _ids_1d("ids", ids)
        self.batch_size = _size("batch_size", batch_size)
        self.seq_len = _size("seq_len", seq_len)
        self.drop_last = bool(drop_last)
        steps = len(ids) // self.batch_size
        if steps < 2:
            raise ValueError(f"ids: {len(ids)} ids make streams of {steps} at batch_size {self.batch_size}; "
                             f"each stream needs at least 2 (an input and its target)")
        pairs = steps - 1
        self._n = pairs // self.seq_len if self.drop_last else math.ceil(pairs / self.seq_len)
        if self._n == 0:
            raise ValueError(f"ids: streams of {steps} ids at batch_size {self.batch_size} are too short for one "
                             f"chunk of seq_len {self.seq_len} with drop_last (need seq_len + 1)")
        # (B, S), a view: stream b is row b
        self.streams = ids[:steps * self.batch_size].reshape(self.batch_size, steps)
        self.dropped = len(ids) - steps * self.batch_size

    def __len__(self) -> int:
        return self._n

    @property
    def steps(self) -> int:
        """Tokens per stream (S)."""
        return self.streams.shape[1]

    @property
    def targets_per_epoch(self) -> int:
        """The number of (input, target) pairs one epoch goes through."""
        return self.batch_size * min(self._n * self.seq_len, self.steps - 1)

    def __getitem__(self, i: int) -> Tuple[np.ndarray, np.ndarray]:
        """Chunk i in [0, len): (inputs (L, B), targets (L, B)); L < seq_len for
        a short last chunk."""
        if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"chunk index: expected an int, got {type(i).__name__}")
        if not -self._n <= i < self._n:
            raise IndexError(f"chunk index: expected an int in [0, {self._n}), got {i}")
        start = (int(i) % self._n) * self.seq_len
        stop = min(start + self.seq_len, self.steps - 1)
        inputs = np.ascontiguousarray(self.streams[:, start:stop].T)
        targets = np.ascontiguousarray(self.streams[:, start + 1:stop + 1].T)
        return inputs, targets

    def iter(self, start: int = 0) -> Iterator[Tuple[np.ndarray, np.ndarray]]:
        """The chunks start, start+1, ..., len-1 in order (resuming an epoch
        at chunk ``start``, e.g. ``step % len(batches)``)."""
        if isinstance(start, (bool, np.bool_)) or not isinstance(start, (int, np.integer)) \
                or not 0 <= start <= self._n:
            raise ValueError(f"start: expected an int in [0, {self._n}], got {start!r}")
        return (self[i] for i in range(int(start), self._n))

    def __iter__(self) -> Iterator[Tuple[np.ndarray, np.ndarray]]:
        return self.iter()

    def __repr__(self) -> str:
        return (f"StreamBatches(batch_size={self.batch_size}, seq_len={self.seq_len}, steps={self.steps}, "
                f"chunks={self._n}, dropped={self.dropped})")


def stream_batches(ids, batch_size: int, seq_len: int, start: int = 0,
                   drop_last: bool = False) -> Iterator[Tuple[np.ndarray, np.ndarray]]:
    """``StreamBatches(ids, batch_size, seq_len, drop_last).iter(start)``: the
    (inputs (T, B), targets (T, B)) chunks of one epoch from chunk ``start``."""
    return StreamBatches(ids, batch_size, seq_len, drop_last=drop_last).iter(start)


def train_val_split(ids, val_frac: float):
    """(train, val): the last ``round(val_frac * len(ids))`` items held out,
    the rest before them. For a stream (1-D array) both are views; a list (a
    set of sequences) is split the same way, in its order."""
    if isinstance(val_frac, (bool, np.bool_)) or not isinstance(val_frac, (int, float, np.integer, np.floating)) \
            or not 0 <= val_frac < 1:
        raise ValueError(f"val_frac: expected a number in [0, 1), got {val_frac!r}")
    if isinstance(ids, np.ndarray) and ids.ndim != 1:
        raise ValueError(f"ids: expected a 1-D array (a stream) or a list, got shape {ids.shape}")
    if not hasattr(ids, "__len__") or not hasattr(ids, "__getitem__") or isinstance(ids, str):
        raise TypeError(f"ids: expected a 1-D array or a list, got {type(ids).__name__}")
    n_val = int(round(float(val_frac) * len(ids)))
    cut = len(ids) - n_val
    return ids[:cut], ids[cut:]


# ---------------------------------------------------------------------------
# a set of sequences, padded


def pad_batches(sequences: Sequence, batch_size: int, pad_id: int, shuffle: bool = False, seed: Seed = None,
                bos: Optional[int] = None, eos: Optional[int] = None,
                drop_last: bool = False) -> Iterator[Tuple[np.ndarray, np.ndarray]]:
    """Batches of ``batch_size`` sequences (1-D integer arrays or lists),
    padded: (padded (T, B) int64, lengths (B,) int64), time-major, with
    T = the batch's longest length and ``pad_id`` past each sequence's end.

    Each sequence becomes [bos] + sequence + [eos] (each if given; ``bos`` may
    be the same id as ``eos``, as a start token); ``lengths`` count them. The
    order is the given one, or with ``shuffle`` a permutation from ``seed``
    (an int: the same order every time; a numpy Generator: a new order each
    call; None: fresh entropy). There are ceil(N / batch_size) batches, the
    last one smaller, or floor(N / batch_size) with ``drop_last``. Sequences
    of length 0 are allowed. Arguments are checked at the call, not at the
    first batch.
    """
    batch_size = _size("batch_size", batch_size)
    pad_id = _id("pad_id", pad_id)
    bos = None if bos is None else _id("bos", bos)
    eos = None if eos is None else _id("eos", eos)
    if isinstance(sequences, (str, np.ndarray)) or not hasattr(sequences, "__len__"):
        raise TypeError(f"sequences: expected a list of 1-D id arrays, got {type(sequences).__name__}")
    seqs = [_ids_1d(f"sequences[{i}]", s) for i, s in enumerate(sequences)]
    if not isinstance(seed, (type(None), int, np.integer, np.random.Generator)) or isinstance(seed, bool):
        raise TypeError(f"seed: expected None, an int or a numpy.random.Generator, got {type(seed).__name__}")
    n = len(seqs)
    order = np.random.default_rng(seed).permutation(n) if shuffle else np.arange(n)
    # all sequences in one flat array; sequence i is flat[starts[i] : starts[i] + sizes[i]]
    sizes = np.array([len(s) for s in seqs], dtype=np.int64)
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1])).astype(np.int64) if n else sizes
    flat = np.concatenate(seqs) if n else np.zeros(0, np.int64)
    n_batches = n // batch_size if drop_last else math.ceil(n / batch_size)
    return _padded(flat, starts, sizes, order, n_batches, batch_size, pad_id, bos, eos)


def _padded(flat, starts, sizes, order, n_batches, batch_size, pad_id, bos, eos):
    head = int(bos is not None)
    for k in range(n_batches):
        idx = order[k * batch_size:(k + 1) * batch_size]
        size = sizes[idx]
        lengths = size + head + int(eos is not None)
        B, total = len(idx), int(size.sum())
        padded = np.full((int(lengths.max()), B), pad_id, dtype=np.int64)
        # every token of the batch at once: its column, its step, its place in flat
        col = np.repeat(np.arange(B), size)
        within = np.arange(total) - np.repeat(np.cumsum(size) - size, size)
        padded[within + head, col] = flat[np.repeat(starts[idx], size) + within]
        if bos is not None:
            padded[0] = bos
        if eos is not None:
            padded[size + head, np.arange(B)] = eos
        yield padded, lengths


def next_token_pairs(padded: np.ndarray, lengths) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Teacher forcing on a padded batch: step t sees token t and predicts
    token t+1. padded (T, B), lengths (B,) -> (inputs (T-1, B),
    targets (T-1, B), lengths - 1): targets past a sequence's new length hold
    the padding. Sequences of length 0 stay 0."""
    padded = np.asarray(padded)
    if padded.dtype.kind not in "iu" or padded.ndim != 2:
        raise ValueError(f"padded: expected (T, B) integer ids, got shape {padded.shape} dtype {padded.dtype}")
    lengths = np.asarray(lengths)
    if lengths.dtype.kind not in "iu" or lengths.shape != (padded.shape[1],):
        raise ValueError(f"lengths: expected (B,) = ({padded.shape[1]},) integers, got shape {lengths.shape} "
                         f"dtype {lengths.dtype}")
    if lengths.size and (lengths.min() < 0 or lengths.max() > padded.shape[0]):
        raise ValueError(f"lengths: expected values in [0, T] = [0, {padded.shape[0]}]")
    if padded.shape[0] == 0:
        return padded, padded, lengths.astype(np.int64)
    return (np.ascontiguousarray(padded[:-1]), np.ascontiguousarray(padded[1:]),
            np.maximum(lengths.astype(np.int64) - 1, 0))


def length_mask(lengths, T: int) -> np.ndarray:
    """(T, B) bool: True at the steps t < lengths[b] of each sequence (the
    ``mask`` of the losses)."""
    lengths = np.asarray(lengths)
    if lengths.dtype.kind not in "iu" or lengths.ndim != 1:
        raise ValueError(f"lengths: expected (B,) integers, got shape {lengths.shape} dtype {lengths.dtype}")
    if isinstance(T, (bool, np.bool_)) or not isinstance(T, (int, np.integer)) or T < 0:
        raise ValueError(f"T: expected an int >= 0, got {T!r}")
    if lengths.size and (lengths.min() < 0 or lengths.max() > T):
        raise ValueError(f"lengths: expected values in [0, T] = [0, {T}], got [{lengths.min()}, {lengths.max()}]")
    return np.arange(int(T))[:, None] < lengths[None, :]


__all__: List[str] = ["one_hot", "StreamBatches", "stream_batches", "train_val_split", "pad_batches",
                      "next_token_pairs", "length_mask"]
