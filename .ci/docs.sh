#!/usr/bin/env bash
# CI's docs job: the manual builds from this clone with no warning (broken
# links, missing references, docstrings griffe cannot parse, a missing
# performance record: mkdocs build --strict fails on each), and the README's
# headline table is the rendering of its record. Runs in the environment the
# README's commands made; the pages' code and the docstrings are checked by
# tests/test_docs_*.py in the README's test run. The docs extra's packages are
# installed by name from pyproject.toml (`pip install ".[docs]"` would build
# seqcore once more, for nothing: the build reads the sources statically).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)

python - <<'PY' > /tmp/seqcore-docs-requirements.txt
import tomllib
with open("pyproject.toml", "rb") as f:
    print("\n".join(tomllib.load(f)["project"]["optional-dependencies"]["docs"]))
PY
pip install -q -r /tmp/seqcore-docs-requirements.txt
installed=$(date +%s)

site=$(mktemp -d)
mkdocs build --strict --site-dir "$site"
[ -f "$site/index.html" ] && [ -f "$site/api/nn.html" ] || { echo "docs: the site lacks its pages"; exit 1; }
rm -rf "$site"
python tools/perf_tables.py readme --check
echo "docs: install $((installed - start)) s, strict build and README check $(( $(date +%s) - installed )) s"
