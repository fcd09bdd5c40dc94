#!/usr/bin/env bash
# kagami vs QEMU (KVM) on the same guest images, through the virtio devices:
#   (1) the kvstore guest (virtio-net + virtio-blk) under `kagami kv load`
#       from another network namespace: ops/s, p50 and p99 latency;
#   (2) blktest: sequential write of 64 MiB through virtio-blk, MB/s.
# Each measurement runs BENCH_REPEAT times (default 3); the table shows
# medians, a JSON copy with every run goes to build/bench/kvstore.json.
# Builds nothing: `make bench` builds what it needs and then runs this
# (after bench/run.sh). See bench/README.md for what each row means.
#
# Environment:
#   BENCH_REPEAT         runs per measurement (default 3)
#   BENCH_KV_DURATION    seconds per load run (default 5)
#   BENCH_KV_CLIENTS     client counts to measure (default "1 16")
#   BENCH_KV_WRITES      write ratio of the load (default 0.5)
#   BENCH_QEMU           QEMU binary (default qemu-system-x86_64; "" skips)
#
# Needs root for the network namespaces (tests/netns.sh); without it the
# kvstore part is skipped with the reason and the blk part still runs. All
# network traffic stays inside the namespaces this script creates; they and
# their TAPs are removed on every exit (the harness's EXIT trap).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
BUILD=$ROOT/build
KAGAMI=$BUILD/kagami
GUESTS=$BUILD/guests
R=${BENCH_REPEAT:-3}
DUR=${BENCH_KV_DURATION:-5}
CLIENTS=${BENCH_KV_CLIENTS:-1 16}
WRATIO=${BENCH_KV_WRITES:-0.5}
QEMU=${BENCH_QEMU-qemu-system-x86_64}
JSON=$BUILD/bench/kvstore.json

KV_IP=10.77.0.10
KV_PORT=7000
KV_MAC=52:54:00:77:00:0a # fixed: the client's ARP entry stays valid across VMMs
KV_DISK=1G               # sparse; the log of a 5 s load is a few tens of MiB
BLK_SECTORS=131072       # 64 MiB
BLK_ARGS="mode=write sectors=$BLK_SECTORS run=256 stats"

die() { echo "bench/kvstore: $*" >&2; exit 1; }
log() { echo "bench/kvstore: $*" >&2; }
source bench/lib.sh

posint "$R" || die "BENCH_REPEAT must be a positive integer"
posint "$DUR" || die "BENCH_KV_DURATION must be a positive integer"
for c in $CLIENTS; do
	posint "$c" || die "BENCH_KV_CLIENTS: '$c' is not a positive integer"
done
[[ -n ${CLIENTS// /} ]] || die "BENCH_KV_CLIENTS is empty"
need_files "$KAGAMI" "$GUESTS/kvstore.elf" "$GUESTS/blktest.elf"
[[ -c /dev/kvm ]] || die "/dev/kvm is missing"
command -v perl >/dev/null || die "perl is needed (console timestamps)"
QEMU_MISSING=""
if [[ -z $QEMU ]]; then
	QEMU_MISSING="skipped (BENCH_QEMU is empty)"
elif ! command -v "$QEMU" >/dev/null 2>&1; then
	QEMU_MISSING="not installed ($QEMU)"
fi
mkdir -p "$BUILD/bench"
# Disk images live on the build directory's file system (not a tmpfs), so
# a flush really reaches the disk.
TMP=$(mktemp -d "$BUILD/bench/kvstore.XXXXXX") || die "mktemp failed"
trap 'rm -rf "$TMP"' EXIT
# Die of these at once (the EXIT trap cleans up), also when the command in
# the foreground (kagami kv load ends early on SIGINT) exits normally.
exit_on_signals

# --- helpers ---------------------------------------------------------------

json_num() { grep -o "\"$2\":[0-9.]*" "$1" | head -1 | cut -d: -f2; }
# oneline: this script's own (200 characters), replacing bench/lib.sh's.
oneline() { tr '\n' ' ' | sed 's/  */ /g; s/^ //; s/ $//' | tail -c 200; }

# The QEMU command line shared by both parts: microvm without ACPI (so the
# virtio-mmio devices are on the guest command line, as under kagami),
# modern virtio, KVM with the CPU model that works on this PVM host.
# shellcheck disable=SC2054 # the commas are QEMU option syntax
qemu_base=(-M microvm,acpi=off -accel kvm -cpu host,-arch-capabilities
	-m 128M -nodefaults -no-user-config -nographic -display none
	-serial stdio -device isa-debug-exit,iobase=0xf4,iosize=0x04
	-global virtio-mmio.force-legacy=false)

# Prints each console line as "T_FIRST T_END TEXT": the host time (s) its
# first byte and its newline arrived. Under kagami a line arrives in one
# write; under QEMU (COM1) byte by byte. The reader runs at a real-time
# priority when it may, so that on a busy host it wakes at once: it sleeps
# through the timed region (the guest prints nothing there).
STAMP_PRIO=()
chrt -f 10 true 2>/dev/null && STAMP_PRIO=(chrt -f 10)
stamp_lines() {
	# shellcheck disable=SC2016 # perl code
	"${STAMP_PRIO[@]}" perl -MTime::HiRes=time -e '
		my ($l, $t0) = ("", undef);
		while (sysread(STDIN, my $b, 65536)) {
			my $t = time;
			for my $c (split //, $b) {
				$t0 = $t unless defined $t0;
				if ($c eq "\n") {
					printf "%.6f %.6f %s\n", $t0, $t, $l;
					($l, $t0) = ("", undef);
				} else { $l .= $c }
			}
		}
		printf "%.6f %.6f %s\n", $t0, time, $l if length $l;'
}

# --- (1) kvstore -------------------------------------------------------------

source tests/netns.sh
KV_SKIP=""
QKV_FAIL=$QEMU_MISSING
declare -A OPS P50 P99 # [vmm,clients] -> space-separated per-run values

# kv_boot VMM: boots kvstore.elf on a fresh disk on the "server" host and
# waits for "kvstore: ready". Sets VM_PID; on failure returns 1 with VM_WHY.
kv_boot() {
	local vmm=$1 con=$TMP/kv.console err=$TMP/kv.err i
	rm -f "$TMP/kv.img" "$con" "$err"
	truncate -s "$KV_DISK" "$TMP/kv.img" || { VM_WHY="truncate failed"; return 1; }
	VM_WHY=""
	if [[ $vmm == kagami ]]; then
		netns_spawn server "$KAGAMI" run --mem 128M --disk "$TMP/kv.img" \
			--net "tap:kvb0,mac=$KV_MAC" --console "file:$con" \
			--cmdline "ip=$KV_IP/24 port=$KV_PORT" \
			"$GUESTS/kvstore.elf" </dev/null >/dev/null 2>"$err"
	else
		netns_spawn server "$QEMU" "${qemu_base[@]}" \
			-kernel "$GUESTS/kvstore.elf" \
			-append "ip=$KV_IP/24 port=$KV_PORT" \
			-drive "id=d0,file=$TMP/kv.img,format=raw,if=none" \
			-device virtio-blk-device,drive=d0 \
			-netdev tap,id=n0,ifname=kvb0,script=no,downscript=no \
			-device "virtio-net-device,netdev=n0,mac=$KV_MAC" \
			</dev/null >"$con" 2>"$err"
	fi
	VM_PID=$NETNS_PID
	[[ -n $VM_PID ]] || { VM_WHY="could not spawn in the server namespace"; return 1; }
	for i in $(seq 300); do
		grep -q "kvstore: ready" "$con" 2>/dev/null && break
		if ! kill -0 "$VM_PID" 2>/dev/null; then
			wait "$VM_PID" 2>/dev/null
			VM_WHY="exited with $? before 'kvstore: ready': $(cat "$err" "$con" 2>/dev/null | oneline)"
			VM_PID=""
			return 1
		fi
		sleep 0.1
	done
	if ! grep -q "kvstore: ready" "$con" 2>/dev/null; then
		VM_WHY="no 'kvstore: ready' in 30 s: $(cat "$err" "$con" 2>/dev/null | oneline)"
		kv_halt
		return 1
	fi
	# One request first: the client's ARP, and proof that the guest answers.
	if ! netns_exec client timeout -k 5 20 "$KAGAMI" kv \
		--server "$KV_IP:$KV_PORT" --timeout 10 put bench-warmup x \
		>"$TMP/warm.out" 2>"$TMP/warm.err"; then
		VM_WHY="no answer to a first put: $(oneline <"$TMP/warm.err")"
		kv_halt
		return 1
	fi
}

kv_halt() {
	[[ -n ${VM_PID:-} ]] || return 0
	kill -TERM "$VM_PID" 2>/dev/null
	local i
	for i in $(seq 50); do
		kill -0 "$VM_PID" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$VM_PID" 2>/dev/null
	wait "$VM_PID" 2>/dev/null
	VM_PID=""
}

# kv_load VMM C: one load run against a freshly booted guest; records
# acked/s, p50 and p99. Returns 1 with VM_WHY when it failed.
kv_load() {
	local vmm=$1 c=$2 out=$TMP/load.json err=$TMP/load.err rc=0
	kv_boot "$vmm" || { VM_WHY="failed to start: $VM_WHY"; return 1; }
	rm -f "$TMP/journal"
	netns_exec client timeout -k 5 $((DUR + 60)) "$KAGAMI" kv \
		--server "$KV_IP:$KV_PORT" load --duration "$DUR" \
		--clients "$c" --write-ratio "$WRATIO" --journal "$TMP/journal" \
		>"$out" 2>"$err" || rc=$?
	kv_halt
	local acked dur p50 p99 errors mism
	acked=$(json_num "$out" acked) dur=$(json_num "$out" duration_s)
	p50=$(json_num "$out" p50_us) p99=$(json_num "$out" p99_us)
	errors=$(json_num "$out" errors) mism=$(json_num "$out" mismatches)
	if [[ $rc != 0 || -z $acked || -z $dur || -z $p50 || -z $p99 ]]; then
		VM_WHY="failed during the load: kagami kv exited with $rc: $(cat "$out" "$err" | oneline)"
		return 1
	fi
	if [[ $errors != 0 || $mism != 0 ]]; then
		VM_WHY="failed during the load: errors=$errors mismatches=$mism: $(oneline <"$out")"
		return 1
	fi
	OPS[$vmm,$c]+=" $(calc %.0f "$acked / $dur")"
	P50[$vmm,$c]+=" $p50"
	P99[$vmm,$c]+=" $p99"
	log "  $vmm clients=$c: $(calc %.0f "$acked / $dur") ops/s, p50 $p50 us, p99 $p99 us"
}

if ! netns_usable; then
	KV_SKIP=$NETNS_MISSING
else
	# server (10.77.0.1): the hypervisor host, TAP kvb0 on its bridge;
	# the guest is 10.77.0.10 behind it. client (10.77.0.2): kagami kv.
	# shellcheck disable=SC2119 # netns_setup takes no arguments
	if ! { netns_setup && netns_add_host server 10.77.0.1 &&
		netns_add_host client 10.77.0.2 && netns_add_tap server kvb0; }; then
		die "network namespace setup failed"
	fi
	log "kvstore: ${DUR} s loads, clients {$CLIENTS}, write ratio $WRATIO, $R runs each, kagami and QEMU alternating"
	for ((i = 0; i < R; i++)); do
		for c in $CLIENTS; do
			kv_load kagami "$c" || die "kagami: $VM_WHY"
			[[ -z $QKV_FAIL ]] || continue
			if ! kv_load qemu "$c"; then
				QKV_FAIL=$VM_WHY
				log "QEMU $QKV_FAIL"
			fi
		done
	done
	netns_cleanup
fi

# --- (2) virtio-blk sequential write ----------------------------------------

QBLK_FAIL=$QEMU_MISSING
k_ext=() k_wr=() k_fl=() k_int=() q_ext=() k_dev=()

# blk_run VMM: blktest on a fresh 64 MiB image; sets BLK_EXT (write+flush
# seconds from the console timestamps) and, under kagami, BLK_WR_US and
# BLK_FL_US (the guest's own clock). Returns 1 with BLK_WHY.
blk_run() {
	local vmm=$1 img=$TMP/blk.img out=$TMP/blk.out err=$TMP/blk.err rc want
	rm -f "$img"
	truncate -s 64M "$img" || { BLK_WHY="truncate failed"; return 1; }
	if [[ $vmm == kagami ]]; then
		want=0
		timeout -k 5 120 "$KAGAMI" run --mem 128M --disk "$img" \
			--cmdline "$BLK_ARGS" "$GUESTS/blktest.elf" \
			</dev/null 2>"$err" | stamp_lines >"$out"
	else
		want=1 # the guest's exit(0) through isa-debug-exit
		timeout -k 5 120 "$QEMU" "${qemu_base[@]}" \
			-kernel "$GUESTS/blktest.elf" -append "$BLK_ARGS" \
			-drive "id=d0,file=$img,format=raw,if=none" \
			-device virtio-blk-device,drive=d0 \
			</dev/null 2>"$err" | stamp_lines >"$out"
	fi
	rc=${PIPESTATUS[0]}
	if [[ $rc != "$want" ]] || ! grep -q 'blktest: ok done' "$out"; then
		BLK_WHY="exited with $rc: $(cut -d' ' -f3- "$out" | cat - "$err" | oneline)"
		grep -q 'blktest: ok open' "$out" || BLK_WHY="failed to start: $BLK_WHY"
		return 1
	fi
	local t0 t1
	t0=$(awk '/blktest: ok get-id/ { print $2; exit }' "$out")
	t1=$(awk '/blktest: ok write sectors=/ { print $1; exit }' "$out")
	[[ -n $t0 && -n $t1 ]] || { BLK_WHY="no get-id or write line: $(oneline <"$out")"; return 1; }
	BLK_EXT=$(calc %.6f "$t1 - $t0")
	BLK_WR_US=$(grep -o 'stats write sectors=[0-9]* us=[0-9]*' "$out" | grep -o '[0-9]*$')
	BLK_FL_US=$(grep -o 'stats flush sectors=[0-9]* us=[0-9]*' "$out" | grep -o '[0-9]*$')
	if [[ $vmm == kagami && ( -z $BLK_WR_US || -z $BLK_FL_US ) ]]; then
		BLK_WHY="no stats lines under kagami: $(oneline <"$out")"
		return 1
	fi
}

mb=$(calc %.6f "$BLK_SECTORS * 512 / 1e6")
log "virtio-blk: blktest $BLK_ARGS on a 64 MiB image, $R runs each, kagami and QEMU alternating"
for ((i = 0; i < R; i++)); do
	blk_run kagami || die "blktest under kagami: $BLK_WHY"
	k_ext+=("$(calc %.1f "$mb / $BLK_EXT")")
	k_wr+=("$(calc %.1f "$mb / ($BLK_WR_US / 1e6)")")
	k_fl+=("$(calc %.2f "$BLK_FL_US / 1e3")")
	k_int+=("$(calc %.1f "$mb / (($BLK_WR_US + $BLK_FL_US) / 1e6)")")
	# How far the host's timestamps are from the guest's own clock.
	k_dev+=("$(calc %.1f "100 * ($BLK_EXT - ($BLK_WR_US + $BLK_FL_US) / 1e6) / (($BLK_WR_US + $BLK_FL_US) / 1e6)")")
	log "  kagami: write+flush ${k_ext[-1]} MB/s (guest clock ${k_int[-1]}), write ${k_wr[-1]} MB/s, flush ${k_fl[-1]} ms"
	[[ -z $QBLK_FAIL ]] || continue
	if blk_run qemu; then
		q_ext+=("$(calc %.1f "$mb / $BLK_EXT")")
		log "  qemu: write+flush ${q_ext[-1]} MB/s"
	else
		QBLK_FAIL=$BLK_WHY
		log "QEMU $QBLK_FAIL"
	fi
done

# --- the tables --------------------------------------------------------------

cpu=$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2 | sed 's/^ *//')
kernel="$(uname -sr) $(uname -m)"
backend=kvm
[[ -d /sys/module/kvm_pvm ]] && backend="kvm (PVM backend)"
[[ -d /sys/module/kvm_intel ]] && backend="kvm_intel"
[[ -d /sys/module/kvm_amd ]] && backend="kvm_amd"
fs=$(df -T "$TMP" 2>/dev/null | awk 'NR == 2 { print $2 " on " $1 }')
qemu_ver=""
[[ -z $QEMU_MISSING ]] && qemu_ver=$("$QEMU" --version | head -1)

echo
echo "kagami vs QEMU on the virtio devices, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "machine: nproc=$(nproc), kernel $kernel${cpu:+, $cpu}, $backend, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "peer: ${qemu_ver:-QEMU $QEMU_MISSING}${qemu_ver:+, -M microvm,acpi=off -accel kvm -cpu host,-arch-capabilities}"
echo "figures are medians of $R runs on a shared, noisy machine; 1 vCPU, 128 MiB each"
echo

kvrow() { printf '%-12s %12s %12s %7s %7s %19s %19s\n' "$@"; }
echo "(1) kvstore: kagami kv load, ${DUR} s, write ratio $WRATIO, guest on a TAP in a netns"
if [[ -n $KV_SKIP ]]; then
	echo "    skipped: $KV_SKIP"
else
	kvrow "setting" "kagami ops/s" "QEMU ops/s" "ratio" "spread" "kagami p50/p99 us" "QEMU p50/p99 us"
	kvrow "-------" "------------" "----------" "-----" "------" "-----------------" "---------------"
	for c in $CLIENTS; do
		# shellcheck disable=SC2086 # the values are space-separated numbers
		{
		kops=$(median ${OPS[kagami,$c]}) ksp=$(spread ${OPS[kagami,$c]})
		klat="$(median ${P50[kagami,$c]})/$(median ${P99[kagami,$c]})"
		if [[ -n ${OPS[qemu,$c]:-} && -z $QKV_FAIL ]]; then
			qops=$(median ${OPS[qemu,$c]})
			qlat="$(median ${P50[qemu,$c]})/$(median ${P99[qemu,$c]})"
			ratio=$(calc %.2f "$kops / $qops")
		else
			qops=- qlat=- ratio=-
		fi
		}
		kvrow "clients=$c" "$kops" "$qops" "$ratio" "$ksp%" "$klat" "$qlat"
	done
	[[ -z $QKV_FAIL ]] || echo "QEMU: $QKV_FAIL"
fi
echo

blkrow() { printf '%-44s %10s %10s %7s %7s  %s\n' "$@"; }
echo "(2) virtio-blk sequential write: blktest $BLK_ARGS, fresh 64 MiB raw image ($fs)"
blkrow "measurement" "kagami" "QEMU" "ratio" "spread" "note"
blkrow "-----------" "------" "----" "-----" "------" "----"
k_ext_m=$(median "${k_ext[@]}")
if [[ -z $QBLK_FAIL ]]; then
	q_ext_m=$(median "${q_ext[@]}")
	blk_ratio=$(calc %.2f "$k_ext_m / $q_ext_m")
else
	q_ext_m=- blk_ratio=-
fi
blkrow "write + flush, MB/s (console timestamps)" "$k_ext_m" "$q_ext_m" "$blk_ratio" \
	"$(spread "${k_ext[@]}")%" "host clock, get-id line to write line"
dev_max=$(printf '%s\n' "${k_dev[@]}" | awk '{ a = $1 < 0 ? -$1 : $1; if (a > m) m = a } END { printf "%.1f", m }')
blkrow "  write + flush, MB/s (guest clock)" "$(median "${k_int[@]}")" "-" "" \
	"$(spread "${k_int[@]}")%" "kagami only (no guest clock under QEMU); console timestamps within ${dev_max}% of it"
blkrow "  write only, MB/s (guest clock)" "$(median "${k_wr[@]}")" "-" "" \
	"$(spread "${k_wr[@]}")%" "512 requests of 128 KiB, 8 per notify"
blkrow "  flush, ms (guest clock)" "$(median "${k_fl[@]}")" "-" "" \
	"$(spread "${k_fl[@]}")%" "fdatasync of the image"
[[ -z $QBLK_FAIL ]] || echo "QEMU: $QBLK_FAIL"
echo
echo "ratio: kagami / QEMU (higher is better); MB = 10^6 bytes"

# --- JSON copy -------------------------------------------------------------------

# This script's own jstr and jarr (its JSON as before), replacing bench/lib.sh's.
jstr() { printf '"%s"' "$(sed 's/\\/\\\\/g; s/"/\\"/g' <<<"$1")"; }
jarr() { local IFS=,; printf '[%s]' "$*"; }
# shellcheck disable=SC2086
{
	echo "{"
	echo "  \"date\": $(jstr "$(date -u '+%Y-%m-%dT%H:%M:%SZ')"),"
	echo "  \"machine\": {\"nproc\": $(nproc), \"kernel\": $(jstr "$kernel"), \"cpu\": $(jstr "$cpu"), \"backend\": $(jstr "$backend")},"
	echo "  \"repeat\": $R, \"qemu\": $(jstr "${qemu_ver:-$QEMU_MISSING}"),"
	echo "  \"kvstore\": {\"duration_s\": $DUR, \"write_ratio\": $WRATIO, \"skipped\": $(jstr "$KV_SKIP"), \"qemu_failed\": $(jstr "$QKV_FAIL"),"
	echo "    \"settings\": ["
	sep=""
	for c in $CLIENTS; do
		[[ -z $KV_SKIP ]] || break
		printf '%s      {"clients": %s, "kagami_ops_s": %s, "kagami_p50_us": %s, "kagami_p99_us": %s, "qemu_ops_s": %s, "qemu_p50_us": %s, "qemu_p99_us": %s}' \
			"$sep" "$c" "$(jarr ${OPS[kagami,$c]})" "$(jarr ${P50[kagami,$c]})" \
			"$(jarr ${P99[kagami,$c]})" "$(jarr ${OPS[qemu,$c]:-})" \
			"$(jarr ${P50[qemu,$c]:-})" "$(jarr ${P99[qemu,$c]:-})"
		sep=$',\n'
	done
	echo
	echo "    ]},"
	echo "  \"blk\": {\"args\": $(jstr "$BLK_ARGS"), \"mb\": $mb, \"filesystem\": $(jstr "$fs"), \"qemu_failed\": $(jstr "$QBLK_FAIL"),"
	echo "    \"kagami_mb_s\": $(jarr "${k_ext[@]}"), \"kagami_guest_clock_mb_s\": $(jarr "${k_int[@]}"),"
	echo "    \"kagami_write_mb_s\": $(jarr "${k_wr[@]}"), \"kagami_flush_ms\": $(jarr "${k_fl[@]}"),"
	echo "    \"kagami_console_vs_guest_clock_pct\": $(jarr "${k_dev[@]}"),"
	echo "    \"qemu_mb_s\": $(jarr "${q_ext[@]}")}"
	echo "}"
} >"$JSON"
echo "JSON copy: ${JSON#"$ROOT"/}"
