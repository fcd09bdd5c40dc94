# The virtual-host tier (tests/vhost/lib.sh) and the Linux guest
# (scripts/build-linux-guest). A virtual host is QEMU TCG with nested KVM:
# it needs QEMU and root (network namespaces), not this machine's
# /dev/kvm. Without them the tests skip; under CI they fail.
#
#   switch ns ── sw0 ─┬─ namespace a (10.77.0.201): QEMU TCG, TAP vtap
#                     │     └─ virtual host a: br0 10.77.0.101, kagami, and
#                     │          QEMU microvm (KVM) with Linux: 10.77.0.11
#                     └─ client (10.77.0.2): redis-cli
#
# Times here (2 shared cores, by load): a virtual host boots in 7-30 s,
# Linux under QEMU microvm inside it reaches "redis ready" in 24-50 s.

source tests/vhost/lib.sh
source tests/vhost/lx.sh

# tvh NAME FUNC: t, when the tier can run here (else skip; under CI,
# fail); once more on new virtual hosts if one of them broke itself
# (lx_once_more).
tvh() {
	if ! vhost_usable; then
		if [[ ${CI:-} == true ]]; then
			FAILED=$((FAILED + 1)); FAILED_NAMES+=("$1")
			echo "FAIL $1: $VHOST_MISSING (required under CI)"
		else
			SKIPPED=$((SKIPPED + 1))
			echo "SKIP $1: $VHOST_MISSING"
		fi
		return
	fi
	LX_FN=$2 t "$1" lx_once_more qemu
}

test_linux_guest_build() {
	export KG_LINUX_OUT=$TT/linux
	"$ROOT/scripts/build-linux-guest" >out 2>err || why "build failed: $(cat err)" || return
	grep -q "built $TT/linux" out || why "no 'built' line: $(cat out)" || return
	[[ $(head -c 4 linux/vmlinux) == $'\x7fELF' ]] || why "vmlinux is not an ELF" || return
	cmp -s linux/bzImage "/boot/vmlinuz-$(sed -n 's/^kernel //p' linux/version)" ||
		why "bzImage is not the installed Debian kernel" || return
	zcat linux/initramfs.cpio.gz | cpio -t --quiet >list
	local f
	for f in init bin/busybox usr/bin/redis-server usr/bin/redis-cli usr/sbin/mke2fs \
		lib/modules/virtio_mmio.ko lib/modules/virtio_blk.ko lib/modules/virtio_net.ko \
		lib/modules/ext4.ko etc/kg-modules; do
		grep -qx "$f" list || why "initramfs lacks $f" || return
	done
	# Dependencies load before what needs them.
	zcat linux/initramfs.cpio.gz | cpio -i --quiet --to-stdout etc/kg-modules >mods
	[[ $(grep -nx virtio mods | cut -d: -f1) -lt $(grep -nx virtio_mmio mods | cut -d: -f1) ]] ||
		why "virtio loads after virtio_mmio: $(tr '\n' ' ' <mods)" || return
	"$ROOT/scripts/build-linux-guest" >out 2>err || why "second build failed" || return
	grep -q "up to date" out || why "second build was not cached: $(cat out)" || return
	KG_KERNEL_VERSION=0.0-none "$ROOT/scripts/build-linux-guest" >out 2>err
	STATUS=$?
	expect_status 1 || return
	err_one_line || return
	err_has "install linux-image-amd64"
}

test_vhost_kagami() {
	vhost_start a || why "$VHOST_ERROR" || return
	vhost_exec a kagami run --mem 64M /kg/build/guests/hello.elf >out 2>err
	STATUS=$?
	expect_status 0 || return
	if kvm_usable; then
		"$KAGAMI_RELEASE" run --mem 64M "$GUESTS/hello.elf" >here 2>/dev/null
		cmp -s out here || why "hello.elf prints differently inside: $(diff out here | head -3)" || return
	fi
	grep -q "hello, world" out || why "no hello inside: $(head -c 300 out err)" || return
	vhost_exec a /kg/build/asan/kagami run --mem 64M /kg/build/guests/hello.elf >out 2>err ||
		why "the ASan kagami failed inside: $(head -c 300 err)" || return
	grep -q "hello, world" out || why "ASan kagami: no hello" || return
	# The control channel: status, stderr apart, arguments verbatim,
	# concurrent requests, background jobs do not hold the answer.
	vhost_exec a 'echo out; echo err >&2; exit 7' >out 2>err
	STATUS=$?
	expect_status 7 || return
	[[ $(cat out) == out && $(cat err) == err ]] || why "stdout/stderr mixed: $(cat out err)" || return
	[[ $(vhost_exec a printf '%s|' 'a b' '$x' $'c\nd') == $'a b|$x|c\nd|' ]] ||
		why "arguments changed on the way" || return
	vhost_exec a 'sleep 6; echo slow' >slow &
	local bg=$!
	sleep 1
	[[ $(vhost_exec a echo quick) == quick ]] || why "no answer while another request runs" || return
	kill -0 "$bg" 2>/dev/null || why "requests ran one after the other" || return
	wait "$bg"
	[[ $(cat slow) == slow ]] || why "the slow request lost its output" || return
	local s=$SECONDS
	vhost_exec a 'sleep 60 >/dev/null 2>&1 &' || why "background job request failed" || return
	((SECONDS - s < 10)) || why "a background job held the answer" || return
	# The share: files in and out.
	echo in >"$(vhost_share a)/x"
	[[ $(vhost_exec a 'cat /kg/share/x; echo back >/kg/share/y') == in ]] || why "share: no file in" || return
	[[ $(cat "$(vhost_share a)/y") == back ]] || why "share: no file out" || return
	# A second host: the two, and a client namespace, reach each other.
	vhost_start b --cpus 1 --mem 1G || why "$VHOST_ERROR" || return
	netns_add_host client 10.77.0.2 || why "no client namespace" || return
	vhost_exec a ping -c 1 -W 5 "$(vhost_ip b)" >/dev/null || why "a cannot reach b" || return
	vhost_exec b ping -c 1 -W 5 10.77.0.2 >/dev/null || why "b cannot reach the client" || return
	netns_exec client busybox ping -c 1 -W 5 "$(vhost_ip a)" >/dev/null ||
		why "the client cannot reach a" || return
	# A power loss leaves nothing running; cleanup leaves no namespace.
	local pid ns id
	pid=$(vhost_pid a)
	ns=$(netns_name a)
	id=$NETNS_ID
	LX_KILLED="a b"
	vhost_kill a
	! kill -0 "$pid" 2>/dev/null || why "QEMU survived vhost_kill" || return
	[[ -z $(ip netns pids "$ns") ]] || why "processes left in $ns: $(ip netns pids "$ns")" || return
	! vhost_exec b ping -c 1 -W 2 "$(vhost_ip a)" >/dev/null || why "a answers after its power loss" || return
	vhost_exec a true 2>err
	STATUS=$?
	expect_status 255 || return
	err_has "no virtual host 'a' running" || return
	# A host that dies behind the library's back: no answer, and why.
	kill -KILL "$(vhost_pid b)"
	VHOST_EXEC_TIMEOUT=20 vhost_exec b true 2>err
	STATUS=$?
	expect_status 255 || return
	err_has "no complete answer (QEMU has exited" || return
	vhost_kill b
	vhost_cleanup
	[[ -z $(netns_leftovers "$id") ]] || why "namespaces left: $(netns_leftovers "$id")"
}

test_vhost_errors() {
	vhost_start 'Bad name' 2>err && why "a bad name was accepted" && return
	err_has "bad name" || return
	# A boot that cannot finish in time fails with the reason and the console.
	VHOST_BOOT_TIMEOUT=1 vhost_start b 2>err && why "a 1 s boot succeeded" && return
	err_has "no answer in 1 s" || return
	[[ -z $(vhost_pid b) ]] || why "QEMU left running after the failed start"
}

test_vhost_linux_qemu() {
	"$ROOT/scripts/build-linux-guest" --quiet 2>err || why "build-linux-guest: $(cat err)" || return
	vhost_start a || why "$VHOST_ERROR" || return
	netns_add_host client 10.77.0.2 || why "no client namespace" || return
	local s=$SECONDS ip
	ip=$(vhost_guest_ip a 1)
	vhost_qemu_linux a 1 || why "$VHOST_ERROR" || return
	vhost_wait a qemu-1.log "kagami-guest: (redis ready|error)" 240 ||
		why "$VHOST_ERROR; QEMU: $(tail -c 300 "$(vhost_share a)/qemu-1.out")" || return
	echo "Linux under QEMU microvm in a virtual host: redis ready after $((SECONDS - s)) s"
	local log
	log=$(vhost_share a)/qemu-1.log
	grep -q "kagami-guest: error" "$log" && why "$(grep "kagami-guest: error" "$log" | head -1)" && return
	grep -q "kagami-guest: disk vda mounted (new ext4)" "$log" || why "no ext4 data disk" || return
	grep -q "kagami-guest: eth0 $ip/24" "$log" || why "eth0 not configured" || return
	[[ $(netns_exec client redis-cli -h "$ip" ping 2>&1) == PONG ]] ||
		why "redis-cli ping from the client namespace: $(netns_exec client redis-cli -h "$ip" ping 2>&1)" || return
	[[ $(netns_exec client redis-cli -h "$ip" set k v42 2>&1) == OK ]] || why "SET failed" || return
	[[ $(netns_exec client redis-cli -h "$ip" get k 2>&1) == v42 ]] || why "GET failed" || return
	# The guest's facts: one vCPU, kvmclock, the host's year.
	grep -q "kagami-guest: nproc: 1" "$log" || why "nproc is not 1" || return
	grep -q "kagami-guest: clocksource: kvm-clock" "$log" || why "$(grep clocksource: "$log")" || return
	grep -q "kagami-guest: year: $(date -u +%Y)" "$log" || why "wrong year: $(grep year: "$log")" || return
	# The host powers off; the guest goes with it.
	vhost_stop a || why "$VHOST_ERROR" || return
	[[ $VHOST_STATUS == 0 ]] || why "QEMU exited $VHOST_STATUS after poweroff" || return
	# (timeout: the client still has the dead guest's ARP entry, and a SYN to
	# it is retried for over a minute.)
	! netns_exec client timeout 5 redis-cli -h "$ip" ping >/dev/null 2>&1 ||
		why "the guest answers after its host stopped"
}

tvh "Linux guest: built from Debian's packages, cached, one-line errors" test_linux_guest_build
tvh "virtual host: kagami inside, control channel, share, network, kill" test_vhost_kagami
tvh "virtual host: bad name and boot timeout fail clearly" test_vhost_errors
tvh "virtual host: Linux under QEMU microvm answers redis-cli" test_vhost_linux_qemu
