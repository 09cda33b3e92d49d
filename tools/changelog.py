"""docs/contributing/changelog.md from `git log`: the subjects of the commits
(merges left out), newest first, grouped by day, each cut to its first 220
characters; `git show HASH` gives a change whole.

    python tools/changelog.py [OUT]      # default: docs/contributing/changelog.md
"""

import html
import subprocess
import sys
from pathlib import Path
from typing import List

ROOT = Path(__file__).resolve().parents[1]
WIDTH = 220


def subject_markdown(subject: str) -> str:
    """A commit subject as one Markdown list item's text: cut to WIDTH
    characters at a word, Markdown's own characters escaped outside `code`."""
    s = subject.strip()
    if len(s) > WIDTH:
        s = s[:WIDTH].rsplit(" ", 1)[0] + " …"
    if s.count("`") % 2:  # a code span cut in two: no code spans
        s = s.replace("`", "")
    parts = s.split("`")
    for i in range(0, len(parts), 2):
        parts[i] = (html.escape(parts[i], quote=False).replace("*", "\\*").replace("_", "\\_")
                    .replace("[", "\\["))
    return "`".join(parts)


def changelog(log: str, head: str) -> str:
    """The page from `git log --format=%h%x09%ad%x09%s --date=short` output."""
    lines: List[str] = [
        "# Changelog", "",
        "What changed, newest first: the subjects of the commits (`git log --no-merges`), cut to their",
        f"first {WIDTH} characters; `git show HASH` gives a change whole, with the measurements its message",
        f"quotes. Made by `tools/changelog.py` at commit {head}.", ""]
    day = None
    for row in log.strip().splitlines():
        commit, date, subject = row.split("\t", 2)
        if date != day:
            lines += ["", f"## {date}", ""]
            day = date
        lines.append(f"- {commit}: {subject_markdown(subject)}")
    return "\n".join(lines) + "\n"


def main(argv: List[str]) -> int:
    out = Path(argv[0]) if argv else ROOT / "docs" / "contributing" / "changelog.md"
    git = ["git", "-C", str(ROOT)]
    log = subprocess.run(git + ["log", "--no-merges", "--format=%h%x09%ad%x09%s", "--date=short"],
                         capture_output=True, text=True, check=True).stdout
    head = subprocess.run(git + ["rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    out.write_text(changelog(log, head), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
