#!/usr/bin/env bash
# Record/replay and lockstep FT on this host, in the same run:
#   (1) record overhead: memstress (fixed total, flat out) MiB/s and
#       kvstore ops/s under `kagami kv load`, for `kagami run` (plain),
#       `run --deterministic` and `kagami record`; ratios to plain;
#   (2) log bandwidth of a recording (KiB/s and Mbit/s): kvstore idle,
#       kvstore loaded, memstress paced and flat out;
#   (3) replay speed: replay wall time / record wall time, with and
#       without --no-digests;
#   (4) kvstore ops/s under lockstep FT (--replicate lockstep) vs
#       unreplicated vs checkpoint FT (--replicate ft, 10 ms epochs);
#   (5) output release (how long replies were held) for lockstep vs FT;
#   (6) recovery over `kagami drill --mode lockstep|ft` drills;
#   (7) bytes on the wire per second of protection, idle and loaded.
# Each measurement runs BENCH_REPEAT times (default 3), every variant in
# the same round; the tables show medians, every run goes to stderr and
# to build/bench/record.json. Builds nothing: `make bench` builds what it
# needs and then runs this. See bench/README.md for what each row means.
# It prints; it never asserts timing.
#
# Environment:
#   BENCH_REPEAT            runs per measurement (default 3)
#   BENCH_REC_MIB           memstress working set, MiB (default 64)
#   BENCH_REC_TOTAL         MiB memstress writes flat out (default 2048)
#   BENCH_REC_RATE          paced memstress rate, MiB/s (default 100)
#   BENCH_REC_PACED_TOTAL   MiB the paced memstress writes (default 256)
#   BENCH_REC_DIGEST_MS     record --digest-ms (default "": kagami's, 100)
#   BENCH_REC_KV_DURATION   seconds per kvstore load (default 3)
#   BENCH_REC_KV_CLIENTS    kvstore client ids (default 4)
#   BENCH_REC_KV_IDLE       seconds the idle kvstore is recorded after
#                           `kvstore: ready` (default 4)
#   BENCH_REC_IDLE_WINDOW   seconds of idle protection measured before the
#                           load, lockstep and ft (default 2)
#   BENCH_REC_EPOCH_MS      checkpoint FT --epoch-ms (default 10)
#   BENCH_REC_DRILLS        drills per mode (default 5; 0 skips)
#   BENCH_REC_SEED          drill seed (default 1)
#   BENCH_REC_PARTS         which parts run (default "mem kv drill")
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
MIB=${BENCH_REC_MIB:-64}
TOTAL=${BENCH_REC_TOTAL:-2048}
RATE=${BENCH_REC_RATE:-100}
PTOTAL=${BENCH_REC_PACED_TOTAL:-256}
DIGEST=${BENCH_REC_DIGEST_MS:-}
KV_DUR=${BENCH_REC_KV_DURATION:-3}
KV_CLIENTS=${BENCH_REC_KV_CLIENTS:-4}
KV_IDLE=${BENCH_REC_KV_IDLE:-4}
IDLE_WIN=${BENCH_REC_IDLE_WINDOW:-2}
EPOCH=${BENCH_REC_EPOCH_MS:-10}
NDRILL=${BENCH_REC_DRILLS:-5}
SEED=${BENCH_REC_SEED:-1}
PARTS=${BENCH_REC_PARTS:-mem kv drill}
MEM=128M
SETTLE=0.5 # seconds after protected:true before the idle window opens
JSON=$BUILD/bench/record.json

KV_IP=10.77.0.10
KV_PORT=7000
KV_MAC=52:54:00:77:00:0a

die() { echo "bench/record: $*" >&2; exit 1; }
log() { echo "bench/record: $*" >&2; }
source bench/lib.sh

posint "$R" || die "BENCH_REPEAT must be a positive integer"
posint "$MIB" || die "BENCH_REC_MIB must be a positive integer"
posint "$TOTAL" || die "BENCH_REC_TOTAL must be a positive integer"
posint "$RATE" || die "BENCH_REC_RATE must be a positive integer"
posint "$PTOTAL" || die "BENCH_REC_PACED_TOTAL must be a positive integer"
[[ -z $DIGEST || $DIGEST =~ ^[0-9]+$ ]] || die "BENCH_REC_DIGEST_MS must be a number or empty"
posint "$KV_DUR" || die "BENCH_REC_KV_DURATION must be a positive integer"
posint "$KV_CLIENTS" || die "BENCH_REC_KV_CLIENTS must be a positive integer"
posint "$KV_IDLE" || die "BENCH_REC_KV_IDLE must be a positive integer"
posint "$IDLE_WIN" || die "BENCH_REC_IDLE_WINDOW must be a positive integer"
posint "$EPOCH" || die "BENCH_REC_EPOCH_MS must be a positive integer"
[[ $NDRILL =~ ^[0-9]+$ ]] || die "BENCH_REC_DRILLS must be a number"
[[ $SEED =~ ^[0-9]+$ ]] || die "BENCH_REC_SEED must be a number"
check_parts BENCH_REC_PARTS
need_files "$KAGAMI" "$GUESTS/memstress.elf" "$GUESTS/kvstore.elf"
command -v python3 >/dev/null || die "python3 is needed (JSON)"

source tests/netns.sh
set_skips record # KVM_SKIP, NET_SKIP

# Other builds may replace build/kagami while this runs: say so if it did.
kagami_id() { stat -c '%Y %s' "$KAGAMI" 2>/dev/null; }
KAGAMI_ID=$(kagami_id)

mkdir -p "$BUILD/bench"
# Disk images and recordings live on the build directory's file system
# (not a tmpfs), as in bench/kvstore.sh.
TMP=$(mktemp -d "$BUILD/bench/record.XXXXXX") || die "mktemp failed"
PIDS=()
trap cleanup_all EXIT
exit_on_signals

# --- helpers ---------------------------------------------------------------

# (oneline, now, jget, stop, wait_for, wait_protected: bench/lib.sh)
# reading SOCK OUT: one `ctl protection` answer, "TIME JSON" on one line.
reading() {
	local t j
	t=$(now)
	j=$("$KAGAMI" ctl "$1" protection 2>/dev/null | tr -d '\n\t')
	[[ -n $j ]] || j='{}'
	echo "$t $j" >"$2"
}
# sampler SOCK OUT: a reading every 0.25 s, appended to OUT, until killed.
sampler() {
	local t j
	while :; do
		t=$(now)
		j=$("$KAGAMI" ctl "$1" protection 2>/dev/null | tr -d '\n\t')
		[[ -n $j ]] && echo "$t $j" >>"$2"
		sleep 0.25
	done
}
# rec_summary FILE: from the "kagami record: ..." line in FILE, "exits
# log_kib decoded_kib kib_per_s seconds file_kib device_write_kib".
rec_summary() {
	python3 - "$1" <<'EOF' 2>/dev/null
import re, sys
for line in open(sys.argv[1], errors="replace"):
    m = re.search(r"kagami record: .*: (\d+) exits, .*\((\d+) KiB\), .*; log ([\d.]+) KiB \(([\d.]+) KiB decoded\) = ([\d.]+) KiB/s over ([\d.]+) s; file ([\d.]+) KiB", line)
    if m:
        e, dw, lk, dk, ks, t, fk = m.groups()
        print(e, lk, dk, ks, t, fk, dw)
        break
else:
    sys.exit(1)
EOF
}
# replay_time REC NAME: replays REC twice (digests, --no-digests); records
# their wall times under NAME in RPLAY / RPLAYND; returns 1 with WHY if a
# replay does not match.
replay_time() {
	local rec=$1 name=$2 t0 t1 nd opt
	for nd in 0 1; do
		opt=()
		[[ $nd == 1 ]] && opt=(--no-digests)
		t0=$(now)
		timeout -k 5 300 "$KAGAMI" replay --console none "${opt[@]}" "$rec" \
			>"$TMP/replay.out" 2>&1
		t1=$(now)
		if ! grep -q 'replay matched the recording' "$TMP/replay.out"; then
			WHY="replay ${opt[*]} did not match: $(oneline <"$TMP/replay.out")"
			return 1
		fi
		if [[ $nd == 0 ]]; then RPLAY[$name]+=" $(calc %.3f "$t1 - $t0")"
		else RPLAYND[$name]+=" $(calc %.3f "$t1 - $t0")"; fi
	done
	return 0
}
nruns() { # MAP KEY: "N/R", the runs that gave figures
	local -n m=$1
	local v=${m[$2]:-}
	v=$(tr ' ' '\n' <<<"$v" | grep -cE '^[0-9.]+$')
	echo "$v/$R"
}
# put_rec NAME SUMMARY...: one recording's figures (rec_summary's fields).
put_rec() {
	local k=$1
	EXITS[$k]+=" $2" LOGKIB[$k]+=" $3" DECKIB[$k]+=" $4" KIBS[$k]+=" $5"
	RSECS[$k]+=" $6" FILEKIB[$k]+=" $7" DWKIB[$k]+=" $8"
	EXPS[$k]+=" $(calc %.0f "$2 / $6")"
	DECKIBS[$k]+=" $(calc %.1f "$4 / $6")"
}

# Results: per key, space-separated runs.
declare -A TPUT WALL RPLAY RPLAYND EXITS LOGKIB DECKIB KIBS RSECS FILEKIB DWKIB EXPS DECKIBS
declare -A OPS CP50 CP99 GAP HOLD50 HOLD99 ACK50 ACK99 IDLEB LOADB COVER KEPT BPOP FAIL ATT

# --- memstress ---------------------------------------------------------------

# mem_run MODE: plain, det (run --deterministic), rec (record, flat out),
# rec0 (the same with --digest-ms 0) or paced (record at BENCH_REC_RATE);
# records under mem,MODE.
mem_run() {
	local mode=$1 k=mem,$1 args="mib=$MIB seed=1 total=$TOTAL stats" tot=$TOTAL t0 t1 st el s
	local -a cmd=(run)
	case $mode in
	det) cmd=(run --deterministic) ;;
	rec | paced) cmd=(record --log "$TMP/m.rec" ${DIGEST:+--digest-ms "$DIGEST"}) ;;
	rec0) cmd=(record --log "$TMP/m.rec" --digest-ms 0) ;;
	esac
	[[ $mode == paced ]] && args="mib=$MIB seed=1 total=$PTOTAL rate=$RATE stats" tot=$PTOTAL
	rm -f "$TMP"/m.*
	WHY=""
	t0=$(now)
	timeout -k 5 300 "$KAGAMI" "${cmd[@]}" --mem "$MEM" --console "file:$TMP/m.con" \
		--cmdline "$args" "$GUESTS/memstress.elf" </dev/null >"$TMP/m.out" 2>&1
	st=$?
	t1=$(now)
	el=$(grep -o 'stats elapsed_us=[0-9]*' "$TMP/m.con" 2>/dev/null | cut -d= -f2)
	if [[ $st != 0 || -z $el ]]; then
		WHY="exited $st, elapsed '${el}': $(oneline <"$TMP/m.out")"
		return 1
	fi
	TPUT[$k]+=" $(calc %.0f "$tot / ($el / 1000000)")"
	WALL[$k]+=" $(calc %.3f "$t1 - $t0")"
	if [[ $mode == rec || $mode == rec0 || $mode == paced ]]; then
		s=$(rec_summary "$TMP/m.out") || { WHY="no record summary: $(oneline <"$TMP/m.out")"; return 1; }
		# shellcheck disable=SC2086
		put_rec "$k" $s
		replay_time "$TMP/m.rec" "$k" || return 1
	fi
	return 0
}

last() { local -n m=$1; awk '{print $NF}' <<<"${m[$2]:-}"; }
if [[ -z $KVM_SKIP ]] && part mem; then
	log "memstress: mib=$MIB total=$TOTAL flat out (plain, --deterministic, record) and total=$PTOTAL rate=$RATE (record), $MEM RAM, $R runs each"
	for ((run = 0; run < R; run++)); do
		for m in plain det rec rec0 paced; do
			if mem_run "$m"; then
				l="$(last TPUT mem,$m) MiB/s, wall $(last WALL mem,$m) s"
				[[ -n ${KIBS[mem,$m]:-} ]] && l+=", log $(last KIBS mem,$m) KiB/s, replay $(last RPLAY mem,$m) s, --no-digests $(last RPLAYND mem,$m) s"
				log "  mem,$m: $l"
			else
				FAIL[mem,$m]=$WHY
				log "  mem,$m: $WHY"
			fi
		done
	done
fi

# --- kvstore -------------------------------------------------------------------

# kv_figures I0 I1 L0 SAMPLES F LOADEND: from `ctl protection` readings
# ("TIME JSON" lines): idle B/s (I0..I1), loaded B/s (L0 to the last
# sample still in state protected, no later than LOADEND), the seconds
# that covers, kept (F in state protected: 1/0), hold p50/p99, ack p50/p99
# (from that last protected sample), and why protection was lost.
kv_figures() {
	python3 - "$@" <<'EOF' 2>/dev/null
import json, sys
def rd(line):
    t, j = line.split(" ", 1)
    return float(t), json.loads(j)
def one(path):
    with open(path) as f:
        return rd(f.readline())
def tot(j):
    return j.get("bytes_per_epoch", 0) * j.get("epochs", 0)
def ok(j):
    return j.get("state") == "protected" and j.get("protected")
i0, i1, l0 = one(sys.argv[1]), one(sys.argv[2]), one(sys.argv[3])
fin = one(sys.argv[5])
end = float(sys.argv[6])
samples = []
with open(sys.argv[4]) as f:
    for line in f:
        try:
            samples.append(rd(line))
        except Exception:
            pass
idle = "-"
if ok(i0[1]) and ok(i1[1]) and i1[0] > i0[0]:
    idle = "%.0f" % ((tot(i1[1]) - tot(i0[1])) / (i1[0] - i0[0]))
last = None
if ok(l0[1]):
    for t, j in samples + [fin]:
        if t <= end + 0.3 and ok(j):
            last = (t, j)
        elif not ok(j):
            break
loaded, cover = "-", "0"
src = fin[1] if ok(fin[1]) else (last[1] if last else {})
if last and last[0] > l0[0]:
    loaded = "%.0f" % ((tot(last[1]) - tot(l0[1])) / (last[0] - l0[0]))
    cover = "%.1f" % (min(last[0], end) - l0[0])
why = "-" if ok(fin[1]) else (fin[1].get("state", "no answer") + ": " + fin[1].get("why", "")).replace(" ", "_")
print(idle, loaded, cover, 1 if ok(fin[1]) else 0,
      src.get("output_hold_p50_us", "-"), src.get("output_hold_p99_us", "-"),
      src.get("ack_p50_us", "-"), src.get("ack_p99_us", "-"), why)
EOF
}

# kv_run MODE: one kvstore run on host pri (TAP kvp), the client on cli:
#   plain, det: `kagami run [--deterministic]`, a first put, the load;
#   rec: `kagami record`, a first put, the load, SIGTERM, replays;
#   idle: `kagami record`, KV_IDLE s without a request, SIGTERM, replays;
#   lockstep, ft: a secondary on host sec (TAP kvs, its own new image),
#     protected, SETTLE s, the idle window, a first put, the load with a
#     `ctl protection` reading every 0.25 s, a last reading.
# tookover SECOUT: "the secondary TOOK OVER while the primary ran: ...; "
# when it did (both sides then run the guest: no lease here), else "".
tookover() {
	grep -q 'the guest runs here' "$1" 2>/dev/null &&
		echo "the secondary TOOK OVER while the primary ran: $(grep -m1 'primary lost' "$1" | oneline); "
}
# fdb_flush: the bridges forget where the guest's MAC is. A secondary that
# took over announced it (RARP) from host sec; the next primary on host pri
# says nothing until asked, so without this the client's requests would go
# to sec until the entries age out (300 s).
fdb_flush() {
	local h
	ip -n "$(netns_name switch)" link set sw0 type bridge fdb_flush 2>/dev/null
	for h in pri sec; do ip -n "$(netns_name $h)" link set br0 type bridge fdb_flush 2>/dev/null; done
	return 0
}
KV_N=0
kv_run() {
	local mode=$1 k=kv,$1 d=$TMP/kv sp="" pp samp="" rc=0 t0 t1 tl1 s
	local -a cmd=(run) rep=() f
	KV_N=$((KV_N + 1))
	ATT[$k]=$((${ATT[$k]:-0} + 1))
	fdb_flush
	rm -rf "$d"
	mkdir -p "$d"
	truncate -s 64M "$d/pri.img"
	WHY=""
	case $mode in
	det) cmd=(run --deterministic) ;;
	rec | idle) cmd=(record --log "$d/k.rec" ${DIGEST:+--digest-ms "$DIGEST"}) ;;
	lockstep | ft)
		local port=$((7900 + KV_N))
		pair_secondary "$d" "$port"
		sp=$NETNS_PID
		rep=(--replicate "$mode" --peer "tcp:10.77.0.3:$port"
		     --key "$(bench_key)" --no-lease)
		[[ $mode == ft ]] && rep+=(--epoch-ms "$EPOCH")
		;;
	esac
	t0=$(now)
	pair_primary "$d" "${cmd[@]}" --mem "$MEM" -- "${rep[@]}"
	pp=$NETNS_PID
	if ! wait_for 'kvstore: ready' "$d/pri.console" "$pp" 30; then
		WHY="the guest did not start: $(cat "$d/pri.out" "$d/pri.console" 2>/dev/null | oneline)"
	elif [[ -n $sp ]] && ! wait_protected "$d/pri.sock" "$pp" "$sp" "$d/sec.out" protected; then
		WHY="never protected: $("$KAGAMI" ctl "$d/pri.sock" protection 2>&1 | oneline); secondary: $(oneline <"$d/sec.out")"
	elif [[ $mode == idle ]]; then
		sleep "$KV_IDLE"
	else
		if [[ -n $sp ]]; then
			sleep "$SETTLE"
			reading "$d/pri.sock" "$d/i0"
			sleep "$IDLE_WIN"
			reading "$d/pri.sock" "$d/i1"
		fi
		if ! pair_warmup "$d"; then
			WHY="no answer to a first put: $(oneline <"$d/warm.out")"
		fi
	fi
	if [[ -z $WHY && $mode != idle ]]; then
		if [[ -n $sp ]]; then
			reading "$d/pri.sock" "$d/l0"
			: >"$d/samples"
			sampler "$d/pri.sock" "$d/samples" &
			samp=$! PIDS+=("$samp")
		fi
		pair_load "$d" || rc=$?
		tl1=$(now)
		if [[ -n $samp ]]; then
			kill "$samp" 2>/dev/null
			wait "$samp" 2>/dev/null
			reading "$d/pri.sock" "$d/fin"
		fi
		local acked dur p50 p99 gap errors
		load_figures "$d/load.json"
		if [[ $rc != 0 || -z $acked || -z $dur || -z $p50 ]]; then
			WHY="the load failed: $([[ -n $sp ]] && tookover "$d/sec.out")kagami kv exited with $rc: $(cat "$d/load.json" "$d/load.err" | oneline)"
		elif [[ $errors != 0 ]]; then
			WHY="the load saw $errors errors or mismatched reads: $([[ -n $sp ]] && tookover "$d/sec.out")$(oneline <"$d/load.json")"
		elif [[ -n $sp ]]; then
			read -ra f < <(kv_figures "$d/i0" "$d/i1" "$d/l0" "$d/samples" "$d/fin" "$tl1")
			if ((${#f[@]} != 9)); then
				WHY="no protection figures: $(tail -c 300 "$d/fin")"
			else
				IDLEB[$k]+=" ${f[0]}" LOADB[$k]+=" ${f[1]}" COVER[$k]+=" ${f[2]}"
				KEPT[$k]+=" ${f[3]}" HOLD50[$k]+=" ${f[4]}" HOLD99[$k]+=" ${f[5]}"
				ACK50[$k]+=" ${f[6]}" ACK99[$k]+=" ${f[7]}"
				[[ ${f[1]} =~ ^[0-9.]+$ ]] &&
					BPOP[$k]+=" $(calc %.0f "${f[1]} * $dur / $acked")"
				if [[ ${f[3]} != 1 ]]; then
					local who
					who="$(tookover "$d/sec.out")primary: ${f[8]//_/ }"
					WHY="protection lost during the load (${f[2]} s of ${KV_DUR} s protected; $(calc %.0f "$acked / $dur") ops/s, not counted): $who"
				fi
			fi
		fi
		if [[ -z $WHY ]]; then
			OPS[$k]+=" $(calc %.0f "$acked / $dur")"
			CP50[$k]+=" $p50" CP99[$k]+=" $p99" GAP[$k]+=" $gap"
		fi
	fi
	# A recording ends with SIGTERM: give it time to write its last section.
	stop "$pp" 20
	t1=$(now)
	stop "$sp"
	if [[ -z $WHY && ($mode == rec || $mode == idle) ]]; then
		if [[ ! -f $d/k.rec ]]; then
			WHY="no recording: $(oneline <"$d/pri.out")"
		elif ! s=$(rec_summary "$d/pri.out"); then
			WHY="no record summary: $(oneline <"$d/pri.out")"
		else
			WALL[$k]+=" $(calc %.3f "$t1 - $t0")"
			# shellcheck disable=SC2086
			put_rec "$k" $s
			replay_time "$d/k.rec" "$k"
		fi
	fi
	[[ -z $WHY ]]
}

if [[ -z $NET_SKIP ]] && part kv; then
	pair_netns_setup || NET_SKIP="network namespace setup failed"
fi
if [[ -z $NET_SKIP ]] && part kv; then
	log "kvstore: ${KV_DUR} s loads, $KV_CLIENTS clients; plain, --deterministic, record, idle record (${KV_IDLE} s), lockstep, ft (${EPOCH} ms); $R runs each"
	# Then replicated runs that lost protection are retried, R more at most.
	todo=()
	for ((run = 0; run < R; run++)); do todo+=(plain det rec idle lockstep ft); done
	for ((run = 0; run < R; run++)); do todo+=(lockstep ft); done
	for m in "${todo[@]}"; do
		k=kv,$m
		if [[ $m == lockstep || $m == ft ]]; then
			[[ $(nruns OPS "$k") == "$R/$R" ]] && continue
		fi
		if kv_run "$m"; then
			l=""
			[[ $m != idle ]] && l="$(last OPS $k) ops/s, client p50/p99 $(last CP50 $k)/$(last CP99 $k) us, max gap $(last GAP $k) ms"
			[[ -n ${KIBS[$k]:-} ]] && l+="${l:+, }log $(last KIBS $k) KiB/s over $(last RSECS $k) s, record $(last WALL $k) s, replay $(last RPLAY $k) s, --no-digests $(last RPLAYND $k) s"
			[[ -n ${KEPT[$k]:-} ]] && l+=", idle $(last IDLEB $k) B/s, loaded $(last LOADB $k) B/s over $(last COVER $k) s, hold p50/p99 $(last HOLD50 $k)/$(last HOLD99 $k) us, protected at the end: $(last KEPT $k)"
			log "  $k: $l"
		else
			FAIL[$k,$KV_N]=$WHY
			log "  $k: $WHY"
		fi
	done
	netns_cleanup
fi

# --- failover drills -------------------------------------------------------------

declare -A DRILL # mode -> the drill's JSON file
DRILL_SKIP=$NET_SKIP
for mode in lockstep ft; do
	if [[ -n $DRILL_SKIP || $NDRILL == 0 ]] || ! part drill; then continue; fi
	drill_run "$mode" "$NDRILL"
done

# --- the tables --------------------------------------------------------------------

# runs_of MAP KEY: the runs med and sprd (bench/lib.sh) use: the numbers among MAP[KEY].
runs_of() {
	local -n m=$1
	tr ' ' '\n' <<<"${m[$2]:-}" | grep -E '^[0-9.]+$' | tr '\n' ' '
}
mbit() { # KiB/s -> Mbit/s, or "-"
	if [[ $1 =~ ^[0-9.]+$ ]]; then calc %.3f "$1 * 1024 * 8 / 1000000"; else echo "-"; fi
}
row() { printf '%-16s' "$1"; shift; printf ' %9s' "$@"; echo; }
sumkept() { # KEY: "N/M": runs still protected after the load / attempts
	local v=${KEPT[$1]:-} n=0 x
	for x in $v; do [[ $x == 1 ]] && n=$((n + 1)); done
	echo "$n/${ATT[$1]:-0}"
}
nrunsa() { # MAP KEY: "N/M": runs that gave the figure / attempts
	local n
	n=$(nruns "$1" "$2")
	echo "${n%/*}/${ATT[$2]:-0}"
}
kv_head() { # the header of table H, or why the kv part did not run (then false)
	local why=$NET_SKIP
	[[ -z $why ]] && ! part kv && why="kv not in BENCH_REC_PARTS"
	table_head "$why"
}

bench_header "kagami record/replay and lockstep FT"
[[ $(kagami_id) == "$KAGAMI_ID" ]] ||
	echo "WARNING: build/kagami was replaced while this ran (mtime/size changed): runs may mix two builds"
echo "record --digest-ms ${DIGEST:-100}${DIGEST:+ (BENCH_REC_DIGEST_MS)}"
echo

echo "(1) record overhead: guest work per second, kagami run (plain) vs run --deterministic vs record"
H=("workload" "plain" "determ." "record" "det/plain" "rec/plain" "spread" "runs ok")
row "${H[@]}"
dashes "${H[@]}"
if [[ -n $KVM_SKIP ]] || ! part mem; then
	row "memstress" "skipped: ${KVM_SKIP:-not in BENCH_REC_PARTS}"
else
	p=$(med TPUT mem,plain) dt=$(med TPUT mem,det) rc=$(med TPUT mem,rec)
	row "memstress MiB/s" "$p" "$dt" "$rc" "$(ratio "$dt" "$p")" "$(ratio "$rc" "$p")" \
		"$(sprd TPUT mem,rec)" "$(nruns TPUT mem,rec)"
	rc=$(med TPUT mem,rec0)
	row "  --digest-ms 0" "$p" "$dt" "$rc" "$(ratio "$dt" "$p")" "$(ratio "$rc" "$p")" \
		"$(sprd TPUT mem,rec0)" "$(nruns TPUT mem,rec0)"
fi
if [[ -n $NET_SKIP ]] || ! part kv; then
	row "kvstore" "skipped: ${NET_SKIP:-not in BENCH_REC_PARTS}"
else
	p=$(med OPS kv,plain) dt=$(med OPS kv,det) rc=$(med OPS kv,rec)
	row "kvstore ops/s" "$p" "$dt" "$rc" "$(ratio "$dt" "$p")" "$(ratio "$rc" "$p")" \
		"$(sprd OPS kv,rec)" "$(nruns OPS kv,rec)"
	for x in CP50:"kv cli p50 ms" CP99:"kv cli p99 ms"; do
		fld=${x%%:*}
		p=$(med "$fld" kv,plain 1000) dt=$(med "$fld" kv,det 1000) rc=$(med "$fld" kv,rec 1000)
		row "${x#*:}" "$p" "$dt" "$rc" "$(ratio "$dt" "$p")" "$(ratio "$rc" "$p")" "-" "-"
	done
fi
failrows mem
echo "memstress mib=$MIB total=$TOTAL stats, $MEM RAM: $TOTAL MiB / the guest's own elapsed time (stats elapsed_us,"
echo "the kagami clock). kvstore: acknowledged requests / duration of a ${KV_DUR} s kv load, $KV_CLIENTS clients, 50% writes."
echo "--digest-ms 0: record without state digests (the default digest, every 100 ms, hashes guest RAM)."
echo "spread: of the record column. Ratios > 1 for latencies mean slower."
echo

echo "(2) log bandwidth of a recording (the log as written, compressed; initial VM state not included)"
H=("workload" "seconds" "exits/s" "log KiB" "KiB/s" "Mbit/s" "dec KiB/s" "file KiB" "dev KiB" "runs ok")
row "${H[@]}"
dashes "${H[@]}"
for x in kv,idle:"kvstore idle" kv,rec:"kvstore loaded" mem,paced:"memstress ${RATE}M/s" mem,rec:"memstress flat"; do
	k=${x%%:*}
	ks=$(med KIBS "$k")
	row "${x#*:}" "$(med RSECS "$k")" "$(med EXPS "$k")" "$(med LOGKIB "$k")" "$ks" "$(mbit "$ks")" \
		"$(med DECKIBS "$k")" "$(med FILEKIB "$k")" "$(med DWKIB "$k")" "$(nruns KIBS "$k")"
done
failrows kv,idle
failrows kv,rec
echo "From record's summary line: KiB/s = log KiB / the recorded seconds (boot included: kvstore idle is boot,"
echo "'kvstore: ready', ${KV_IDLE} s without requests; loaded adds one put and a ${KV_DUR} s load, $KV_CLIENTS clients)."
echo "dec KiB/s: the records before compression. file: the whole recording, initial VM state included."
echo "dev KiB: bytes devices wrote into guest RAM (received frames, disk reads). memstress ${RATE}M/s:"
echo "total=$PTOTAL rate=$RATE (its pace loop reads the clock port). VMware FT's published logging"
echo "bandwidth: 0.5-1.5 Mbit/s idle, < 20 Mbit/s loaded."
echo

echo "(3) replay speed: wall time of 'kagami replay' / wall time of the recording 'kagami record' process"
H=("workload" "record s" "replay s" "ratio" "nodig s" "ratio" "runs ok")
row "${H[@]}"
dashes "${H[@]}"
for x in mem,rec:"memstress flat" mem,rec0:"  --digest-ms 0" mem,paced:"memstress ${RATE}M/s" kv,idle:"kvstore idle" kv,rec:"kvstore loaded"; do
	k=${x%%:*}
	w=$(med WALL "$k") r1=$(med RPLAY "$k") r2=$(med RPLAYND "$k")
	row "${x#*:}" "$w" "$r1" "$(ratio "$r1" "$w")" "$r2" "$(ratio "$r2" "$w")" "$(nruns RPLAYND "$k")"
done
echo "Both walls are whole processes (VM build included; a kvstore recording ends with SIGTERM). nodig:"
echo "replay --no-digests (exits still checked, no RAM digest recomputed). ratio < 1: replay is faster."
echo

echo "(4) kvstore ops/s: lockstep FT vs unreplicated vs checkpoint FT (--epoch-ms $EPOCH), same load (${KV_DUR} s, $KV_CLIENTS clients)"
H=("mode" "ops/s" "ratio" "cli p50" "cli p99" "max gap" "spread" "runs ok" "kept prot")
if kv_head; then
	base=$(med OPS kv,plain)
	for x in plain:unreplicated det:deterministic lockstep:lockstep ft:"ft ${EPOCH} ms"; do
		k=kv,${x%%:*}
		o=$(med OPS "$k")
		kp="-"
		[[ -n ${ATT[$k]:-} && ($k == kv,lockstep || $k == kv,ft) ]] && kp=$(sumkept "$k")
		row "${x#*:}" "$o" "$(ratio "$o" "$base")" "$(med CP50 "$k" 1000)" "$(med CP99 "$k" 1000)" \
			"$(med GAP "$k")" "$(sprd OPS "$k")" "$(nruns OPS "$k")" "$kp"
	done
	failrows kv,lockstep
	failrows kv,ft
	failrows kv,plain
	failrows kv,det
fi
echo "ratio: / unreplicated (plain kagami run), same rounds. cli p50/p99: the client's latency, ms; max gap: the"
echo "client's longest wait between two answers, ms. kept prot: runs whose primary was still in state"
echo "protected after the load / attempts; the others are not counted in ops/s (see the failed lines;"
echo "such runs are retried after the rounds, $R more attempts at most). runs ok: of the $R wanted."
echo

echo "(5) output release: how long the guest's replies were held until the secondary had what produced"
echo "    them (kagami's output_hold, its last 4096 outputs), and the ACK latency; ms"
H=("mode" "hold p50" "hold p99" "ack p50" "ack p99" "runs")
if kv_head; then
	for x in lockstep:lockstep ft:"ft ${EPOCH} ms"; do
		k=kv,${x%%:*}
		row "${x#*:}" "$(med HOLD50 "$k" 1000)" "$(med HOLD99 "$k" 1000)" "$(med ACK50 "$k" 1000)" \
			"$(med ACK99 "$k" 1000)" "$(nrunsa HOLD50 "$k")"
	done
fi
echo "From the last 'ctl protection' reading in state protected (after the load, or the last one before"
echo "protection was lost, so runs that later lost it count here). ack: lockstep, a log section sent to its"
echo "ACK; ft, an epoch's pause to its ACK. runs: runs with figures / attempts."
echo

echo "(6) recovery: kagami drill (kvstore under 4 clients' load, the primary killed with SIGKILL at a"
echo "    random moment; seed $SEED); recovery = the client's longest gap between answers, ms"
H=("mode" "drills" "p50" "p99" "max" "lost" "failed")
if table_head "$DRILL_SKIP"; then
	for mode in lockstep ft; do drill_row "$mode"; done
	failrows drill
fi
echo "The client resends a request after 200 ms (then 400, 800 ms), so ~200 ms is the floor a drill can show."
echo

echo "(7) bytes on the wire per second of protection, kvstore (primary to secondary); record's log for reference"
H=("mode" "idle KiB/s" "idle Mb/s" "load KiB/s" "load Mb/s" "B/op" "prot s" "runs")
if kv_head; then
	for x in lockstep:lockstep ft:"ft ${EPOCH} ms"; do
		k=kv,${x%%:*}
		ib=$(med IDLEB "$k" 1024) lb=$(med LOADB "$k" 1024)
		row "${x#*:}" "$ib" "$(mbit "$ib")" "$lb" "$(mbit "$lb")" "$(med BPOP "$k")" \
			"$(med COVER "$k")" "$(nrunsa LOADB "$k")"
	done
	ik=$(med KIBS kv,idle) lk=$(med KIBS kv,rec) bp="-"
	[[ $lk =~ ^[0-9.]+$ && $(med OPS kv,rec) =~ ^[0-9.]+$ ]] &&
		bp=$(calc %.0f "$lk * 1024 / $(med OPS kv,rec)")
	row "record log" "$ik" "$(mbit "$ik")" "$lk" "$(mbit "$lk")" "$bp" "-" "$(nruns KIBS kv,rec)"
fi
echo "kagami's running total (bytes_per_epoch x epochs) over windows: idle, $IDLE_WIN s between two readings"
echo "${SETTLE} s after protected:true; loaded, from just before the load to the last reading (every 0.25 s) still"
echo "in state protected ('prot s' of the ${KV_DUR} s load). B/op: loaded bytes / acknowledged requests. For"
echo "lockstep an 'epoch' is a log section. runs: runs with figures / attempts (a run that later lost"
echo "protection counts for its protected part). record log: table (2)'s KiB/s (boot included, see there)."

# --- JSON copy -------------------------------------------------------------------

MAPS=(TPUT WALL RPLAY RPLAYND EXITS LOGKIB DECKIB KIBS RSECS FILEKIB DWKIB EXPS DECKIBS
	OPS CP50 CP99 GAP HOLD50 HOLD99 ACK50 ACK99 IDLEB LOADB COVER KEPT BPOP ATT)
allkeys() { # every key of every result map
	local mp
	for mp in "${MAPS[@]}"; do
		local -n _ak=$mp
		printf '%s\n' "${!_ak[@]}"
		unset -n _ak
	done | sort -u
}
jkey() { # KEY: that key's runs, one JSON object
	local mp s2=""
	printf '{'
	for mp in "${MAPS[@]}"; do
		local -n _jk=$mp
		if [[ -n ${_jk[$1]:-} ]]; then
			printf '%s"%s": %s' "$s2" "${mp,,}" "$(jarr "${_jk[$1]}")"
			s2=", "
		fi
		unset -n _jk
	done
	printf '}'
}
{
	echo "{"
	echo "  \"date\": $(jstr "$(date -u '+%Y-%m-%dT%H:%M:%SZ')"),"
	echo "  \"machine\": {\"nproc\": $(nproc), \"kernel\": $(jstr "$kernel"), \"cpu\": $(jstr "$cpu")},"
	echo "  \"repeat\": $R, \"mib\": $MIB, \"total_mib\": $TOTAL, \"rate\": $RATE, \"paced_total_mib\": $PTOTAL,"
	echo "  \"digest_ms\": $(jstr "${DIGEST:-default}"), \"kv_duration_s\": $KV_DUR, \"kv_clients\": $KV_CLIENTS,"
	echo "  \"kv_idle_s\": $KV_IDLE, \"idle_window_s\": $IDLE_WIN, \"epoch_ms\": $EPOCH,"
	echo "  \"skipped\": {\"memstress\": $(jstr "$KVM_SKIP"), \"kvstore\": $(jstr "$NET_SKIP"), \"drills\": $(jstr "$DRILL_SKIP")},"
	echo "  \"runs\": {"
	sep=""
	for k in $(allkeys); do
		printf '%s    "%s": %s' "$sep" "$k" "$(jkey "$k")"
		sep=$',\n'
	done
	echo
	echo "  },"
	printf '  "failed": {'
	sep=""
	for k in "${!FAIL[@]}"; do printf '%s"%s": %s' "$sep" "$k" "$(jstr "${FAIL[$k]}")"; sep=", "; done
	echo "},"
	json_drills lockstep ft
	echo "}"
} >"$JSON"
json_done
