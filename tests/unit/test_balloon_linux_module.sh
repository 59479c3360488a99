#!/bin/bash
# test_balloon_linux_module.sh - the Linux balloon module (balloon-driver/
# linux/) against the Debian cloud kernel that `make guest-linux` fetched.
#
# Owns these checks, run by `make test` (scripts/run-tests.sh):
#   1. densevm_balloon.ko builds from scratch against
#      /usr/src/linux-headers-<release> with no warning (compiler: -Werror
#      in Kbuild; modpost: the log is checked);
#   2. modinfo shows its license (GPL), description, author, vermagic for
#      that release, and every parameter with a description;
#   3. under QEMU (TCG; skipped without qemu-system-x86_64) the module
#      loads into that kernel and refuses cleanly where there is no densevm
#      host: without parameters (no CPUID leaf) and with force=1 (nobody
#      answers the doorbell), no oops: the symbols resolve against the
#      real kernel;
#   4. under QEMU, end to end against tests/linux/fakehost (a test-only
#      module that answers the balloon's doorbell from inside the guest):
#      guest/linux/init's densevm.test=balloon steps, the same ones `make
#      test-linux` runs against densevm on hardware hosts (inflate by
#      64 MiB and MemAvailable drops, deflate, the floor, pressure with no
#      OOM kill, rmmod returns every page), plus stats and free page
#      reporting.
#   A pass of 3 and 4 is remembered per source set and kernel
#   (build/linux/kmod/.qemu-ok), so the sanitizer rerun of `make test`
#   does not boot again.  Together they take ~20 s.
# Prints "N passed, N failed" last; exits nonzero when a check failed.
set -u
# run from make: the parent jobserver is not ours, and its "jobserver
# unavailable" warning would read as a build warning below
unset MAKEFLAGS MFLAGS MAKELEVEL
root=$(cd "$(dirname "$0")/../.." && pwd)
lin=${DENSEVM_LINUX_DIR:-$root/build/linux}
pass=0; fail=0; skip=0
ok()   { pass=$((pass + 1)); echo "ok - $*"; }
bad()  { fail=$((fail + 1)); echo "FAIL - $*"; }
done_() {
	[ "$skip" -gt 0 ] && echo " $skip SKIPPED TEST(S)"
	echo "$pass passed, $fail failed"
	[ "$fail" -eq 0 ]
	exit
}

if [ ! -s "$lin/kernel-release" ]; then
	bad "no $lin/kernel-release: run make guest-linux"
	done_
fi
rel=$(cat "$lin/kernel-release")
kdir=/usr/src/linux-headers-$rel
if [ ! -d "$kdir" ]; then
	bad "no $kdir: make linux-headers installs linux-headers-$rel"
	done_
fi
if ! command -v modinfo >/dev/null; then
	bad "modinfo is missing: install kmod (make linux-headers)"
	done_
fi

# ---- 1. a fresh build, laid out as the build does (symlinks, core/)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/mod/core"
for f in Kbuild Makefile dkms.conf linux_glue.c core.c; do
	ln -s "$root/balloon-driver/linux/$f" "$tmp/mod/$f"
done
for f in balloon_core.c balloon.h balloon_proto.h; do
	ln -s "$root/balloon-driver/$f" "$tmp/mod/core/$f"
done
ln -s "$root/hv-core/hv_abi.h" "$tmp/mod/core/hv_abi.h"
make --no-print-directory -C "$kdir" M="$tmp/mod" modules >"$tmp/build.log" 2>&1
rc=$?
ko=$tmp/mod/densevm_balloon.ko
if [ $rc -ne 0 ] || [ ! -f "$ko" ]; then
	bad "build against linux-headers-$rel failed (rc $rc):"
	tail -30 "$tmp/build.log"
	done_
elif grep -i 'warning' "$tmp/build.log"; then
	bad "build against linux-headers-$rel warned"
else
	ok "builds warning-free against linux-headers-$rel"
fi

# ---- 1b. the DKMS source tree carries everything, hv_abi.h included
make --no-print-directory -C "$root/balloon-driver/linux" dkms-src \
	DKMS_SRC="$tmp/dkms" >"$tmp/dkms-src.log" 2>&1 &&
make --no-print-directory -C "$kdir" M="$tmp/dkms" modules >"$tmp/dkms.log" 2>&1
if [ $? -ne 0 ] || [ ! -f "$tmp/dkms/densevm_balloon.ko" ]; then
	bad "the DKMS source tree (make dkms-src) does not build:"
	tail -20 "$tmp/dkms-src.log" "$tmp/dkms.log"
elif grep -i 'warning' "$tmp/dkms.log"; then
	bad "the DKMS source tree's build warned"
else
	ok "the DKMS source tree (make dkms-src) builds warning-free"
fi

# ---- 2. modinfo
mi() { modinfo -F "$1" "$ko" 2>/dev/null; }
[ "$(mi license)" = GPL ] && ok "license: GPL" || bad "license is '$(mi license)'"
desc=$(mi description)
[ -n "$desc" ] && ok "description: $desc" || bad "no description"
[ -n "$(mi author)" ] && ok "author: $(mi author)" || bad "no author"
case "$(mi vermagic)" in
"$rel "*) ok "vermagic: $rel" ;;
*) bad "vermagic '$(mi vermagic)' is not for $rel" ;;
esac
# parm lines read "name:description (type)"; every one needs a description
parms=$(mi parm)
n=0; undoc=""
while IFS= read -r line; do
	[ -n "$line" ] || continue
	n=$((n + 1))
	name=${line%%:*}; rest=${line#*:}
	[ -n "${rest% (*)}" ] && [ "${rest% (*)}" != "$rest" ] || undoc="$undoc $name"
done <<<"$parms"
missing=""
for p in force port argreg floor_mib poll_ms no_huge shrinker reporting; do
	grep -q "^$p:" <<<"$parms" || missing="$missing $p"
done
if [ -z "$missing" ] && [ -z "$undoc" ] && [ "$n" -gt 0 ]; then
	ok "$n parameters, each with a description"
else
	bad "parameters: missing:${missing:- none}; without description:${undoc:- none}"
fi

# ---- 3 and 4. the real kernel under QEMU
if ! command -v qemu-system-x86_64 >/dev/null || [ ! -s "$lin/vmlinuz" ] ||
   [ ! -s "$lin/initramfs.cpio.gz" ]; then
	skip=$((skip + 2))
	echo "skip - QEMU checks (need qemu-system-x86_64, which make bench installs, and make guest-linux)"
	done_
fi
# the .ko's bytes carry the temporary build path: key on the sources
key=$(cat "$root"/balloon-driver/linux/{Kbuild,linux_glue.c,core.c} \
	"$root"/balloon-driver/{balloon_core.c,balloon.h,balloon_proto.h} \
	"$root"/tests/linux/fakehost/{Kbuild,densevm_fakehost.c} \
	"$root/guest/linux/init" "$lin/vmlinuz" "$0" | sha256sum | cut -c1-32)
stamp=$lin/kmod/.qemu-ok
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$key" ]; then
	ok "QEMU: loads into $rel and refuses without a host (cached: these sources passed before)"
	ok "QEMU: end to end against the fake host (cached: these sources passed before)"
	done_
fi

# qemu_boot NAME MEM APPEND MARKER: boots the image plus the overlay
# $tmp/NAME (a second archive after the image's own: the kernel unpacks
# both, later files win) until MARKER appears on the console.
qemu_boot() {
	local name=$1 mem=$2 append=$3 marker=$4 pid i
	(cd "$tmp/$name" && find . -mindepth 1 | cpio -o -H newc -R 0:0 --quiet | gzip -1) >"$tmp/$name.cpio.gz"
	cat "$lin/initramfs.cpio.gz" "$tmp/$name.cpio.gz" >"$tmp/$name.initrd"
	: >"$tmp/$name.console"
	qemu-system-x86_64 -accel tcg -m "$mem" -smp 1 -display none \
		-serial "file:$tmp/$name.console" -monitor none -nodefaults -no-reboot \
		-kernel "$lin/vmlinuz" -initrd "$tmp/$name.initrd" \
		-append "console=ttyS0 panic=-1 $append" >/dev/null 2>&1 &
	pid=$!
	for i in $(seq 3000); do	# 300 s: TCG on a loaded machine
		grep -q "$marker" "$tmp/$name.console" && break
		kill -0 $pid 2>/dev/null || break
		sleep 0.1
	done
	kill $pid 2>/dev/null
	wait $pid 2>/dev/null
}
kernel_ok() {	# CONSOLE: no oops, no symbol trouble
	! grep -Eq 'Oops|BUG:|Call Trace|Unknown symbol|disagrees about version' "$1" ||
	{ grep -E -B2 -A10 'Oops|BUG:|Call Trace|Unknown symbol|disagrees' "$1" | head -40; false; }
}

# 3. the module alone: it must refuse cleanly where no densevm host is
mkdir -p "$tmp/smoke/smoke" "$tmp/smoke/lib/modules"
cp "$ko" "$tmp/smoke/lib/modules/"
cat >"$tmp/smoke/smoke/init" <<'EOS'
#!/bin/sh
export PATH=/bin
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sysfs /sys
ko=/lib/modules/densevm_balloon.ko
insmod $ko; echo "SMOKE-NOPARAM rc=$?"
insmod $ko force=1; echo "SMOKE-FORCE rc=$?"
grep -q densevm_balloon /proc/modules && echo SMOKE-STILL-LOADED
echo SMOKE-DONE
poweroff -f
EOS
chmod 755 "$tmp/smoke/smoke/init"
qemu_boot smoke 256 "rdinit=/smoke/init" SMOKE-DONE
c=$tmp/smoke.console
pass_before=$pass
if ! grep -q SMOKE-DONE "$c"; then
	bad "QEMU: the load check did not finish; console:"
	tail -30 "$c"
elif ! kernel_ok "$c"; then
	bad "QEMU: the kernel complained while loading the module"
elif grep -q 'SMOKE-NOPARAM rc=19' "$c" && grep -q 'no densevm hypervisor' "$c" &&
     grep -q 'SMOKE-FORCE rc=19' "$c" && grep -q 'did not register the balloon' "$c" &&
     ! grep -q SMOKE-STILL-LOADED "$c"; then
	ok "QEMU: loads into $rel and refuses without a host (ENODEV: no CPUID leaf; force=1: no answer)"
else
	bad "QEMU: unexpected load results; console:"
	grep -E 'SMOKE|densevm' "$c"
fi

# 4. end to end against the test-only fake host (tests/linux/fakehost):
# guest/linux/init's densevm.test=balloon steps, the same ones
# `make test-linux` runs against densevm on hardware hosts, plus stats
# and free page reporting.
mkdir -p "$tmp/fh" "$tmp/e2e/lib/modules"
ln -s "$root"/tests/linux/fakehost/{Kbuild,densevm_fakehost.c} "$tmp/fh/"
ln -s "$root/balloon-driver/balloon_proto.h" "$tmp/fh/"
if ! make --no-print-directory -C "$kdir" M="$tmp/fh" modules >"$tmp/fh.log" 2>&1; then
	bad "the fake host module did not build:"
	tail -20 "$tmp/fh.log"
	done_
fi
# init loads /lib/modules/*.ko in name order: the fake host first
cp "$tmp/fh/densevm_fakehost.ko" "$tmp/e2e/lib/modules/00-densevm_fakehost.ko"
cp "$ko" "$tmp/e2e/lib/modules/"
install -m 0755 "$root/guest/linux/init" "$tmp/e2e/init"
qemu_boot e2e 512 "densevm_balloon.force=1 densevm.test=balloon" "DENSEVM-BALLOON-TEST "
c=$tmp/e2e.console
grep -E '^DENSEVM-BALLOON|balloon check failed' "$c" | sed 's/^/    /'
if grep -q 'DENSEVM-BALLOON-TEST PASS' "$c" && kernel_ok "$c"; then
	ok "QEMU: end to end against the fake host: inflate 64 MiB (MemAvailable drops), deflate, floor, pressure without OOM, stats, free page reporting, rmmod"
else
	bad "QEMU: end to end against the fake host; console tail:"
	tail -40 "$c"
fi
[ $((pass - pass_before)) -eq 2 ] && { echo "$key" >"$stamp"; } 2>/dev/null
done_
