# Helpers shared by the bench scripts (sourced).

# median VALUES...: the middle value (mean of the two middle ones if even).
median() {
	printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 }
		END { if (NR % 2) print v[(NR + 1) / 2];
		      else printf "%.6g\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
# spread VALUES...: (max - min) / median, in percent.
spread() {
	local m
	m=$(median "$@")
	printf '%s\n' "$@" | sort -g | awk -v m="$m" '{ v[NR] = $1 }
		END { printf "%.0f\n", (m > 0 ? 100 * (v[NR] - v[1]) / m : 0) }'
}
# calc FORMAT EXPR: awk arithmetic, printed with FORMAT.
calc() { awk "BEGIN { printf \"$1\n\", $2 }"; }

# --- shared by the bench scripts that start VMs ------------------------------
# (The scripts define die and log before sourcing this, and may replace a
# helper with their own variant after.)

# bench_key: the path of a replication key for this run (made once, mode
# 0600, inside TMP): benchmarks measure authenticated links, as kagami
# runs them by default.
bench_key() {
	local k=$TMP/bench.key
	if [[ ! -f $k ]]; then
		(umask 077 && head -c 32 /dev/urandom >"$k") || die "cannot write $k"
	fi
	echo "$k"
}

# json_runs ARRAY FILE: writes the associative array named ARRAY (key ->
# "value value ...", one value per run) to FILE as a JSON object of arrays.
json_runs() {
	local -n runs=$1
	local key first=1
	mkdir -p "$(dirname "$2")" || return 1
	{
		echo "{"
		for key in "${!runs[@]}"; do
			((first)) || echo ","
			first=0
			printf '  "%s": [%s]' "$key" "$(echo ${runs[$key]} | sed 's/ /, /g')"
		done
		echo
		echo "}"
	} >"$2"
}

# posint VALUE: true when VALUE is a positive integer.
posint() { [[ $1 =~ ^[1-9][0-9]*$ ]]; }
# need_files FILE...: dies unless every FILE exists (`make bench` builds them).
need_files() {
	local f
	for f in "$@"; do
		[[ -f $f ]] || die "$f is missing; run \`make bench\`"
	done
}
# check_parts NAME: dies unless each word of PARTS (from variable NAME) is mem, kv or drill.
check_parts() {
	local p
	for p in $PARTS; do [[ $p == mem || $p == kv || $p == drill ]] || die "$1: '$p' is not mem, kv or drill"; done
}
# part P: true when part P is in PARTS.
part() { [[ " $PARTS " == *" $1 "* ]]; }
# set_skips CMD: KVM_SKIP / NET_SKIP, why VMs / netns hosts cannot run here (needs tests/netns.sh).
set_skips() {
	KVM_SKIP=""
	[[ -c /dev/kvm && -r /dev/kvm && -w /dev/kvm ]] || KVM_SKIP="/dev/kvm is missing or not accessible"
	if [[ -z $KVM_SKIP ]] && ! "$KAGAMI" "$1" --help >/dev/null 2>&1; then
		KVM_SKIP="this kagami has no '$1' command"
	fi
	NET_SKIP=$KVM_SKIP
	if [[ -z $NET_SKIP ]] && ! netns_usable; then NET_SKIP=$NETNS_MISSING; fi
}
# exit_on_signals: SIGINT, SIGTERM, SIGHUP end the script at once (the EXIT trap cleans up).
exit_on_signals() {
	trap 'exit 130' INT
	trap 'exit 143' TERM
	trap 'exit 129' HUP
}
# kill_pids: SIGKILL to every process in PIDS, then reaps them.
kill_pids() {
	local p
	for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
}
# cleanup_all: kills PIDS, removes the network namespaces and TMP (the EXIT trap).
cleanup_all() {
	kill_pids
	netns_cleanup
	rm -rf "$TMP"
}
# oneline: stdin on one line, blanks folded, its last 300 characters.
oneline() { tr '\n' ' ' | sed 's/  */ /g; s/^ //; s/ $//' | tail -c 300; }
# now: the time in seconds, to the nanosecond.
now() { date +%s.%N; }
# jget FILE EXPR: a field of the JSON object in FILE (python expression on j).
jget() { python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print($2)" "$1" 2>/dev/null; }
# free_port: a TCP port free on 127.0.0.1 just now.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# stop PID [S]: SIGTERM, then SIGKILL after S s (default 5).
stop() {
	local p=$1 i
	[[ -n $p ]] || return 0
	kill -TERM "$p" 2>/dev/null
	for ((i = 0; i < ${2:-5} * 10; i++)); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
	kill -0 "$p" 2>/dev/null && log "    ($(ps -o args= -p "$p" | cut -c1-40) still ran ${2:-5} s after SIGTERM: killed)"
	kill -KILL "$p" 2>/dev/null
	wait "$p" 2>/dev/null
	return 0
}
# wait_for PATTERN FILE PID SECONDS: until FILE has PATTERN (or PID died).
wait_for() {
	local i
	for ((i = 0; i < $4 * 20; i++)); do
		grep -q "$1" "$2" 2>/dev/null && return 0
		kill -0 "$3" 2>/dev/null || return 1
		sleep 0.05
	done
	return 1
}
# wait_protected SOCK PID SECPID SECOUT [STATE]: until `ctl SOCK protection` says ["state":"STATE",]"protected":true (30 s at most; fails early if a side died or took over).
wait_protected() {
	local i want='"protected":true'
	[[ -n ${5:-} ]] && want="\"state\":\"$5\",$want"
	for ((i = 0; i < 600; i++)); do
		"$KAGAMI" ctl "$1" protection 2>/dev/null | tr -d ' \t\n' |
			grep -q "$want" && return 0
		kill -0 "$2" 2>/dev/null && kill -0 "$3" 2>/dev/null || return 1
		grep -q 'the guest runs here' "$4" 2>/dev/null && return 1
		sleep 0.05
	done
	return 1
}

# --- the kvstore pair: primary on host pri, secondary on sec, client on cli ---
# (KV_IP, KV_PORT, KV_MAC, KV_DUR, KV_CLIENTS and PIDS come from the script.)

# pair_netns_setup: hosts pri (10.77.0.1, TAP kvp), sec (.3, TAP kvs), cli (.2); on failure cleans up, returns 1.
pair_netns_setup() {
	# shellcheck disable=SC2119 # netns_setup takes no arguments
	if ! { netns_setup && netns_add_host pri 10.77.0.1 &&
		netns_add_host sec 10.77.0.3 && netns_add_host cli 10.77.0.2 &&
		netns_add_tap pri kvp && netns_add_tap sec kvs; }; then
		netns_cleanup
		return 1
	fi
}
# pair_secondary DIR PORT: `kagami secondary` on host sec, files DIR/sec.*, pid in NETNS_PID; waits until it listens.
pair_secondary() {
	netns_spawn sec "$KAGAMI" secondary --listen "tcp:10.77.0.3:$2" \
		--key "$(bench_key)" --no-lease \
		--disk "$1/sec.img" --net "tap:kvs,mac=$KV_MAC" \
		--console "file:$1/sec.console" </dev/null >"$1/sec.out" 2>&1
	PIDS+=("$NETNS_PID")
	wait_for listening "$1/sec.out" "$NETNS_PID" 10
}
# pair_primary DIR CMD... -- REP...: `kagami CMD...` with kvstore.elf on host pri, files DIR/pri.*, REP... after --control; pid in NETNS_PID.
pair_primary() {
	local d=$1 pre=()
	shift
	while (($#)) && [[ $1 != -- ]]; do pre+=("$1"); shift; done
	(($#)) && shift
	netns_spawn pri "$KAGAMI" "${pre[@]}" --disk "$d/pri.img" \
		--net "tap:kvp,mac=$KV_MAC" --console "file:$d/pri.console" \
		--control "$d/pri.sock" "$@" \
		--cmdline "ip=$KV_IP/24 port=$KV_PORT" "$GUESTS/kvstore.elf" \
		</dev/null >"$d/pri.out" 2>&1
	PIDS+=("$NETNS_PID")
}
# pair_warmup DIR: one put from host cli (ARP, and proof the guest answers) into DIR/warm.out; fails without an answer.
pair_warmup() {
	netns_exec cli timeout -k 5 20 "$KAGAMI" kv --server "$KV_IP:$KV_PORT" \
		--timeout 10 put bench-warmup x >"$1/warm.out" 2>&1
}
# pair_load DIR: `kagami kv load` from host cli (KV_DUR s, KV_CLIENTS clients) into DIR/load.json and DIR/load.err.
pair_load() {
	netns_exec cli timeout -k 5 $((KV_DUR + 60)) "$KAGAMI" kv \
		--server "$KV_IP:$KV_PORT" load --duration "$KV_DUR" \
		--clients "$KV_CLIENTS" --journal "$1/journal" \
		>"$1/load.json" 2>"$1/load.err"
}
# load_figures FILE: sets the caller's acked dur p50 p99 gap errors from a `kagami kv load` JSON.
load_figures() {
	# shellcheck disable=SC2034 # the caller's variables
	acked=$(jget "$1" "j['acked']") dur=$(jget "$1" "j['duration_s']")
	p50=$(jget "$1" "j['p50_us']") p99=$(jget "$1" "j['p99_us']")
	gap=$(jget "$1" "j.get('max_gap_ms', '-')")
	errors=$(jget "$1" "j.get('errors', 0) + j.get('mismatches', 0)")
}
# drill_run MODE COUNT: `kagami drill` (seed SEED); its JSON in DRILL[MODE], or why not in FAIL[drill,MODE].
drill_run() {
	local mode=$1 n=$2
	log "drills: kagami drill --mode $mode --count $n --seed $SEED"
	if "$KAGAMI" drill --mode "$mode" --count "$n" --seed "$SEED" \
		--json "$TMP/drill.$mode.json" >"$TMP/drill.$mode.out" 2>&1 ||
		[[ -s $TMP/drill.$mode.json ]]; then
		DRILL[$mode]=$TMP/drill.$mode.json
		local l
		while IFS= read -r l || [[ -n $l ]]; do log "  $l"; done <"$TMP/drill.$mode.out"
	else
		FAIL[drill,$mode]="kagami drill failed: $(oneline <"$TMP/drill.$mode.out")"
		log "  ${FAIL[drill,$mode]}"
	fi
}

# --- the tables and the JSON copy ---------------------------------------------

# ratio A B: A / B, or "-".
ratio() {
	if [[ $1 =~ ^[0-9.]+$ && $2 =~ ^[0-9.]+$ ]] && awk -v b="$2" 'BEGIN { exit !(b > 0) }'; then
		calc %.2f "$1 / $2"
	else echo "-"; fi
}
# dashes HEADER...: the script's row of dashes as long as each header.
dashes() { local ds=() x; for x in "$@"; do ds+=("${x//?/-}"); done; row "${ds[@]}"; }
# failrows PREFIX: the failures (FAIL) of keys starting with PREFIX.
failrows() {
	local k
	for k in "${!FAIL[@]}"; do [[ $k == "$1"* ]] && echo "failed: $k: ${FAIL[$k]:0:300}"; done | sort
}
# jstr TEXT: TEXT as a JSON string, on one line.
jstr() { printf '"%s"' "$(tr '\t\r\n' '   ' <<<"$1" | sed 's/\\/\\\\/g; s/"/\\"/g; s/ *$//')"; }
# jarr VALUES: space-separated values as a JSON array; anything not a number becomes a string.
jarr() {
	local out="" v
	for v in $1; do [[ $v =~ ^[0-9.]+$ ]] || v="\"$v\""; out+="${out:+,}$v"; done
	printf '[%s]' "$out"
}
# bench_header TITLE: sets cpu and kernel; prints TITLE, the date, the machine and what the figures are.
bench_header() {
	cpu=$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2 | sed 's/^ *//')
	kernel="$(uname -sr) $(uname -m)"
	echo
	echo "$1, $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "machine: nproc=$(nproc), kernel $kernel${cpu:+, $cpu}; load average $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "figures are medians of $R runs on a shared, noisy machine (percentiles: the median of each run's p50/p99)"
}
# json_drills MODE...: the JSON copy's "drills" line, each MODE's drill JSON (DRILL) or why there is none.
json_drills() {
	local mode sep=""
	printf '  "drills": {'
	for mode in "$@"; do
		if [[ -n ${DRILL[$mode]:-} ]]; then
			printf '%s"%s": %s' "$sep" "$mode" "$(tr -d '\n' <"${DRILL[$mode]}")"
		else
			printf '%s"%s": {"failed": %s}' "$sep" "$mode" "$(jstr "${FAIL[drill,$mode]:-${DRILL_SKIP:-skipped}}")"
		fi
		sep=", "
	done
	echo "}"
}
# json_done: warns when the file JSON is not valid JSON; says where it is.
json_done() {
	python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$JSON" 2>/dev/null ||
		log "warning: $JSON is not valid JSON"
	echo "JSON copy: ${JSON#"$ROOT"/}"
}
# table_head WHY: "skipped: WHY" (and false) when WHY is set, else the header rows of table H.
table_head() {
	if [[ -n $1 ]]; then
		echo "skipped: $1"
		return 1
	fi
	row "${H[@]}"
	dashes "${H[@]}"
}
# drill_row MODE [EXTRA...]: MODE's row of a drill table from DRILL[MODE] (then EXTRA...), or failed / skipped.
drill_row() {
	local mode=$1 dj
	shift
	if [[ -z ${DRILL[$mode]:-} ]]; then
		if [[ -n ${FAIL[drill,$mode]:-} ]]; then row "$mode" failed; else row "$mode" skipped; fi
		return 0
	fi
	dj=${DRILL[$mode]}
	row "$mode" "$(jget "$dj" "len(j['drills'])")" "$(jget "$dj" "j['recovery_ms']['p50']")" \
		"$(jget "$dj" "j['recovery_ms']['p99']")" "$(jget "$dj" "j['recovery_ms']['max']")" \
		"$(jget "$dj" "sum(d['lost'] or 0 for d in j['drills'])")" "$(jget "$dj" "j['failed']")" "$@"
}
# med MAP KEY [SCALE]: the median of the runs (the script's runs_of MAP KEY) divided by SCALE, or "-".
med() {
	local v x
	v=$(runs_of "$1" "$2")
	if [[ -z ${v// /} ]]; then echo "-"; return; fi
	# shellcheck disable=SC2086 # space-separated numbers
	x=$(median $v)
	if [[ -n ${3:-} ]]; then calc %.2f "$x / $3"; else echo "$x"; fi
}
# sprd MAP KEY: the spread of the runs (the script's runs_of MAP KEY), or "-".
sprd() {
	local v
	v=$(runs_of "$1" "$2")
	# shellcheck disable=SC2086
	if [[ -z ${v// /} ]]; then echo "-"; else echo "$(spread $v)%"; fi
}
