#!/bin/bash
# qemu_balloon.sh OUTDIR LINUXDIR [REPS] - the baseline for densevm's
# balloon figures: QEMU's virtio-balloon with the stock virtio_balloon
# driver of the same Debian cloud kernel, driven by QMP `balloon`.
#
# A 2 GiB guest (TCG here: this host has no hardware virtualization) first
# touches most of its RAM (a file in tmpfs, then deleted: the pages are
# free in the guest and resident on the host, as in a guest that has been
# running for a while), then is ballooned to 1 GiB and back, REPS times on
# fresh VMs.  Host-side costs, medians over the runs:
#   - time from the QMP command to query-balloon reporting the target;
#   - QEMU's CPU time (utime + stime from /proc/PID/stat) per GiB moved;
#   - QEMU's PSS drop (smaps_rollup) when inflated;
#   - madvise calls per GiB (strace -c on one extra cycle, so that tracing
#     does not distort the timed ones).
# Caveat, printed with the figures: under TCG the guest side (the driver
# allocating and listing pages) is emulated, so time and CPU include
# emulation; madvise calls and PSS are pure host-side facts.
#
# Initramfs: the image's own, plus a second archive (the kernel unpacks
# both) with virtio, virtio_ring, virtio_pci (+ its legacy/modern helpers)
# and virtio_balloon from the kernel package in LINUXDIR/deb and this
# script's init (rdinit=): the normal image stays as it is.
# Writes OUTDIR/qemu_balloon.json; prints markdown table rows.  Measures;
# asserts nothing.
set -u
out=$1; lin=$2; reps=${3:-3}
ram_mib=2048; target_mib=1024; fill_mib=1700
mkdir -p "$out"
log() { echo "qemu_balloon: $*" >&2; }
die() { log "$*"; exit 1; }
command -v qemu-system-x86_64 >/dev/null ||
	die "qemu-system-x86_64 missing (make bench installs qemu-system-x86)"
[ -s "$lin/vmlinuz" ] && [ -s "$lin/initramfs.cpio.gz" ] ||
	die "no $lin/vmlinuz or initramfs (make guest-linux)"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# ---------------------------------------------------------------- initramfs
debs=("$lin"/deb/linux-image-[0-9]*.deb)
[ -f "${debs[0]}" ] || die "no kernel package in $lin/deb (make guest-linux)"
ov=$work/ov
mkdir -p "$ov/lib/virtio" "$ov/bench"
dpkg-deb --fsys-tarfile "${debs[0]}" | tar -x -C "$work" --wildcards \
	'./lib/modules/*/kernel/drivers/virtio/virtio*.ko' ||
	die "could not extract the virtio modules from ${debs[0]}"
# load order = dependency order (modinfo: virtio needs virtio_ring, ...)
i=10
for m in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_balloon; do
	f=$(find "$work/lib/modules" -name "$m.ko" | head -n1)
	[ -n "$f" ] || die "$m.ko is not in ${debs[0]}"
	cp "$f" "$ov/lib/virtio/$i-$m.ko"
	i=$((i + 1))
done
cat >"$ov/bench/init" <<'EOF'
#!/bin/sh
# rdinit of the QEMU balloon baseline (written by bench/qemu_balloon.sh)
export PATH=/bin
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sysfs /sys
for ko in /lib/virtio/*.ko; do
	insmod "$ko" || echo "BENCH: FAILED to load $ko"
done
fill=$(sed -n 's/.*bench_fill_mib=\([0-9]*\).*/\1/p' /proc/cmdline)
mkdir -p /fill
mount -t tmpfs -o size=$((fill + 64))m tmpfs /fill
dd if=/dev/zero of=/fill/f bs=1M count="$fill" 2>/dev/null
rm -f /fill/f
echo "BENCH-READY $(grep MemAvailable /proc/meminfo | tr -s ' ')"
while :; do sleep 3600; done
EOF
chmod 755 "$ov/bench/init"
(cd "$ov" && find . -mindepth 1 | cpio -o -H newc -R 0:0 --quiet | gzip -1) >"$work/ov.cpio.gz"
cat "$lin/initramfs.cpio.gz" "$work/ov.cpio.gz" >"$work/initrd"

# --------------------------------------------------------------------- QMP
# QEMU runs as a coprocess with QMP on its stdin/stdout.
qmp_send() { echo "$1" >&"${QEMU[1]}"; }
# Reads until the reply to the last command (skipping events); prints it.
qmp_reply() {
	local line
	while read -r -t 30 -u "${QEMU[0]}" line; do
		case $line in
		*'"return"'*|*'"error"'*) echo "$line"; return 0 ;;
		esac
	done
	return 1
}
qmp() { qmp_send "$1" && qmp_reply; }
actual_mib() {
	local r
	r=$(qmp '{"execute":"query-balloon"}') || return 1
	r=${r#*\"actual\": }
	echo $(( ${r%%[!0-9]*} / 1048576 ))
}
now_ns() { date +%s%N; }
cpu_ticks() { awk '{print $14 + $15, $15}' "/proc/$1/stat"; }   # total sys
pss_kib() { awk '/^Pss:/ {print $2}' "/proc/$1/smaps_rollup"; }

# balloon_to MIB: sends the command, waits until the guest reports it;
# prints "ns" (or nothing on a timeout).
balloon_to() {
	local want=$1 t0 a i
	t0=$(now_ns)
	qmp "{\"execute\":\"balloon\",\"arguments\":{\"value\":$((want * 1048576))}}" >/dev/null || return 1
	for i in $(seq 30000); do	# 300 s
		a=$(actual_mib) || return 1
		if [ "$a" -eq "$want" ]; then
			echo $(( $(now_ns) - t0 ))
			return 0
		fi
		sleep 0.01
	done
	return 1
}

# strace_cycle PID MIB FILE: one balloon change under strace -c; prints
# the number of madvise calls.
strace_cycle() {
	local pid=$1 want=$2 f=$3 sp
	strace -f -c -e trace=madvise -p "$pid" -o "$f" 2>/dev/null &
	sp=$!
	sleep 1
	balloon_to "$want" >/dev/null
	kill -INT $sp 2>/dev/null
	wait $sp 2>/dev/null
	awk '$NF == "madvise" {print $4}' "$f"
}

runs=(); strace_ok=0; madv_in=""; madv_out=""
for r in $(seq "$reps"); do
	con=$work/console.$r
	coproc QEMU { exec qemu-system-x86_64 -accel tcg -m $ram_mib -smp 1 \
		-display none -serial "file:$con" -monitor none -nodefaults -no-reboot \
		-kernel "$lin/vmlinuz" -initrd "$work/initrd" \
		-append "console=ttyS0 panic=-1 rdinit=/bench/init bench_fill_mib=$fill_mib" \
		-device virtio-balloon-pci,id=balloon0 -qmp stdio 2>/dev/null; }
	pid=$QEMU_PID
	if ! read -r -t 30 -u "${QEMU[0]}" greeting ||
	   ! qmp '{"execute":"qmp_capabilities"}' >/dev/null; then
		log "run $r: no QMP from QEMU"
		kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
		continue
	fi
	for i in $(seq 1800); do
		grep -q BENCH-READY "$con" 2>/dev/null && break
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if ! grep -q BENCH-READY "$con" 2>/dev/null; then
		log "run $r: the guest did not get ready in 180 s; console:"
		tail -20 "$con" >&2
		kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
		continue
	fi
	sleep 2	# let the guest settle
	moved=$((ram_mib - target_mib))
	pss0=$(pss_kib "$pid"); read -r c0 s0 < <(cpu_ticks "$pid")
	tin=$(balloon_to $target_mib)
	read -r c1 s1 < <(cpu_ticks "$pid"); pss1=$(pss_kib "$pid")
	tout=$(balloon_to $ram_mib)
	read -r c2 s2 < <(cpu_ticks "$pid"); pss2=$(pss_kib "$pid")
	if [ -z "$tin" ] || [ -z "$tout" ]; then
		log "run $r: the balloon did not reach its target (inflate '${tin}' ns, deflate '${tout}' ns)"
		grep -E 'BENCH|virtio' "$con" | tail -5 >&2
	else
		hz=$(getconf CLK_TCK)
		# per GiB moved: seconds of CPU (user+sys, and sys alone)
		runs+=("$(awk -v tin="$tin" -v tout="$tout" -v mib="$moved" -v hz="$hz" \
			-v c0="$c0" -v c1="$c1" -v c2="$c2" -v s0="$s0" -v s1="$s1" -v s2="$s2" \
			-v p0="$pss0" -v p1="$pss1" -v p2="$pss2" 'BEGIN {
			gib = mib / 1024
			printf "%.3f %.3f %.3f %.3f %.3f %.3f %d %d\n", tin / 1e9, tout / 1e9,
				(c1 - c0) / hz / gib, (s1 - s0) / hz / gib,
				(c2 - c1) / hz / gib, (s2 - s1) / hz / gib,
				(p0 - p1) / 1024, (p2 - p1) / 1024 }')")
		log "run $r: inflate ${moved} MiB in $(awk -v t="$tin" 'BEGIN{printf "%.2f", t/1e9}') s, deflate in $(awk -v t="$tout" 'BEGIN{printf "%.2f", t/1e9}') s, PSS ${pss0} -> ${pss1} -> ${pss2} KiB"
		# one traced cycle, on the first VM that got this far
		if [ "$strace_ok" = 0 ] && command -v strace >/dev/null; then
			madv_in=$(strace_cycle "$pid" $target_mib "$work/strace.in")
			madv_out=$(strace_cycle "$pid" $ram_mib "$work/strace.out")
			[ -n "$madv_in" ] && strace_ok=1
			log "run $r: madvise calls: inflate ${madv_in:-?}, deflate ${madv_out:-?} (${moved} MiB each way)"
		fi
	fi
	kill "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
done
[ ${#runs[@]} -gt 0 ] || die "no run completed"

# medians, column by column
med() { printf '%s\n' "${runs[@]}" | awk -v c="$1" '{print $c}' | sort -g |
	awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
t_in=$(med 1); t_out=$(med 2); cpu_in=$(med 3); sys_in=$(med 4)
cpu_out=$(med 5); sys_out=$(med 6); pss_drop=$(med 7)
moved_gib=$(awk -v m=$((ram_mib - target_mib)) 'BEGIN {printf "%g", m / 1024}')
gbs() { awk -v t="$1" -v m=$((ram_mib - target_mib)) 'BEGIN {printf "%.3f", m / 1024 / t}'; }
# calls per GiB, or $2 when strace gave no count
per_gib() {
	if [ -n "$1" ]; then
		awk -v n="$1" -v m=$((ram_mib - target_mib)) 'BEGIN {printf "%d", n * 1024 / m}'
	else
		echo "$2"
	fi
}
ver=$(qemu-system-x86_64 --version | head -n1 | awk '{print $4}')
n=${#runs[@]}
pre="QEMU $ver virtio-balloon (TCG), ${ram_mib} MiB guest, ${moved_gib} GiB"
echo "| $pre inflate: QMP balloon to target reached (p50 of $n) | $t_in s ($(gbs "$t_in") GiB/s) |"
echo "| $pre deflate: QMP balloon to target reached (p50 of $n) | $t_out s ($(gbs "$t_out") GiB/s) |"
echo "| $pre inflate: QEMU CPU per GiB (user+sys; sys) | $cpu_in s; $sys_in s |"
echo "| $pre deflate: QEMU CPU per GiB (user+sys; sys) | $cpu_out s; $sys_out s |"
echo "| $pre inflate: QEMU PSS drop | $pss_drop MiB |"
echo "| $pre: madvise calls per GiB (inflate; deflate) | $(per_gib "$madv_in" n/a); $(per_gib "$madv_out" n/a) |"
echo "| caveat | under TCG the guest driver is emulated: times and CPU include that emulation; madvise calls and PSS are host-side facts. Literature: 7 GB in ~4.1 s (~1.7 GB/s) on hardware |"

{
	printf '{"qemu_version": "%s", "accel": "tcg", "guest_mib": %d, "target_mib": %d, "moved_mib": %d, "prefill_mib": %d, "runs": %d,\n' \
		"$ver" $ram_mib $target_mib $((ram_mib - target_mib)) $fill_mib "$n"
	printf ' "inflate_s": %s, "inflate_gib_per_s": %s, "deflate_s": %s, "deflate_gib_per_s": %s,\n' \
		"$t_in" "$(gbs "$t_in")" "$t_out" "$(gbs "$t_out")"
	printf ' "inflate_cpu_s_per_gib": %s, "inflate_sys_s_per_gib": %s, "deflate_cpu_s_per_gib": %s, "deflate_sys_s_per_gib": %s,\n' \
		"$cpu_in" "$sys_in" "$cpu_out" "$sys_out"
	printf ' "inflate_pss_drop_mib": %s, "madvise_per_gib_inflate": %s, "madvise_per_gib_deflate": %s,\n' \
		"$pss_drop" "$(per_gib "$madv_in" null)" "$(per_gib "$madv_out" null)"
	printf ' "per_run": [%s],\n' "$(printf '%s\n' "${runs[@]}" | awk '{printf "%s{\"inflate_s\": %s, \"deflate_s\": %s, \"inflate_cpu_s_per_gib\": %s, \"inflate_sys_s_per_gib\": %s, \"deflate_cpu_s_per_gib\": %s, \"deflate_sys_s_per_gib\": %s, \"inflate_pss_drop_mib\": %s, \"deflate_pss_regain_mib\": %s}", (NR > 1 ? ", " : ""), $1, $2, $3, $4, $5, $6, $7, $8}')"
	printf ' "caveat": "TCG: the guest side is emulated; compare host-side costs (madvise calls, CPU per GiB, PSS)"}\n'
} >"$out/qemu_balloon.json"
