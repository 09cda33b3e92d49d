"""The manual builds with no warning (`mkdocs build --strict`: broken links,
missing references, docstrings griffe cannot parse, a missing performance
record), where the docs extra is installed; CI builds it in .ci/docs.sh,
after the tests, in any case."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_the_manual_builds_strictly(tmp_path):
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings_handlers.python")
    if not (ROOT / "mkdocs.yml").is_file():
        pytest.skip("mkdocs.yml is not beside the tests")
    site = tmp_path / "site"
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    for page in ("index.html", "api/nn.html", "performance/index.html", "contributing/architecture.html"):
        assert (site / page).is_file(), page
    assert "<table>" in (site / "performance" / "index.html").read_text(encoding="utf-8")
    shutil.rmtree(site)


def test_placeholders_in_docstrings_are_shown_not_taken_for_html():
    pytest.importorskip("griffe")
    import importlib.util
    spec = importlib.util.spec_from_file_location("griffe_plain_text", ROOT / "docs" / "griffe_plain_text.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = 'ids of "<pad>", "<slot>.<param>" arrays; ``<eos>`` and `<unk>` as code; a < b > c'
    assert module.plain(text) == ('ids of "&lt;pad&gt;", "&lt;slot&gt;.&lt;param&gt;" arrays; ``<eos>`` and '
                                  '`<unk>` as code; a < b > c')
    assert module.plain("ids[b*S : (b+1)*S], a * b, ``x*y``, **kwargs") == \
        "ids[b\\*S : (b+1)\\*S], a * b, ``x*y``, **kwargs"
