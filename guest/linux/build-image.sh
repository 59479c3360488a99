#!/bin/bash
# guest/linux/build-image.sh - builds densevm's Linux guest image.
#
#   guest/linux/build-image.sh OUT [MODULE.ko ...]
#
# Owns everything under OUT (build/linux):
#   vmlinuz             the Debian cloud kernel's bzImage (for hardware hosts)
#   vmlinux             the uncompressed ELF inside it (what this machine boots:
#                       its nested KVM emulates CPL0 code, too slow for the
#                       bzImage decompressor)
#   kernel-release      the kernel's version string (uname -r), for building
#                       modules against the matching headers
#   initramfs.cpio.gz   busybox-static + guest/linux/init; the MODULE.ko
#                       arguments go to /lib/modules/, where init loads them
#   deb/                the downloaded packages, reused on later runs
#
# The kernel is whatever linux-image-cloud-amd64 depends on when OUT/deb is
# first filled: the version is resolved here, never written down.  It is
# unpacked with dpkg-deb -x, never installed on the host.  A rerun with the
# kernel already extracted only rebuilds the initramfs (about a second);
# `rm -rf OUT` fetches the current kernel again.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: build-image.sh OUT [MODULE.ko ...]}
shift
mkdir -p "$out"
out=$(cd "$out" && pwd)

log() { echo "guest-linux: $*" >&2; }
die() { echo "guest-linux: error: $*" >&2; exit 1; }

need() {
	command -v "$1" >/dev/null 2>&1 ||
		die "'$1' is missing: install the Debian package '$2' (make deps)"
}

# apt-get download, with one `apt-get update` when the lists are empty or
# stale (a fresh container ships without them).
apt_download() {
	local opts=(-q)
	# As root apt would drop to the _apt user, which may not write here.
	[ "$(id -u)" = 0 ] && opts+=(-o APT::Sandbox::User=root)
	if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
		log "apt lists are empty: apt-get update"
		apt-get -qq update >/dev/null
	fi
	if ! apt-get "${opts[@]}" download "$@" >/dev/null 2>&1; then
		log "apt-get download $* failed: apt-get update, then retry"
		apt-get -qq update >/dev/null || true
		apt-get "${opts[@]}" download "$@" >/dev/null ||
			die "apt-get download $* failed"
	fi
}

# ---------------------------------------------------------------- kernel
fetch_kernel() {
	local deb="$out/deb" meta dep pkg ver files
	mkdir -p "$deb"
	cd "$deb"
	if ! compgen -G 'linux-image-[0-9]*.deb' >/dev/null; then
		need apt-get apt
		log "resolving linux-image-cloud-amd64"
		rm -f linux-image-cloud-amd64_*.deb
		apt_download linux-image-cloud-amd64
		files=(linux-image-cloud-amd64_*.deb)
		meta=${files[0]}
		# "linux-image-6.1.0-NN-cloud-amd64 (= 6.1.x-y)": the versioned
		# package this metapackage stands for.
		dep=$(dpkg-deb -f "$meta" Depends | tr ',' '\n' |
			grep -o 'linux-image-[0-9][^ ]*\( *(= *[^)]*)\)\?' | head -n1)
		[ -n "$dep" ] || die "$meta: no linux-image-* dependency"
		pkg=${dep%% *}
		ver=$(sed -n 's/.*(= *\([^)]*\)).*/\1/p' <<<"$dep")
		log "downloading $pkg${ver:+ $ver}"
		apt_download "$pkg${ver:+=$ver}"
	fi
	files=("$deb"/linux-image-[0-9]*.deb)
	echo "${files[0]}"
}

# The bzImage payload (setup header: payload_offset at 0x248, payload_length
# at 0x24c, relative to the protected-mode code after (setup_sects+1)*512)
# is the compressed vmlinux followed by its uncompressed size (le32); gzip
# carries that size in its own trailer instead.
extract_vmlinux() {
	local bz=$1 dst=$2 sects poff plen start magic dec olen n
	u8() { od -An -tu1 -j "$1" -N1 "$bz" | tr -d ' '; }
	u32() { od -An -tu4 -j "$1" -N4 "$bz" | tr -d ' '; }
	[ "$(od -An -c -j $((0x202)) -N4 "$bz" | tr -d ' ')" = HdrS ] ||
		die "$bz: no HdrS setup header"
	sects=$(u8 $((0x1f1)))
	[ "$sects" = 0 ] && sects=4
	poff=$(u32 $((0x248)))
	plen=$(u32 $((0x24c)))
	start=$(( (sects + 1) * 512 + poff ))
	[ "$plen" -gt 4 ] || die "$bz: no payload (payload_length $plen)"
	magic=$(od -An -tx1 -j "$start" -N6 "$bz" | tr -d ' \n')
	case $magic in
	fd377a585a00*) dec="xz -dc --single-stream"; need xz xz-utils ;;
	28b52ffd*)     dec="zstd -dcq";              need zstd zstd ;;
	1f8b*)         dec="gzip -dc";               need gzip gzip ;;
	02214c18*)     dec="lz4 -dcq";               need lz4 lz4 ;;
	425a68*)       dec="bzip2 -dc";              need bzip2 bzip2 ;;
	5d0000*)       dec="xz -dc --format=lzma";   need xz xz-utils ;;
	894c5a*)       dec="lzop -dc";               need lzop lzop ;;
	*) die "$bz: unknown payload compression (magic $magic)" ;;
	esac
	olen=$(u32 $((start + plen - 4)))
	log "extracting vmlinux: ${dec%% *} payload of $plen bytes at offset $start"
	for n in $((plen - 4)) "$plen"; do
		if dd if="$bz" iflag=skip_bytes,count_bytes skip="$start" count="$n" \
			status=none | $dec >"$dst.tmp" 2>/dev/null; then
			break
		fi
		rm -f "$dst.tmp"
	done
	[ -s "$dst.tmp" ] || die "$bz: the ${dec%% *} payload did not decompress"
	[ "$(head -c4 "$dst.tmp" | od -An -tx1 | tr -d ' \n')" = 7f454c46 ] ||
		die "$bz: the payload is not an ELF file"
	[ "$(stat -c %s "$dst.tmp")" = "$olen" ] ||
		log "note: vmlinux is $(stat -c %s "$dst.tmp") bytes, the trailer says $olen"
	mv -f "$dst.tmp" "$dst"
}

build_kernel() {
	local deb root bz rel files
	deb=$(fetch_kernel)
	if [ -s "$out/vmlinux" ] && [ -s "$out/vmlinuz" ] &&
	   [ -s "$out/kernel-release" ] && [ "$out/.kernel-ok" -nt "$deb" ]; then
		return 0
	fi
	need dpkg-deb dpkg
	root="$out/work/root"
	rm -rf "$out/work"
	mkdir -p "$root"
	log "unpacking $(basename "$deb")"
	dpkg-deb -x "$deb" "$root"
	files=("$root"/boot/vmlinuz-*)
	bz=${files[0]}
	[ -f "$bz" ] || die "$deb: no /boot/vmlinuz-* inside"
	rel=${bz##*/vmlinuz-}
	cp -f "$bz" "$out/vmlinuz"
	extract_vmlinux "$out/vmlinuz" "$out/vmlinux"
	echo "$rel" >"$out/kernel-release"
	# The unpacked modules are 100+ MiB and the deb stays in deb/.
	rm -rf "$out/work"
	touch "$out/.kernel-ok"
	log "kernel $rel: $out/vmlinuz, $out/vmlinux"
}

# ------------------------------------------------------------- initramfs
build_initramfs() {
	local bb root ko applet
	bb=$(command -v busybox || true)
	[ -n "$bb" ] || die "busybox is missing: install busybox-static (make deps)"
	# A dynamic busybox would need its libc in the initramfs.
	if readelf -l "$bb" 2>/dev/null | grep -q 'Requesting program interpreter'; then
		die "$bb is dynamically linked: install busybox-static (make deps)"
	fi
	need cpio cpio
	root="$out/initramfs.d"
	rm -rf "$root"
	mkdir -p "$root"/{bin,dev,proc,sys,tmp,run,root,etc,lib/modules}
	cp "$bb" "$root/bin/busybox"
	for applet in $("$bb" --list); do
		[ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
	done
	install -m 0755 "$here/init" "$root/init"
	for ko in "$@"; do
		[ -f "$ko" ] || die "module $ko does not exist"
		cp "$ko" "$root/lib/modules/"
	done
	# The kernel opens /dev/console for init before anything is mounted;
	# mknod needs root, and init redirects to the devtmpfs node anyway.
	mknod -m 600 "$root/dev/console" c 5 1 2>/dev/null ||
		log "note: no /dev/console node (not root); init falls back to devtmpfs"
	find "$root" -exec touch -h -d @0 {} +
	(cd "$root" && find . -mindepth 1 | LC_ALL=C sort |
		cpio -o -H newc -R 0:0 --reproducible --quiet) |
		gzip -9n >"$out/initramfs.cpio.gz.tmp"
	mv -f "$out/initramfs.cpio.gz.tmp" "$out/initramfs.cpio.gz"
	rm -rf "$root"
	log "initramfs: $out/initramfs.cpio.gz ($(stat -c %s "$out/initramfs.cpio.gz") bytes, $# module(s))"
}

build_kernel
build_initramfs "$@"
