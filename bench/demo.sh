#!/bin/bash
# demo.sh DENSEVM - the main job for now (`make demo`): a dense
# consolidation run of bench/demo.conf.  It prints, every 2 s, what the
# guests use and what sharing and ballooning take back; half way it
# balloons two guests; at the end it runs the self-check and stops the run.
# Progress goes to the terminal; the last `densevm stat` lands in
# build/results/demo-stat.json.
set -u
densevm=$1
sock=/tmp/densevm-demo-$$.sock
out=build/results; mkdir -p "$out"
log=$(mktemp)
"$densevm" run --quiet --ctl "$sock" --config bench/demo.conf >"$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; rm -f "$log"' EXIT
for i in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done
[ -S "$sock" ] || { echo "demo: densevm did not start:"; cat "$log"; exit 1; }

mib() { echo $(( ${1:-0} / 1048576 )); }
# (process PSS would miss the base memfd's pages: shared/README.md)
printf '%5s  %10s  %11s  %12s  %10s  %12s\n' time guest-RAM ksm-saved shared-pages zero-pages ballooned
for t in $(seq 2 2 30); do
	sleep 2
	s=$("$densevm" stat --raw --socket "$sock" 2>/dev/null) || break
	ram=$(jq '[.vms[].mem_bytes] | add' <<<"$s")
	saved=$(jq '.ksm.global.bytes_saved // 0' <<<"$s")
	shared=$(jq '.ksm.global.pages_sharing // 0' <<<"$s")
	zero=$(jq '.ksm.global.zero_pages // 0' <<<"$s")
	bal=$(jq '[.vms[].pages.ballooned] | add' <<<"$s")
	printf '%4ss  %7s MiB  %8s MiB  %12s  %10s  %8s MiB\n' "$t" "$(mib "$ram")" \
		"$(mib "$saved")" "$shared" "$zero" $((bal * 4 / 1024))
	if [ "$t" = 16 ]; then
		echo "demo: balloon db0 and db1 by 64 MiB each"
		"$densevm" ctl --socket "$sock" --raw balloon db0 64M >/dev/null
		"$densevm" ctl --socket "$sock" --raw balloon db1 64M >/dev/null
	fi
done
if "$densevm" stat --socket "$sock" --check >"$out/demo-stat.json"; then
	echo "demo: self-check ok (refcounts match the page-state maps); stat in $out/demo-stat.json"
else
	echo "demo: self-check FAILED"; exit 1
fi
kill -INT $pid; wait $pid
grep -E "^densevm: (web|db)" "$log"
! grep -q MISMATCH "$log"
