#!/usr/bin/env bash
# The newcomer's path after the README's two commands, in the repository's
# root where they ran: `seqcore train` a second time is refused (exit 2, a
# message naming --out and --resume) and leaves the first run's files as they
# were; then `seqcore sample` and `seqcore eval` work on the run it made.
# (A CI step, not a pytest test: it follows pytest, it does not run inside it.)
set -euo pipefail
cd "$(dirname "$0")/.."
run=seqcore-run
[ -f "$run/run.json" ] || { echo "newcomer: $run/run.json missing: did the README's seqcore train run here?"; exit 1; }

fingerprint() { find "$run" -type f -print0 | sort -z | xargs -0 sha256sum; }
before=$(fingerprint)

set +e
err=$(seqcore train 2>&1 >/dev/null)
rc=$?
set -e
message=$(printf '%s\n' "$err" | grep "^seqcore train: error: " || true)  # not the usage lines
echo "newcomer: seqcore train again: exit $rc: $message"
[ "$rc" -eq 2 ] || { echo "newcomer: expected exit 2"; exit 1; }
for word in --out --resume "$run"; do
  [[ "$message" == *"$word"* ]] || { echo "newcomer: the refusal does not name $word"; exit 1; }
done
[ "$(fingerprint)" == "$before" ] || { echo "newcomer: the refused second train changed $run"; exit 1; }

sampled=$(seqcore sample "$run" --length 200 --seed 1)
echo "newcomer: seqcore sample: ${#sampled} characters"
[ "${#sampled}" -ge 100 ] || { echo "newcomer: the sample is too short"; exit 1; }

# a module of the standard library (its sources are the default corpus; past its first ~2 MB on 3.11)
held_out=$(python -c 'import textwrap; print(textwrap.__file__)')
seqcore eval "$run" "$held_out"
echo "newcomer: passed"
