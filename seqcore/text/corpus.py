"""Corpora found on the machine, so that a first run needs no download:
``stdlib_corpus``, the standard library's own Python sources (the text
``seqcore train`` reads without a CORPUS)."""

from __future__ import annotations

import os
import sysconfig
from typing import List, Tuple

STDLIB_MAX_CHARS = 2_000_000


def stdlib_corpus(max_chars: int = STDLIB_MAX_CHARS) -> Tuple[str, List[str]]:
    """The text ``seqcore train`` uses without a CORPUS: the standard library's
    own source, found at run time. The selection: the ``*.py`` files directly
    in ``sysconfig.get_paths()["stdlib"]`` whose names do not start with "_",
    in name order, each whole and as UTF-8 (others skipped), for as long as
    the text stays within ``max_chars`` characters (about 2 MB by default;
    CPython 3.11 gives 60-odd modules, abc.py to nntplib.py). The same
    installation always gives the same text. Returns (text, the files' paths);
    FileNotFoundError where there are no such sources."""
    root = sysconfig.get_paths()["stdlib"]
    try:
        names = sorted(n for n in os.listdir(root) if n.endswith(".py") and not n.startswith("_"))
    except OSError:
        names = []
    parts: List[str] = []
    paths: List[str] = []
    size = 0
    for name in names:
        path = os.path.join(root, name)
        try:
            with open(path, encoding="utf-8") as f:
                source = f.read()
        except (OSError, UnicodeDecodeError):
            continue
        if size + len(source) > max_chars:
            break
        parts.append(source)
        paths.append(path)
        size += len(source)
    if not parts:
        raise FileNotFoundError(f"no Python sources found in the standard library directory {root}; "
                                f"give a CORPUS text file")
    return "".join(parts), paths
