#!/usr/bin/env bash
# Live migration, kagami vs QEMU, in the same run: a 1 GiB memstress guest
# (1200 MiB of RAM) dirtying 0, 50 and 200 MiB/s moves over loopback TCP
# to a second process on this host. For each VMM and dirty rate: downtime
# (as the VMM reports it, and as the guest itself saw it), total time and
# bytes sent; plus loopback TCP bandwidth and the ideal time RAM / bandwidth.
# Each measurement runs BENCH_REPEAT times (default 3); the tables show
# medians, every run goes to stderr and to build/bench/migration.json.
# Builds nothing: `make bench` builds what it needs and then runs this.
# See bench/README.md for what each row means. It prints; it never asserts
# timing.
#
# Environment:
#   BENCH_REPEAT          runs per measurement (default 3)
#   BENCH_MIG_RATES       dirty rates in MiB/s (default "0 50 200")
#   BENCH_MIG_MIB         memstress working set, MiB (default 1024)
#   BENCH_MIG_MEM         guest RAM (default 1200M)
#   BENCH_MIG_QEMU_LIMITS QEMU downtime-limit settings in ms (default
#                         "300 50": QEMU's default, then kagami's)
#   BENCH_MIG_STALL_US    smallest guest stall reported, us (default 1000)
#   BENCH_MIG_TIMEOUT     seconds one migration may take (default 60)
#   BENCH_QEMU            QEMU binary (default qemu-system-x86_64; "" skips)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
BUILD=$ROOT/build
KAGAMI=$BUILD/kagami
GUEST=$BUILD/guests/memstress.elf
TSC=$BUILD/bench/tsc_khz
TCPBW=$BUILD/bench/tcpbw
QMP=$ROOT/bench/qmp_migrate.py
R=${BENCH_REPEAT:-3}
RATES=${BENCH_MIG_RATES:-0 50 200}
MIB=${BENCH_MIG_MIB:-1024}
MEM=${BENCH_MIG_MEM:-1200M}
QLIMITS=${BENCH_MIG_QEMU_LIMITS:-300 50}
STALL_US=${BENCH_MIG_STALL_US:-1000}
MIG_TIMEOUT=${BENCH_MIG_TIMEOUT:-60}
QEMU=${BENCH_QEMU-qemu-system-x86_64}
JSON=$BUILD/bench/migration.json

die() { echo "bench/migration: $*" >&2; exit 1; }
log() { echo "bench/migration: $*" >&2; }
source bench/lib.sh

posint "$R" || die "BENCH_REPEAT must be a positive integer"
posint "$MIB" || die "BENCH_MIG_MIB must be a positive integer"
posint "$STALL_US" || die "BENCH_MIG_STALL_US must be a positive integer"
posint "$MIG_TIMEOUT" || die "BENCH_MIG_TIMEOUT must be a positive integer"
for r in $RATES; do [[ $r =~ ^[0-9]+$ ]] || die "BENCH_MIG_RATES: '$r' is not a number"; done
for l in $QLIMITS; do [[ $l =~ ^[1-9][0-9]*$ ]] || die "BENCH_MIG_QEMU_LIMITS: '$l' is not a number"; done
MEM_MIB=$(numfmt --from=iec "${MEM%B}" 2>/dev/null) || die "BENCH_MIG_MEM: bad size '$MEM'"
MEM_MIB=$((MEM_MIB >> 20))
need_files "$KAGAMI" "$GUEST" "$TSC" "$TCPBW"
[[ -c /dev/kvm ]] || die "/dev/kvm is missing"
command -v python3 >/dev/null || die "python3 is needed (QMP, JSON)"
command -v ss >/dev/null || die "ss is needed (waiting for the listener)"
QEMU_MISSING=""
if [[ -z $QEMU ]]; then
	QEMU_MISSING="skipped (BENCH_QEMU is empty)"
elif ! command -v "$QEMU" >/dev/null 2>&1; then
	QEMU_MISSING="not installed ($QEMU)"
fi
KAGAMI_NA=""
if ! "$KAGAMI" receive --help >/dev/null 2>&1; then
	KAGAMI_NA="not available ($KAGAMI receive --help fails: $("$KAGAMI" receive --help 2>&1 | head -1))"
fi
mkdir -p "$BUILD/bench"
TMP=$(mktemp -d) || die "mktemp failed"
PIDS=()
cleanup() {
	kill_pids
	rm -rf "$TMP"
}
trap cleanup EXIT
exit_on_signals

# (oneline, jget, free_port: bench/lib.sh. stop and wait_for below are this
# script's own, replacing bench/lib.sh's: no log line, 0.1 s polls.)
# listening PORT: true once something listens on 127.0.0.1:PORT (never
# connects: both receivers take the first connection as the migration).
listening() { [[ -n $(ss -Hltn "sport = :$1" 2>/dev/null) ]]; }
# stop PID: SIGTERM, then SIGKILL after 5 s.
stop() {
	local p=$1 i
	[[ -n $p ]] || return 0
	kill -TERM "$p" 2>/dev/null
	for i in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$p" 2>/dev/null
	wait "$p" 2>/dev/null
	return 0
}
# wait_for PATTERN FILE PID SECONDS: until FILE has PATTERN (or PID died).
wait_for() {
	local i
	for ((i = 0; i < $4 * 10; i++)); do
		grep -q "$1" "$2" 2>/dev/null && return 0
		kill -0 "$3" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

KHZ=$("$TSC") || die "bench/tsc_khz failed"
tsc_ms() { "$TSC" "$KHZ"; }
# The guest: the whole working set written with data first (fill), then
# either idle (rate 0: total=0 hold) or rewriting pages at R MiB/s forever;
# the pace and the stall watch use the TSC at the host's rate.
guest_args() {
	local a="mib=$MIB seed=1 fill tsc_khz=$KHZ stall_us=$STALL_US"
	if [[ $1 == 0 ]]; then echo "$a total=0 hold"; else echo "$a forever rate=$1"; fi
}
# guest_stall DSTLOG T_END_MS: the guest-observed downtime in ms: the first
# stall the guest reports on the destination (the first thing it sees when
# it runs again), if it ended before the migration had returned (+50 ms);
# else "<STALL" (below the watch's threshold).
guest_stall() {
	local us end
	read -r us end < <(grep -o 'stall us=[0-9]* end_ms=[0-9]*' "$1" | head -1 |
		sed 's/stall us=\([0-9]*\) end_ms=\([0-9]*\)/\1 \2/')
	if [[ -n ${us:-} && $end -le $(($2 + 50)) ]]; then
		calc %.1f "$us / 1000"
	else
		echo "<$(calc %g "$STALL_US / 1000")"
	fi
}

# --- loopback bandwidth ----------------------------------------------------------

bw=()
log "loopback TCP bandwidth: bench/tcpbw 2048, $R runs"
for ((i = 0; i < R; i++)); do
	b=$("$TCPBW" 2048) || die "bench/tcpbw failed"
	bw+=("$b")
done
BW=$(median "${bw[@]}")
IDEAL_MS=$(calc %.0f "$MEM_MIB / $BW * 1000")
log "  ${bw[*]} MiB/s; ideal time for $MEM_MIB MiB: $IDEAL_MS ms"

# --- one migration ---------------------------------------------------------------

# Results: per key "vmm,rate[,limit]" space-separated runs.
declare -A DOWN STALL TOTAL BYTES ROUNDS SETUP FAIL

# shellcheck disable=SC2054 # commas are QEMU option syntax
QACCEL=(-accel kvm -cpu host,-arch-capabilities)
QACCEL_NAME=kvm
QACCEL_NOTE=""
qemu_base() {
	echo -M microvm,acpi=off "${QACCEL[@]}" -m "$MEM" -nodefaults -no-user-config \
		-nographic -display none -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
		-global virtio-mmio.force-legacy=false
}

# qemu_migrate RATE LIMIT: one QEMU -> QEMU migration. Records the figures
# under qemu,RATE,LIMIT; returns 1 with WHY on failure.
qemu_migrate() {
	local rate=$1 limit=$2 key=qemu,$1,$2 port args sp dp t1 st i
	local -a base
	read -ra base < <(qemu_base)
	args=$(guest_args "$rate")
	port=$(free_port)
	rm -f "$TMP"/q.*
	"$QEMU" "${base[@]}" -kernel "$GUEST" -append "$args" \
		-serial "file:$TMP/q.src.log" -qmp "unix:$TMP/q.src.qmp,server=on,wait=off" \
		</dev/null >"$TMP/q.src.err" 2>&1 &
	sp=$! PIDS+=("$sp")
	"$QEMU" "${base[@]}" -kernel "$GUEST" -append "$args" \
		-serial "file:$TMP/q.dst.log" -qmp "unix:$TMP/q.dst.qmp,server=on,wait=off" \
		-incoming "tcp:127.0.0.1:$port" </dev/null >"$TMP/q.dst.err" 2>&1 &
	dp=$! PIDS+=("$dp")
	WHY=""
	if ! wait_for 'memstress: filled' "$TMP/q.src.log" "$sp" 120; then
		WHY="the source guest did not fill its working set: $(cat "$TMP/q.src.err" "$TMP/q.src.log" 2>/dev/null | oneline)"
	elif [[ $rate == 0 ]] && ! wait_for 'memstress: done' "$TMP/q.src.log" "$sp" 30; then
		WHY="the source guest did not settle: $(oneline <"$TMP/q.src.log")"
	else
		for i in $(seq 100); do listening "$port" && break; sleep 0.1; done
		listening "$port" || WHY="the destination does not listen: $(oneline <"$TMP/q.dst.err")"
	fi
	if [[ -z $WHY ]]; then
		sleep 1 # the dirty rate settles
		if ! python3 "$QMP" "$TMP/q.src.qmp" "tcp:127.0.0.1:$port" \
			--downtime-limit "$limit" --timeout "$MIG_TIMEOUT" \
			>"$TMP/q.res" 2>"$TMP/q.res.err"; then
			st=$(jget "$TMP/q.res" "j.get('status')")
			WHY="migration ${st:-failed}: $(cat "$TMP/q.res.err" "$TMP/q.dst.err" | oneline)"
			[[ $st == timeout ]] && WHY="did not converge in $MIG_TIMEOUT s"
		fi
		t1=$(tsc_ms)
	fi
	if [[ -z $WHY ]]; then
		for i in $(seq 50); do
			st=$(python3 "$QMP" "$TMP/q.dst.qmp" --status 2>/dev/null)
			[[ $st == running ]] && break
			sleep 0.1
		done
		[[ $st == running ]] || WHY="the destination is not running after the migration (status '$st')"
	fi
	if [[ -z $WHY ]]; then
		sleep 0.5 # the guest prints the stall it saw
		DOWN[$key]+=" $(jget "$TMP/q.res" "j['downtime']")"
		TOTAL[$key]+=" $(jget "$TMP/q.res" "j['total-time']")"
		SETUP[$key]+=" $(jget "$TMP/q.res" "j.get('setup-time', 0)")"
		BYTES[$key]+=" $(jget "$TMP/q.res" "'%.1f' % (j['ram']['transferred'] / 1048576)")"
		ROUNDS[$key]+=" $(jget "$TMP/q.res" "j['ram'].get('dirty-sync-count', 0)")"
		STALL[$key]+=" $(guest_stall "$TMP/q.dst.log" "$t1")"
	fi
	stop "$sp"
	stop "$dp"
	[[ -z $WHY ]]
}

# kagami_migrate RATE: one kagami -> kagami migration, at kagami's default
# downtime limit. Records the figures under kagami,RATE.
kagami_migrate() {
	local rate=$1 key=kagami,$1 port args sp dp t1 rc i
	args=$(guest_args "$rate")
	port=$(free_port)
	rm -f "$TMP"/k.*
	"$KAGAMI" receive --listen "tcp:127.0.0.1:$port" --console "file:$TMP/k.dst.log" \
		--key "$(bench_key)" \
		--control "$TMP/k.dst.sock" </dev/null >"$TMP/k.dst.out" 2>"$TMP/k.dst.err" &
	dp=$! PIDS+=("$dp")
	"$KAGAMI" run --mem "$MEM" --control "$TMP/k.src.sock" \
		--console "file:$TMP/k.src.log" --cmdline "$args" "$GUEST" \
		</dev/null >"$TMP/k.src.out" 2>"$TMP/k.src.err" &
	sp=$! PIDS+=("$sp")
	WHY=""
	if ! wait_for 'memstress: filled' "$TMP/k.src.log" "$sp" 120; then
		WHY="the source guest did not fill its working set: $(cat "$TMP/k.src.err" "$TMP/k.src.log" 2>/dev/null | oneline)"
	elif [[ $rate == 0 ]] && ! wait_for 'memstress: done' "$TMP/k.src.log" "$sp" 30; then
		WHY="the source guest did not settle: $(oneline <"$TMP/k.src.log")"
	else
		for i in $(seq 100); do listening "$port" && break; sleep 0.1; done
		listening "$port" || WHY="the destination does not listen: $(oneline <"$TMP/k.dst.err")"
	fi
	if [[ -z $WHY ]]; then
		sleep 1
		rc=0
		timeout -k 5 $((MIG_TIMEOUT + 10)) "$KAGAMI" ctl "$TMP/k.src.sock" migrate \
			"tcp:127.0.0.1:$port" --key "$(bench_key)" \
			>"$TMP/k.res" 2>"$TMP/k.res.err" || rc=$?
		t1=$(tsc_ms)
		if [[ $rc != 0 || $(jget "$TMP/k.res" "j.get('ok')") != True ]]; then
			WHY="kagami ctl migrate exited with $rc: $(cat "$TMP/k.res" "$TMP/k.res.err" "$TMP/k.dst.err" | oneline)"
		fi
	fi
	if [[ -z $WHY ]]; then
		# The source exits 0 after the hand-over.
		for i in $(seq 100); do kill -0 "$sp" 2>/dev/null || break; sleep 0.1; done
		if kill -0 "$sp" 2>/dev/null; then
			WHY="the source still runs 10 s after the hand-over"
		else
			wait "$sp"
			rc=$?
			[[ $rc == 0 ]] || WHY="the source exited with $rc after the hand-over: $(oneline <"$TMP/k.src.err")"
		fi
	fi
	if [[ -z $WHY ]] && ! "$KAGAMI" ctl "$TMP/k.dst.sock" status >"$TMP/k.st" 2>&1; then
		WHY="the destination does not answer status: $(cat "$TMP/k.st" "$TMP/k.dst.err" | oneline)"
	fi
	if [[ -z $WHY ]]; then
		sleep 0.5
		DOWN[$key]+=" $(jget "$TMP/k.res" "j['downtime_ms']")"
		TOTAL[$key]+=" $(jget "$TMP/k.res" "j['total_ms']")"
		SETUP[$key]+=" 0"
		BYTES[$key]+=" $(jget "$TMP/k.res" "'%.1f' % (j['bytes'] / 1048576)")"
		ROUNDS[$key]+=" $(jget "$TMP/k.res" "j.get('rounds', 0)")"
		STALL[$key]+=" $(guest_stall "$TMP/k.dst.log" "$t1")"
	fi
	stop "$sp"
	stop "$dp"
	[[ -z $WHY ]]
}

# --- the runs ---------------------------------------------------------------------

logrun() { # KEY: the last run's figures
	local k=$1
	log "  $k: downtime $(awk '{print $NF}' <<<"${DOWN[$k]}") ms (guest saw $(awk '{print $NF}' <<<"${STALL[$k]}")), total $(awk '{print $NF}' <<<"${TOTAL[$k]}") ms, $(awk '{print $NF}' <<<"${BYTES[$k]}") MiB, $(awk '{print $NF}' <<<"${ROUNDS[$k]}") rounds"
}

# Does QEMU migrate a microvm under KVM here? One idle migration decides;
# otherwise every QEMU run uses TCG, and the tables say so.
if [[ -z $QEMU_MISSING ]]; then
	qemu_ver=$("$QEMU" --version | head -1)
	log "QEMU: probing microvm migration under KVM (idle guest)"
	if ! qemu_migrate 0 300; then
		log "QEMU under KVM: $WHY; falling back to TCG"
		QACCEL=(-accel tcg -cpu max) QACCEL_NAME=tcg
		QACCEL_NOTE="QEMU microvm migration failed under KVM here ($WHY); QEMU ran under TCG"
		qemu_migrate 0 300 || QEMU_MISSING="migration fails under KVM and TCG: $WHY"
	fi
	unset "DOWN[qemu,0,300]" "TOTAL[qemu,0,300]" "SETUP[qemu,0,300]" \
		"BYTES[qemu,0,300]" "ROUNDS[qemu,0,300]" "STALL[qemu,0,300]"
fi

log "migrations: $MIB MiB working set, $MEM RAM, rates {$RATES} MiB/s, $R runs each${KAGAMI_NA:+ (kagami $KAGAMI_NA)}"
for ((run = 0; run < R; run++)); do
	for rate in $RATES; do
		if [[ -z $KAGAMI_NA && -z ${FAIL[kagami,$rate]:-} ]]; then
			if kagami_migrate "$rate"; then
				logrun "kagami,$rate"
			else
				FAIL[kagami,$rate]=$WHY
				log "  kagami,$rate: $WHY"
			fi
		fi
		[[ -z $QEMU_MISSING ]] || continue
		for limit in $QLIMITS; do
			[[ -z ${FAIL[qemu,$rate,$limit]:-} ]] || continue
			if qemu_migrate "$rate" "$limit"; then
				logrun "qemu,$rate,$limit"
			else
				FAIL[qemu,$rate,$limit]=$WHY
				log "  qemu,$rate,$limit: $WHY"
			fi
		done
	done
done

# --- the tables --------------------------------------------------------------------

# med MAP KEY: the median of the runs, or "-" (this script's own, replacing
# bench/lib.sh's: its runs may be "<1").
med() {
	local -n m=$1
	local v=${m[$2]:-}
	# shellcheck disable=SC2086 # space-separated numbers
	if [[ -z ${v// /} ]]; then echo "-"; else
		# "<1" (below the stall threshold) sorts as 0 and prints as "<1".
		local x
		# shellcheck disable=SC2046,SC2001 # space-separated numbers
		x=$(median $(sed 's/<[0-9.]*/0/g' <<<"$v"))
		if [[ $x == 0 && $v == *"<"* ]]; then echo "<$(calc %g "$STALL_US / 1000")"; else echo "$x"; fi
	fi
}

cpu=$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2 | sed 's/^ *//')
kernel="$(uname -sr) $(uname -m)"
echo
echo "kagami live migration vs QEMU, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "machine: nproc=$(nproc), kernel $kernel${cpu:+, $cpu}"
echo "guest: memstress mib=$MIB seed=1 fill tsc_khz=$KHZ stall_us=$STALL_US, then forever rate=R (rate 0: total=0 hold); RAM $MEM"
echo "QEMU: ${QEMU_MISSING:-$qemu_ver, -M microvm -accel $QACCEL_NAME, migrate tcp:, max-bandwidth unlimited}"
[[ -z $QACCEL_NOTE ]] || echo "NOTE: $QACCEL_NOTE"
echo "kagami: ${KAGAMI_NA:-kagami ctl migrate tcp:, default downtime limit}"
echo "loopback TCP, one stream: $BW MiB/s (median of $R; runs ${bw[*]}); ideal time RAM / bandwidth = $MEM_MIB MiB / $BW MiB/s = $IDEAL_MS ms"
echo "figures are medians of $R runs on a shared, noisy machine"
echo

row() { printf '%-9s %10s' "$1" "$2"; shift 2; printf ' %10s' "$@"; echo; }
hdr() { # TITLE
	echo "$1"
	local h=("rate" "kagami") l
	for l in $QLIMITS; do h+=("QEMU@$l" "ratio"); done
	row "${h[@]}" "spread" "$2"
	row "${h[@]//?/-}" "------" "${2//?/-}"
}
table() { # MAP NOTE_FN
	local map=$1 rate k q l r
	for rate in $RATES; do
		k=$(med "$map" "kagami,$rate")
		r=("$rate MiB/s" "$k")
		for l in $QLIMITS; do
			q=$(med "$map" "qemu,$rate,$l")
			r+=("$q" "$(ratio "$k" "$q")")
		done
		local -n mm=$map
		local v=${mm[kagami,$rate]:-} sp="-"
		# shellcheck disable=SC2086
		[[ -n ${v// /} && $v != *"<"* ]] && sp="$(spread $v)%"
		row "${r[@]}" "$sp" "$($2 "$rate" "$k")"
	done
	echo
}
note_down() { # goal: < 5 ms at 50 MiB/s and below QEMU's in every row
	local q ok=met l
	[[ $2 =~ ^[0-9.]+$ ]] || { echo "-"; return; }
	for l in $QLIMITS; do
		q=$(med DOWN "qemu,$1,$l")
		[[ $q =~ ^[0-9.]+$ ]] && awk -v k="$2" -v q="$q" 'BEGIN { exit !(k >= q) }' && ok=MISSED
	done
	if [[ $1 == 50 ]] && awk -v k="$2" 'BEGIN { exit !(k >= 5) }'; then ok=MISSED; fi
	echo "$ok"
}
note_none() { echo ""; }
note_total() { # goal: within 1.2x of the ideal time
	[[ $2 =~ ^[0-9.]+$ ]] || { echo "-"; return; }
	local x
	x=$(calc %.2f "$2 / $IDEAL_MS")
	echo "${x}x $(awk -v x="$x" 'BEGIN { print (x <= 1.2 ? "met" : "MISSED") }')"
}
note_bytes() { [[ $2 =~ ^[0-9.]+$ ]] && calc "%.2fx RAM" "$2 / $MEM_MIB" || echo "-"; }

hdr "(1) downtime, ms, as each VMM reports it" "goal"
table DOWN note_down
hdr "(2) downtime the guest saw, ms: its longest vCPU stall (TSC) around the switch" "note"
table STALL note_none
hdr "(3) total migration time, ms (ideal $IDEAL_MS ms)" "kagami/ideal"
table TOTAL note_total
hdr "(4) bytes sent, MiB" "kagami/RAM"
table BYTES note_bytes
hdr "(5) pre-copy rounds (QEMU: dirty-sync-count)" ""
table ROUNDS note_none
for k in "${!FAIL[@]}"; do echo "failed: $k: ${FAIL[$k]}"; done | sort
echo "ratio: kagami / QEMU at that downtime-limit (lower is better). Goals: downtime < 5 ms at"
echo "50 MiB/s and below QEMU's in every row; total time <= 1.2x the ideal."

# --- JSON copy ---------------------------------------------------------------------

jstr() { printf '"%s"' "$(sed 's/\\/\\\\/g; s/"/\\"/g' <<<"$1")"; }
jarr() { # space-separated values; "<1" becomes a string
	local out="" v
	for v in $1; do [[ $v =~ ^[0-9.]+$ ]] || v="\"$v\""; out+="${out:+,}$v"; done
	printf '[%s]' "$out"
}
{
	echo "{"
	echo "  \"date\": $(jstr "$(date -u '+%Y-%m-%dT%H:%M:%SZ')"),"
	echo "  \"machine\": {\"nproc\": $(nproc), \"kernel\": $(jstr "$kernel"), \"cpu\": $(jstr "$cpu")},"
	echo "  \"repeat\": $R, \"mib\": $MIB, \"mem_mib\": $MEM_MIB, \"stall_us\": $STALL_US,"
	echo "  \"loopback_mib_s\": $(jarr "${bw[*]}"), \"ideal_ms\": $IDEAL_MS,"
	echo "  \"qemu\": $(jstr "${QEMU_MISSING:-$qemu_ver}"), \"qemu_accel\": $(jstr "$QACCEL_NAME"), \"qemu_note\": $(jstr "$QACCEL_NOTE"),"
	echo "  \"kagami\": $(jstr "${KAGAMI_NA:-ok}"),"
	echo "  \"runs\": ["
	sep=""
	for k in $(printf '%s\n' "${!DOWN[@]}" "${!FAIL[@]}" | sort -u); do
		printf '%s    {"key": "%s", "downtime_ms": %s, "guest_stall_ms": %s, "total_ms": %s, "mib_sent": %s, "rounds": %s, "failed": %s}' \
			"$sep" "$k" "$(jarr "${DOWN[$k]:-}")" "$(jarr "${STALL[$k]:-}")" \
			"$(jarr "${TOTAL[$k]:-}")" "$(jarr "${BYTES[$k]:-}")" \
			"$(jarr "${ROUNDS[$k]:-}")" "$(jstr "${FAIL[$k]:-}")"
		sep=$',\n'
	done
	echo
	echo "  ]"
	echo "}"
} >"$JSON"
echo "JSON copy: ${JSON#"$ROOT"/}"
