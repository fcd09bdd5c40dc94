# The virtual-host tier (bash, sourced by tests and benchmarks).
#
# This machine's /dev/kvm runs guest ring 0 about 1000x slower, so Linux
# guests run on *virtual hosts*: QEMU TCG VMs (-cpu max: emulated SVM)
# running Debian's kernel with kvm-amd nested=1, kagami inside them. A
# virtual host needs QEMU and root here, not /dev/kvm; it boots in 7-30 s
# (depending on the load). Its image is built by tests/vhost/build.
# kvm-amd runs with its nested paging (VHOST_NPT=0 for shadow paging):
# with it, a Linux guest whose memory KVM dirty-logs (FT epochs, a
# migration's pre-copy) can triple-fault (4 of 4 FT boots; 0 of 2 with
# npt=0), but with npt=0 boots stalled or a virtual host stopped
# answering under the suite's load (docs/architecture.md, "Known failures").
#
#   source tests/vhost/lib.sh
#   vhost_usable || skip "$VHOST_MISSING"
#   vhost_start a [--mem 2G] [--cpus 2]   # boots; returns when its agent answers
#   vhost_exec a kagami run /kg/build/guests/hello.elf   # stdout, stderr, status
#   vhost_exec a 'cmd | cmd2 >/tmp/x &'  # one argument: a shell script
#   vhost_share a                        # host path of its /kg/share
#   vhost_wait a FILE PATTERN [S]        # a line in a file of its /kg/share
#   vhost_qemu_linux a K [...]           # QEMU microvm + build/linux inside
#   vhost_kill a                         # kill -9 of its QEMU: a power loss
#   vhost_stop a                         # poweroff inside (kill -9 after 15 s)
#   vhost_cleanup                        # also runs on EXIT
#
# Inside a virtual host: busybox, qemu-system-x86_64 (-L /usr/share/qemu),
# redis-cli, redis-benchmark; /kg/build is this checkout's build/ (9p,
# read-only: kagami, asan/kagami, guests/, linux/), on PATH; /kg/share is
# vhost_share's directory (9p, read-write: pass files in, get logs and
# histories out). Keep disk images in /root or /tmp (RAM), not on 9p.
# vhost_exec talks to an agent over QEMU user networking: a TCP port
# forwarded from 127.0.0.1:7000 in the host's namespace (see kg-agent);
# requests run concurrently; VHOST_EXEC_TIMEOUT (s, default 180) bounds one
# (a virtual host whose agent stopped answering fails the call then).
# The agent listens on all addresses: anything on the test network can run
# commands in a virtual host (the network exists only inside namespaces).
#
# Network (tests/netns.sh, 10.77.0.0/24): virtual host number i (1-9, in
# start order) runs in namespace NAME (10.77.0.20i, a port of the test
# switch) behind TAP vtap; its NIC joins bridge br0 inside it, with
# address 10.77.0.10i (vhost_ip). Guests inside it get TAPs on br0 from
# `kg-tap NAME` and so sit on the test segment; their addresses are
# 10.77.0.(10*i + k), k = 0-9 (vhost_guest_ip NAME k). 10.77.0.1-9 are left
# for this machine's client namespaces (netns_add_host client 10.77.0.2).

VHOST_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
declare -F netns_setup >/dev/null || source "$VHOST_ROOT/tests/netns.sh"

declare -gA VHOST_SLOT=() VHOST_PID=()
VHOST_DIR=""       # state: $VHOST_DIR/NAME/{console.log,qemu.out,share/}
VHOST_MISSING=""   # why vhost_usable said no
VHOST_ERROR=""     # why the last vhost_* call failed (also on stderr)
VHOST_PREV_EXIT=""

vhost_usable() {
	VHOST_MISSING=""
	if ! command -v qemu-system-x86_64 >/dev/null; then
		VHOST_MISSING="qemu-system-x86_64 is not installed"
	elif ! command -v socat >/dev/null; then
		VHOST_MISSING="socat is not installed"
	elif ! netns_usable; then
		VHOST_MISSING=$NETNS_MISSING
	elif ! compgen -G '/lib/modules/*-amd64/modules.dep' >/dev/null; then
		VHOST_MISSING="no Debian kernel: install linux-image-amd64 (scripts/install-deps)"
	elif [[ ! -x $VHOST_ROOT/build/kagami ]]; then
		VHOST_MISSING="build/kagami is not built"
	fi
	[[ -z $VHOST_MISSING ]]
}

vhost_fail() {
	VHOST_ERROR="$*"
	echo "$VHOST_ERROR" >&2
	return 1
}

vhost_ip() { echo "10.77.0.$((100 + ${VHOST_SLOT[$1]}))"; }
vhost_guest_ip() { echo "10.77.0.$((10 * ${VHOST_SLOT[$1]} + $2))"; }
vhost_share() { echo "$VHOST_DIR/$1/share"; }
vhost_console() { echo "$VHOST_DIR/$1/console.log"; }
vhost_pid() { echo "${VHOST_PID[$1]:-}"; }

# One-time setup: state directory, test network, EXIT trap.
vhost_init() {
	[[ -n $VHOST_DIR ]] && return 0
	VHOST_DIR=$(mktemp -d "${TT:-${TMPDIR:-/tmp}}/vhost.XXXXXX") || return 1
	if [[ -z $NETNS_ID ]]; then
		netns_setup || { vhost_fail "vhost: network namespace setup failed"; return 1; }
	fi
	local prev
	prev=$(trap -p EXIT)
	VHOST_PREV_EXIT=""
	if [[ -n $prev ]]; then
		eval "set -- $prev"
		VHOST_PREV_EXIT=$3
	fi
	trap 'vhost_cleanup; eval "$VHOST_PREV_EXIT"' EXIT
}

vhost_start() {
	local name=$1 mem=2G cpus=2 timeout=${VHOST_BOOT_TIMEOUT:-180}
	shift
	while (($#)); do
		case $1 in
		--mem) mem=$2; shift 2 ;;
		--cpus) cpus=$2; shift 2 ;;
		*) vhost_fail "vhost_start: unknown option '$1'"; return 1 ;;
		esac
	done
	[[ $name =~ ^[a-z][a-z0-9_]{0,9}$ ]] || { vhost_fail "vhost_start: bad name '$name'"; return 1; }
	[[ -z ${VHOST_PID[$name]:-} ]] || { vhost_fail "vhost_start: $name is running"; return 1; }
	vhost_usable || { vhost_fail "vhost_start: $VHOST_MISSING"; return 1; }
	"$VHOST_ROOT/tests/vhost/build" --quiet || { vhost_fail "vhost_start: tests/vhost/build failed"; return 1; }
	vhost_init || return 1
	local slot=${VHOST_SLOT[$name]:-}
	if [[ -z $slot ]]; then
		slot=$((${#VHOST_SLOT[@]} + 1))
		((slot <= 9)) || { vhost_fail "vhost_start: at most 9 virtual hosts"; return 1; }
		VHOST_SLOT[$name]=$slot
		netns_add_host "$name" "10.77.0.$((200 + slot))" && netns_add_tap "$name" vtap ||
			{ vhost_fail "vhost_start: cannot make $name's network port"; return 1; }
	fi
	local d=$VHOST_DIR/$name b=$VHOST_ROOT/build
	mkdir -p "$d/share"
	rm -f "$d/console.log"
	netns_spawn "$name" qemu-system-x86_64 -M q35 -accel tcg,thread=multi -cpu max \
		-smp "$cpus" -m "$mem" -nodefaults -no-user-config -display none -monitor none \
		-no-reboot -serial "file:$d/console.log" \
		-kernel "$b/vhost/vmlinux" -initrd "$b/vhost/initramfs.cpio" \
		-append "console=ttyS0 loglevel=4 panic=-1 kg.name=$name kg.ip=$(vhost_ip "$name")/24 kg.kvm_amd=npt=${VHOST_NPT:-1}" \
		-netdev tap,id=net0,ifname=vtap,script=no,downscript=no \
		-device "virtio-net-pci,netdev=net0,romfile=,mac=52:54:00:77:00:0$slot" \
		-netdev user,id=ctl,restrict=on,hostfwd=tcp:127.0.0.1:7000-10.0.2.15:7000 \
		-device "virtio-net-pci,netdev=ctl,romfile=,mac=52:54:00:ff:00:0$slot" \
		-virtfs "local,path=$b,mount_tag=kgbuild,security_model=none,readonly=on" \
		-virtfs "local,path=$d/share,mount_tag=kgshare,security_model=none" \
		</dev/null >"$d/qemu.out" 2>&1 || { vhost_fail "vhost_start: cannot start QEMU"; return 1; }
	VHOST_PID[$name]=$NETNS_PID
	local pid=$NETNS_PID end=$((SECONDS + timeout)) st
	while ((SECONDS < end)); do
		if ! kill -0 "$pid" 2>/dev/null; then
			wait "$pid"
			st=$?
			unset "VHOST_PID[$name]"
			vhost_fail "vhost_start: $name: QEMU exited ($st): $(tail -c 300 "$d/qemu.out")" \
				"console: $(tail -n 5 "$d/console.log" 2>/dev/null)"
			return 1
		fi
		if grep -q "kagami-vhost: ready" "$d/console.log" 2>/dev/null &&
			[[ $(VHOST_EXEC_TIMEOUT=10 vhost_exec "$name" echo up 2>/dev/null) == up ]]; then
			grep "kagami-vhost: error" "$d/console.log" >&2
			return 0
		fi
		sleep 0.5
	done
	vhost_kill "$name"
	vhost_fail "vhost_start: $name: no answer in $timeout s; console: $(tail -n 5 "$d/console.log" 2>/dev/null)"
}

# vhost_exec NAME CMD...: runs CMD in NAME and returns its status, with
# its stdout and stderr on ours; 255 if there was no answer.
vhost_exec() {
	local name=$1 d req resp hdr magic rc olen elen hl size
	shift
	d=$VHOST_DIR/$name
	[[ -n ${VHOST_PID[$name]:-} ]] || { echo "vhost_exec: no virtual host '$name' running" >&2; return 255; }
	req=$(mktemp "$d/req.XXXXXX") || return 255
	resp=$req.resp
	if (($# == 1)); then printf '%s' "$1" >"$req.sh"; else printf '%q ' "$@" >"$req.sh"; fi
	{ printf 'KGX1 %d\n' "$(stat -c %s "$req.sh")"; cat "$req.sh"; } >"$req"
	timeout -k 5 "${VHOST_EXEC_TIMEOUT:-180}" ip netns exec "$(netns_name "$name")" \
		socat -t 86400 - TCP:127.0.0.1:7000 <"$req" >"$resp" 2>"$resp.err"
	hdr=$(head -n 1 "$resp")
	read -r magic rc olen elen <<<"$hdr"
	hl=$((${#hdr} + 1))
	size=$(stat -c %s "$resp")
	if [[ $magic != KGX1 || ! $rc$olen$elen =~ ^[0-9]+$ || $size != $((hl + olen + elen)) ]]; then
		local state="QEMU is running"
		kill -0 "${VHOST_PID[$name]}" 2>/dev/null || state="QEMU has exited"
		echo "vhost_exec: $name: no complete answer ($state; socat: $(head -c 200 "$resp.err");" \
			"console: $(tail -n 3 "$d/console.log" 2>/dev/null | tr '\n' '|'))" >&2
		rm -f "$req" "$req.sh" "$resp" "$resp.err"
		return 255
	fi
	tail -c +$((hl + 1)) "$resp" | head -c "$olen"
	tail -c +$((hl + olen + 1)) "$resp" >&2
	rm -f "$req" "$req.sh" "$resp" "$resp.err"
	return "$rc"
}

# vhost_wait NAME FILE PATTERN [SECONDS]: waits until FILE (relative to
# vhost_share NAME) has a line matching PATTERN (grep -E); fails naming
# the file's tail, or as soon as the virtual host is gone.
vhost_wait() {
	local name=$1 f=$VHOST_DIR/$1/share/$2 pat=$3 end=$((SECONDS + ${4:-300}))
	while ((SECONDS < end)); do
		grep -qE -- "$pat" "$f" 2>/dev/null && return 0
		if ! kill -0 "${VHOST_PID[$name]:-0}" 2>/dev/null; then
			vhost_fail "vhost_wait: $name is not running; $2: $(tail -n 3 "$f" 2>/dev/null)"
			return 1
		fi
		sleep 0.5
	done
	vhost_fail "vhost_wait: no '$pat' in $2 after ${4:-300} s: $(tail -n 3 "$f" 2>/dev/null)"
}

# vhost_qemu_linux NAME K [--cpus N] [--mem M] [--disk MiB] [--append ARGS]
#                  [--kernel bzImage|vmlinux]:
# starts QEMU microvm (KVM inside NAME) in the background on build/linux
# (the reference VMM for the Linux guest): TAP qtK on br0, address
# vhost_guest_ip NAME K, console in vhost_share NAME/qemu-K.log (QEMU's
# own messages in qemu-K.out), a fresh disk /root/qemu-K.img (ext4 made by
# the guest) unless --disk 0. Wait for the guest with vhost_wait.
# loglevel=4 (--append loglevel=7 undoes it): every console byte is an exit
# of the nested guest, and the boot messages alone doubled its boot time.
vhost_qemu_linux() {
	local name=$1 k=$2 cpus=1 mem=512M disk=256 extra="" kernel=bzImage
	shift 2
	while (($#)); do
		case $1 in
		--cpus) cpus=$2; shift 2 ;;
		--mem) mem=$2; shift 2 ;;
		--disk) disk=$2; shift 2 ;;
		--append) extra=$2; shift 2 ;;
		--kernel) kernel=$2; shift 2 ;;
		*) vhost_fail "vhost_qemu_linux: unknown option '$1'"; return 1 ;;
		esac
	done
	[[ -f $VHOST_ROOT/build/linux/bzImage ]] ||
		{ vhost_fail "vhost_qemu_linux: build/linux is not built (scripts/build-linux-guest)"; return 1; }
	local ip mac script
	ip=$(vhost_guest_ip "$name" "$k")
	mac=$(printf '52:54:00:77:%02x:%02x' "${VHOST_SLOT[$name]}" "$k")
	script="kg-tap qt$k || exit 1
rm -f /kg/share/qemu-$k.log
set --"
	((disk == 0)) || script+="
truncate -s ${disk}M /root/qemu-$k.img || exit 1
set -- -drive id=d,file=/root/qemu-$k.img,format=raw,if=none -device virtio-blk-device,drive=d"
	script+="
qemu-system-x86_64 -M microvm,acpi=on -accel kvm -cpu host -smp $cpus -m $mem \\
	-nodefaults -no-user-config -display none -monitor none -no-reboot \\
	-L /usr/share/qemu -serial file:/kg/share/qemu-$k.log \\
	-kernel /kg/build/linux/$kernel -initrd /kg/build/linux/initramfs.cpio.gz \\
	-append 'console=ttyS0 loglevel=4 kg.ip=$ip/24 $extra' \\
	-netdev tap,id=n,ifname=qt$k,script=no,downscript=no \\
	-device virtio-net-device,netdev=n,mac=$mac \"\$@\" >/kg/share/qemu-$k.out 2>&1 &"
	vhost_exec "$name" "$script" || { vhost_fail "vhost_qemu_linux: cannot start QEMU in $name"; return 1; }
}

# vhost_kagami_linux NAME K [--cpus N] [--mem M] [--disk MiB|keep]
#                    [--append ARGS] [--kagami PATH] [--args KAGAMI-ARGS]:
# starts kagami (KVM inside NAME) in the background on build/linux, the
# same guest vhost_qemu_linux boots: TAP ktK on br0, address
# vhost_guest_ip NAME K, console (and kagami's stderr) in vhost_share
# NAME/kagami-K.log, its exit status in kagami-K.rc once it ends; disk
# /root/kagami-K.img, made fresh (MiB), reused (keep) or none (0).
vhost_kagami_linux() {
	local name=$1 k=$2 cpus=1 mem=512M disk=256 extra="" kg=kagami kargs=""
	shift 2
	while (($#)); do
		case $1 in
		--cpus) cpus=$2; shift 2 ;;
		--mem) mem=$2; shift 2 ;;
		--disk) disk=$2; shift 2 ;;
		--append) extra=$2; shift 2 ;;
		--kagami) kg=$2; shift 2 ;;
		--args) kargs=$2; shift 2 ;;
		*) vhost_fail "vhost_kagami_linux: unknown option '$1'"; return 1 ;;
		esac
	done
	local ip mac script
	ip=$(vhost_guest_ip "$name" "$k")
	mac=$(printf '52:54:00:77:%02x:%02x' "${VHOST_SLOT[$name]}" "$((k + 50))")
	script="kg-tap kt$k || exit 1
rm -f /kg/share/kagami-$k.log /kg/share/kagami-$k.rc"
	local dopt="--disk /root/kagami-$k.img"
	if [[ $disk == 0 ]]; then
		dopt=""
	elif [[ $disk != keep ]]; then
		script+="
rm -f /root/kagami-$k.img && truncate -s ${disk}M /root/kagami-$k.img || exit 1"
	fi
	script+="
($kg run --cpus $cpus --mem $mem $dopt $kargs \\
	--net tap:kt$k,mac=$mac --initrd /kg/build/linux/initramfs.cpio.gz \\
	--cmdline 'console=ttyS0 loglevel=4 kg.ip=$ip/24 $extra' \\
	/kg/build/linux/bzImage >/kg/share/kagami-$k.log 2>&1 &
 echo \$! >/root/kagami-$k.pid
 wait \$!
 echo \$? >/kg/share/kagami-$k.rc) &"
	vhost_exec "$name" "$script" || { vhost_fail "vhost_kagami_linux: cannot start kagami in $name"; return 1; }
}

# vhost_kagami_stop NAME K [SIGNAL]: signals kagami K (default TERM) and
# waits (60 s) for its exit status, in VHOST_STATUS.
vhost_kagami_stop() {
	local name=$1 k=$2 sig=${3:-TERM}
	vhost_exec "$name" "kill -$sig \$(cat /root/kagami-$k.pid)" || return 1
	vhost_wait "$name" "kagami-$k.rc" '^[0-9]+$' 60 || return 1
	VHOST_STATUS=$(cat "$VHOST_DIR/$name/share/kagami-$k.rc")
}

# vhost_kill NAME: kill -9 of NAME's QEMU (a power loss); its namespace
# (its port on the switch) stays, so vhost_start NAME boots it again.
vhost_kill() {
	local name=$1 pid=${VHOST_PID[$1]:-}
	[[ -n $pid ]] || return 0
	kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	unset "VHOST_PID[$name]"
	return 0
}

# vhost_wedged NAME: the virtual host's own kernel says a CPU of it is
# stuck (soft lockup, RCU stall): the virtual host has failed (QEMU's
# emulated SVM), whatever ran inside it. Prints the first such line.
vhost_wedged() {
	grep -m1 -E 'soft lockup|rcu_preempt detected stalls' "$(vhost_console "$1")" 2>/dev/null
}

# vhost_broken NAME: succeeds, printing why, when virtual host NAME has
# failed itself: QEMU exited, its kernel reports a stuck CPU, or its agent
# or its 9p share does not answer within 20 s. (A VMM that hangs inside a
# working virtual host is not this.)
vhost_broken() {
	local w
	kill -0 "${VHOST_PID[$1]:-0}" 2>/dev/null || { echo "QEMU has exited"; return 0; }
	w=$(vhost_wedged "$1") && { echo "its kernel: $w"; return 0; }
	w=$(VHOST_EXEC_TIMEOUT=20 vhost_exec "$1" 'test -d /kg/share/. && touch /kg/share/.alive && echo alive' 2>&1)
	[[ $w == alive ]] && return 1
	echo "its agent or share: $(echo "$w" | tail -n 1 | cut -c1-200)"
}

# vhost_stop NAME: poweroff inside; QEMU's exit status in VHOST_STATUS.
# Fails (after kill -9) if NAME is still running 15 s later.
vhost_stop() {
	local name=$1 pid=${VHOST_PID[$1]:-} i
	VHOST_STATUS=""
	[[ -n $pid ]] || return 0
	VHOST_EXEC_TIMEOUT=5 vhost_exec "$name" 'sync; poweroff -f' >/dev/null 2>&1
	for i in $(seq 150); do
		if ! kill -0 "$pid" 2>/dev/null; then
			wait "$pid"
			VHOST_STATUS=$?
			unset "VHOST_PID[$name]"
			return 0
		fi
		sleep 0.1
	done
	vhost_kill "$name"
	vhost_fail "vhost_stop: $name did not power off in 15 s"
}

vhost_cleanup() {
	local n
	for n in "${!VHOST_PID[@]}"; do
		vhost_kill "$n"
	done
	netns_cleanup
	[[ -z $VHOST_DIR ]] || rm -rf "$VHOST_DIR"
	VHOST_DIR=""
	VHOST_SLOT=()
}
