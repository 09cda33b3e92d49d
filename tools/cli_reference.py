"""docs/guide/cli.md from the command line's own parser: `seqcore --help` and
each command's `--help`, as argparse prints them 100 columns wide.

    python tools/cli_reference.py [OUT]   # default: docs/guide/cli.md

tests/test_docs_cli_reference.py makes the page again and compares, so it
cannot drift from seqcore/cli.py (argparse's layout differs between Python
versions: the page names the one that made it, and the test runs there).
"""

import argparse
import os
import sys
from pathlib import Path
from typing import List

ROOT = Path(__file__).resolve().parents[1]
WIDTH = "100"


def reference() -> str:
    """The page: the top-level help, then each command's."""
    os.environ["COLUMNS"] = WIDTH  # argparse's width, read when the help is formatted
    from seqcore.cli import build_parser
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    lines = ["# Command-line reference", "",
             "`seqcore <command> --help` prints each of these; the page is made from the same parser by",
             f"`tools/cli_reference.py` (Python {version}'s argparse), and the tests compare the two. The",
             "guide to the commands is [Training and the CLI](training.md#the-command-line).", "",
             "## seqcore", "", "```text", parser.format_help().rstrip(), "```"]
    for name, command in sub.choices.items():
        lines += ["", f"## seqcore {name}", "", "```text", command.format_help().rstrip(), "```"]
    return "\n".join(lines) + "\n"


def main(argv: List[str]) -> int:
    out = Path(argv[0]) if argv else ROOT / "docs" / "guide" / "cli.md"
    out.write_text(reference(), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
