#!/bin/sh
# balloon-driver/linux/install-headers.sh RELEASE - installs the headers
# densevm_balloon.ko is built against: linux-headers-RELEASE (it pulls
# linux-headers-*-common, linux-kbuild and the compiler package) and kmod
# (modinfo), through scripts/deps.sh.  Never a kernel image: the host only
# builds for the guest's kernel.  Some headers packages (Debian's 6.12
# backports) depend on their image; apt's plan is simulated first and such
# a package is refused.
set -e
rel=${1:?usage: install-headers.sh RELEASE}
pkg=linux-headers-$rel
top=$(cd "$(dirname "$0")/../.." && pwd)
if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
	plan=$(apt-get -s install --no-install-recommends "$pkg" 2>/dev/null) || {
		[ "$(id -u)" = 0 ] && apt-get -qq update >/dev/null
		plan=$(apt-get -s install --no-install-recommends "$pkg" 2>&1) || {
			echo "linux-headers: apt cannot install $pkg:" >&2
			echo "$plan" | tail -3 >&2
			exit 1
		}
	}
	if echo "$plan" | grep -q '^Inst linux-image-'; then
		echo "linux-headers: $pkg would install a kernel image on this host; refusing." >&2
		echo "linux-headers: unpack the headers by hand, or build with KDIR=... (balloon-driver/linux/Makefile)" >&2
		exit 1
	fi
fi
exec "$top/scripts/deps.sh" "$pkg" kmod
