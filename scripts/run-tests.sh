#!/bin/bash
# Runs test programs one after another and sums up: each is a cmocka
# program (or a script) whose exit status is its verdict.  Prints each
# program's time ("--- NAME: S s") and a final "N passed, N failed, N
# skipped" line (programs, not cases; cmocka prints the per-case lines
# itself), and exits nonzero if any failed.
set -o pipefail
kind=$1; shift
pass=0; fail=0; skip=0; failed=""
for t in "$@"; do
	echo "=== $kind: $(basename "$t")"
	out=$(mktemp)
	t0=$(date +%s.%N)
	"$t" 2>&1 | tee "$out"
	rc=$?
	awk -v s="$t0" -v e="$(date +%s.%N)" -v n="$(basename "$t")" \
		'BEGIN { printf "--- %s: %.1f s\n", n, e - s }'
	# cmocka's own summary line: " N SKIPPED TEST(S)"
	s=$(sed -n 's/^ \([0-9]*\) SKIPPED TEST.*/\1/p' "$out" | head -1)
	s=${s:-0}
	rm -f "$out"
	if [ "$rc" -eq 0 ]; then pass=$((pass+1)); else fail=$((fail+1)); failed="$failed $(basename "$t")"; fi
	skip=$((skip+s))
done
echo "$kind: $pass passed, $fail failed, $skip skipped"
[ -n "$failed" ] && echo "$kind: failed:$failed"
[ "$fail" -eq 0 ]
