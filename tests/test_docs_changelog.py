"""tools/changelog.py: the manual's changelog is the commits' subjects, newest
first, by day, with Markdown's own characters escaped."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tools" / "changelog.py"
if not SCRIPT.is_file():
    pytest.skip("tools/changelog.py is not beside the tests", allow_module_level=True)


def test_the_changelog_is_made_from_the_log_with_markdown_escaped():
    spec = importlib.util.spec_from_file_location("changelog", SCRIPT)
    changelog = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(changelog)
    log = ("abc1234\t2026-12-06\tnn/: a *fast* `x_y` <b> [link]\n"
           "def5678\t2026-12-06\tsame day\n0123abc\t2026-12-05\t" + "word " * 60 + "\n")
    page = changelog.changelog(log, "abc1234")
    assert "## 2026-12-06\n\n- abc1234: nn/: a \\*fast\\* `x_y` &lt;b&gt; \\[link]\n- def5678: same day\n" in page
    last = page.splitlines()[-1]
    assert last.startswith("- 0123abc: word word") and last.endswith(" …") and len(last) < 240
    assert "at commit abc1234" in page
