#!/usr/bin/env bash
# CI's wheel job: a change that breaks the distribution does not land.
#   1. vermin: nothing in the Python code needs more than Python 3.9;
#   2. tools/build_wheel.sh: sdist, wheel built from it, auditwheel repair
#      (libgomp vendored) and `auditwheel show`;
#   3. a fresh venv with the repaired wheel: mypy's stubtest checks the type
#      stubs against the extension, and tests/test_wheel.py installs the wheel
#      into another fresh venv with no compiler on PATH (binaries only), runs
#      tools/smoke_wheel.py under each SEQCORE_ISA the CPU has and with torch
#      imported first (and, where qemu-user is installed, on emulated
#      Nehalem and Haswell CPUs: no AVX, no AVX-512), and builds and installs
#      the sdist alone in a third fresh venv, with the oldest Python found
#      (3.9 when there is one).
# Prints the time of each step. About 3 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
start=$SECONDS
last=$SECONDS
timings=()
step() {  # step NAME: closes the previous step's timing
  timings+=("$(printf '%-44s %4d s' "$1" $((SECONDS - last)))")
  last=$SECONDS
}

# The interpreter that builds the sdist: the oldest supported one there is
# (on PATH, or installed by pyenv), else python3.
sdist_python=python3
pyenv_versions=$(pyenv root 2> /dev/null || echo /nonexistent)/versions
for candidate in python3.9 "$pyenv_versions"/3.9*/bin/python3.9 python3.10 "$pyenv_versions"/3.10*/bin/python3.10; do
  if "$candidate" -c 'import venv, ensurepip' 2> /dev/null; then
    sdist_python=$(command -v "$candidate")
    break
  fi
done

# The checking tools, and (after the build) the repaired wheel, in one venv.
python3 -m venv "$work/check"
"$work/check/bin/pip" install -q "vermin>=1.6" "mypy>=1.10" "pytest>=7"
step "tools venv (vermin, mypy, pytest)"

"$work/check/bin/vermin" --target=3.9- --no-tips --violations seqcore tests examples bench tools
step "vermin --target=3.9-"

tools/build_wheel.sh "$work/dist"
wheel=$(ls "$work"/dist/seqcore-*manylinux*.whl)
step "tools/build_wheel.sh (sdist, wheel, repair)"

"$work/check/bin/pip" install -q --only-binary=:all: "$wheel"
(cd "$work" && "$work/check/bin/python" -m mypy.stubtest seqcore._core --allowlist "$repo/.ci/stubtest_allowlist.txt")
step "install wheel, mypy.stubtest seqcore._core"

# pytest (the script, not `python -m`) keeps the source tree off sys.path:
# the tests import the installed wheel.
SEQCORE_WHEEL=$wheel SEQCORE_WHEEL_TORCH="torch==2.13.0+cpu" SEQCORE_SDIST_PYTHON=$sdist_python \
  "$work/check/bin/pytest" -q -p no:cacheprovider "$repo/tests/test_wheel.py" -rs --durations=0
step "tests/test_wheel.py (sdist with $sdist_python)"

echo
echo "wheel job timings:"
printf '  %s\n' "${timings[@]}"
printf '  %-44s %4d s\n' "total" $((SECONDS - start))
