#!/usr/bin/env bash
# Linux under kagami vs QEMU microvm, on a virtual host (tests/vhost/lib.sh:
# this machine's KVM emulates guest ring 0, so Linux runs on a QEMU TCG
# host with nested SVM, both VMMs inside it on its KVM). The same Debian
# kernel, initramfs (scripts/build-linux-guest), vCPUs, RAM, disk and NIC
# for both, one VMM at a time:
#   (1) boot: wall time from the VMM's start to the guest's /init line and
#       to "redis ready" (its console, read through the virtual host's 9p
#       share every 0.1 s);
#   (2) redis-benchmark (Debian's redis-tools) from a network namespace on
#       this machine: SET and GET, ops/s and p99 latency per connection
#       count (redis with appendfsync always: every SET is an fsync);
#   (3) disk: BENCH_LX_DD_MIB MiB written by dd with one fsync at the end
#       (kg.ddbench), MB/s as busybox dd reports it.
# Each measurement runs BENCH_REPEAT times (default 3, each a fresh boot);
# the table shows medians and kagami / QEMU, every run goes to stderr and
# to build/bench/linux.json. It prints; it never asserts timing.
#
# Environment:
#   BENCH_REPEAT          boots per VMM (default 3)
#   BENCH_LX_CPUS         guest vCPUs (default 2)
#   BENCH_LX_MEM          guest RAM (default 512M)
#   BENCH_LX_CLIENTS      redis-benchmark connection counts (default "1 8 32")
#   BENCH_LX_REQUESTS     requests per redis-benchmark test (default 5000)
#   BENCH_LX_DD_MIB       MiB written by the disk test (default 64)
#
# Needs root, QEMU and socat (the virtual-host tier); builds what it needs
# (tests/vhost/build, scripts/build-linux-guest) but not kagami.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
BUILD=$ROOT/build
KAGAMI=$BUILD/kagami
R=${BENCH_REPEAT:-3}
CPUS=${BENCH_LX_CPUS:-2}
MEM=${BENCH_LX_MEM:-512M}
CLIENTS=${BENCH_LX_CLIENTS:-1 8 32}
REQS=${BENCH_LX_REQUESTS:-5000}
DD_MIB=${BENCH_LX_DD_MIB:-64}
JSON=$BUILD/bench/linux.json

die() { echo "bench/linux: $*" >&2; exit 1; }
log() { echo "bench/linux: $*" >&2; }
source bench/lib.sh
source tests/vhost/lib.sh

for v in "$R" "$CPUS" "$REQS" "$DD_MIB" $CLIENTS; do
	posint "$v" || die "'$v' is not a positive integer (BENCH_REPEAT, BENCH_LX_*)"
done
need_files "$KAGAMI"
command -v redis-benchmark >/dev/null || die "redis-benchmark is missing (redis-tools; scripts/install-deps)"
vhost_usable || die "no virtual hosts here: $VHOST_MISSING"
"$ROOT/scripts/build-linux-guest" --quiet || die "scripts/build-linux-guest failed"
exit_on_signals
TMP=$(mktemp -d) || die "mktemp failed"
trap 'rm -rf "$TMP"' EXIT

log "starting a virtual host (QEMU TCG, -cpu max)"
vhost_start a --mem 2G --cpus 2 || die "$VHOST_ERROR"
netns_add_host client 10.77.0.2 || die "no client namespace"
SHARE=$(vhost_share a)

# lx_start VMM: boots the guest under kagami or qemu (guest number 1 or 2)
# with a fresh disk; sets K, LOGF, IP.
lx_start() {
	local extra="kg.ddbench=$DD_MIB"
	if [[ $1 == kagami ]]; then
		K=1 LOGF=$SHARE/kagami-1.log
		vhost_kagami_linux a 1 --cpus "$CPUS" --mem "$MEM" --append "$extra"
	else
		K=2 LOGF=$SHARE/qemu-2.log
		vhost_qemu_linux a 2 --cpus "$CPUS" --mem "$MEM" --append "$extra"
	fi
	IP=$(vhost_guest_ip a "$K")
}

lx_stop() {
	if [[ $1 == kagami ]]; then
		vhost_kagami_stop a 1 >/dev/null 2>&1
	else
		# Until it is gone: the next QEMU needs its TAP.
		vhost_exec a 'pkill -f "microvm,acpi=on"
for i in $(seq 50); do pgrep -f "microvm,acpi=on" >/dev/null || exit 0; sleep 0.2; done
pkill -9 -f "microvm,acpi=on"; sleep 1' >/dev/null 2>&1
	fi
}

# lx_wait_line PATTERN START: seconds from START (epoch seconds) until
# PATTERN is in LOGF, or "" after 300 s or once the VMM has said an error.
lx_wait_line() {
	local i
	for ((i = 0; i < 3000; i++)); do
		grep -q "$1" "$LOGF" 2>/dev/null && { calc %.1f "$(now) - $2"; return; }
		grep -q "kagami-guest: error" "$LOGF" 2>/dev/null && break
		grep -q "^qemu-system-x86_64: " "$SHARE/qemu-2.out" 2>/dev/null && break
		[[ -s $SHARE/kagami-1.rc ]] && break
		sleep 0.1
	done
	echo ""
}

# redis_bench TEST CLIENTS: "ops/s p99_ms" from redis-benchmark --csv.
redis_bench() {
	netns_exec client timeout 60 redis-benchmark -h "$IP" -t "$1" -n "$REQS" -c "$2" \
		-r 100000 --csv 2>/dev/null | awk -F'"' 'NR > 1 && $2 != "" { print $4, $14; exit }'
}

declare -A V # V[vmm,metric] = "run1 run2 ..."
add() { V[$1,$2]+="${3:-} "; }

for ((run = 1; run <= R; run++)); do
	for vmm in kagami qemu; do
		log "run $run/$R: $vmm"
		rm -f "$SHARE/kagami-1.log" "$SHARE/kagami-1.rc" "$SHARE/qemu-2.log" "$SHARE/qemu-2.out"
		t0=$(now)
		lx_start "$vmm" || die "$VHOST_ERROR"
		init=$(lx_wait_line "kagami-guest: init" "$t0")
		ready=$(lx_wait_line "kagami-guest: redis ready" "$t0")
		[[ -n $ready ]] || die "$vmm: no 'redis ready' in 300 s: $(tail -n 3 "$LOGF" | oneline) $(cat "$SHARE/qemu-2.out" 2>/dev/null | oneline)"
		add "$vmm" init "$init"
		add "$vmm" ready "$ready"
		dd=$(sed -n 's/^kagami-guest: dd: .* s, \([0-9.]*\) MB\/s.*/\1/p' "$LOGF" | tr -d '\r' | head -1)
		add "$vmm" dd "$dd"
		line="$vmm run $run: init ${init}s, redis ready ${ready}s, dd ${dd:-?} MB/s"
		gone=""
		for c in $CLIENTS; do
			for tst in set get; do
				ops="" p99=""
				# A guest that stopped answering (seen under both VMMs
				# on the nested virtual hosts) ends this boot's rows.
				[[ -n $gone ]] || read -r ops p99 < <(redis_bench "$tst" "$c")
				[[ -n $ops ]] || gone=${gone:-"$tst c=$c"}
				add "$vmm" "$tst$c" "$ops"
				add "$vmm" "${tst}p99_$c" "$p99"
				line+=", $tst c=$c ${ops:-?} ops/s p99 ${p99:-?} ms"
			done
		done
		[[ -z $gone ]] || { line+=" (no answer from $gone on)"; add "$vmm" lost "$run"; }
		log "$line"
		lx_stop "$vmm"
	done
done
vhost_stop a >/dev/null 2>&1

# row LABEL METRIC UNIT HIGHER: medians and kagami/qemu.
row() {
	local k q ratio
	k=$(median ${V[kagami,$2]:-})
	q=$(median ${V[qemu,$2]:-})
	ratio=$(awk -v k="$k" -v q="$q" 'BEGIN { if (k > 0 && q > 0) printf "%.2f", k / q; else print "-" }')
	printf '| %s | %s %s | %s %s | %s |\n' "$1" "${k:--}" "$3" "${q:--}" "$3" "$ratio"
}

echo
echo "Linux guest ($CPUS vCPUs, $MEM, Debian $(cut -d' ' -f1 "$BUILD/linux/version" 2>/dev/null)) on a virtual host, medians of $R boots"
echo
echo "| what | kagami | QEMU microvm | kagami / QEMU |"
echo "| --- | --- | --- | --- |"
row "boot to /init" init s
row "boot to redis ready" ready s
row "disk: $DD_MIB MiB dd + fsync" dd MB/s
for c in $CLIENTS; do
	row "redis SET, $c conn (appendfsync always)" "set$c" ops/s
	row "redis SET p99, $c conn" "setp99_$c" ms
	row "redis GET, $c conn" "get$c" ops/s
	row "redis GET p99, $c conn" "getp99_$c" ms
done
echo
echo "(times: lower is better; ops/s and MB/s: higher is better)"
[[ -z ${V[kagami,lost]:-}${V[qemu,lost]:-} ]] ||
	echo "guests that stopped answering redis-benchmark (boot numbers): kagami ${V[kagami,lost]:-none}, QEMU ${V[qemu,lost]:-none}"

json_runs V "$JSON"
log "every run: $JSON"
