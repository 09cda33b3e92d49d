"""The manual's code runs as printed: every ```python block of docs/**/*.md and
of the README, each page's blocks in order in one namespace (a later block
uses what an earlier one made, as a reader runs them), in a fresh Python
process whose working directory is a temporary folder (what the examples
write stays there).

A page whose code needs torch, onnx, onnxruntime or mpi4py is skipped where
that package is not installed (the import fails with ModuleNotFoundError
naming it); any other error fails the test, with the traceback pointing at
the line of the Markdown file. The examples use small sizes, so a page takes
seconds."""

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import List, Tuple

import pytest

from children import child_env

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
OPTIONAL = ("torch", "onnx", "onnxruntime", "mpi4py")
SKIP_EXIT = 77  # the driver's exit code for "an optional package is missing"
FENCE = re.compile(r"^```(\w*)\s*$")

# Runs the blocks of one page (JSON on stdin: [[path, first line, code], ...]).
DRIVER = r"""
import json, sys
blocks = json.load(sys.stdin)
namespace = {"__name__": "__main__"}
for path, line, code in blocks:
    try:
        exec(compile("\n" * (line - 1) + code, path, "exec"), namespace)
    except ModuleNotFoundError as e:
        if e.name in %r:
            print(f"skip: {path}:{line} needs {e.name}", file=sys.stderr)
            sys.exit(%d)
        raise
    except ImportError as e:
        if "mpi4py" in str(e):
            print(f"skip: {path}:{line} needs mpi4py: {e}", file=sys.stderr)
            sys.exit(%d)
        raise
""" % (OPTIONAL, SKIP_EXIT, SKIP_EXIT)


def python_blocks(text: str) -> List[Tuple[int, str]]:
    """(line of the block's first code line, code) of each ```python block."""
    blocks, lines = [], text.splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i].strip())
        if m:
            start = i + 1
            j = start
            while j < len(lines) and lines[j].strip() != "```":
                j += 1
            if j == len(lines):
                raise ValueError(f"line {i + 1}: a code block that is never closed")
            if m.group(1) == "python":
                blocks.append((start + 1, "\n".join(lines[start:j]) + "\n"))
            i = j + 1
        else:
            i += 1
    return blocks


def pages() -> List[Path]:
    found = sorted(DOCS.rglob("*.md")) + [ROOT / "README.md"]
    return [p for p in found if p.is_file() and python_blocks(p.read_text(encoding="utf-8"))]


if not DOCS.is_dir():
    pytest.skip("docs/ is not beside the tests", allow_module_level=True)


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_pages_code_runs(page, tmp_path):
    name = str(page.relative_to(ROOT))
    blocks = [[name, line, code] for line, code in python_blocks(page.read_text(encoding="utf-8"))]
    done = subprocess.run([sys.executable, "-c", DRIVER], input=json.dumps(blocks), capture_output=True,
                          text=True, cwd=tmp_path, env=child_env(), timeout=600)
    if done.returncode == SKIP_EXIT:
        pytest.skip(done.stderr.strip().splitlines()[-1])
    assert done.returncode == 0, f"{name}:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"


def test_blocks_are_found_with_their_lines():
    text = "# t\n\n```python\na = 1\n```\n\n```bash\nls\n```\n\n```python\nb = a\nprint(b)\n```\n"
    assert python_blocks(text) == [(4, "a = 1\n"), (12, "b = a\nprint(b)\n")]
    with pytest.raises(ValueError, match="never closed"):
        python_blocks("```python\nx\n")


def test_an_error_points_at_the_markdown_line(tmp_path):
    blocks = [["docs/x.md", 7, "x = 1\n"], ["docs/x.md", 12, "y = x\nraise ValueError('here')\n"]]
    done = subprocess.run([sys.executable, "-c", DRIVER], input=json.dumps(blocks), capture_output=True,
                          text=True, cwd=tmp_path, env=child_env())
    assert done.returncode == 1
    assert 'File "docs/x.md", line 13' in done.stderr and "ValueError: here" in done.stderr


def test_a_missing_optional_package_skips_and_another_fails(tmp_path):
    def run(code):
        return subprocess.run([sys.executable, "-c", DRIVER], input=json.dumps([["d.md", 1, code]]),
                              capture_output=True, text=True, cwd=tmp_path, env=child_env()).returncode
    missing = "raise ModuleNotFoundError('No module named x', name='%s')\n"
    assert run(missing % "onnx") == SKIP_EXIT
    assert run(missing % "not_an_optional_package") == 1
