#!/bin/bash
# qemu_mem.sh OUTDIR LINUXDIR [REPS] - the baseline for hv-core's per-VM
# host memory: QEMU (TCG here; this host has no hardware virtualization)
# booting the same Debian cloud kernel and initramfs as our Linux guests
# to its ready marker, idle, 512 MiB.  Reports QEMU's PSS outside guest RAM
# and outside its TCG translation cache (the two mappings the guest's size
# and TCG decide), median over REPS runs.  Measures; asserts nothing.
set -u
out=$1; lin=$2; reps=${3:-3}
mkdir -p "$out"
if ! command -v qemu-system-x86_64 >/dev/null; then
	echo "qemu_mem: qemu-system-x86_64 missing (make bench installs qemu-system-x86)" >&2
	exit 1
fi
vals=()
for r in $(seq "$reps"); do
	log=$(mktemp)
	qemu-system-x86_64 -accel tcg -m 512 -smp 1 -display none -serial "file:$log" \
		-monitor none -nodefaults -no-reboot \
		-kernel "$lin/vmlinuz" -initrd "$lin/initramfs.cpio.gz" \
		-append "console=ttyS0 panic=-1" &
	pid=$!
	for i in $(seq 600); do
		grep -q DENSEVM-LINUX-READY "$log" 2>/dev/null && break
		sleep 0.1
	done
	sleep 2
	if ! grep -q DENSEVM-LINUX-READY "$log"; then
		echo "qemu_mem: run $r: QEMU did not reach the ready marker in 60 s" >&2
		kill $pid; wait $pid 2>/dev/null; rm -f "$log"; continue
	fi
	# mappings: header lines start with an address range; Size/Pss follow.
	# Guest RAM is the mapping of at least 512 MiB; the TCG code buffer is
	# the rwx one.  Everything else is QEMU's own.
	kb=$(awk '
		/^[0-9a-f]+-[0-9a-f]+ / { flush(); perms=$2; size=0; pss=0; next }
		/^Size:/ { size=$2 } /^Pss:/ { pss=$2 }
		function flush() { if (size < 524288 && perms !~ /rwx/) total += pss }
		END { flush(); print total }' /proc/$pid/smaps)
	vals+=("$kb")
	echo "qemu_mem: run $r: $((kb / 1024)) MiB outside guest RAM and TCG cache" >&2
	kill $pid; wait $pid 2>/dev/null; rm -f "$log"
done
[ ${#vals[@]} -gt 0 ] || exit 1
med=$(printf '%s\n' "${vals[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
echo "| QEMU $(qemu-system-x86_64 --version | head -1 | awk '{print $4}') (TCG), idle 512 MiB Linux guest: host memory outside guest RAM and TCG cache (PSS) | $((med / 1024)) MiB |"
printf '{"qemu_outside_ram_kib": %s, "runs": %d}\n' "$med" "${#vals[@]}" > "$out/qemu_mem.json"
