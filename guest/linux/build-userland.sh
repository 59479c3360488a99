#!/bin/bash
# guest/linux/build-userland.sh - the initramfs that `densevm image capture`
# boots: busybox-static plus real programs from Debian packages (python3,
# redis-server, sqlite3 and their libraries) and guest/linux/image-init,
# which runs the capture workload and prints the markers the host waits for.
#
#   guest/linux/build-userland.sh OUT
#
# Owns everything under OUT (build/images/userland):
#   initramfs.cpio   uncompressed (the kernel under TCG unpacks it faster
#                    than it could inflate it)
#   packages.txt     "name=version" of every package inside, one a line
#                    (the capture's manifest lists them)
#   deb/             the downloaded packages, reused on later runs
#
# The packages are Depends closures resolved here with apt-cache, fetched
# with apt-get download and unpacked with dpkg-deb -x; nothing is installed
# on the host.  Maintainer-script tools (debconf, adduser, perl, PAM, ...)
# are left out: nothing inside runs a package's scripts.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: build-userland.sh OUT}
mkdir -p "$out/deb"
out=$(cd "$out" && pwd)

log() { echo "userland: $*" >&2; }
die() { echo "userland: error: $*" >&2; exit 1; }
need() {
	command -v "$1" >/dev/null 2>&1 ||
		die "'$1' is missing: install the Debian package '$2' (make deps)"
}
need apt-get apt
need dpkg-deb dpkg
need cpio cpio

TOP="python3 redis-server sqlite3"
# left out: package tooling and what only maintainer scripts or logins use
SKIP='^(adduser|cdebconf|debconf|dpkg|install-info|init-system-helpers|lsb-base|passwd|perl|perl-base|perl-modules-.*|libperl.*|lib.*-perl|libdebian-installer.*|libpam.*|libsemanage.*|libsepol.*|libaudit.*|libnewt.*|libslang.*|libtextwrap.*|sysvinit-utils|tar|usr-is-merged|usrmerge|mailcap|mime-support|libelogind0)$'

apt_opts=(-q)
[ "$(id -u)" = 0 ] && apt_opts+=(-o APT::Sandbox::User=root)
if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
	log "apt lists are empty: apt-get update"
	apt-get -qq update >/dev/null
fi

# The closure (Depends and Pre-Depends, no Recommends), minus SKIP.
closure() {
	# shellcheck disable=SC2086
	apt-cache depends --recurse --no-recommends --no-suggests \
		--no-conflicts --no-breaks --no-replaces --no-enhances $TOP |
		grep -v '^ ' | grep -v '^<' | sort -u | grep -Ev "$SKIP"
}
mapfile -t pkgs < <(closure)
[ "${#pkgs[@]}" -gt 5 ] || die "apt-cache found no closure for $TOP (apt-get update?)"

cd "$out/deb"
missing=()
for p in "${pkgs[@]}"; do
	compgen -G "${p}_*.deb" >/dev/null || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
	log "downloading ${#missing[@]} packages"
	if ! apt-get "${apt_opts[@]}" download "${missing[@]}" >/dev/null 2>&1; then
		apt-get -qq update >/dev/null || true
		apt-get "${apt_opts[@]}" download "${missing[@]}" >/dev/null ||
			die "apt-get download ${missing[*]} failed"
	fi
fi

bb=$(command -v busybox || true)
[ -n "$bb" ] || die "busybox is missing: install busybox-static (make deps)"
if readelf -l "$bb" 2>/dev/null | grep -q 'Requesting program interpreter'; then
	die "$bb is dynamically linked: install busybox-static (make deps)"
fi

root="$out/root"
rm -rf "$root"
mkdir -p "$root"/{bin,dev,proc,sys,tmp,run,root,etc,var/lib/redis}
: >"$out/packages.txt.tmp"
for p in "${pkgs[@]}"; do
	files=("${p}"_*.deb)
	dpkg-deb -x "${files[0]}" "$root"
	echo "$p=$(dpkg-deb -f "${files[0]}" Version)" >>"$out/packages.txt.tmp"
done
echo "busybox-static=$(dpkg-query -W -f='${Version}' busybox-static 2>/dev/null || echo unknown)" \
	>>"$out/packages.txt.tmp"
# what a RAM image does not need: docs, manuals, locales, headers
rm -rf "$root"/usr/share/{doc,man,info,locale,lintian} "$root"/usr/include
cp "$bb" "$root/bin/busybox"
for applet in $("$bb" --list); do
	[ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
done
install -m 0755 "$here/image-init" "$root/init"
echo "root:x:0:0:root:/root:/bin/sh" >"$root/etc/passwd"
echo "root:x:0:" >"$root/etc/group"
echo "127.0.0.1 localhost" >"$root/etc/hosts"
mknod -m 600 "$root/dev/console" c 5 1 2>/dev/null || true
[ -x "$root/usr/bin/python3" ] || die "python3 is not in the initramfs"
[ -x "$root/usr/bin/redis-server" ] || die "redis-server is not in the initramfs"
[ -x "$root/usr/bin/sqlite3" ] || die "sqlite3 is not in the initramfs"
find "$root" -exec touch -h -d @0 {} +
(cd "$root" && find . -mindepth 1 | LC_ALL=C sort |
	cpio -o -H newc -R 0:0 --reproducible --quiet) >"$out/initramfs.cpio.tmp"
mv -f "$out/initramfs.cpio.tmp" "$out/initramfs.cpio"
LC_ALL=C sort -o "$out/packages.txt" "$out/packages.txt.tmp"
rm -f "$out/packages.txt.tmp"
rm -rf "$root"
log "initramfs: $out/initramfs.cpio ($(($(stat -c %s "$out/initramfs.cpio") >> 20)) MiB, $(wc -l <"$out/packages.txt") packages)"
