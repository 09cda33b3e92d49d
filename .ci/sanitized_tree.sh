#!/usr/bin/env bash
# Puts the working tree's seqcore/ (Python files as they are now) beside the
# extension built with ASan+UBSan by .ci/sanitize.sh into build/sanitize-pkg,
# and prints that directory: the PYTHONPATH of sanitized runs. (The build's
# own target dir holds the Python files as they were when it was built.)
set -euo pipefail
cd "$(dirname "$0")/.."
SITE=${SANITIZE_SITE:-$PWD/build/sanitize-site}
PKG=$PWD/build/sanitize-pkg
rm -rf "$PKG"
mkdir -p "$PKG"
cp -r seqcore "$PKG/"
find "$PKG" -name __pycache__ -prune -exec rm -rf {} +
rm -f "$PKG"/seqcore/_core*.so
cp "$SITE"/seqcore/_core*.so "$PKG/seqcore/"
echo "$PKG"
