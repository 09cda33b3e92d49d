"""The README's set-up commands, as a newcomer reads them: the fenced code
blocks before the README's first "## " heading. There must be exactly two,
one command line each: the first runs seqcore's main job, the second the
tests. Prints them, one a line; exits 1 naming what is wrong otherwise.

.ci/run runs what this prints, verbatim and in order, so that the README and
CI cannot drift apart.

    python tools/readme_commands.py [README.md]
"""

import sys
from pathlib import Path
from typing import List

EXPECTED = 2


def setup_commands(readme: str) -> List[str]:
    """The command lines of the code blocks before the first "## " heading;
    ValueError unless there are exactly two blocks of one non-empty line each."""
    blocks: List[List[str]] = []
    inside = False
    for line in readme.splitlines():
        if not inside and line.startswith("## "):
            break
        if line.lstrip().startswith("```"):
            inside = not inside
            if inside:
                blocks.append([])
        elif inside:
            blocks[-1].append(line)
    if inside:
        raise ValueError("a code block before the first '## ' heading is not closed")
    if len(blocks) != EXPECTED:
        raise ValueError(f"expected {EXPECTED} code blocks before the first '## ' heading "
                         f"(the main job, then the tests), found {len(blocks)}")
    commands = []
    for n, block in enumerate(blocks, 1):
        lines = [line.strip() for line in block if line.strip()]
        if len(lines) != 1:
            raise ValueError(f"code block {n} before the first '## ' heading: expected one command line, "
                             f"found {len(lines)}")
        commands.append(lines[0])
    return commands


def main(argv: List[str]) -> int:
    path = Path(argv[0] if argv else Path(__file__).resolve().parents[1] / "README.md")
    try:
        commands = setup_commands(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        print(f"readme_commands: {path}: {e}", file=sys.stderr)
        return 1
    print("\n".join(commands))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
