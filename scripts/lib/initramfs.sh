# Helpers for building initramfs images from this machine's Debian packages
# (bash, sourced by scripts/build-linux-guest and tests/vhost/build).
# Nothing is downloaded: the kernel is the one linux-image-*-amd64 put in
# /boot and /lib/modules, programs and libraries are the installed ones.
#
#   ir_kernel                   sets IR_KVER, IR_KIMAGE, IR_KMODS (or fails)
#   ir_mod_paths NAME...        module files (under IR_KMODS) in load order
#   ir_bin_files BIN...         BIN and the shared libraries it loads
#   ir_add ROOT FILE...         copies FILEs to ROOT at the same paths
#   ir_add_mods ROOT NAME...    copies modules (uncompressed) and appends
#                               their names to ROOT/etc/kg-modules in load order
#   ir_busybox ROOT             busybox-static as ROOT/bin/busybox + applet links
#   ir_hash FILE... [-- WORD...]  a hash of the files' paths, sizes and times
#                               and of the WORDs (the cache key of an image)
#   ir_vmlinux BZIMAGE OUT      the ELF vmlinux inside a bzImage (PVH entry)
#   ir_pack ROOT OUT [none]     a gzip'd (or plain) newc cpio of ROOT

IR_ERR_PREFIX=${IR_ERR_PREFIX:-initramfs}

ir_die() {
	echo "$IR_ERR_PREFIX: $*" >&2
	exit 1
}

# The newest Debian kernel with its modules installed; KG_KERNEL_VERSION
# picks another (a directory name under /lib/modules).
ir_kernel() {
	local v
	if [[ -n ${KG_KERNEL_VERSION:-} ]]; then
		v=$KG_KERNEL_VERSION
	else
		v=$(find /lib/modules -mindepth 1 -maxdepth 1 -name '*-amd64' -printf '%f\n' 2>/dev/null |
			sort -V | while read -r k; do
				[[ -f /boot/vmlinuz-$k ]] && echo "$k"
			done | tail -1)
	fi
	[[ -n $v && -f /boot/vmlinuz-$v && -f /lib/modules/$v/modules.dep ]] ||
		ir_die "no Debian kernel in /boot and /lib/modules${v:+ (version $v)}: install linux-image-amd64 (scripts/install-deps)"
	IR_KVER=$v
	IR_KIMAGE=/boot/vmlinuz-$v
	IR_KMODS=/lib/modules/$v
}

# ir_mod_paths NAME...: the modules NAME (file name without .ko, as spelled
# in the tree: kvm-amd, virtio_mmio) and everything they depend on, per
# modules.dep, each once, dependencies first. Builtin modules print nothing.
ir_mod_paths() {
	local name line dep deps i seen=" " out=()
	for name in "$@"; do
		line=$(grep -E "(^|/)$name\.ko(\.[a-z]+)?:" "$IR_KMODS/modules.dep" | head -1)
		if [[ -z $line ]]; then
			grep -qE "(^|/)$name\.ko\$" "$IR_KMODS/modules.builtin" 2>/dev/null && continue
			ir_die "kernel $IR_KVER has no module $name"
		fi
		read -ra deps <<<"${line#*:}"
		# modules.dep lists a module's dependencies so that loading them
		# last to first works (as modprobe does).
		for ((i = ${#deps[@]} - 1; i >= -1; i--)); do
			if ((i >= 0)); then dep=${deps[i]}; else dep=${line%%:*}; fi
			[[ $seen == *" $dep "* ]] && continue
			seen+="$dep "
			out+=("$dep")
		done
	done
	((${#out[@]} == 0)) || printf '%s\n' "${out[@]}"
}

# ir_bin_files BIN...: each BIN (a path or a command name) and its libraries.
ir_bin_files() {
	local b p
	for b in "$@"; do
		p=$b
		[[ $p == /* ]] || p=$(command -v "$b") || ir_die "$b is not installed"
		[[ -x $p ]] || ir_die "$p is not an executable"
		echo "$p"
		# "lib => /path (addr)" and "/lib64/ld-linux... (addr)"; a static
		# binary has none ("not a dynamic executable", status 1).
		ldd "$p" 2>/dev/null | grep -o '/[^ ]*' || true
	done | awk '!seen[$0]++'
}

ir_add() {
	local root=$1 f
	shift
	for f in "$@"; do
		mkdir -p "$root$(dirname "$f")"
		cp -L "$f" "$root$f" || ir_die "cannot copy $f"
	done
}

ir_add_mods() {
	local root=$1 rel src dst
	shift
	mkdir -p "$root/etc"
	while read -r rel; do
		src=$IR_KMODS/$rel
		dst=$root/lib/modules/${rel##*/}
		mkdir -p "$root/lib/modules"
		# busybox insmod loads only plain .ko files.
		case $src in
		*.ko) cp "$src" "$dst" ;;
		*.ko.xz) xz -dc "$src" >"${dst%.xz}" ;;
		*.ko.gz) gzip -dc "$src" >"${dst%.gz}" ;;
		*.ko.zst) command -v zstd >/dev/null || ir_die "$src is zstd-compressed: install zstd"
			zstd -qdc "$src" >"${dst%.zst}" ;;
		*) ir_die "unknown module file $src" ;;
		esac || ir_die "cannot copy module $src"
		dst=${rel##*/}
		echo "${dst%%.ko*}" >>"$root/etc/kg-modules"
	done < <(ir_mod_paths "$@")
}

ir_busybox() {
	local root=$1 a
	[[ -x /bin/busybox ]] && /bin/busybox --list >/dev/null 2>&1 ||
		ir_die "busybox is not installed: install busybox-static (scripts/install-deps)"
	ldd /bin/busybox >/dev/null 2>&1 && ir_die "/bin/busybox is not static: install busybox-static"
	mkdir -p "$root/bin"
	cp /bin/busybox "$root/bin/busybox"
	for a in $(/bin/busybox --list); do
		[[ $a == busybox || -e $root/bin/$a ]] || ln -s busybox "$root/bin/$a"
	done
}

ir_hash() {
	local files=()
	while (($#)) && [[ $1 != -- ]]; do
		files+=("$1")
		shift
	done
	(($#)) && shift
	{
		((${#files[@]} == 0)) || stat -L -c '%n %s %Y' "${files[@]}" 2>&1
		printf '%s\n' "$@"
	} | sha256sum | cut -c1-32
}

# A Debian bzImage's payload is an XZ stream holding the ELF vmlinux,
# which has the PVH note: booting it skips the decompression, seconds
# under TCG. --single-stream stops at the stream's end (padding follows);
# tail then dies of SIGPIPE, so only xz's status counts.
ir_vmlinux() {
	local img=$1 out=$2 off
	off=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$img" | head -1 | cut -d: -f1 || true)
	[[ -n $off ]] || ir_die "$img has no XZ payload (is it a Debian amd64 kernel?)"
	tail -c +$((off + 1)) "$img" | xz -dc --single-stream >"$out.tmp" 2>/dev/null ||
		[[ ${PIPESTATUS[1]} == 0 ]] || ir_die "cannot decompress the payload of $img"
	[[ $(head -c 4 "$out.tmp") == $'\x7fELF' ]] || ir_die "the payload of $img is not an ELF"
	mv "$out.tmp" "$out"
}

ir_pack() {
	local root=$1 out=$2 z=(gzip -1)
	[[ ${3:-} == none ]] && z=(cat)
	(cd "$root" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet | "${z[@]}") >"$out.tmp" &&
		mv "$out.tmp" "$out" || ir_die "cannot write $out"
}
