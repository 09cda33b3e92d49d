#!/usr/bin/env bash
# CI: the extension built with AddressSanitizer + UndefinedBehaviorSanitizer
# (CMake option SEQCORE_SANITIZE) runs the kernel tests with no report
# allowed, then LeakSanitizer checks that repeated calls leak nothing.
#
# The sanitized build goes to its own build dir and target dir; the in-tree
# seqcore/_core*.so is never touched. Tests import the sanitized package from
# the target dir, from a working directory outside the source tree.
#
#   .ci/sanitize.sh            build (incremental) + kernel tests + leak check
#   SANITIZE_TESTS="tests/test_gemm.py" .ci/sanitize.sh   other test files
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD_DIR=${SANITIZE_BUILD_DIR:-build/sanitize}
SITE=${SANITIZE_SITE:-$ROOT/build/sanitize-site}
TESTS=${SANITIZE_TESTS:-"tests/test_native_cells.py tests/test_gemm.py tests/test_activations.py tests/test_stepper.py \
tests/test_ops_arguments.py tests/test_padded_batches.py tests/test_bad_input.py tests/test_concurrency.py \
tests/test_properties.py tests/test_numerical_robustness.py tests/test_optim.py"}
t_start=$(date +%s)
stamp() { echo "[sanitize] $1: $(( $(date +%s) - t_start )) s"; }

# --- build -------------------------------------------------------------------
# Built in this environment (no build isolation, so that the build dir is
# reused): the build requirements of pyproject.toml, where they are missing.
python -c "import scikit_build_core, pybind11, cmake, ninja" 2>/dev/null \
  || pip install -q "scikit-build-core>=0.10" "pybind11>=2.12" cmake ninja
# Only the instruction sets this CPU runs are built (CMake's SEQCORE_ISAS): the
# others' kernels could not run here, and building them took half the time.
flags=" $(grep -m1 '^flags' /proc/cpuinfo 2> /dev/null || true) "
has() { for f in "$@"; do [[ "$flags" == *" $f "* ]] || return 1; done; }
isas="scalar"
if has avx2 fma; then isas+=";avx2"; fi
if has avx2 fma avx_vnni; then isas+=";avx2_vnni"; fi
if has avx2 fma avx512f avx512dq avx512bw avx512vl; then isas+=";avx512"; fi
if has avx2 fma avx512f avx512dq avx512bw avx512vl avx512_vnni; then isas+=";avx512_vnni"; fi
if has avx2 fma avx512f avx512dq avx512bw avx512vl avx512_vnni avx512_bf16; then isas+=";avx512_bf16"; fi
if has avx2 fma avx512f avx512dq avx512bw avx512vl avx512_vnni avx512_bf16 amx_tile amx_bf16 amx_int8; then
  isas+=";amx_bf16"
fi
echo "[sanitize] building the instruction sets $isas"
# -O1 -g: line numbers in the reports and a shorter build; no -DNDEBUG, so
# that pybind11 also checks that the GIL is held at every reference count change.
pip install . --no-build-isolation --no-deps -q -Cbuild-dir="$BUILD_DIR" \
    -Ccmake.define.SEQCORE_SANITIZE=ON -Ccmake.build-type=RelWithDebInfo \
    -Ccmake.define.SEQCORE_ISAS="$isas" \
    -Ccmake.define.CMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" \
    --target "$SITE" --upgrade
stamp "build"

# The interpreter is not instrumented: the ASan runtime must be loaded first.
LIBASAN=$(g++ -print-file-name=libasan.so)
LIBUBSAN=$(g++ -print-file-name=libubsan.so)
# Only the interpreter gets the runtimes: the shell's tools would report their own leaks.
sanitized() { LD_PRELOAD="$LIBASAN $LIBUBSAN" "$@"; }
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
export PYTHONPATH="$(.ci/sanitized_tree.sh)"
export OMP_NUM_THREADS=2
# Hypothesis' examples database would be written next to the tests.
export HYPOTHESIS_STORAGE_DIRECTORY=/tmp/seqcore-sanitize-hypothesis

# The package under test must be the sanitized one.
( cd / && ASAN_OPTIONS=detect_leaks=0 sanitized python -c "
import seqcore, sys
assert seqcore.__file__.startswith('$PYTHONPATH'), seqcore.__file__
isas = seqcore.info()['isas']
assert isas[0] == 'scalar' and set(isas) <= set('$isas'.split(';')), (isas, '$isas')
print('[sanitize] testing', seqcore.__file__, seqcore.info()['isa'], 'of', isas)" )

# --- kernel tests: any ASan or UBSan report aborts the run ---------------------
# (leaks are checked below, where the interpreter's own allocations are not
# mistaken for the extension's; allocator_may_return_null: a size too large to
# allocate is a MemoryError, as without ASan, not an ASan abort)
log=$(mktemp)
set +e
( cd / && ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=1:detect_stack_use_after_return=1:allocator_may_return_null=1" \
  sanitized python -m pytest -q -p no:cacheprovider --rootdir="$ROOT" -c /dev/null \
  $(for t in $TESTS; do echo "$ROOT/$t"; done) 2>&1 ) | tee "$log"
rc=${PIPESTATUS[0]}
set -e
if grep -q -E "ERROR: AddressSanitizer|runtime error:|SUMMARY: UndefinedBehaviorSanitizer" "$log"; then
  echo "[sanitize] FAILED: a sanitizer report is in the log above"; exit 1
fi
[ "$rc" -eq 0 ] || { echo "[sanitize] FAILED: the kernel tests failed (exit $rc)"; exit "$rc"; }
stamp "kernel tests under ASan+UBSan"

# --- leaks over repeated calls -------------------------------------------------
# The same calls run N times and 10·N times: a leak in the extension grows
# with the calls; what the interpreter keeps until exit does not.
leak_bytes() {
  ( cd / && ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:allocator_may_return_null=1" LSAN_OPTIONS="exitcode=0" \
    sanitized python "$ROOT/fuzz/repeated_calls.py" "$1" 2>&1 ) | tee "$log.leaks$1" \
    | sed -n "s/^SUMMARY: AddressSanitizer: \([0-9]*\) byte.*/\1/p" | sort -n | tail -1
}
few=$(leak_bytes 20); few=${few:-0}
many=$(leak_bytes 200); many=${many:-0}
echo "[sanitize] LeakSanitizer: ${few} bytes unreachable at exit after 20 rounds, ${many} after 200"
if grep -q -E "seqcore/_core|csrc/" "$log.leaks200"; then
  grep -B3 -A20 -E "seqcore/_core|csrc/" "$log.leaks200" | head -60
  echo "[sanitize] FAILED: memory allocated by the extension is leaked"; exit 1
fi
if [ "$many" -gt "$few" ]; then
  echo "[sanitize] FAILED: unreachable memory grows with the number of calls"; exit 1
fi
stamp "leak check"
echo "[sanitize] OK: no ASan/UBSan report, no leak growing with the calls"
