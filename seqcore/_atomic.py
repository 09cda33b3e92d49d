"""Writing files so that a crash leaves either the old file or the new one.

``atomic_write`` writes through a callback into a fresh temporary file beside
the target, flushes and fsyncs it, then ``os.replace``s it onto the target: a
reader (or the next run after a crash) sees the whole old file or the whole
new one, never a torn mix. On any failure the temporary file is removed and
the target is left as it was. ``atomic_write_json`` is the JSON form of it;
``fsync_directory`` makes a rename in a directory durable.

This module knows nothing of seqcore's other packages (text/, nn/, train/
all use it).
"""

from __future__ import annotations

import json
import os
import secrets
from typing import IO, Any, Callable, Union

PathLike = Union[str, "os.PathLike[str]"]


def atomic_write(path: PathLike, write: Callable[[IO], Any], *, text: bool = False) -> None:
    """Calls ``write(f)`` on a new temporary file in ``path``'s directory (binary,
    or UTF-8 text with "\\n" line ends if ``text``), fsyncs it and renames it
    onto ``path``. On any failure (an exception in ``write`` included) the
    temporary file is removed and ``path`` is untouched."""
    directory, name = os.path.split(os.path.abspath(os.fspath(path)))
    tmp = os.path.join(directory, f".{name}.{secrets.token_hex(4)}.tmp")
    try:
        # "x": a fresh file, with the usual permissions (umask), never another's
        if text:
            f = open(tmp, "x", encoding="utf-8", newline="\n")
        else:
            f = open(tmp, "xb")
        with f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_json(path: PathLike, doc: object, ensure_ascii: bool = False) -> None:
    """``json.dump``s ``doc`` (indented, a final newline; NaN and inf refused)
    to ``path`` with ``atomic_write``."""

    def write(f: IO) -> None:
        json.dump(doc, f, ensure_ascii=ensure_ascii, indent=1, allow_nan=False)
        f.write("\n")

    atomic_write(path, write, text=True)


def fsync_directory(path: PathLike) -> None:
    """Flushes a directory's entries (the renames and creations in it) to disk.
    A no-op where directories cannot be opened (Windows)."""
    try:
        fd = os.open(os.fspath(path), os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except (PermissionError, IsADirectoryError):  # Windows: directories cannot be opened
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
