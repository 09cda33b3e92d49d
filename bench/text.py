"""Throughput of seqcore.text: building a vocabulary, encode and decode, at
char level on ~100 MB of text and at word level on ~10 MB (tinyshakespeare
repeated), in MB of UTF-8 text per second (median of --repeat runs).

    python bench/text.py [--char-mb 100] [--word-mb 10] [--json PATH]

"char, non-ASCII" is the same text with one "€" appended: CPython then stores
it two bytes a character, encode goes through UTF-32 code points instead of
the bytes of an ASCII str, and decode (the vocabulary is past Latin-1 now)
through UTF-32 too. One thread; about 3 GB of memory at 100 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from seqcore.text import Vocabulary
from seqcore.timing import format_table, median_seconds

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "tinyshakespeare.txt"


def repeated(text: str, mb: float) -> str:
    """text repeated to about mb * 1e6 characters."""
    return text * max(1, round(mb * 1e6 / len(text)))


def measure(records, rows, level, what, fn, text_mb, tokens, repeat):
    seconds = median_seconds(fn, repeat=repeat, warmup=1)
    records.append(dict(level=level, operation=what, text_mb=text_mb, tokens=tokens, seconds=seconds,
                        mb_per_s=text_mb / seconds, mtokens_per_s=tokens / seconds / 1e6))
    rows.append([level, what, round(text_mb, 1), seconds, text_mb / seconds, tokens / seconds / 1e6])
    print(f"  {level:<16} {what:<10} {seconds:8.3f} s", file=sys.stderr, flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the text to repeat (default: %(default)s)")
    parser.add_argument("--char-mb", type=float, default=100.0, help="MB of text at char level")
    parser.add_argument("--word-mb", type=float, default=10.0, help="MB of text at word level")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per figure (median)")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    if not args.data.is_file():
        print(f"bench/text.py: {args.data} not found (pass --data FILE)", file=sys.stderr)
        return 2
    base = args.data.read_text(encoding="utf-8")
    print(f"seqcore.text on {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
          f"numpy {np.__version__}, python {platform.python_version()}; text: {args.data.name} repeated")

    records, rows = [], []
    # ---- char level
    text = repeated(base, args.char_mb)
    mb = len(text.encode("utf-8")) / 1e6
    measure(records, rows, "char", "from_text", lambda: Vocabulary.from_text(text), mb, len(text), args.repeat)
    vocab = Vocabulary.from_text(text)
    measure(records, rows, "char", "encode", lambda: vocab.encode(text), mb, len(text), args.repeat)
    ids = vocab.encode(text)
    measure(records, rows, "char", "decode", lambda: vocab.decode(ids), mb, len(text), args.repeat)
    assert vocab.decode(ids) == text
    del ids
    wide = text + "€"  # two bytes a character in CPython: the UTF-32 paths
    del text
    wide_mb = len(wide.encode("utf-8")) / 1e6
    vocab = Vocabulary(vocab.tokens[len(vocab.specials):] + ("€",), specials=vocab.specials)
    measure(records, rows, "char, non-ASCII", "encode", lambda: vocab.encode(wide), wide_mb, len(wide), args.repeat)
    ids = vocab.encode(wide)
    measure(records, rows, "char, non-ASCII", "decode", lambda: vocab.decode(ids), wide_mb, len(wide), args.repeat)
    assert vocab.decode(ids) == wide
    del wide, ids

    # ---- word level
    text = repeated(base, args.word_mb)
    mb = len(text.encode("utf-8")) / 1e6
    vocab = Vocabulary.from_text(text, level="word", max_size=None)  # every word: no <unk> in decode
    ids = vocab.encode(text)
    measure(records, rows, "word", "from_text", lambda: Vocabulary.from_text(text, level="word"), mb,
            len(ids), args.repeat)
    measure(records, rows, "word", "encode", lambda: vocab.encode(text), mb, len(ids), args.repeat)
    measure(records, rows, "word", "decode", lambda: vocab.decode(ids), mb, len(ids), args.repeat)

    print(format_table(["level", "operation", "text MB", "seconds", "MB/s", "Mtokens/s"], rows))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(dict(time=time.strftime("%Y-%m-%dT%H:%M:%S"), data=str(args.data), records=records), f,
                      indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
