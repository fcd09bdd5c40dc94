#!/usr/bin/env bash
# Checkpoint FT (`kagami run --replicate ft` + `kagami secondary`) on this
# host, primary and secondary over loopback TCP (memstress) or between two
# network-namespace hosts (kvstore, drills), at several epoch lengths:
#   (1) memstress at several dirty rates (and flat out): vCPU pause per
#       epoch p50/p99, epoch-to-ACK p50/p99, epochs/s, bytes per epoch;
#   (2) memstress flat out: guest throughput replicated / unreplicated;
#   (3) kvstore under `kagami kv load`: ops/s replicated / unreplicated,
#       the client's p50/p99, how long replies were held (output commit);
#   (4) recovery time over `kagami drill` failover drills (ft and ha).
# Each measurement runs BENCH_REPEAT times (default 3), the unreplicated
# baseline in the same round as the replicated runs; the tables show
# medians, every run goes to stderr and to build/bench/replication.json.
# Builds nothing: `make bench` builds what it needs and then runs this.
# See bench/README.md for what each row means. It prints; it never asserts
# timing.
#
# Environment:
#   BENCH_REPEAT            runs per measurement (default 3)
#   BENCH_REP_EPOCHS        FT epoch lengths, ms (default "1 5 10 25")
#   BENCH_REP_RATES         memstress dirty rates, MiB/s; 0 = flat out
#                           (default "10 50 200 0")
#   BENCH_REP_MIB           memstress working set, MiB (default 64)
#   BENCH_REP_MEM           memstress guest RAM (default 128M)
#   BENCH_REP_WINDOW        seconds measured per memstress run (default 2)
#   BENCH_REP_FLAT_TOTAL    MiB written per flat-out run (default 2048)
#   BENCH_REP_FAILOVER_MS   --failover-timeout of both sides in the paced
#                           memstress runs (default "": kagami's, 100)
#   BENCH_REP_FLAT_FAILOVER_MS  --failover-timeout of both sides in the
#                           flat-out memstress runs (default 1000; "" keeps
#                           kagami's default, 100, as every other run does)
#   BENCH_REP_KV_DURATION   seconds per kvstore load (default 3)
#   BENCH_REP_KV_CLIENTS    kvstore client ids (default 4)
#   BENCH_REP_DRILLS        FT failover drills (default 5; 0 skips)
#   BENCH_REP_HA_DRILLS     HA failover drills (default 3; 0 skips)
#   BENCH_REP_SEED          drill seed (default 1)
#   BENCH_REP_PARTS         which parts run (default "mem kv drill")
#
# Needs /dev/kvm; the kvstore and drill parts need root (network
# namespaces, tests/netns.sh) and print "skipped: why" without it. All
# network traffic stays inside the namespaces this script (and the drill)
# creates; they, their TAPs and every process started here are removed on
# every exit (EXIT trap).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
BUILD=$ROOT/build
KAGAMI=$BUILD/kagami
GUESTS=$BUILD/guests
R=${BENCH_REPEAT:-3}
EPOCHS=${BENCH_REP_EPOCHS:-1 5 10 25}
RATES=${BENCH_REP_RATES:-10 50 200 0}
MIB=${BENCH_REP_MIB:-64}
MEM=${BENCH_REP_MEM:-128M}
WINDOW=${BENCH_REP_WINDOW:-2}
FLAT_FAILOVER=${BENCH_REP_FLAT_FAILOVER_MS-1000}
FAILOVER=${BENCH_REP_FAILOVER_MS:-}
FLAT_TOTAL=${BENCH_REP_FLAT_TOTAL:-2048}
SETTLE=0.5 # seconds after protected:true before the window opens
KV_DUR=${BENCH_REP_KV_DURATION:-3}
KV_CLIENTS=${BENCH_REP_KV_CLIENTS:-4}
NDRILL=${BENCH_REP_DRILLS:-5}
NDRILL_HA=${BENCH_REP_HA_DRILLS:-3}
SEED=${BENCH_REP_SEED:-1}
PARTS=${BENCH_REP_PARTS:-mem kv drill}
JSON=$BUILD/bench/replication.json

KV_IP=10.77.0.10
KV_PORT=7000
KV_MAC=52:54:00:77:00:0a

die() { echo "bench/replication: $*" >&2; exit 1; }
log() { echo "bench/replication: $*" >&2; }
source bench/lib.sh

posint "$R" || die "BENCH_REPEAT must be a positive integer"
posint "$MIB" || die "BENCH_REP_MIB must be a positive integer"
posint "$WINDOW" || die "BENCH_REP_WINDOW must be a positive integer"
posint "$KV_DUR" || die "BENCH_REP_KV_DURATION must be a positive integer"
posint "$KV_CLIENTS" || die "BENCH_REP_KV_CLIENTS must be a positive integer"
[[ $NDRILL =~ ^[0-9]+$ ]] || die "BENCH_REP_DRILLS must be a number"
[[ $NDRILL_HA =~ ^[0-9]+$ ]] || die "BENCH_REP_HA_DRILLS must be a number"
[[ $SEED =~ ^[0-9]+$ ]] || die "BENCH_REP_SEED must be a number"
posint "$FLAT_TOTAL" || die "BENCH_REP_FLAT_TOTAL must be a positive integer"
[[ -z $FAILOVER ]] || posint "$FAILOVER" || die "BENCH_REP_FAILOVER_MS must be a positive integer or empty"
[[ -z $FLAT_FAILOVER ]] || posint "$FLAT_FAILOVER" || die "BENCH_REP_FLAT_FAILOVER_MS must be a positive integer or empty"
for e in $EPOCHS; do posint "$e" || die "BENCH_REP_EPOCHS: '$e' is not a positive integer"; done
for r in $RATES; do [[ $r =~ ^[0-9]+$ ]] || die "BENCH_REP_RATES: '$r' is not a number"; done
[[ -n ${EPOCHS// /} ]] || die "BENCH_REP_EPOCHS is empty"
check_parts BENCH_REP_PARTS
need_files "$KAGAMI" "$GUESTS/memstress.elf" "$GUESTS/kvstore.elf"
command -v python3 >/dev/null || die "python3 is needed (JSON)"

source tests/netns.sh
set_skips secondary # KVM_SKIP, NET_SKIP

mkdir -p "$BUILD/bench"
# Disk images live on the build directory's file system (not a tmpfs), so
# a flush really reaches the disk, as in bench/kvstore.sh.
TMP=$(mktemp -d "$BUILD/bench/replication.XXXXXX") || die "mktemp failed"
PIDS=()
trap cleanup_all EXIT
exit_on_signals

# --- helpers ---------------------------------------------------------------

# (oneline, now, jget, free_port, stop, wait_for, wait_protected: bench/lib.sh)
# ctl_window A.json B.json T_A T_B: from two `ctl protection` answers,
# prints "pause50 pause99 ack50 ack99 hold50 hold99 kib_per_epoch
# epochs_per_s lag": percentiles (us) as kagami keeps them at B (its last
# 2048 epochs / 4096 outputs), the rest over the window A..B (bytes are
# kagami's running total, bytes_per_epoch * epochs).
ctl_window() {
	python3 - "$@" <<'EOF' 2>/dev/null
import json, sys
a, b = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
dt = float(sys.argv[4]) - float(sys.argv[3])
de = b["epochs"] - a["epochs"]
db = b["bytes_per_epoch"] * b["epochs"] - a["bytes_per_epoch"] * a["epochs"]
if b.get("state") != "protected" or not b.get("protected"):
    sys.exit(1)
print(b["pause_p50_us"], b["pause_p99_us"], b["ack_p50_us"], b["ack_p99_us"],
      b["output_hold_p50_us"], b["output_hold_p99_us"],
      "%.0f" % (db / de / 1024) if de > 0 else "-",
      "%.1f" % (de / dt) if dt > 0 else "-", b["epochs"] - b["acked"])
EOF
}
# nruns MAP KEY: "N/R", the runs that gave figures.
nruns() {
	local -n m=$1
	local v=${m[$2]:-}
	v=${v//-/}
	# shellcheck disable=SC2086
	set -- $v
	echo "$#/$R"
}
# lost_why CTL.json SEC.out: why the primary is no longer protected.
lost_why() {
	local st
	st=$(jget "$1" "'state %s (%s)' % (j.get('state'), j.get('why', ''))")
	if grep -q 'the guest runs here' "$2" 2>/dev/null; then
		echo "the secondary TOOK OVER while the primary ran: $(grep -m1 'primary lost' "$2" | oneline); primary: ${st:-no answer}"
	else
		echo "protection lost: ${st:-no answer}; secondary: $(tail -2 "$2" 2>/dev/null | oneline)"
	fi
}

# False suspicions: the primary lives through every run (both sides are
# stopped at the end, the primary ending protection on purpose), so each
# time the secondary declared it lost ('primary lost', or 'primary
# unreachable' when a lease stood it down) and each session the primary
# lost ('replication to ... lost') was one. Per part (mem, kv): runs
# counted, the secondary's suspicions, the primary's lost sessions, and
# heartbeats that came later than the failover timeout (the secondary's
# 'heartbeats from' lines: silences a fixed timeout on beats alone would
# have taken for a death).
declare -A FS_RUNS FS_SEC FS_PRI FS_LATE
# fs_count PART SECLOG PRILOG: adds one run's counts.
fs_count() {
	local n
	FS_RUNS[$1]=$((${FS_RUNS[$1]:-0} + 1))
	n=$(grep -cE 'primary (lost|unreachable)' "$2" 2>/dev/null)
	FS_SEC[$1]=$((${FS_SEC[$1]:-0} + ${n:-0}))
	n=$(grep -c 'replication to .* lost: ' "$3" 2>/dev/null)
	FS_PRI[$1]=$((${FS_PRI[$1]:-0} + ${n:-0}))
	n=$(grep -o 'heartbeats from .* [0-9]* after more than' "$2" 2>/dev/null |
		awk '{ s += $(NF - 3) } END { print s + 0 }')
	FS_LATE[$1]=$((${FS_LATE[$1]:-0} + ${n:-0}))
}
# fs_line PART: the part's line under its table.
fs_line() {
	echo "false suspicions (the primary lived throughout): ${FS_SEC[$1]:-0} at the secondary, ${FS_PRI[$1]:-0} sessions lost"
	echo "at the primary, over ${FS_RUNS[$1]:-0} protected runs; ${FS_LATE[$1]:-0} heartbeats came later than the failover timeout."
}

# Results: per key, space-separated runs. Keys: mem,EPOCH,RATE (EPOCH "-"
# for unreplicated), kv,EPOCH.
declare -A PAUSE50 PAUSE99 ACK50 ACK99 HOLD50 HOLD99 KIB EPS LAG SYNC TPUT
declare -A OPS CP50 CP99 GAP FAIL

# put KEY VAL...: appends one run's figures.
put() {
	local k=$1
	shift
	local -n _m
	for _m in PAUSE50 PAUSE99 ACK50 ACK99 HOLD50 HOLD99 KIB EPS LAG; do
		# shellcheck disable=SC2004 # _m is an associative array
		_m[$k]+=" $1"
		shift
	done
}

# --- memstress -------------------------------------------------------------

mem_args() {
	if [[ $1 == 0 ]]; then echo "mib=$MIB seed=1 total=$FLAT_TOTAL stats"
	else echo "mib=$MIB seed=1 forever rate=$1"; fi
}

# mem_run EPOCH RATE: one memstress run, EPOCH "-" for no replication: the
# secondary (loopback TCP), the primary, protected:true, then
#   paced (RATE > 0): SETTLE s, a `ctl protection` reading, WINDOW s,
#     another reading, stop both;
#   flat out (RATE 0, a fixed total): a reading every 0.2 s until the guest
#     ends; the first and the last are the window; the guest's own
#     elapsed time (memstress stats) gives its MiB/s.
# Records under mem,EPOCH,RATE; returns 1 with WHY on failure.
mem_run() {
	local ep=$1 rate=$2 key=mem,$1,$2 port sp="" pp t0 tp ta="" tb="" i el=""
	local -a rep=() fo=() f
	rm -f "$TMP"/m.*
	if [[ $rate == 0 && -n $FLAT_FAILOVER ]]; then fo=(--failover-timeout "$FLAT_FAILOVER")
	elif [[ $rate != 0 && -n $FAILOVER ]]; then fo=(--failover-timeout "$FAILOVER"); fi
	if [[ $ep != - ]]; then
		port=$(free_port)
		"$KAGAMI" secondary --listen "tcp:127.0.0.1:$port" "${fo[@]}" \
			--key "$(bench_key)" --no-lease \
			--console "file:$TMP/m.sec.log" </dev/null >"$TMP/m.sec.out" 2>&1 &
		sp=$! PIDS+=("$sp")
		wait_for listening "$TMP/m.sec.out" "$sp" 10
		rep=(--replicate ft --epoch-ms "$ep" --peer "tcp:127.0.0.1:$port" "${fo[@]}"
		     --key "$(bench_key)" --no-lease)
	fi
	t0=$(now)
	"$KAGAMI" run --mem "$MEM" --control "$TMP/m.ctl" --console "file:$TMP/m.con" \
		"${rep[@]}" --cmdline "$(mem_args "$rate")" "$GUESTS/memstress.elf" \
		</dev/null >"$TMP/m.pri.out" 2>&1 &
	pp=$! PIDS+=("$pp")
	WHY=""
	if [[ $ep == - ]]; then
		wait_for 'memstress: mib=' "$TMP/m.con" "$pp" 30 ||
			WHY="the guest did not start: $(oneline <"$TMP/m.pri.out")"
	elif ! wait_protected "$TMP/m.ctl" "$pp" "$sp" "$TMP/m.sec.out"; then
		WHY="never protected: $(lost_why "$TMP/m.none" "$TMP/m.sec.out"); primary: $(oneline <"$TMP/m.pri.out")"
	fi
	tp=$(now)
	if [[ -z $WHY && $rate != 0 ]]; then
		sleep "$SETTLE"
		ta=$(now)
		[[ $ep == - ]] || "$KAGAMI" ctl "$TMP/m.ctl" protection >"$TMP/m.a" 2>&1
		sleep "$WINDOW"
		tb=$(now)
		[[ $ep == - ]] || "$KAGAMI" ctl "$TMP/m.ctl" protection >"$TMP/m.b" 2>&1
		kill -0 "$pp" 2>/dev/null || WHY="the primary exited: $(oneline <"$TMP/m.pri.out")"
	elif [[ -z $WHY ]]; then
		for ((i = 0; i < 600; i++)); do
			if [[ $ep != - ]] && "$KAGAMI" ctl "$TMP/m.ctl" protection >"$TMP/m.cur" 2>/dev/null &&
				[[ $(jget "$TMP/m.cur" "j.get('protected')") == True ]]; then
				if [[ -z $ta ]]; then ta=$(now); cp "$TMP/m.cur" "$TMP/m.a"
				else tb=$(now); cp "$TMP/m.cur" "$TMP/m.b"; fi
			fi
			kill -0 "$pp" 2>/dev/null || break
			sleep 0.2
		done
		wait "$pp" 2>/dev/null
		el=$(grep -o 'stats elapsed_us=[0-9]*' "$TMP/m.con" | cut -d= -f2)
		if [[ -z $el ]]; then
			WHY="no elapsed time from the guest in 120 s: $(oneline <"$TMP/m.pri.out")"
		elif [[ $ep != - && -z $tb ]]; then
			WHY="the guest ended before two protected readings (BENCH_REP_FLAT_TOTAL too small?)"
		fi
	fi
	[[ -n $WHY || $ep == - ]] || ! grep -q 'the guest runs here' "$TMP/m.sec.out" ||
		WHY=$(lost_why "$TMP/m.b" "$TMP/m.sec.out")
	if [[ -z $WHY && $ep != - ]]; then
		read -ra f < <(ctl_window "$TMP/m.a" "$TMP/m.b" "$ta" "$tb")
		if ((${#f[@]} != 9)); then
			WHY=$(lost_why "$TMP/m.b" "$TMP/m.sec.out")
		else
			put "$key" "${f[@]}"
			SYNC[$key]+=" $(calc %.2f "$tp - $t0")"
		fi
	fi
	[[ -z $WHY && $rate == 0 ]] && TPUT[$key]+=" $(calc %.0f "$FLAT_TOTAL / ($el / 1000000)")"
	# A failed run is broken anyway: no grace.
	stop "$pp" "$([[ -n $WHY ]] && echo 1 || echo 5)"
	stop "$sp" "$([[ -n $WHY ]] && echo 1 || echo 5)"
	[[ $ep == - ]] || fs_count mem "$TMP/m.sec.out" "$TMP/m.pri.out"
	[[ -z $WHY ]]
}

logmem() { # KEY
	local k=$1 l=()
	last() { local -n m=$1; awk '{print $NF}' <<<"${m[$k]:-}"; }
	[[ -n ${PAUSE99[$k]:-} ]] && l+=("pause p50/p99 $(last PAUSE50)/$(last PAUSE99) us, ack p50/p99 $(last ACK50)/$(last ACK99) us, $(last KIB) KiB/epoch, $(last EPS) epochs/s, protected after $(last SYNC) s")
	[[ -n ${TPUT[$k]:-} ]] && l+=("$(last TPUT) MiB/s")
	log "  $k: ${l[*]}"
}

if [[ -z $KVM_SKIP ]] && part mem; then
	log "memstress: mib=$MIB, $MEM RAM, rates {$RATES} MiB/s (0 = flat out), epochs {$EPOCHS} ms, ${SETTLE}+$WINDOW s per run, $R runs each"
	for ((run = 0; run < R; run++)); do
		for rate in $RATES; do
			eps=$EPOCHS
			[[ $rate == 0 ]] && eps="- $EPOCHS" # the flat-out baseline
			for ep in $eps; do
				k=mem,$ep,$rate
				if mem_run "$ep" "$rate"; then
					logmem "$k"
				else
					FAIL[$k]=$WHY
					log "  $k: $WHY"
				fi
			done
		done
	done
fi

# --- kvstore ---------------------------------------------------------------

# kv_run EPOCH: one load run ("-": unreplicated). The primary on host pri
# (TAP kvp), the secondary on host sec (TAP kvs, its own new image), the
# client on cli: a fresh 64 MiB image, kvstore: ready, protected:true, one
# put (ARP), the load, a `ctl protection` reading, stop both.
KV_N=0
kv_run() {
	local ep=$1 key=kv,$1 d=$TMP/kv sp="" pp out rc=0 i tp="" tb=""
	local -a rep=() f
	KV_N=$((KV_N + 1))
	rm -rf "$d"
	mkdir -p "$d"
	truncate -s 64M "$d/pri.img"
	WHY=""
	if [[ $ep != - ]]; then
		# A new port per run: no wait for the last run's socket.
		local port=$((7700 + KV_N))
		pair_secondary "$d" "$port"
		sp=$NETNS_PID
		rep=(--replicate ft --epoch-ms "$ep" --peer "tcp:10.77.0.3:$port"
		     --key "$(bench_key)" --no-lease)
	fi
	pair_primary "$d" run --mem 128M -- "${rep[@]}"
	pp=$NETNS_PID
	if ! wait_for 'kvstore: ready' "$d/pri.console" "$pp" 30; then
		WHY="the guest did not start: $(cat "$d/pri.out" "$d/pri.console" 2>/dev/null | oneline)"
	elif [[ $ep != - ]] && ! wait_protected "$d/pri.sock" "$pp" "$sp" "$d/sec.out"; then
		WHY="never protected: $(lost_why "$d/none" "$d/sec.out"); primary: $(oneline <"$d/pri.out")"
	elif ! tp=$(now) || ! pair_warmup "$d"; then
		WHY="no answer to a first put: $(oneline <"$d/warm.out")"
	fi
	if [[ -z $WHY ]]; then
		out=$d/load.json
		pair_load "$d" || rc=$?
		tb=$(now)
		[[ $ep == - ]] || "$KAGAMI" ctl "$d/pri.sock" protection >"$d/b.json" 2>&1
		local acked dur p50 p99 gap errors
		load_figures "$out"
		if [[ $rc != 0 || -z $acked || -z $dur || -z $p50 ]]; then
			WHY="the load failed: kagami kv exited with $rc: $(cat "$out" "$d/load.err" | oneline)"
		elif [[ $errors != 0 ]]; then
			WHY="the load saw $errors errors or mismatched reads: $(oneline <"$out")"
		elif [[ $ep != - ]]; then
			# The percentiles; the window figures use the whole run
			# (an empty first reading).
			echo '{"epochs":0,"acked":0,"bytes_per_epoch":0}' >"$d/a.json"
			read -ra f < <(ctl_window "$d/a.json" "$d/b.json" "$tp" "$tb")
			((${#f[@]} == 9)) || WHY=$(lost_why "$d/b.json" "$d/sec.out")
		fi
		if [[ -z $WHY ]]; then
			OPS[$key]+=" $(calc %.0f "$acked / $dur")"
			CP50[$key]+=" $p50" CP99[$key]+=" $p99" GAP[$key]+=" $gap"
			[[ $ep == - ]] || put "$key" "${f[@]}"
		fi
	fi
	stop "$pp"
	stop "$sp"
	[[ $ep == - ]] || fs_count kv "$d/sec.out" "$d/pri.out"
	[[ -z $WHY ]]
}

if [[ -z $NET_SKIP ]] && part kv; then
	pair_netns_setup || NET_SKIP="network namespace setup failed"
fi
if [[ -z $NET_SKIP ]] && part kv; then
	log "kvstore: ${KV_DUR} s loads, $KV_CLIENTS clients, epochs {$EPOCHS} ms and unreplicated, $R runs each"
	for ((run = 0; run < R; run++)); do
		for ep in - $EPOCHS; do
			k=kv,$ep
			if kv_run "$ep"; then
				last() { local -n m=$1; awk '{print $NF}' <<<"${m[$k]:-}"; }
				log "  $k: $(last OPS) ops/s, client p50/p99 $(last CP50)/$(last CP99) us, max gap $(last GAP) ms${PAUSE99[$k]:+, pause p50/p99 $(last PAUSE50)/$(last PAUSE99) us, hold p50/p99 $(last HOLD50)/$(last HOLD99) us, $(last KIB) KiB/epoch}"
			else
				FAIL[$k]=$WHY
				log "  $k: $WHY"
			fi
		done
	done
	netns_cleanup
fi

# --- failover drills ---------------------------------------------------------

declare -A DRILL # mode -> the drill's JSON file
DRILL_SKIP=$NET_SKIP
for mode in ft ha; do
	n=$NDRILL
	[[ $mode == ha ]] && n=$NDRILL_HA
	if [[ -n $DRILL_SKIP || $n == 0 ]] || ! part drill; then continue; fi
	drill_run "$mode" "$n"
done

# --- the tables --------------------------------------------------------------

# runs_of MAP KEY: the runs med and sprd (bench/lib.sh) use: MAP[KEY] without its "-" (failed) marks.
runs_of() {
	local -n m=$1
	local v=${m[$2]:-}
	echo "${v//-/}"
}
row() { printf '%-12s' "$1"; shift; printf ' %9s' "$@"; echo; }
under() { # VALUE LIMIT: "met" / "MISSED" / "-"
	[[ $1 =~ ^[0-9.]+$ ]] || { echo "-"; return; }
	awk -v v="$1" -v l="$2" 'BEGIN { print (v < l ? "met" : "MISSED") }'
}

bench_header "kagami checkpoint FT (run --replicate ft + secondary)"
echo

echo "(1) memstress mib=$MIB forever rate=R ($MEM RAM), primary and secondary on this host over loopback TCP;"
echo "    ${SETTLE} s after protected:true, then a $WINDOW s window (flat out: total=$FLAT_TOTAL, from protected:true"
echo "    to the guest's end); pause and ack in ms; flat out with"
fonote="--failover-timeout $FLAT_FAILOVER on both sides"
[[ -n $FLAT_FAILOVER ]] || fonote="kagami's default failover timeout"
fonote2="--failover-timeout $FAILOVER"
[[ -n $FAILOVER ]] || fonote2="kagami's default failover timeout (100 ms)"
echo "    $fonote, every other row with $fonote2"
H=("rate MiB/s" "epoch ms" "pause p50" "pause p99" "ack p50" "ack p99" "epochs/s" "KiB/epoch" "MiB/s sent" "spread" "runs ok" "p99<1ms")
if table_head "$KVM_SKIP"; then
	for rate in $RATES; do
		for ep in $EPOCHS; do
			k=mem,$ep,$rate
			kib=$(med KIB "$k") eps=$(med EPS "$k") p99=$(med PAUSE99 "$k" 1000)
			sent="-"
			[[ $kib =~ ^[0-9.]+$ && $eps =~ ^[0-9.]+$ ]] && sent=$(calc %.0f "$kib * $eps / 1024")
			goal=$(under "$p99" 1)
			[[ $rate == 0 || $rate -gt 50 ]] && goal="($goal)"
			row "$([[ $rate == 0 ]] && echo "flat out" || echo "$rate")" "$ep" \
				"$(med PAUSE50 "$k" 1000)" "$p99" "$(med ACK50 "$k" 1000)" \
				"$(med ACK99 "$k" 1000)" "$eps" "$kib" "$sent" "$(sprd PAUSE99 "$k")" "$(nruns PAUSE99 "$k")" "$goal"
		done
	done
	failrows mem
fi
echo "pause: vCPUs stopped per epoch; ack: the epoch's pause to the secondary's ACK; both as kagami keeps"
echo "them (its last 2048 epochs, here all since protected:true, so the first paused epoch, which ends"
echo "the initial copy, is among them). epochs/s, KiB/epoch over the window (1000/epoch ms is the"
echo "nominal rate; fewer means epochs stretched: at most 3 are in flight). spread: of pause p99."
echo "Goal: pause p99 < 1 ms at moderate dirty rates (<= 50 MiB/s; in parentheses above that)."
echo "COLO's published figure: 14 ms mean, 31 ms p99 under load."
[[ -n $KVM_SKIP ]] || fs_line mem
echo

echo "(2) memstress flat out (mib=$MIB total=$FLAT_TOTAL stats): guest throughput, MiB/s"
H=("epoch ms" "MiB/s" "unrepl." "ratio" "spread" "protect s" "runs ok")
if [[ -n $KVM_SKIP || ! " $RATES " == *" 0 "* ]]; then
	echo "skipped: ${KVM_SKIP:-0 (flat out) is not in BENCH_REP_RATES}"
else
	row "${H[@]}"
	dashes "${H[@]}"
	base=$(med TPUT "mem,-,0")
	row "unreplicated" "$base" "$base" "1.00" "$(sprd TPUT "mem,-,0")" "-" "$(nruns TPUT "mem,-,0")"
	for ep in $EPOCHS; do
		k=mem,$ep,0
		t=$(med TPUT "$k")
		row "$ep" "$t" "$base" "$(ratio "$t" "$base")" "$(sprd TPUT "$k")" "$(med SYNC "$k")" "$(nruns TPUT "$k")"
	done
fi
echo "MiB/s: $FLAT_TOTAL MiB / the guest's elapsed time (memstress stats: the kagami clock, wall"
echo "time, pauses included) from its working set zeroed to its last checksum. The initial copy runs"
echo "in the first 'protect s' of it (primary start to protected:true; the guest starts at once)."
echo "unrepl.: the same guest without --replicate, in the same round."
echo

echo "(3) kvstore under kagami kv load ($KV_DUR s, $KV_CLIENTS clients, 50% writes), guest 10.77.0.10 on a TAP,"
echo "    primary and secondary on two network-namespace hosts; latencies in ms"
H=("epoch ms" "ops/s" "ratio" "cli p50" "cli p99" "hold p50" "hold p99" "pause p50" "pause p99" "KiB/epoch" "spread" "runs ok")
if table_head "$NET_SKIP"; then
	base=$(med OPS "kv,-")
	for ep in - $EPOCHS; do
		k=kv,$ep
		o=$(med OPS "$k")
		row "$([[ $ep == - ]] && echo unreplicated || echo "$ep")" "$o" "$(ratio "$o" "$base")" \
			"$(med CP50 "$k" 1000)" "$(med CP99 "$k" 1000)" \
			"$(med HOLD50 "$k" 1000)" "$(med HOLD99 "$k" 1000)" \
			"$(med PAUSE50 "$k" 1000)" "$(med PAUSE99 "$k" 1000)" \
			"$(med KIB "$k")" "$(sprd OPS "$k")" "$(nruns OPS "$k")"
	done
	failrows kv
fi
echo "ops/s: acknowledged requests / duration; ratio: / unreplicated, same rounds. cli: the client's"
echo "latency (first send to answer). hold: output commit, how long the guest's output (replies)"
echo "was held until its epoch was acknowledged (kagami's last 4096 outputs). KiB/epoch: over the"
echo "whole protected run. spread: of ops/s."
[[ -n $NET_SKIP ]] || fs_line kv
echo

echo "(4) recovery: kagami drill (kvstore under 4 clients' load, the primary killed with SIGKILL"
echo "    at a random moment; seed $SEED); recovery = the client's longest gap between answers, ms"
H=("mode" "drills" "p50" "p99" "max" "lost" "failed" "<200ms")
if table_head "$DRILL_SKIP"; then
	for mode in ft ha; do
		goal=-
		[[ $mode == ft && -n ${DRILL[$mode]:-} ]] &&
			goal=$(under "$(jget "${DRILL[$mode]}" "j['recovery_ms']['p99']")" 200)
		drill_row "$mode" "$goal"
	done
	failrows drill
fi
echo "The client retries a request after 200 ms (then 400, 800 ms...), so a gap cannot end before the"
echo "retry that the new primary answers: about 200 ms is the floor these drills can show, whatever"
echo "the failover itself takes (the secondary's --failover-timeout is 100 ms). Goal: < 200 ms end to"
echo "end (VMware FT detects a failure in seconds). HA may lose up to one interval (1 s) of writes."

# --- JSON copy -----------------------------------------------------------------

{
	echo "{"
	echo "  \"date\": $(jstr "$(date -u '+%Y-%m-%dT%H:%M:%SZ')"),"
	echo "  \"machine\": {\"nproc\": $(nproc), \"kernel\": $(jstr "$kernel"), \"cpu\": $(jstr "$cpu")},"
	echo "  \"repeat\": $R, \"mib\": $MIB, \"mem\": $(jstr "$MEM"), \"window_s\": $WINDOW, \"settle_s\": $SETTLE,"
	echo "  \"kv_duration_s\": $KV_DUR, \"kv_clients\": $KV_CLIENTS, \"flat_total_mib\": $FLAT_TOTAL,"
	echo "  \"failover_ms\": $(jstr "${FAILOVER:-default}"), \"flat_failover_ms\": $(jstr "${FLAT_FAILOVER:-default}"),"
	echo "  \"skipped\": {\"memstress\": $(jstr "$KVM_SKIP"), \"kvstore\": $(jstr "$NET_SKIP"), \"drills\": $(jstr "$DRILL_SKIP")},"
	echo "  \"runs\": ["
	sep=""
	for k in $(printf '%s\n' "${!PAUSE99[@]}" "${!TPUT[@]}" "${!OPS[@]}" "${!FAIL[@]}" | grep -v '^drill' | sort -u); do
		printf '%s    {"key": "%s", "pause_p50_us": %s, "pause_p99_us": %s, "ack_p50_us": %s, "ack_p99_us": %s, "hold_p50_us": %s, "hold_p99_us": %s, "kib_per_epoch": %s, "epochs_per_s": %s, "unacked": %s, "protect_s": %s, "mib_s": %s, "ops_s": %s, "client_p50_us": %s, "client_p99_us": %s, "max_gap_ms": %s, "failed": %s}' \
			"$sep" "$k" "$(jarr "${PAUSE50[$k]:-}")" "$(jarr "${PAUSE99[$k]:-}")" \
			"$(jarr "${ACK50[$k]:-}")" "$(jarr "${ACK99[$k]:-}")" \
			"$(jarr "${HOLD50[$k]:-}")" "$(jarr "${HOLD99[$k]:-}")" \
			"$(jarr "${KIB[$k]:-}")" "$(jarr "${EPS[$k]:-}")" "$(jarr "${LAG[$k]:-}")" \
			"$(jarr "${SYNC[$k]:-}")" "$(jarr "${TPUT[$k]:-}")" "$(jarr "${OPS[$k]:-}")" \
			"$(jarr "${CP50[$k]:-}")" "$(jarr "${CP99[$k]:-}")" "$(jarr "${GAP[$k]:-}")" \
			"$(jstr "${FAIL[$k]:-}")"
		sep=$',\n'
	done
	echo
	echo "  ],"
	for p in mem kv; do
		echo "  \"false_suspicions_$p\": {\"runs\": ${FS_RUNS[$p]:-0}, \"secondary\": ${FS_SEC[$p]:-0}, \"primary_sessions_lost\": ${FS_PRI[$p]:-0}, \"late_heartbeats\": ${FS_LATE[$p]:-0}},"
	done
	json_drills ft ha
	echo "}"
} >"$JSON"
json_done
