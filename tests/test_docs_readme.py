"""The README is the manual's front page: short (under 200 lines), its links
into docs/ relative and resolving in a clone (mkdocs build --strict checks
the links inside docs/, not the README's), and it names the one command that
builds the manual."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
LINK = re.compile(r"\]\(([^)\s]+)\)")

if not README.is_file():
    pytest.skip("README.md is not beside the tests", allow_module_level=True)


def relative_links(text):
    """The targets of the Markdown links that are not URLs nor anchors alone."""
    return [t.split("#", 1)[0] for t in LINK.findall(text) if not re.match(r"[a-z]+:|#", t)]


def test_the_readme_fits_a_screenful_or_few():
    assert len(README.read_text(encoding="utf-8").splitlines()) < 200


def test_every_relative_link_of_the_readme_resolves():
    links = relative_links(README.read_text(encoding="utf-8"))
    assert links, "the README links into docs/"
    missing = [t for t in links if not (ROOT / t).exists()]
    assert missing == []


def test_the_link_finder_sees_what_it_should():
    text = "[a](docs/a.md) [b](docs/b.md#x) [c](https://x.org) [d](#here) ![e](docs/e.png)"
    assert relative_links(text) == ["docs/a.md", "docs/b.md", "docs/e.png"]


def test_the_readme_names_the_docs_build():
    assert 'pip install ".[docs]" && mkdocs build --strict' in README.read_text(encoding="utf-8")
