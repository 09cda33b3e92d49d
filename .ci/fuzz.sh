#!/usr/bin/env bash
# CI: a bounded fuzzing run of the binding boundary (fuzz/fuzz_core.py, atheris).
#
#   .ci/fuzz.sh                 60 s
#   FUZZ_SECONDS=600 .ci/fuzz.sh   the longer run
#
# Coverage-guided against the in-tree extension, then (when .ci/sanitize.sh
# has built it: run that first) against the extension built with ASan+UBSan. The seed corpus is made by fuzz_core.py --make-corpus; what the
# fuzzer adds to it stays in build/fuzz-corpus between runs. A crash, a hang
# (-timeout), a sanitizer report or an exception other than TypeError /
# ValueError / MemoryError fails the run; the input that did it is written to
# build/fuzz-artifacts/ and replays with `python fuzz/fuzz_core.py FILE`.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SECONDS_LIMIT=${FUZZ_SECONDS:-60}
SITE=${SANITIZE_SITE:-$ROOT/build/sanitize-site}
CORPUS=$ROOT/build/fuzz-corpus
ARTIFACTS=$ROOT/build/fuzz-artifacts
t_start=$(date +%s)

# atheris has binary wheels for CPython 3.8-3.12 on manylinux x86_64: no compiler needed.
python -c "import atheris" 2>/dev/null || pip install -q --only-binary :all: "atheris>=2.3"

export OMP_NUM_THREADS=2
mkdir -p "$CORPUS" "$ARTIFACTS"
# seqcore as a developer's tree has it (the extension built in-tree), else
# (CI) the installed package
if compgen -G "$ROOT/seqcore/_core*.so" > /dev/null; then
  TREE=$ROOT; TREE_LABEL="the in-tree extension"
else
  TREE=""; TREE_LABEL="the installed seqcore"
fi
( cd / && PYTHONPATH="$TREE" python "$ROOT/fuzz/fuzz_core.py" --make-corpus "$CORPUS" )

# fuzz LABEL SECONDS: one libFuzzer run over the corpus with the environment set.
failed=0
fuzz() {
  local log; log=$(mktemp)
  echo "[fuzz] $2 s against $1"
  set +e
  ( cd / && python "$ROOT/fuzz/fuzz_core.py" -max_total_time="$2" -timeout=30 -rss_limit_mb=6144 \
      -artifact_prefix="$ARTIFACTS/" -print_final_stats=1 "$CORPUS" ) >"$log" 2>&1
  local rc=$?
  set -e
  grep -v -E "^INFO: Instrumenting|^#[0-9]+.*(NEW|REDUCE|pulse)" "$log" | tail -25
  echo "[fuzz] $1: $(grep -E -o "cov: [0-9]+" "$log" | tail -1 || true)," \
       "$(sed -n 's/^stat::number_of_executed_units: *//p' "$log") executions, exit $rc"
  [ "$rc" -eq 0 ] || failed=1
}

# 1. Coverage-guided, against the in-tree extension: atheris sees which
#    paths of seqcore's Python each input takes and grows the corpus. (With
#    GCC's ASan runtime preloaded, its stub coverage hooks shadow libFuzzer's,
#    so a sanitized run is blind.)
# 2. Against the ASan+UBSan build when .ci/sanitize.sh has made it: the whole
#    corpus replayed, then mutated for the rest of the time.
if [ -d "$SITE/seqcore" ]; then
  guided=$(( SECONDS_LIMIT * 2 / 3 ))
else
  guided=$SECONDS_LIMIT
fi
PYTHONPATH="$TREE" fuzz "$TREE_LABEL (coverage-guided)" "$guided"
if [ -d "$SITE/seqcore" ]; then
  PYTHONPATH="$(.ci/sanitized_tree.sh)" \
  LD_PRELOAD="$(g++ -print-file-name=libasan.so) $(g++ -print-file-name=libubsan.so)" \
  ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=1:allocator_may_return_null=1" \
  UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1" \
    fuzz "the ASan+UBSan build" $(( SECONDS_LIMIT - guided ))
fi
echo "[fuzz] $(( $(date +%s) - t_start )) s in all"
if [ "$failed" -ne 0 ]; then
  echo "[fuzz] FAILED: see the report above; the input is in $ARTIFACTS/"; exit 1
fi
echo "[fuzz] OK: no crash, hang, sanitizer report or unexpected exception"
