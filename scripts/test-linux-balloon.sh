#!/bin/bash
# scripts/test-linux-balloon.sh DENSEVM LINUXDIR - the balloon part of
# `make test-linux`: HOSTS WITH HARDWARE VIRTUALIZATION ONLY (VT-x/AMD-V;
# scripts/test-linux.sh calls it and refuses to run on nested software
# KVM, where Linux guests never reach userspace).
#
# Boots the Debian cloud kernel with the image's initramfs, where init
# loads densevm_balloon.ko (found through densevm's CPUID leaf) and runs
# its densevm.test=balloon steps (guest/linux/init): inflate by 64 MiB and
# check that MemAvailable dropped, deflate and check it came back, ask for
# all of RAM and check the balloon stops at its floor and gives way to a
# guest that needs 40% of RAM without an OOM kill, then rmmod.  The guest
# judges each step; this side only relays its "DENSEVM-BALLOON-SET SIZE"
# requests as `densevm ctl balloon VM SIZE` and reads the verdict line.
# DENSEVM_TEST_LINUX_VM_KEYS adds keys to the VM spec (e.g. balloon
# options, should the CLI need any).
#
# Prints "test-linux-balloon: N passed, N failed"; exits nonzero on failure.
set -u
densevm=$1; dir=$2
name=linux
extra=${DENSEVM_TEST_LINUX_VM_KEYS:-}
limit=600
cmdline="console=ttyS0,115200 acpi=off pci=off tsc=reliable panic=-1 densevm.test=balloon"
sock=$(mktemp -u /tmp/densevm-test-linux.XXXXXX.sock)
log=$(mktemp)

"$densevm" run --ctl "$sock" --timeout $((limit + 60)) \
	--vm "name=$name,kind=linux,mem=512M,kernel=$dir/vmlinuz,initrd=$dir/initramfs.cpio.gz,cmdline=\"$cmdline\"${extra:+,$extra}" \
	>"$log" 2>&1 &
pid=$!

relayed=0; result=""; t0=$SECONDS
while :; do
	# every SET line once, in order
	mapfile -t sets < <(sed -n 's/.*DENSEVM-BALLOON-SET \([0-9][0-9]*[KMG]\).*/\1/p' "$log")
	while [ "$relayed" -lt "${#sets[@]}" ]; do
		size=${sets[$relayed]}
		relayed=$((relayed + 1))
		echo "test-linux-balloon: densevm ctl balloon $name $size"
		"$densevm" ctl --socket "$sock" balloon "$name" "$size" ||
			echo "test-linux-balloon: densevm ctl balloon $name $size failed" >&2
	done
	result=$(sed -n 's/.*\(DENSEVM-BALLOON-TEST .*\)/\1/p' "$log" | head -n1)
	[ -n "$result" ] && break
	kill -0 $pid 2>/dev/null || break
	[ $((SECONDS - t0)) -lt $limit ] || break
	sleep 0.2
done
[ -n "$result" ] && "$densevm" ctl --socket "$sock" stat 2>&1 | head -40
kill $pid 2>/dev/null
wait $pid 2>/dev/null

grep -E 'DENSEVM-BALLOON|densevm_balloon|balloon check failed' "$log" | sed 's/^/    /'
case $result in
"DENSEVM-BALLOON-TEST PASS")
	echo "test-linux-balloon: 1 passed, 0 failed (inflate 64 MiB, MemAvailable dropped, deflate, floor, pressure, rmmod)"
	rm -f "$log"
	exit 0 ;;
"")
	echo "test-linux-balloon: 0 passed, 1 failed: no verdict after $((SECONDS - t0)) s; console:" >&2 ;;
*)
	echo "test-linux-balloon: 0 passed, 1 failed: $result; console:" >&2 ;;
esac
tail -60 "$log" >&2
rm -f "$log"
exit 1
