# Every error `kagami run` reports: one line naming the problem, a non-zero
# status, no core dump.

err_case() { # expected-status expected-text args...
	local st=$1 text=$2
	shift 2
	kg "$@"
	expect_status "$st" || return
	err_has "$text" || return
	err_one_line || return
	ls core* >/dev/null 2>&1 && why "core dump written"
	return 0
}

test_no_args() { err_case 2 "no command given"; }
test_unknown_command() { err_case 2 "unknown command 'frobnicate'" frobnicate; }
test_unknown_option() { err_case 2 "unknown option '--frob'" run --frob "$GUESTS/hello.elf"; }
test_missing_value() { err_case 2 "option --mem needs a value" run --mem; }
test_no_image() { err_case 2 "no guest image given" run; }
test_two_images() { err_case 2 "more than one guest image" run a.elf b.elf; }
test_missing_file() { err_case 2 "image nothere.elf: No such file or directory" run nothere.elf; }
test_directory() { mkdir d; err_case 2 "image d: not a regular file" run d; }

test_not_elf() {
	echo "hello" >notelf
	err_case 2 "not an ELF file" run notelf
}

test_truncated_elf() {
	head -c 100 "$GUESTS/hello.elf" >trunc.elf
	err_case 2 "truncated ELF" run trunc.elf
}

test_no_pvh_note() {
	# Change the note's type so it is no longer XEN_ELFNOTE_PHYS32_ENTRY.
	cp "$GUESTS/hello.elf" nonote.elf
	local off
	off=$(readelf -lW nonote.elf | awk '$1 == "NOTE" { print $2 }')
	[[ -n $off ]] || { why "no NOTE segment found"; return; }
	off=$((off))
	printf '\x11' | dd of=nonote.elf bs=1 seek=$((off + 8)) conv=notrunc status=none
	err_case 2 "no PVH entry note" run nonote.elf
}

test_entry_outside_segments() {
	# The note's descriptor (the entry point) moved past every segment:
	# refused at load (exit 2), not an internal error later.
	cp "$GUESTS/hello.elf" badentry.elf
	local off
	off=$(readelf -lW badentry.elf | awk '$1 == "NOTE" { print $2 }')
	[[ -n $off ]] || { why "no NOTE segment found"; return; }
	off=$((off))
	printf '\x00\xb0\xad\x3e' | dd of=badentry.elf bs=1 seek=$((off + 16)) conv=notrunc status=none
	err_case 2 "the PVH entry point 0x3eadb000 is outside every loaded segment" run badentry.elf
}

# Malformed or unusable bzImages, made from the distribution's kernel:
# one line, exit 2, before anything runs.
test_bzimage_refused() {
	local k
	k=$(debian_kernel)
	head -c 3000000 "$k" >trunc.bz
	err_case 2 "image trunc.bz: truncated bzImage: 3000000 bytes, the header says" run trunc.bz || return
	cp "$k" old.bz
	printf '\x0b\x02' | dd of=old.bz bs=1 seek=$((0x206)) conv=notrunc status=none
	err_case 2 "boot protocol version 2.11 is too old" run old.bz || return
	cp "$k" k32.bz
	printf '\x00\x00' | dd of=k32.bz bs=1 seek=$((0x236)) conv=notrunc status=none
	err_case 2 "the kernel has no 64-bit entry point" run k32.bz || return
	head -c 60M /dev/zero >big.rd
	kg run --mem 96M --initrd big.rd "$k"
	expect_status 2 && err_has "initrd (62914560 bytes) does not fit between the kernel" || return
	kg run --mem 40M "$k"
	expect_status 2 && err_has "is too small for this kernel: it needs" || return
	# On this KVM (PVM) a kernel in ring 0 crawls: said once, up front.
	if [[ -e /sys/module/kvm_pvm ]]; then
		KG_TIMEOUT=10 kg run --mem 256M --timeout 1 "$k"
		err_has "emulates guest ring 0 about 1000x slower" || return
		kg run "$GUESTS/hello.elf"
		grep -q "emulates guest ring 0" "$TT/err" && why "warned about an SDK guest" || return 0
	fi
}

test_image_larger_than_mem() {
	cp "$GUESTS/hello.elf" big.elf
	truncate -s 3M big.elf
	err_case 2 "is larger than guest memory" run --mem 2M big.elf
}

test_segment_outside_mem() {
	# A 40 MiB bss cannot load into 8 MiB of RAM.
	kg run --mem 8M "$GUESTS/hello.elf"
	expect_status 0 || return # hello itself fits
	head -c 3000000 /dev/zero >big.initrd
	err_case 2 "initrd big.initrd (3000000 bytes) is larger than guest memory" \
		run --mem 2M --initrd big.initrd "$GUESTS/hello.elf"
}

test_initrd_does_not_fit() {
	head -c 1500000 /dev/zero >mid.initrd
	err_case 2 "does not fit in guest RAM" run --mem 2M --initrd mid.initrd "$GUESTS/hello.elf"
}

test_missing_initrd() { err_case 2 "initrd nope.img: No such file" run --initrd nope.img "$GUESTS/hello.elf"; }
test_bad_size() { err_case 2 "bad size '12Q'" run --mem 12Q "$GUESTS/hello.elf"; }
test_mem_too_small() { err_case 2 "between 2 MiB and 1 TiB" run --mem 1M "$GUESTS/hello.elf"; }
test_bad_cpus() { err_case 2 "--cpus 'x'" run --cpus x "$GUESTS/hello.elf"; }
test_zero_cpus() { err_case 2 "--cpus 0: must be between 1 and 64" run --cpus 0 "$GUESTS/hello.elf"; }
test_bad_console() { err_case 2 "bad console 'tty'" run --console tty "$GUESTS/hello.elf"; }
test_bad_timeout() { err_case 2 "--timeout 'soon'" run --timeout soon "$GUESTS/hello.elf"; }
test_cmdline_too_long() {
	err_case 2 "command line too long" run --cmdline "$(head -c 5000 /dev/zero | tr '\0' x)" "$GUESTS/hello.elf"
}

test_console_not_socket() {
	echo x >plainfile
	err_case 2 "exists and is not a socket" run --console unix:plainfile "$GUESTS/hello.elf"
}

test_no_kvm() {
	KAGAMI_KVM_DEV=/nonexistent/kvm err_case 2 "not found: KVM is not available" run "$GUESTS/hello.elf"
}

test_kvm_permission() {
	if [[ $(id -u) == 0 ]]; then
		# root bypasses file modes: ask as an unprivileged user.
		chmod 755 "$TT"
		cp "$GUESTS/hello.elf" h.elf && chmod 644 h.elf
		timeout 30 setpriv --reuid=65534 --regid=65534 --clear-groups \
			"$KAGAMI" run h.elf >out 2>err
		STATUS=$?
	else
		: >fake-kvm
		chmod 000 fake-kvm
		KAGAMI_KVM_DEV=$PWD/fake-kvm kg run "$GUESTS/hello.elf"
	fi
	expect_status 2 && err_has "permission denied" && err_one_line
}

test_help() {
	kg run --help
	expect_status 0 && out_has "usage: kagami run" && out_has "--console SPEC"
	kg --help
	expect_status 0 && out_has "usage: kagami COMMAND"
}

test_crash_backtrace() {
	# The release build's crash handler prints kagami's own backtrace.
	"$KAGAMI_RELEASE" run --cmdline spin "$GUESTS/hello.elf" >out 2>err &
	local pid=$!
	sleep 0.3
	kill -SEGV $pid
	wait $pid
	STATUS=$?
	expect_status 139 || return
	err_has "kagami: fatal signal SEGV" && err_has "kagami: backtrace:"
}

t "no arguments" test_no_args
t "unknown command" test_unknown_command
t "unknown option" test_unknown_option
t "option without value" test_missing_value
t "no image" test_no_image
t "two images" test_two_images
t "missing image file" test_missing_file
t "image is a directory" test_directory
t "image is not an ELF" test_not_elf
t "truncated ELF" test_truncated_elf
t "ELF without a PVH note" test_no_pvh_note
t "PVH entry point outside the loaded segments" test_entry_outside_segments
t "bzImage: truncated, old protocol, 32-bit, initrd or RAM too small" test_bzimage_refused kvm,kernel
t "image larger than --mem" test_image_larger_than_mem kvm
t "initrd larger than --mem" test_segment_outside_mem kvm
t "initrd does not fit beside the image" test_initrd_does_not_fit kvm
t "missing initrd" test_missing_initrd
t "bad size syntax" test_bad_size
t "--mem too small" test_mem_too_small
t "bad --cpus" test_bad_cpus
t "--cpus 0" test_zero_cpus
t "bad --console" test_bad_console
t "bad --timeout" test_bad_timeout
t "command line too long" test_cmdline_too_long kvm
t "console path is not a socket" test_console_not_socket kvm
t "no /dev/kvm" test_no_kvm
t "no permission on /dev/kvm" test_kvm_permission
t "--help" test_help
t "crash handler backtrace" test_crash_backtrace kvm
