"""The commands the manual shows name options that exist: every `seqcore
<command> ...` and `python bench/<name>.py ...` in a ```bash block or an
inline code span of docs/ and the README is checked against the command's
own parser (seqcore.cli.build_parser(); a bench's `--help`). The changelog
quotes commit subjects as they were written, and is left out."""

import re
import shlex
import subprocess
import sys
from functools import lru_cache
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple

import pytest

from children import child_env

ROOT = Path(__file__).resolve().parents[1]
HISTORY = {"docs/contributing/changelog.md"}
SPAN = re.compile(r"`([^`\n]+)`")
OPTION = re.compile(r"^(--[a-zA-Z][\w-]*)")


def pages() -> List[Path]:
    found = sorted((ROOT / "docs").rglob("*.md")) + [ROOT / "README.md"]
    return [p for p in found if p.is_file() and str(p.relative_to(ROOT)) not in HISTORY]


def command_lines(text: str) -> Iterator[str]:
    """The lines of ```bash blocks, and the inline code spans outside blocks."""
    inside = None
    for line in text.splitlines():
        fence = re.match(r"^\s*```(\w*)", line)
        if fence:
            inside = None if inside is not None else fence.group(1)
            continue
        if inside == "bash":
            yield line.split(" #", 1)[0]
        elif inside is None:
            yield from SPAN.findall(line)


def invocations(text: str) -> Iterator[Tuple[str, str, List[str]]]:
    """(kind, name, options) of each `seqcore CMD ...` ("seqcore", CMD) and
    `python bench/NAME.py ...` ("bench", NAME) in the text."""
    for line in command_lines(text):
        for part in re.split(r"&&|\|\||;|\$\(", line):
            try:
                words = shlex.split(part)
            except ValueError:
                words = part.split()
            options = [m.group(1) for w in words for m in [OPTION.match(w)] if m]
            for i, w in enumerate(words):
                if w == "seqcore" and i + 1 < len(words) and re.fullmatch(r"[a-z]+", words[i + 1]):
                    yield "seqcore", words[i + 1], options
                    break
                m = re.fullmatch(r"bench/(\w+)\.py", w)
                if m and i > 0 and words[i - 1].startswith("python"):
                    yield "bench", m.group(1), options
                    break


@lru_cache(maxsize=None)
def seqcore_options() -> Dict[str, Set[str]]:
    import argparse
    from seqcore.cli import build_parser
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return {name: set(p._option_string_actions) for name, p in sub.choices.items()}


@lru_cache(maxsize=None)
def bench_options(name: str) -> Set[str]:
    done = subprocess.run([sys.executable, str(ROOT / "bench" / f"{name}.py"), "--help"], capture_output=True,
                          text=True, env=child_env(), timeout=120)
    assert done.returncode == 0, f"bench/{name}.py --help: {done.stderr[-2000:]}"
    return set(re.findall(r"(?<![\w-])(--[a-zA-Z][\w-]*)", done.stdout))


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_commands_shown_name_options_that_exist(page):
    wrong = []
    for kind, name, options in invocations(page.read_text(encoding="utf-8")):
        if kind == "seqcore":
            known = seqcore_options().get(name)
            if known is None:
                wrong.append(f"seqcore {name}: no such command")
                continue
        else:
            if not (ROOT / "bench" / f"{name}.py").is_file():
                wrong.append(f"bench/{name}.py: no such bench")
                continue
            known = bench_options(name)
        wrong += [f"{kind} {name}: {o}" for o in options if o not in known]
    assert wrong == []


def test_invocations_are_found_in_blocks_and_spans():
    text = ("Run `seqcore sample run --top-k 5` or `python bench/cells.py --threads 1`.\n"
            "```bash\nmpiexec -n 2 seqcore train c.txt --distributed --out run   # a comment --not-this\n"
            "pip install . && seqcore info\n```\n"
            "```python\nseqcore = 1  # --not-this-either\n```\n")
    assert list(invocations(text)) == [("seqcore", "sample", ["--top-k"]), ("bench", "cells", ["--threads"]),
                                       ("seqcore", "train", ["--distributed", "--out"]), ("seqcore", "info", [])]
