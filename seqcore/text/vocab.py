"""Vocabularies of characters or words: ids, encode / decode, JSON files.

Ids. The specials come first, in the order given (``<pad>`` = 0 with the
default ``("<pad>", "<unk>", "<eos>")``), then the tokens. ``from_text`` orders
the tokens by descending count, ties broken by the token itself: code point
order at char level, Python's string order (code point by code point) at word
level. So the same text always gives the same ids, whatever the order in which
the tokens first appear.

Round trips.
- char level: ``decode(encode(text)) == text`` exactly, for any Unicode text
  (non-ASCII, emoji, combining characters, lone surrogates) whose characters
  are all in the vocabulary. A token is one code point; a user-perceived
  character made of several (``"e\\u0301"``, ``"👍🏽"``) is several tokens.
- word level: the token sequence round-trips,
  ``tokenize(decode(encode(text))) == tokenize(text)`` when every token is in
  the vocabulary. The text itself comes back exactly when it is spaced the
  usual way: one space between words, none before ``, . ; : ! ? ) ] } -``,
  none after ``( [ { -`` before a word, none around a newline (see
  ``join_words``); other spacing is normalised that way.

Unknown tokens encode as ``<unk>``; a vocabulary without ``<unk>`` raises
``UnknownTokenError`` (a KeyError and a ValueError) naming the token.

Files: ``save`` writes JSON (UTF-8, human-readable, with a format name and a
version) atomically; ``load`` raises ValueError on anything else.
"""

from __future__ import annotations

import codecs
import collections
import json
import os
import re
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from .._atomic import atomic_write_json

LEVELS = ("char", "word")
DEFAULT_SPECIALS = ("<pad>", "<unk>", "<eos>")
FILE_FORMAT = "seqcore.text.Vocabulary"
FILE_VERSION = 1

PathLike = Union[str, "os.PathLike[str]"]

# chars per piece of a non-ASCII encode: bounds the UTF-32 temporaries (16 MiB)
_ENCODE_CHUNK = 1 << 22


class UnknownTokenError(KeyError, ValueError):
    """A token that the vocabulary lacks, where it has no ``<unk>`` to stand in."""

    def __str__(self) -> str:  # KeyError would print the repr of the message
        return str(self.args[0]) if self.args else ""


# ---------------------------------------------------------------------------
# the word tokenizer

# Marks that stay with the character before them: combining diacritics,
# variation selectors, emoji skin tones. (Python's \w does not cover them.)
_MARKS = "\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe00-\ufe0f\ufe20-\ufe2f\U0001f3fb-\U0001f3ff"
_WORD = rf"[\w{_MARKS}]+(?:['\u2019][\w{_MARKS}]+)*"      # don't, o'er, naïve, café (decomposed)
_SYMBOL = rf"[^\w\s][{_MARKS}]*(?:\u200d[^\w\s][{_MARKS}]*)*"  # one punctuation mark or emoji (ZWJ joined)
_TOKEN_RE = re.compile(rf"\n|{_WORD}|{_SYMBOL}")
_WORD_START_RE = re.compile(r"\w")
_NO_SPACE_BEFORE = frozenset(",.;:!?)]}-")
_NO_SPACE_AFTER = frozenset("([{-")


def tokenize_words(text: str) -> List[str]:
    """Split text into word-level tokens: words (letters, digits, ``_``, with
    inner apostrophes: ``don't``), single punctuation marks or symbols (an
    emoji with its modifiers and ZWJ joins is one), and ``"\\n"``. Other
    whitespace only separates tokens and is dropped."""
    if not isinstance(text, str):
        raise TypeError(f"text: expected a str, got {type(text).__name__}")
    return _TOKEN_RE.findall(text)


def join_words(tokens: Sequence[str]) -> str:
    """The inverse of ``tokenize_words`` for the token sequence: one space
    between tokens, except none around ``"\\n"``, none before ``, . ; : ! ? )
    ] } -`` and none after ``( [ { -`` when a word follows (so ``soft-hearted``
    and ``(so)`` come back as written). ``tokenize_words`` gives the same
    tokens back: a space is left wherever leaving it out could merge two."""
    parts: List[str] = []
    prev = "\n"
    for tok in tokens:
        if not (tok == "\n" or prev == "\n" or tok in _NO_SPACE_BEFORE
                or (prev in _NO_SPACE_AFTER and _WORD_START_RE.match(tok))):
            parts.append(" ")
        parts.append(tok)
        prev = tok
    return "".join(parts)


# ---------------------------------------------------------------------------
# Vocabulary


class Vocabulary:
    """A bijection between tokens and the ids 0 .. len-1: specials first, then
    ``tokens`` in the order given.

    Args:
        tokens: the regular tokens in id order, distinct strings, none of them a
            special; at char level each is one character (code point).
        level: ``"char"`` (a token per code point) or ``"word"``
            (``tokenize_words``).
        specials: distinct strings given the first ids. ``"<pad>"``,
            ``"<unk>"`` and ``"<eos>"`` have the roles their names say (see
            ``pad_id``, ``unk_id``, ``eos_id``); any others are plain reserved
            ids. At char level a special is longer than one character, so text
            never encodes to it.
    """

    def __init__(self, tokens: Iterable[str], level: str = "char",
                 specials: Sequence[str] = DEFAULT_SPECIALS) -> None:
        if level not in LEVELS:
            raise ValueError(f"level: expected 'char' or 'word', got {level!r}")
        if isinstance(specials, str):
            raise TypeError("specials: expected a sequence of strings, got a str")
        if isinstance(tokens, str):
            raise TypeError("tokens: expected an iterable of strings, got a str (use list(text) for its characters)")
        specials, tokens = tuple(specials), tuple(tokens)
        for name, seq in (("specials", specials), ("tokens", tokens)):
            for i, t in enumerate(seq):
                if not isinstance(t, str) or not t:
                    raise TypeError(f"{name}: expected non-empty strings, got {t!r} at index {i}")
        if len(set(specials)) != len(specials):
            raise ValueError(f"specials: expected distinct strings, got {list(specials)}")
        if level == "char":
            short = [s for s in specials if len(s) < 2]
            if short:
                raise ValueError(f"specials: at char level a special must be longer than one character, "
                                 f"got {short[0]!r}")
            long = next((t for t in tokens if len(t) != 1), None)
            if long is not None:
                raise ValueError(f"tokens: at char level each token is one character, got {long!r}")
        itos = specials + tokens
        stoi = {t: i for i, t in enumerate(itos)}
        if len(stoi) != len(itos):
            dup = next(t for t, c in collections.Counter(itos).items() if c > 1)
            raise ValueError(f"tokens: {dup!r} appears twice (among the tokens or as a special too)")

        self.level = level
        self.specials = specials
        self._itos = itos
        self._stoi = stoi
        self._pad = stoi.get("<pad>") if "<pad>" in specials else None
        self._unk = stoi.get("<unk>") if "<unk>" in specials else None
        self._eos = stoi.get("<eos>") if "<eos>" in specials else None
        if level == "char":
            self._build_char_tables()
        else:
            self._word_lookup = _WordLookup(stoi, self._unk)

    def _build_char_tables(self) -> None:
        # code point -> id, -1 where absent; one extra last slot stands for every
        # code point past the table. id -> code point for decode (specials: 0).
        n_specials = len(self.specials)
        cps = np.array([ord(t) for t in self._itos[n_specials:]], dtype=np.int64)
        missing = -1 if self._unk is None else self._unk
        size = int(cps.max()) + 2 if cps.size else 1
        table = np.full(size, missing, dtype=np.int64)
        table[cps] = np.arange(n_specials, len(self._itos), dtype=np.int64)
        self._char_table = table
        self._ascii_table = np.full(128, missing, dtype=np.int64)
        self._ascii_table[:min(size - 1, 128)] = table[:min(size - 1, 128)]
        self._codepoints = np.zeros(len(self._itos), dtype=np.uint32)
        self._codepoints[n_specials:] = cps
        # Latin-1 vocabularies (English text) decode through one byte a character
        self._latin1 = bool(cps.size == 0 or cps.max() < 256)
        if self._latin1:
            self._codepoints = self._codepoints.astype(np.uint8)

    # ---- building from text

    @classmethod
    def from_text(cls, text: str, level: str = "char", max_size: Optional[int] = 10000, min_freq: int = 1,
                  specials: Sequence[str] = DEFAULT_SPECIALS) -> "Vocabulary":
        """The vocabulary of ``text``: specials, then the tokens seen at least
        ``min_freq`` times by descending count (ties: by the token, code point
        order), keeping the first ``max_size - len(specials)`` (None: all).

        ``max_size`` counts the specials. Counting is vectorised at char level
        (100 MB of ASCII in about a second)."""
        if not isinstance(text, str):
            raise TypeError(f"text: expected a str, got {type(text).__name__}")
        if level not in LEVELS:
            raise ValueError(f"level: expected 'char' or 'word', got {level!r}")
        n_specials = len(tuple(specials)) if not isinstance(specials, str) else 0
        if max_size is not None and (isinstance(max_size, bool) or not isinstance(max_size, (int, np.integer))
                                     or max_size < n_specials):
            raise ValueError(f"max_size: expected None or an int >= len(specials) = {n_specials}, got {max_size!r}")
        if isinstance(min_freq, bool) or not isinstance(min_freq, (int, np.integer)) or min_freq < 1:
            raise ValueError(f"min_freq: expected an int >= 1, got {min_freq!r}")
        if level == "char":
            ranked = _count_chars(text)
        else:
            counts = collections.Counter(tokenize_words(text))
            ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        reserved = set(specials) if not isinstance(specials, str) else set()
        tokens = [t for t, c in ranked if c >= min_freq and t not in reserved]
        if max_size is not None:
            tokens = tokens[:max_size - n_specials]
        return cls(tokens, level=level, specials=specials)

    # ---- lookups

    def __len__(self) -> int:
        return len(self._itos)

    def __contains__(self, token: object) -> bool:
        return token in self._stoi

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Vocabulary):
            return NotImplemented
        return (self.level, self.specials, self._itos) == (other.level, other.specials, other._itos)

    def __hash__(self) -> int:
        return hash((self.level, self._itos))

    def __repr__(self) -> str:
        return f"Vocabulary(level={self.level!r}, size={len(self)}, specials={list(self.specials)})"

    @property
    def tokens(self) -> Tuple[str, ...]:
        """All tokens in id order, specials first."""
        return self._itos

    @property
    def pad_id(self) -> Optional[int]:
        """The id of ``<pad>``, or None without one."""
        return self._pad

    @property
    def unk_id(self) -> Optional[int]:
        """The id of ``<unk>``, or None without one."""
        return self._unk

    @property
    def eos_id(self) -> Optional[int]:
        """The id of ``<eos>``, or None without one."""
        return self._eos

    def token_to_id(self, token: str) -> int:
        """The id of ``token`` (a special or a regular token). Strict: a token
        not in the vocabulary raises UnknownTokenError, ``<unk>`` or not
        (``encode`` is the lookup that maps to ``<unk>``)."""
        try:
            return self._stoi[token]
        except (KeyError, TypeError):
            raise UnknownTokenError(f"token: {token!r} is not in the vocabulary") from None

    def id_to_token(self, id: int) -> str:
        """The token of ``id``, an int in [0, len)."""
        if isinstance(id, (bool, np.bool_)) or not isinstance(id, (int, np.integer)):
            raise TypeError(f"id: expected an int, got {type(id).__name__}")
        if not 0 <= id < len(self._itos):
            raise ValueError(f"id: expected an int in [0, {len(self._itos)}), got {id}")
        return self._itos[id]

    def tokenize(self, text: str) -> List[str]:
        """The tokens of ``text`` at this vocabulary's level (at char level its
        characters)."""
        if not isinstance(text, str):
            raise TypeError(f"text: expected a str, got {type(text).__name__}")
        return list(text) if self.level == "char" else tokenize_words(text)

    # ---- encode / decode

    def encode(self, text: str) -> np.ndarray:
        """``text`` -> ids (N,) int64, one per token; unknown tokens -> ``<unk>``
        (UnknownTokenError without one).

        Char level is vectorised: ASCII text goes through its bytes, other text
        through UTF-32 code points in pieces of 4M characters, each looked up
        in a code point -> id table. Word level is a regular expression and a
        dict lookup per token."""
        if not isinstance(text, str):
            raise TypeError(f"text: expected a str, got {type(text).__name__}")
        if self.level == "word":
            return self._encode_words(text)
        out = np.empty(len(text), dtype=np.int64)
        if text.isascii():  # O(1) in CPython; the common case goes through bytes
            # mode="clip": unbuffered (and every byte is < 128 anyway)
            np.take(self._ascii_table, np.frombuffer(text.encode("ascii"), dtype=np.uint8), out=out, mode="clip")
            self._check_known(out, text, 0)
            return out
        for start in range(0, len(text), _ENCODE_CHUNK):
            piece = text[start:start + _ENCODE_CHUNK]
            cps = np.frombuffer(piece.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
            # mode="clip": a code point past the table reads its last slot, "absent"
            np.take(self._char_table, cps, out=out[start:start + len(piece)], mode="clip")
            self._check_known(out[start:start + len(piece)], piece, start)
        return out

    def _check_known(self, ids: np.ndarray, text: str, start: int) -> None:
        if self._unk is None and ids.size and ids.min() < 0:
            i = int(np.argmax(ids < 0))
            raise UnknownTokenError(f"text: character {text[i]!r} (U+{ord(text[i]):04X}) at index {start + i} "
                                    f"is not in the vocabulary, which has no <unk>")

    def _encode_words(self, text: str) -> np.ndarray:
        tokens = tokenize_words(text)
        try:
            return np.fromiter(map(self._word_lookup.__getitem__, tokens), dtype=np.int64, count=len(tokens))
        except KeyError as e:
            raise UnknownTokenError(f"text: word {e.args[0]!r} is not in the vocabulary, which has no <unk>") from None

    def decode(self, ids, skip_specials: bool = False) -> str:
        """ids (N,) integers in [0, len) -> text. Specials are written as their
        names (``"<unk>"``) or, with ``skip_specials``, left out. Word level
        joins the tokens with ``join_words``."""
        ids = np.asarray(ids)
        if ids.dtype.kind not in "iu" and not (ids.size == 0 and ids.dtype.kind == "f"):
            raise TypeError(f"ids: expected integers, got dtype {ids.dtype}")
        if ids.ndim != 1:
            raise ValueError(f"ids: expected a 1-D sequence of ids, got shape {ids.shape}")
        if ids.size == 0:
            return ""
        ids = ids.astype(np.int64, copy=False)
        lo, hi = int(ids.min()), int(ids.max())
        if lo < 0 or hi >= len(self._itos):
            bad = lo if lo < 0 else hi
            raise ValueError(f"ids: expected values in [0, {len(self._itos)}), got {bad} "
                             f"at index {int(np.argmax(ids == bad))}")
        if skip_specials:
            ids = ids[ids >= len(self.specials)]
        if self.level == "word":
            itos = self._itos
            return join_words([itos[i] for i in ids.tolist()])
        return self._decode_chars(ids)

    def _decode_chars(self, ids: np.ndarray) -> str:
        n_specials = len(self.specials)
        where = np.flatnonzero(ids < n_specials)  # specials: multi-character names between runs
        pieces, start = [], 0
        for i in where.tolist() + [len(ids)]:
            run = memoryview(self._codepoints.take(ids[start:i], mode="clip"))
            pieces.append(codecs.latin_1_decode(run)[0] if self._latin1
                          else codecs.utf_32_le_decode(run, "surrogatepass", True)[0])
            if i < len(ids):
                pieces.append(self._itos[ids[i]])
            start = i + 1
        return "".join(pieces)

    # ---- files

    def to_dict(self) -> Dict[str, object]:
        """The JSON document ``save`` writes."""
        return {"format": FILE_FORMAT, "version": FILE_VERSION, "level": self.level,
                "specials": list(self.specials), "tokens": list(self._itos[len(self.specials):])}

    @classmethod
    def from_dict(cls, doc: object, source: str = "document") -> "Vocabulary":
        """The vocabulary of a ``to_dict`` document; ValueError naming
        ``source`` for anything else."""
        if not isinstance(doc, dict) or doc.get("format") != FILE_FORMAT:
            raise ValueError(f"{source}: not a seqcore vocabulary (expected a JSON object with "
                             f"\"format\": \"{FILE_FORMAT}\")")
        if doc.get("version") != FILE_VERSION:
            raise ValueError(f"{source}: vocabulary format version {doc.get('version')!r} is not supported "
                             f"(this seqcore reads version {FILE_VERSION})")
        for key, kind in (("level", str), ("specials", list), ("tokens", list)):
            if not isinstance(doc.get(key), kind):
                raise ValueError(f"{source}: field {key!r} is missing or not a JSON {kind.__name__}")
        try:
            return cls(doc["tokens"], level=doc["level"], specials=doc["specials"])
        except (TypeError, ValueError) as e:
            raise ValueError(f"{source}: invalid vocabulary: {e}") from None

    def save(self, path: PathLike) -> None:
        """Write the vocabulary as JSON (UTF-8, one token a line). Atomic: the
        file is written beside ``path`` under a temporary name and renamed over
        it, so a failed write leaves ``path`` as it was."""
        # \uXXXX escapes only where a token holds a lone surrogate, which UTF-8 cannot carry
        ascii_only = any(0xD800 <= ord(c) <= 0xDFFF for t in self._itos for c in t)
        atomic_write_json(path, self.to_dict(), ensure_ascii=ascii_only)

    @classmethod
    def load(cls, path: PathLike) -> "Vocabulary":
        """Read a file written by ``save``. A file that is not one (corrupt,
        truncated, another JSON, another version) raises ValueError naming it."""
        path = os.fspath(path)
        with open(path, "rb") as f:
            raw = f.read()
        try:
            doc = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as e:
            raise ValueError(f"{path}: not a seqcore vocabulary (not UTF-8 text: {e.reason})") from None
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not a seqcore vocabulary (invalid or truncated JSON: {e})") from None
        return cls.from_dict(doc, source=path)


class _WordLookup(dict):
    """token -> id, with a missing token giving ``<unk>`` (KeyError without
    one); ``__getitem__`` stays the C one for the tokens that are there."""

    def __init__(self, stoi: Dict[str, int], unk: Optional[int]) -> None:
        super().__init__(stoi)
        self._unk = unk

    def __missing__(self, token: str) -> int:
        if self._unk is None:
            raise KeyError(token)
        return self._unk


def _count_chars(text: str) -> List[Tuple[str, int]]:
    """(character, count) pairs of text, by descending count then code point."""
    counts = np.zeros(128, dtype=np.int64)
    if text.isascii():
        counts = np.bincount(np.frombuffer(text.encode("ascii"), dtype=np.uint8), minlength=128)
    else:
        for start in range(0, len(text), _ENCODE_CHUNK):
            cps = np.frombuffer(text[start:start + _ENCODE_CHUNK].encode("utf-32-le", "surrogatepass"),
                                dtype=np.uint32)
            piece = np.bincount(cps)
            if len(piece) > len(counts):
                counts = np.pad(counts, (0, len(piece) - len(counts)))
            counts[:len(piece)] += piece
    seen = np.flatnonzero(counts)
    order = np.lexsort((seen, -counts[seen]))  # last key first: count descending, then code point
    return [(chr(cp), int(c)) for cp, c in zip(seen[order].tolist(), counts[seen[order]].tolist())]
