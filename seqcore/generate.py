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
"""

from __future__ import annotations

from typing import Iterator, List, Optional, Union

import numpy as np

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
    return _tokens(model, vocab, length, ids, temperature, top_k, top_p, _rng(seed), bool(stop_at_eos))


def _tokens(model, vocab: Vocabulary, length: int, ids: np.ndarray, temperature: float, top_k: Optional[int],
            top_p: Optional[float], rng: np.random.Generator, stop_at_eos: bool) -> Iterator[str]:
    """The generator behind ``stream``; arguments already checked."""
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


def sample(model, vocab: Vocabulary, length: int = 200, *, prime: str = "", temperature: float = 1.0,
           top_k: Optional[int] = None, top_p: Optional[float] = None, seed: Seed = None,
           stop_at_eos: bool = True) -> str:
    """The tokens ``stream`` yields, as one text: the continuation of
    ``prime``, without the prime itself. Characters are concatenated; words
    are joined with ``seqcore.text.join_words``. Arguments as for ``stream``."""
    tokens: List[str] = list(stream(model, vocab, length, prime=prime, temperature=temperature, top_k=top_k,
                                    top_p=top_p, seed=seed, stop_at_eos=stop_at_eos))
    return join_words(tokens) if vocab.level == "word" else "".join(tokens)
