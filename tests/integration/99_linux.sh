# Unmodified Linux under kagami, on a virtual host (tests/vhost/lib.sh):
# Debian's own bzImage and the initramfs of scripts/build-linux-guest
# (busybox, virtio modules, redis with appendfsync always), booted
# through the Linux boot protocol with kagami's ACPI tables, SMP through
# the in-kernel LAPIC, Linux's own virtio-mmio, virtio-blk and virtio-net
# drivers, kvmclock and the CMOS RTC. QEMU microvm with the same kernel,
# initramfs and devices, in the same virtual host, is the reference.
#
#   switch ns ── sw0 ─┬─ namespace a: virtual host a (br0 10.77.0.101)
#                     │     ├─ kagami: Linux, 10.77.0.11 (TAP kt1)
#                     │     └─ QEMU microvm: Linux, 10.77.0.12 (TAP qt2)
#                     └─ client (10.77.0.2): redis-cli
#
# Times (2 shared cores): Linux under kagami inside a virtual host reaches
# "redis ready" in ~35 s with 2 vCPUs, its init in ~12 s.

source tests/vhost/lib.sh
source tests/vhost/lx.sh

# Linux under kagami, 2 vCPUs, a new disk and a NIC: it boots to its init,
# sees its CPUs, disk and NIC, keeps time with kvm-clock and the right
# year, answers ping, and its redis answers a client on this machine; its
# data is on the disk after kagami is stopped and started again; QEMU
# microvm with the same kernel and devices gives the same answers.
test_linux_redis() {
	lx_build || return
	vhost_start a --mem 2G --cpus 2 || why "$VHOST_ERROR" || return
	lx_client || why "no client namespace" || return
	local ip log share
	ip=$(vhost_guest_ip a 1)
	share=$(vhost_share a)
	log=$share/kagami-1.log
	vhost_kagami_linux a 1 --cpus 2 || why "$VHOST_ERROR" || return
	vhost_wait a kagami-1.log "kagami-guest: (redis ready|error)" 300 ||
		why "$VHOST_ERROR" || return
	grep -q "kagami-guest: error" "$log" && { why "the guest said: $(grep error "$log")"; return; }
	[[ $(lx_fact "$log" nproc) == 2 ]] || why "nproc: $(lx_fact "$log" nproc)" || return
	[[ $(lx_fact "$log" clocksource) == kvm-clock ]] ||
		why "clocksource: $(lx_fact "$log" clocksource)" || return
	[[ $(lx_fact "$log" year) == "$(date +%Y)" ]] || why "year: $(lx_fact "$log" year)" || return
	[[ $(lx_fact "$log" "disk vda") == "256 MiB" ]] || why "disk: $(lx_fact "$log" "disk vda")" || return
	grep -q "kagami-guest: disk vda mounted (new ext4)" "$log" || why "no ext4 on vda" || return
	grep -q "kagami-guest: eth0 $ip/24" "$log" || why "eth0 not up" || return
	grep -qE 'XSAVE consistency|BUG:|Oops|soft lockup' "$log" &&
		{ why "kernel complaint: $(grep -E 'XSAVE|BUG:|Oops|lockup' "$log" | head -2)"; return; }
	lx_redis "$ip" >kagami.answers
	grep -q '^OK$' kagami.answers || why "redis under kagami: $(tr '\n' ' ' <kagami.answers)" || return
	netns_exec client ping -c 3 -i 0.2 -W 5 "$ip" >ping.out 2>&1 ||
		why "ping $ip from the client: $(tail -n 2 ping.out | tr '\n' ' ')" || return
	# Stopped and started again on the same disk: redis finds its data.
	vhost_kagami_stop a 1 || why "$VHOST_ERROR" || return
	[[ $VHOST_STATUS == 143 ]] || why "kagami exited $VHOST_STATUS after SIGTERM" || return
	vhost_kagami_linux a 1 --cpus 2 --disk keep || why "$VHOST_ERROR" || return
	vhost_wait a kagami-1.log "kagami-guest: (redis ready|error)" 300 ||
		why "$VHOST_ERROR" || return
	grep -q "kagami-guest: disk vda mounted (existing ext4)" "$log" ||
		why "the disk was not kept: $(grep 'disk vda' "$log")" || return
	[[ $(netns_exec client redis-cli -h "$ip" get k1 2>&1) == v1 &&
	   $(netns_exec client redis-cli -h "$ip" get s 2>&1) == abcd ]] ||
		why "data lost across a restart" || return
	vhost_kagami_stop a 1 || why "$VHOST_ERROR" || return
	# The reference: QEMU microvm, same kernel, initramfs and devices.
	vhost_qemu_linux a 2 --cpus 2 || why "$VHOST_ERROR" || return
	vhost_wait a qemu-2.log "kagami-guest: (redis ready|error)" 300 ||
		why "$VHOST_ERROR" || return
	lx_redis "$(vhost_guest_ip a 2)" >qemu.answers
	# The reference guest stopping to answer (seen now and then on the
	# nested hosts) is not a difference of kagami's.
	grep -q "Could not connect" qemu.answers &&
		lx_env_failure "QEMU microvm's guest stopped answering: $(grep -m1 'Could not' qemu.answers)"
	diff -u qemu.answers kagami.answers >answers.diff ||
		why "kagami and QEMU answer differently: $(tr '\n' ' ' <answers.diff)" || return
	[[ $(lx_fact "$share/qemu-2.log" nproc) == 2 ]] || why "QEMU guest nproc"
}

# 1 vCPU: `poweroff` in the guest (ACPI S5) ends kagami with 0; `reboot`
# (the ACPI reset register) boots the guest again.
test_linux_power() {
	lx_build || return
	vhost_start a --mem 2G --cpus 2 || why "$VHOST_ERROR" || return
	local log
	log=$(vhost_share a)/kagami-1.log
	vhost_kagami_linux a 1 --disk 0 --append "kg.mode=info kg.disk=none" ||
		why "$VHOST_ERROR" || return
	vhost_wait a kagami-1.rc '^[0-9]+$' 300 ||
		why "$VHOST_ERROR; kagami-1.log: $(tail -n 5 "$log" | tr '\n' '|')" || return
	[[ $(cat "$(vhost_share a)/kagami-1.rc") == 0 ]] ||
		why "poweroff: kagami exited $(cat "$(vhost_share a)/kagami-1.rc"): $(tail -n 3 "$log")" || return
	[[ $(lx_fact "$log" nproc) == 1 ]] || why "nproc: $(lx_fact "$log" nproc)" || return
	grep -q "reboot: Power down" "$log" || why "no power-down: $(tail -n 3 "$log")" || return
	local r wedged
	lx_reboot "$log"
	r=$?
	if ((r == 2)); then
		# The virtual host itself locked up (seen in ~1 of 10 reboots,
		# at the guest's reboot, which runs real-mode code under the
		# emulated SVM): once more on a new virtual host.
		wedged=$(vhost_wedged a)
		vhost_kill a
		vhost_start a --mem 2G --cpus 2 || why "$VHOST_ERROR" || return
		lx_reboot "$log"
		r=$?
		((r == 0)) && note "the virtual host locked up at the first reboot ($wedged); passed on a new one"
	fi
	((r == 0)) || why "the guest did not boot again after reboot: $(tail -n 3 "$log")" || return
	vhost_kagami_stop a 1 || why "$VHOST_ERROR" || return
	[[ $VHOST_STATUS == 143 ]] || why "kagami exited $VHOST_STATUS after SIGTERM"
}

# lx_reboot LOG: the guest in virtual host a boots, reboots and boots
# again. 0; 1 if not within 300 s; 2 if the virtual host locked up.
lx_reboot() {
	local log=$1 i n=0
	vhost_kagami_linux a 1 --disk 0 --append "kg.mode=info kg.disk=none kg.end=reboot" ||
		{ why "$VHOST_ERROR"; return 1; }
	for ((i = 0; i < 600; i++)); do
		n=$(grep -c "kagami-guest: info done" "$log" 2>/dev/null)
		((n >= 2)) && return 0
		[[ -n $(vhost_wedged a) ]] && return 2
		sleep 0.5
	done
	return 1
}

# A running 2-vCPU Linux guest with redis is snapshotted (ctl snapshot),
# its kagami killed -9, and the snapshot restored on the same disk and
# TAP: redis answers with its data and goes on counting from where it was,
# the guest runs on (both vCPUs), and its kernel complains of nothing
# (loglevel 5: warnings such as an unstable clocksource are printed too).
# Stopped then like a power cut and booted again, its ext4 checks clean
# and redis has kept what it acknowledged.
test_linux_snapshot() {
	lx_build || return
	vhost_start a --mem 2G --cpus 2 || why "$VHOST_ERROR" || return
	lx_client || why "no client namespace" || return
	local ip share log mac out
	ip=$(vhost_guest_ip a 1)
	share=$(vhost_share a)
	log=$share/kagami-1.log
	mac=$(printf '52:54:00:77:%02x:%02x' "${VHOST_SLOT[a]}" 51)
	vhost_kagami_linux a 1 --cpus 2 --append "loglevel=5 kg.tick=1" --args "--control /root/kagami-1.sock" ||
		why "$VHOST_ERROR" || return
	vhost_wait a kagami-1.log "kagami-guest: (redis ready|error)" 300 ||
		why "$VHOST_ERROR" || return
	[[ $(netns_exec client redis-cli -h "$ip" set k1 v1 2>&1) == OK &&
	   $(netns_exec client redis-cli -h "$ip" incr n 2>&1) == 1 &&
	   $(netns_exec client redis-cli -h "$ip" append s ab 2>&1) == 2 ]] ||
		why "redis before the snapshot" || return
	out=$(vhost_exec a "kagami ctl /root/kagami-1.sock snapshot --path /root/s.snap" 2>&1) ||
		why "ctl snapshot: $out" || return
	grep -q '"ok":[[:space:]]*true' <<<"$out" || why "ctl snapshot: $out" || return
	vhost_kagami_stop a 1 KILL || why "$VHOST_ERROR" || return
	vhost_exec a "rm -f /kg/share/kagami-1.rc
(kagami restore --control /root/kagami-1.sock --disk /root/kagami-1.img --net tap:kt1,mac=$mac \\
	--console file:/kg/share/restored-1.log /root/s.snap >/kg/share/restore-1.err 2>&1 &
 echo \$! >/root/kagami-1.pid
 wait \$!
 echo \$? >/kg/share/kagami-1.rc) &" || why "cannot start kagami restore" || return
	local i v=""
	for ((i = 0; i < 60; i++)); do
		v=$(netns_exec client timeout 5 redis-cli -h "$ip" get k1 2>&1)
		[[ $v == v1 ]] && break
		[[ -s $share/kagami-1.rc ]] && break
		sleep 1
	done
	[[ $v == v1 ]] || why "after the restore, get k1: '$v'; $(tail -c 300 "$share/restore-1.err")" || return
	[[ $(netns_exec client redis-cli -h "$ip" incr n 2>&1) == 2 &&
	   $(netns_exec client redis-cli -h "$ip" get s 2>&1) == ab &&
	   $(netns_exec client redis-cli -h "$ip" set k2 v2 2>&1) == OK ]] ||
		why "redis after the restore does not go on from the snapshot" || return
	sleep 5
	out=$(vhost_exec a "kagami ctl /root/kagami-1.sock status" 2>&1)
	grep -q '"state":[[:space:]]*"running"' <<<"$out" && grep -q '"vcpus":[[:space:]]*2' <<<"$out" ||
		why "the restored VM: $out" || return
	local c
	c=$(lx_complaints "$share/restored-1.log" "$log")
	[[ -z $c ]] || why "kernel complaint: $c" || return
	# The restored guest's clocks: its uptime goes on from the snapshot,
	# its wall clock is this host's (kvmclock advanced by the time the
	# snapshot waited).
	lx_ticks "$share/restored-1.log" || return
	vhost_kagami_stop a 1 || why "$VHOST_ERROR" || return
	[[ $VHOST_STATUS == 143 ]] || why "the restored kagami exited $VHOST_STATUS: $(tail -c 300 "$share/restore-1.err")" || return
	# Stopped like a power cut: at the next boot its file system is
	# checked (the guest's init runs e2fsck before it mounts) and redis
	# still has what the restored guest acknowledged.
	vhost_kagami_linux a 1 --cpus 2 --disk keep --args "--control /root/kagami-1.sock" ||
		why "$VHOST_ERROR" || return
	vhost_wait a kagami-1.log "kagami-guest: (redis ready|error)" 300 ||
		why "$VHOST_ERROR" || return
	grep -q "kagami-guest: fsck vda: clean" "$log" ||
		why "after the restore: $(grep -a 'fsck vda' "$log" || echo 'no fsck line')" || return
	[[ $(netns_exec client redis-cli -h "$ip" get k2 2>&1) == v2 &&
	   $(netns_exec client redis-cli -h "$ip" get n 2>&1) == 2 ]] ||
		why "redis after the power cut lost what the restored guest acknowledged" || return
	vhost_kagami_stop a 1 || why "$VHOST_ERROR"
}

tlx "Linux under kagami: 2 vCPUs, disk, NIC, redis from a client; data kept across restarts; same answers as QEMU" test_linux_redis
tlx "Linux under kagami: poweroff exits 0, reboot boots again" test_linux_power
tlx "Linux under kagami: snapshot of a running 2-vCPU guest, kill -9, restore: redis goes on with its data, clocks right, fsck clean" test_linux_snapshot

# Lockstep and record/replay need a deterministic guest: a Linux kernel
# asking for them is refused before it boots, in one line that says why
# (no virtual host needed), and record leaves no file behind.
test_linux_not_deterministic() {
	lx_build || return
	local img=$ROOT/build/linux/bzImage
	kg run --deterministic --mem 512M "$img"
	expect_status 2 && err_has "is a Linux kernel, which cannot run deterministically" &&
		err_has "reads the TSC" && err_one_line || return
	kg record --log rec.log --mem 512M "$img"
	expect_status 2 && err_has "cannot run deterministically" && err_one_line || return
	[[ ! -e rec.log && -z $(compgen -G 'rec.log*') ]] || why "record left $(ls rec.log*)" || return
	kg run --replicate lockstep --peer tcp:127.0.0.1:9 --insecure --no-lease --mem 512M "$img"
	expect_status 2 && err_has "protect it with --replicate ft or ha" && err_one_line
}

t "Linux under kagami: lockstep and record are refused in one line, before booting" test_linux_not_deterministic kvm
