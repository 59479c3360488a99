#!/bin/sh
# make test-linux: boots the Debian cloud kernel with our initramfs to its
# ready marker, then runs the balloon module end to end
# (scripts/test-linux-balloon.sh).  Needs hardware virtualization
# (VT-x/AMD-V): on nested software KVM (kvm_pvm) the kernel stops on
# emulation failures long before userspace, so this refuses to run there
# rather than fail for that reason.  (On such machines the balloon module
# is checked under QEMU instead: tests/unit/test_balloon_linux_module.sh.)
set -u
densevm=$1; dir=$2
here=$(dirname "$0")
if [ -d /sys/module/kvm_pvm ]; then
	echo "test-linux: SKIPPED: this host's /dev/kvm is nested software KVM (kvm_pvm);" \
	     "Linux guests cannot reach userspace here. Run on a host with VT-x/AMD-V." >&2
	exit 0
fi
pass=0; fail=0
log=$(mktemp)
"$densevm" run --ctl none --timeout 120 --vm "name=linux,kind=linux,mem=512M,kernel=$dir/vmlinuz,initrd=$dir/initramfs.cpio.gz" >"$log" 2>&1 &
pid=$!
for i in $(seq 1200); do
	grep -q DENSEVM-LINUX-READY "$log" && break
	kill -0 $pid 2>/dev/null || break
	sleep 0.1
done
kill $pid 2>/dev/null; wait $pid 2>/dev/null
if grep -q DENSEVM-LINUX-READY "$log"; then
	echo "test-linux: ok - reached DENSEVM-LINUX-READY"
	pass=$((pass + 1))
else
	echo "test-linux: FAIL - no ready marker; console:" >&2
	tail -40 "$log" >&2
	fail=$((fail + 1))
fi
rm -f "$log"
if "$here/test-linux-balloon.sh" "$densevm" "$dir"; then
	pass=$((pass + 1))
else
	fail=$((fail + 1))
fi
echo "test-linux: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
