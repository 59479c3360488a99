#!/bin/bash
# wss_cost.sh OUTDIR [REPS] - what the policy's working-set sampling costs
# a writing guest: 4 micro guests of 256 MiB rewriting 96 MiB at 1000 %/s
# (`dirty`) for 20 s through `densevm run`, in three arms alternating in
# every repetition: no [policy] (no dirty logging), [policy] reading the
# dirty log every second (wss_sample_ms = 1000), and at its default (once
# per 10 s window).  Each read write-protects every page it reports, so the
# guest faults again on its next write to each.  Prints each run's summed
# achieved rate (the guests' own `dirty: done rate=`) and the medians, and
# writes OUTDIR/wss_cost.csv.  Measures; asserts nothing.
set -u
out=$1; reps=${2:-3}
here=$(cd "$(dirname "$0")/../build" && pwd)
mkdir -p "$out"
csv=$out/wss_cost.csv
echo "arm,rep,rate_pct_per_s" > "$csv"
for r in $(seq "$reps"); do
	for arm in off tick window; do
		c=$out/wss-$arm-$r.conf
		case $arm in
		off) : > "$c" ;;
		tick) printf '[policy]\nhost_budget = 64G\nwss_sample_ms = 1000\n' > "$c" ;;
		window) printf '[policy]\nhost_budget = 64G\n' > "$c" ;;
		esac
		printf '[vm busy]\ncount = 4\nmem = 256M\nworkload = dirty mib=96 rate=1000 seconds=20\n' >> "$c"
		"$here/densevm" run --config "$c" --guest "$here/guest/microguest.elf" \
			--timeout 120 > "$out/wss-$arm-$r.out" 2>&1
		rate=$(sed -n 's/.*dirty: done.* rate=\([0-9.]*\)%.*mismatches=0.*/\1/p' \
			"$out/wss-$arm-$r.out" | awk '{s += $1} END {printf "%.1f", s}')
		echo "$arm,$r,$rate" >> "$csv"
		echo "wss_cost: $arm rep $r: $rate %/s (4 VMs, 4000 asked)"
	done
done
for arm in off tick window; do
	grep "^$arm," "$csv" | cut -d, -f3 | sort -n |
		awk -v a="$arm" '{v[NR] = $1} END {m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2;
			printf "wss_cost: %s median %.1f %%/s\n", a, m}'
done
