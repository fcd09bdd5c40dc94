# virtio devices under real guests: a hostile guest against virtio-blk.

test_hostile_blk() {
	truncate -s 4M disk.img
	kg run --disk disk.img "$GUESTS/hostile.elf"
	expect_status 0 || return
	out_has "hostile: done" || return
	local c
	for c in "buffer outside RAM" "buffer in the MMIO hole" "descriptor loop" \
		"4 GiB length" "available index backwards" "next index out of range" \
		"head index out of range" "no status byte" "rings outside RAM"; do
		out_has "hostile: $c -> needs_reset" || return
	done
	out_has "hostile: sector past the end -> status=1" || return
	out_has "hostile: unknown request type -> status=2" || return
	# one line per broken queue, naming the device and the problem
	[[ $(grep -c "virtio-blk at 0xfeb00e00: guest error, device needs reset" err) == 9 ]] ||
		why "expected 9 one-line reports: $(cat err)"
	err_has "is longer than the queue (a loop?)" && err_has "jumped from 0 to 65535"
}

test_disk_errors() {
	kg run --disk nothere.img "$GUESTS/hello.elf"
	expect_status 2 && err_has "disk nothere.img: No such file or directory" || return
	mkdir dir.img
	kg run --disk dir.img "$GUESTS/hello.elf"
	expect_status 2 && err_has "disk dir.img: Is a directory" || return
	kg run --disk x.img,fast "$GUESTS/hello.elf"
	expect_status 2 && err_has "bad disk option 'fast'" || return
	kg run --net eth0 "$GUESTS/hello.elf"
	expect_status 2 && err_has "expected tap:IFNAME" || return
	kg run --net tap:x,mac=01:00:00:00:00:01 "$GUESTS/hello.elf"
	expect_status 2 && err_has "multicast bit set"
}

test_disk_in_use() {
	truncate -s 1M disk.img
	timeout 20 "$KAGAMI" run --disk disk.img --cmdline spin "$GUESTS/hello.elf" >o1 2>e1 &
	local pid=$!
	sleep 0.5
	kg run --disk disk.img "$GUESTS/hello.elf"
	kill -TERM $pid
	wait $pid
	expect_status 2 && err_has "disk disk.img: locked by another process (is another kagami using it?)"
}

test_cmdline_announces_devices() {
	truncate -s 1M a.img
	truncate -s 1M b.img
	kg run --disk a.img --disk b.img,readonly --cmdline "x=1" "$GUESTS/hello.elf"
	expect_status 0 || return
	# IOAPIC pins 16 + slot (platform 3); 5 + slot in deterministic mode
	out_has "cmdline=[x=1 virtio_mmio.device=512@0xfeb00e00:23 virtio_mmio.device=512@0xfeb00c00:22]" || return
	kg run --deterministic --disk a.img --cmdline "x=1" "$GUESTS/hello.elf"
	expect_status 0 || return
	out_has "cmdline=[x=1 virtio_mmio.device=512@0xfeb00e00:12]"
}

t "hostile guest vs virtio-blk" test_hostile_blk kvm
t "disk and network argument errors" test_disk_errors kvm
t "a disk image in use is refused" test_disk_in_use kvm
t "devices announced on the command line like microvm" test_cmdline_announces_devices kvm

test_blk_roundtrip_restart() {
	truncate -s 32M disk.img
	kg run --disk disk.img --cmdline "mode=write seed=7 sectors=8192" "$GUESTS/blktest.elf"
	expect_status 0 && out_has "blktest: ok done mode=write" || return
	out_has "blktest: ok out-of-range reads fail with IOERR" || return
	# a new kagami process on the same image sees the flushed data
	kg run --disk disk.img --cmdline "mode=verify seed=7 sectors=8192" "$GUESTS/blktest.elf"
	expect_status 0 && out_has "blktest: ok verify sectors=8192" || return
	kg run --disk disk.img --cmdline "mode=verify seed=8 sectors=8192" "$GUESTS/blktest.elf"
	expect_status 1 && out_has "blktest: FAIL"
}

test_blk_readonly() {
	truncate -s 8M disk.img
	kg run --disk disk.img,readonly --cmdline "mode=write seed=1" "$GUESTS/blktest.elf"
	# blktest sees the read-only flag and refuses to write (exit 1); the
	# image stays all zeros
	expect_status 1 && out_has "ro=1" &&
		out_has "blktest: FAIL mode=write on a read-only disk" || return
	cmp -s disk.img <(head -c 8M /dev/zero) || why "the read-only image was written"
}

t "virtio-blk write, flush, read back; data survives a restart" test_blk_roundtrip_restart kvm
t "virtio-blk read-only disk" test_blk_readonly kvm

test_reset_with_devices() {
	# A reset rebuilds the KVM VM: the devices are reset and their
	# notification eventfds registered again, without errors.
	truncate -s 4M disk.img
	kg run --disk disk.img --cmdline reset "$GUESTS/hello.elf"
	expect_status 0 && out_has "hello: boot_count=1" || return
	[[ ! -s err ]] || why "stderr: $(head -c 300 err)"
}

t "reset with a virtio device" test_reset_with_devices kvm
