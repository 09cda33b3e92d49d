"""Sampling text from a language model, one token at a time.

``stream`` yields tokens (strings) as they are drawn; ``sample`` joins them
into a text. The model is any object with ``forward(ids (T, B), state,
train=False) -> (logits (T, B, V), state)``, such as ``seqcore.nn.LanguageModel``;
``V`` must be ``len(vocab)``.

Steps. The prime is encoded and run through the model once (one forward over
its P tokens, from the zero state); each new token is then one forward on
T=1 with the state carried, so the prefix is never run again. A token is fed
back only when the next one is asked for: N tokens after a prime of P cost
P + N - 1 steps of the recurrent kernels.

Start. An empty prime starts from ``<eos>`` (fed, not yielded), the "start of
a sequence" of data written one sequence a line. A vocabulary without
``<eos>`` starts, as char-rnn does, from a first token drawn uniformly from
its regular (non-special) tokens with the same random generator; that token
is yielded and counts towards ``length``.

Each token is drawn from softmax(logits / temperature), then cut down, as
Hugging Face's ``generate`` does, in this order:

- ``<pad>`` is never drawn;
- ``top_k``: the k most likely tokens are kept (ties: the lower id; ``top_k=1``
  is greedy, argmax decoding);
- ``top_p`` (nucleus): the smallest set of the most likely tokens whose
  probability, renormalised after top-k, adds up to at least ``top_p``
  (always at least one token).

``<unk>`` and the other specials are drawn as any token, when the model gives
them probability; they are yielded as their names (``"<unk>"``). ``<eos>``
ends the text, unyielded, when ``stop_at_eos`` is set; otherwise it is one
more token.

Seeds: one ``np.random.Generator`` (``np.random.default_rng(seed)``; a
Generator may be passed and is drawn from) gives one uniform number per
drawn token, so the same seed, model and arguments give the same text.

Speed. A model with ``stepper()`` (``seqcore.nn.LanguageModel``) is stepped
by it after the prime, in the model's precision ("fp32"; "bf16": the
weights rounded to bfloat16 once, half the bytes a token; "int8": the
recurrent weights quantized once, a quarter of the bytes): weights packed
once, one native call a token for the step and the draw. The stepper gives
each token the logits the model's forward on T=1 gives it, bit for bit, and draws with the same operations in
float64 (csrc/generate/draw.h); so the text is the one of the reference path
(any other model: one forward a token and ``_draw`` in NumPy), which the
tests compare. The two draws may differ in the last bit of a float64 (an
exp, a sum), which changes a token only if the uniform number falls within
about 1e-16 of a boundary of the cumulative distribution.

Several samples at once: ``sample(..., num_samples=N)`` draws N texts in one
pass, the N rows of one stepper (B = N), and returns them as a list. Row i
draws from its own generator, so it is the text ``sample`` gives alone with
that generator's seed:

- an int ``seed``: row i uses ``np.random.default_rng(seed + i)``, so row 0 is
  the text of ``num_samples=None`` and row i that of ``seed=seed + i``;
- ``seed=None``: a fresh random int seed s, then as for s;
- a Generator (or SeedSequence, BitGenerator): row 0 draws from it, rows
  1 … N-1 from its ``spawn(N - 1)``.

A row that ends at ``<eos>`` stops there; the rows still running are packed
to the front of the stepper, so a row that ended costs nothing more.
"""

from __future__ import annotations

from typing import Iterator, List, Optional, Union

import numpy as np

from . import memory, ops
from .nn.losses import check_temperature, log_softmax
from .text import UnknownTokenError, Vocabulary, join_words

Seed = Union[None, int, np.random.SeedSequence, np.random.BitGenerator, np.random.Generator]

__all__ = ["sample", "stream"]


# ---------------------------------------------------------------------------
# argument checks


def _int(name: str, v, low: int, none_ok: bool = False) -> Optional[int]:
    if v is None and none_ok:
        return None
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"{name}: expected {'None or ' if none_ok else ''}an int >= {low}, got {v!r}")
    if v < low:
        raise ValueError(f"{name}: expected {'None or ' if none_ok else ''}an int >= {low}, got {v!r}")
    return int(v)


def _top_p(top_p) -> Optional[float]:
    if top_p is None:
        return None
    if isinstance(top_p, (bool, np.bool_)) or not isinstance(top_p, (int, float, np.number)) \
            or not 0 < top_p <= 1:
        raise ValueError(f"top_p: expected None or a number in (0, 1], got {top_p!r}")
    return float(top_p)


def _rng(seed: Seed) -> np.random.Generator:
    try:
        return np.random.default_rng(seed)
    except (TypeError, ValueError):
        raise TypeError(f"seed: expected None, an int >= 0 or a numpy.random.Generator, got {seed!r}") from None


def _row_rngs(seed: Seed, num_samples: int) -> List[np.random.Generator]:
    """The generators of rows 0 … num_samples-1 (see the module doc)."""
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, (bool, np.bool_)) and seed >= 0:
        return [np.random.default_rng(int(seed) + i) for i in range(num_samples)]
    if seed is None:
        return _row_rngs(int(np.random.SeedSequence().generate_state(2, np.uint64)[0] >> 1), num_samples)
    first = _rng(seed)
    return [first] + (list(first.spawn(num_samples - 1)) if num_samples > 1 else [])


def _prime_ids(vocab: Vocabulary, prime: str) -> np.ndarray:
    if not isinstance(prime, str):
        raise TypeError(f"prime: expected a str, got {type(prime).__name__}")
    try:
        return vocab.encode(prime)
    except UnknownTokenError as e:
        msg = str(e)
        raise UnknownTokenError(f"prime: {msg[len('text: '):] if msg.startswith('text: ') else msg}") from None


# ---------------------------------------------------------------------------
# one draw


def _draw(logits: np.ndarray, temperature: float, top_k: Optional[int], top_p: Optional[float],
          pad_id: Optional[int], rng: np.random.Generator) -> int:
    """logits (V,) -> one token id, drawn as the module doc says."""
    logp = log_softmax(logits.astype(np.float64), temperature=temperature)  # (V,) finite
    if pad_id is not None:
        logp[pad_id] = -np.inf
    if top_k is not None or top_p is not None:
        order = np.argsort(-logp, kind="stable")  # (V,) most likely first, ties: lower id first
        n = len(order) - int(pad_id is not None)  # <pad> sorts last
        if top_k is not None:
            n = min(n, top_k)
        if top_p is not None and top_p < 1:
            p = np.exp(logp[order[:n]] - logp[order[0]])
            cum = np.cumsum(p / p.sum())
            n = min(n, int(np.searchsorted(cum, top_p)) + 1)  # first prefix reaching top_p
        logp[order[n:]] = -np.inf
    # the kept tokens' probabilities; the largest exp is 1, so the sum is >= 1
    p = np.exp(logp - logp.max())
    return int(rng.choice(len(p), p=p / p.sum()))


# ---------------------------------------------------------------------------
# public


def _steppable(model) -> bool:
    """Whether the model has a stepper (which computes in the model's
    precision, as its forward does)."""
    return callable(getattr(model, "stepper", None))


def stream(model, vocab: Vocabulary, length: int = 200, *, prime: str = "", temperature: float = 1.0,
           top_k: Optional[int] = None, top_p: Optional[float] = None, seed: Seed = None,
           stop_at_eos: bool = True) -> Iterator[str]:
    """Sample up to ``length`` tokens after ``prime``, yielding each token (a
    str: a character, a word, or a special's name) as soon as it is drawn.

    Args:
        model: ``forward(ids (T, 1), state, train=False) -> (logits (T, 1, V), state)``
            with ``V = len(vocab)``; a ``seqcore.nn.LanguageModel``.
        vocab: the model's vocabulary.
        length: the most tokens to yield (an int >= 0).
        prime: text the sample continues (not yielded); "" starts from ``<eos>``
            (see the module doc for a vocabulary without one).
        temperature: > 0; below 1 sharpens the distribution, above 1 flattens it.
        top_k: None, or keep the k most likely tokens (k >= 1).
        top_p: None, or a number in (0, 1]: the nucleus's probability.
        seed: None, an int, or a ``numpy.random.Generator`` (drawn from).
        stop_at_eos: end at ``<eos>`` (not yielded).

    Arguments are checked here, before the first token is asked for: a bad
    one raises TypeError or ValueError naming it; a prime with a token not in
    a vocabulary without ``<unk>`` raises ``UnknownTokenError``.
    """
    length, temperature, top_k, top_p, stop_at_eos, ids = _check_args(model, vocab, length, temperature, top_k,
                                                                       top_p, stop_at_eos, prime)
    tokens = _stepped_tokens if _steppable(model) else _tokens
    return tokens(model, vocab, length, ids, temperature, top_k, top_p, _rng(seed), stop_at_eos)


def _check_args(model, vocab: Vocabulary, length, temperature, top_k, top_p, stop_at_eos, prime: str):
    """stream's and sample's checks (see stream); returns the checked
    (length, temperature, top_k, top_p, stop_at_eos, prime ids)."""
    if not isinstance(vocab, Vocabulary):
        raise TypeError(f"vocab: expected a seqcore.text.Vocabulary, got {type(vocab).__name__}")
    vocab_size = getattr(model, "vocab_size", None)
    if not callable(getattr(model, "forward", None)):
        raise TypeError(f"model: expected a language model with forward(ids, state, train), got {type(model).__name__}")
    if vocab_size is not None and vocab_size != len(vocab):
        raise ValueError(f"vocab: expected the model's vocabulary of {vocab_size} tokens, got {len(vocab)}")
    length = _int("length", length, 0)
    temperature = check_temperature(temperature)
    top_k = _int("top_k", top_k, 1, none_ok=True)
    top_p = _top_p(top_p)
    if not isinstance(stop_at_eos, (bool, np.bool_)):
        raise TypeError(f"stop_at_eos: expected a bool, got {stop_at_eos!r}")
    ids = _prime_ids(vocab, prime)
    if len(vocab) - int(vocab.pad_id is not None) < 1:
        raise ValueError("vocab: expected a token other than <pad> to sample")
    if ids.size == 0 and vocab.eos_id is None and len(vocab) == len(vocab.specials):
        raise ValueError("prime: the vocabulary has neither <eos> nor a regular token to start from; give a prime")
    return length, temperature, top_k, top_p, bool(stop_at_eos), ids


def _tokens(model, vocab: Vocabulary, length: int, ids: np.ndarray, temperature: float, top_k: Optional[int],
            top_p: Optional[float], rng: np.random.Generator, stop_at_eos: bool) -> Iterator[str]:
    """The generator behind ``stream`` for a model without a stepper: one
    forward a token and the NumPy draw. The reference path: the stepper's
    (_stepped_tokens) gives the same tokens; arguments already checked."""
    V, eos = len(vocab), vocab.eos_id
    if length == 0:
        return
    if ids.size == 0 and eos is not None:
        ids = np.array([eos], dtype=np.int64)
    elif ids.size == 0:  # no <eos>: a uniform first token, as char-rnn starts
        token = int(rng.integers(len(vocab.specials), V))
        yield vocab.tokens[token]
        length -= 1
        ids = np.array([token], dtype=np.int64)
    state = None
    for i in range(length):
        # the prime (P, 1) on the first step, then the last token (1, 1)
        logits, state = model.forward(ids.reshape(-1, 1), state, train=False)
        if logits.shape[-1] != V:
            raise ValueError(f"vocab: expected the model's vocabulary of {logits.shape[-1]} tokens, got {V}")
        token = _draw(logits[-1, 0], temperature, top_k, top_p, vocab.pad_id, rng)
        if stop_at_eos and token == eos:
            return
        yield vocab.tokens[token]
        ids = np.array([token], dtype=np.int64)


def _checked_logits(logits: np.ndarray, V: int) -> np.ndarray:
    if logits.shape[-1] != V:
        raise ValueError(f"vocab: expected the model's vocabulary of {logits.shape[-1]} tokens, got {V}")
    return logits


def _prime_step(model, vocab: Vocabulary, ids: np.ndarray, stepper) -> np.ndarray:
    """The prime (or <eos>) through one forward from the zero state, its final
    state given to every row of the stepper; returns the logits (1, V) of its
    last token."""
    fed = ids if ids.size else np.array([vocab.eos_id], dtype=np.int64)
    logits, state = model.forward(fed.reshape(-1, 1), None, train=False)
    stepper.reset(state)
    return _checked_logits(logits, len(vocab))[-1]


def _stepped_tokens(model, vocab: Vocabulary, length: int, ids: np.ndarray, temperature: float,
                    top_k: Optional[int], top_p: Optional[float], rng: np.random.Generator,
                    stop_at_eos: bool) -> Iterator[str]:
    """The generator behind ``stream`` for a model with a stepper: the prime
    through one forward, then one native call a token for the step and the
    draw. The tokens of _tokens, drawing the same numbers from rng."""
    V, eos = len(vocab), vocab.eos_id
    if length == 0:
        return
    stepper = model.stepper(batch_size=1)
    step_draw = stepper.drawer(temperature=temperature, top_k=top_k, top_p=top_p, pad_id=vocab.pad_id)
    fed, u, out = np.empty(1, np.int64), np.empty(1), np.empty(1, np.int64)
    uniform_start = ids.size == 0 and eos is None
    if uniform_start:  # no <eos>: a uniform first token, as char-rnn starts
        out[0] = rng.integers(len(vocab.specials), V)
        yield vocab.tokens[int(out[0])]
        length -= 1
    for i in range(length):
        if i == 0 and not uniform_start:
            logits = _prime_step(model, vocab, ids, stepper)
            u[0] = rng.random()
            ops.draw(logits, u, out, temperature=temperature, top_k=top_k, top_p=top_p, pad_id=vocab.pad_id)
        else:  # the last token in, the next one out
            fed[0] = out[0]
            u[0] = rng.random()
            step_draw(fed, u, out)
        token = int(out[0])
        if stop_at_eos and token == eos:
            return
        yield vocab.tokens[token]


class _Uniforms:
    """The uniform numbers of each step's rows: one a token from each row's
    generator, drawn in blocks of BLOCK (a Python call per row and block, not
    per token). ``finish`` leaves each generator as if it had given one
    number per token of its row, as sampling that row alone does."""

    BLOCK = 256

    def __init__(self, rngs: List[np.random.Generator]) -> None:
        self.rngs = rngs
        self.buf = np.empty((len(rngs), self.BLOCK))
        self.pos = self.BLOCK
        self.saved: List[Optional[dict]] = [None] * len(rngs)  # each generator's state before its block
        self.used = np.zeros(len(rngs), np.int64)              # numbers taken from each row's block

    def take(self, rows: np.ndarray) -> np.ndarray:
        """u (n,) for the rows (indices into rngs) of this step."""
        if self.pos == self.BLOCK:
            for i in rows.tolist():
                self.saved[i] = self.rngs[i].bit_generator.state
                self.buf[i] = self.rngs[i].random(self.BLOCK)  # = BLOCK calls of random()
            self.used[rows] = 0
            self.pos = 0
        u = self.buf[rows, self.pos]
        self.used[rows] += 1
        self.pos += 1
        return u

    def finish(self) -> None:
        for rng, state, used in zip(self.rngs, self.saved, self.used.tolist()):
            if state is not None:
                rng.bit_generator.state = state
                rng.random(used)


def _stepped_rows(model, vocab: Vocabulary, length: int, ids: np.ndarray, temperature: float,
                  top_k: Optional[int], top_p: Optional[float], rngs: List[np.random.Generator],
                  stop_at_eos: bool) -> List[List[str]]:
    """The tokens of len(rngs) samples drawn together, the rows of one
    stepper; row i gives the tokens _stepped_tokens gives with rngs[i]."""
    N, V, eos = len(rngs), len(vocab), vocab.eos_id
    rows: List[List[str]] = [[] for _ in range(N)]
    if length == 0:
        return rows
    stepper = model.stepper(batch_size=N)
    step_draw = stepper.drawer(temperature=temperature, top_k=top_k, top_p=top_p, pad_id=vocab.pad_id)
    out = np.empty(N, np.int64)
    uniform_start = ids.size == 0 and eos is None
    if uniform_start:
        out[:] = [rng.integers(len(vocab.specials), V) for rng in rngs]
        for row, token in zip(rows, out.tolist()):
            row.append(vocab.tokens[token])
        length -= 1
    uniforms = _Uniforms(rngs)
    active = np.arange(N)                              # the sample in each stepper row, the running ones first
    drawn = np.empty((length, N), np.int64)            # drawn[t, i]: token t of sample i
    ends = np.full(N, length)                          # tokens of each sample (those before its <eos>)
    for t in range(length):
        n = len(active)
        if t == 0 and not uniform_start:
            logits = _prime_step(model, vocab, ids, stepper)
            ops.draw(np.repeat(logits, N, axis=0), uniforms.take(active), out, temperature=temperature, top_k=top_k,
                     top_p=top_p, pad_id=vocab.pad_id)
        else:
            fed = out[:n].copy()
            step_draw(fed, uniforms.take(active), out[:n])
        drawn[t, active] = out[:n]
        if stop_at_eos and eos is not None:
            stopped = out[:n] == eos
            if stopped.any():  # the rows still running move to the front; the others cost nothing more
                ends[active[stopped]] = t
                running = np.flatnonzero(~stopped)
                stepper.keep(running)
                active = active[running]
                out[: len(running)] = out[running]
                if not len(running):
                    break
    uniforms.finish()
    names = np.asarray(vocab.tokens, dtype=object)
    for i, row in enumerate(rows):
        row.extend(names[drawn[: ends[i], i]].tolist())
    return rows


def _text(vocab: Vocabulary, tokens: List[str]) -> str:
    return join_words(tokens) if vocab.level == "word" else "".join(tokens)


def sample_row_bytes(model, vocab: Vocabulary, length: int) -> int:
    """About the bytes one of ``sample``'s rows takes (an upper estimate):
    its generator (~2 KiB), its tokens and text (64 bytes a token), and the
    stepper's row: logits, and the states, outputs and gate inputs of every
    layer, float32 or float64."""
    rnn = getattr(model, "rnn", None)
    H, L = getattr(rnn, "hidden_size", 0), getattr(rnn, "num_layers", 0)
    itemsize = np.dtype(getattr(model, "dtype", np.float32)).itemsize
    return 2048 + 64 * length + itemsize * (len(vocab) + 8 * L * H)


def sample(model, vocab: Vocabulary, length: int = 200, *, prime: str = "", temperature: float = 1.0,
           top_k: Optional[int] = None, top_p: Optional[float] = None, seed: Seed = None,
           stop_at_eos: bool = True, num_samples: Optional[int] = None) -> Union[str, List[str]]:
    """The tokens ``stream`` yields, as one text: the continuation of
    ``prime``, without the prime itself. Characters are concatenated; words
    are joined with ``seqcore.text.join_words``. Arguments as for ``stream``.

    num_samples: None for one text; an int N >= 1 for a list of N texts drawn
    together (one stepper of N rows), text i being the one ``sample`` gives
    alone with row i's seed (see the module doc: ``seed + i`` for an int).
    """
    if num_samples is None:
        tokens: List[str] = list(stream(model, vocab, length, prime=prime, temperature=temperature, top_k=top_k,
                                        top_p=top_p, seed=seed, stop_at_eos=stop_at_eos))
        return _text(vocab, tokens)
    num_samples = _int("num_samples", num_samples, 1)
    length, temperature, top_k, top_p, stop_at_eos, ids = _check_args(model, vocab, length, temperature, top_k,
                                                                       top_p, stop_at_eos, prime)
    memory.require(num_samples * sample_row_bytes(model, vocab, length),
                   f"sample(num_samples={num_samples:,}, length={length:,})'s rows",
                   "make num_samples or length smaller")
    rngs = _row_rngs(seed, num_samples)
    if _steppable(model):
        rows = _stepped_rows(model, vocab, length, ids, temperature, top_k, top_p, rngs, stop_at_eos)
    else:  # the reference path, one sample after the other
        rows = [list(_tokens(model, vocab, length, ids, temperature, top_k, top_p, rng, stop_at_eos))
                for rng in rngs]
    return [_text(vocab, row) for row in rows]
