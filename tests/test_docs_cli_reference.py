"""docs/guide/cli.md is what seqcore's own parser prints (tools/cli_reference.py
made it): a changed option, default or help text changes the page, or this
test fails. argparse's layout differs between Python versions, so the
comparison runs on the version named in the page."""

import importlib.util
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tools" / "cli_reference.py"
PAGE = ROOT / "docs" / "guide" / "cli.md"

if not SCRIPT.is_file() or not PAGE.is_file():
    pytest.skip("tools/cli_reference.py or docs/guide/cli.md is not beside the tests", allow_module_level=True)


def test_the_cli_reference_is_the_parsers_help(monkeypatch):
    text = PAGE.read_text(encoding="utf-8")
    made_with = re.search(r"Python (\d+)\.(\d+)'s argparse", text)
    assert made_with, "the page names the Python that made it"
    if tuple(map(int, made_with.groups())) != sys.version_info[:2]:
        pytest.skip(f"the page was made with Python {'.'.join(made_with.groups())}'s argparse")
    spec = importlib.util.spec_from_file_location("cli_reference", SCRIPT)
    cli_reference = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli_reference)
    monkeypatch.setenv("COLUMNS", "80")  # the script sets its own width
    assert cli_reference.reference() == text, "run: python tools/cli_reference.py"
    for command in ("train", "sample", "eval", "export", "info", "bench"):
        assert f"\n## seqcore {command}\n" in text
