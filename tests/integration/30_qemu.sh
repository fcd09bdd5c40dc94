# The same images boot under QEMU (microvm, TCG): identical console output,
# and QEMU's isa-debug-exit status (code << 1) | 1 matches kagami's code.

qemu_run() { # image cmdline [extra qemu args...]
	local img=$1 cmdline=$2
	shift 2
	timeout -k 5 120 qemu-system-x86_64 -M microvm -accel tcg -m 256M \
		-nodefaults -no-user-config -nographic -display none \
		-serial stdio -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
		-kernel "$img" -append "$cmdline" "$@" >qout 2>qerr </dev/null
	QSTATUS=$?
}

same_as_qemu() { # image cmdline expected-kagami-status [extra kagami args]
	local img=$1 cmdline=$2 st=$3
	shift 3
	kg run --cmdline "$cmdline" "$@" "$img"
	expect_status "$st" || return
	qemu_run "$img" "$cmdline" "${QEMU_EXTRA[@]}"
	[[ $QSTATUS == $(((st << 1) | 1)) ]] ||
		why "QEMU exit status $QSTATUS, expected $(((st << 1) | 1)): $(head -c 300 qerr)" || return
	cmp -s out qout || why "console output differs: $(diff out qout | head -5)"
}

QEMU_EXTRA=()
test_qemu_hello() { same_as_qemu "$GUESTS/hello.elf" "a=1 b=2" 0; }
test_qemu_hello_exit() { same_as_qemu "$GUESTS/hello.elf" "exit=7" 7; }
test_qemu_memstress() { same_as_qemu "$GUESTS/memstress.elf" "mib=4 total=16 seed=5" 0; }
test_qemu_initrd() {
	head -c 200000 /dev/urandom >initrd.bin
	QEMU_EXTRA=(-initrd initrd.bin)
	same_as_qemu "$GUESTS/hello.elf" "initrd" 0 --initrd initrd.bin
}
test_qemu_crashme() {
	# The fault report itself comes from kagami (stderr) and from the
	# SDK's console fallback under QEMU; the guest's own line matches.
	kg run --cmdline "mode=pf" "$GUESTS/crashme.elf"
	expect_status 3 || return
	qemu_run "$GUESTS/crashme.elf" "mode=pf"
	[[ $QSTATUS == 7 ]] || why "QEMU exit status $QSTATUS, expected 7" || return
	[[ $(head -1 out) == "$(head -1 qout)" ]] || why "first lines differ"
	grep -q "guest fault: vector=000000000000000e" qout || why "no fault report under QEMU"
}

t "QEMU microvm: hello output and status" test_qemu_hello kvm,qemu
t "QEMU microvm: exit code mapping" test_qemu_hello_exit kvm,qemu
t "QEMU microvm: memstress checksums" test_qemu_memstress kvm,qemu
t "QEMU microvm: initrd module content" test_qemu_initrd kvm,qemu
t "QEMU microvm: crashme" test_qemu_crashme kvm,qemu
