#!/usr/bin/env bash
# Failover drills: `kagami drill` runs this (it needs root for network
# namespaces). Each drill builds a protected pair in network-namespace
# hosts, runs the kvstore guest under the client's load, injects a failure
# at a random moment, and measures:
#   recovery  the longest silence the client saw between two answers (its
#             last answer before the failure to its first after it), ms
#   lost      keys whose history is not linearizable: an acknowledged
#             write lost, or a read of a value never written or already
#             replaced (kagami check, which reads only the client's
#             recorded history: every request's invocation and completion)
#
#   switch ── pri (10.77.0.1): kagami run --replicate, TAP kvp
#          ├─ sec (10.77.0.3): kagami secondary, TAP kvs
#          └─ cli (10.77.0.2): kagami kv load / verify
#   the guest: 10.77.0.10, MAC 52:54:00:77:00:0a, on whichever side runs it
set -uo pipefail

usage() {
	cat <<'EOF'
usage: kagami drill [--mode ft|ha|lockstep] [--count N]
                    [--kill primary-host|primary|secondary|link]
                    [--seed S] [--duration S] [--json FILE] [--keep DIR]

Runs N failover drills (default 1) of a kvstore guest protected with
--replicate MODE (default ft) between two network-namespace hosts, under
the client's load for --duration seconds (default 4), then at a random
moment (--seed makes it repeatable) one of:
  primary-host  (default) the primary's host loses power: its network goes
                silent first (replication, lease and the guest's TAP), then
                kagami is killed -- nothing reaches the secondary, which must
                detect the silence
  primary       kagami on the primary is killed with SIGKILL; its kernel
                still closes the TCP connection, so the secondary learns of
                the death at once (the optimistic case)
  secondary     the secondary is killed with SIGKILL
  link          the secondary's network link is cut Both sides
hold a lease from a 'kagami witness' on the client's host, so a cut link
must leave exactly one side running (the primary). Prints a table per drill and p50/p99/max, and writes JSON
(default build/drill.json). FT and lockstep must lose nothing; HA may lose the writes of
up to one interval (--interval, 1000 ms). Needs root.
exit status: 0 if every drill kept its promise (FT, lockstep: lost 0; HA: the guest
answered again), 1 otherwise, 2 on bad arguments or setup failure.
EOF
}

MODE=ft COUNT=1 KILL=primary-host SEED=$RANDOM DURATION=4 JSON="" KEEP=""
while (($#)); do
	case $1 in
	--mode) MODE=${2:-}; shift 2 ;;
	--count) COUNT=${2:-}; shift 2 ;;
	--kill) KILL=${2:-}; shift 2 ;;
	--seed) SEED=${2:-}; shift 2 ;;
	--duration) DURATION=${2:-}; shift 2 ;;
	--json) JSON=${2:-}; shift 2 ;;
	--keep) KEEP=${2:-}; shift 2 ;;
	-h|--help) usage; exit 0 ;;
	*) echo "kagami drill: unknown option '$1' (try 'kagami drill --help')" >&2; exit 2 ;;
	esac
done
[[ $MODE == ft || $MODE == ha || $MODE == lockstep ]] || { echo "kagami drill: --mode '$MODE': ft, ha or lockstep" >&2; exit 2; }
[[ $KILL == primary-host || $KILL == primary || $KILL == secondary || $KILL == link ]] ||
	{ echo "kagami drill: --kill '$KILL': primary-host, primary, secondary or link" >&2; exit 2; }
[[ $COUNT =~ ^[1-9][0-9]*$ ]] || { echo "kagami drill: --count '$COUNT': a positive number" >&2; exit 2; }
[[ $SEED =~ ^[0-9]+$ ]] || { echo "kagami drill: --seed '$SEED': a number" >&2; exit 2; }
[[ $DURATION =~ ^[0-9]+$ ]] && ((DURATION >= 3)) ||
	{ echo "kagami drill: --duration '$DURATION': whole seconds, at least 3" >&2; exit 2; }

ROOT=$(cd "$(dirname "$0")/.." && pwd)
KAGAMI=${KAGAMI:-$ROOT/build/kagami}
GUEST=${KAGAMI_GUESTS:-$ROOT/build/guests}/kvstore.elf
JSON=${JSON:-$ROOT/build/drill.json}
for f in "$KAGAMI" "$GUEST"; do
	[[ -e $f ]] || { echo "kagami drill: $f is missing (run make)" >&2; exit 2; }
done
source "$ROOT/tests/netns.sh"
netns_usable || { echo "kagami drill: $NETNS_MISSING" >&2; exit 2; }

MAC=52:54:00:77:00:0a
IP=10.77.0.10
PORT=7000
WORK=$(mktemp -d /tmp/kagami-drill.XXXXXX)
cleanup() {
	jobs -p | xargs -r kill -9 2>/dev/null
	netns_cleanup
	if [[ -n $KEEP ]]; then
		mkdir -p "$KEEP" && cp -r "$WORK"/. "$KEEP"/
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT
RANDOM=$SEED

# wait_for FILE PATTERN SECONDS
wait_for() {
	local i
	for ((i = 0; i < $3 * 20; i++)); do
		grep -q "$2" "$1" 2>/dev/null && return 0
		sleep 0.05
	done
	return 1
}

# One drill: prints "recovery_ms lost acked verdict note".
drill() {
	local n=$1 d=$WORK/$1
	mkdir -p "$d"
	netns_setup >/dev/null &&
	netns_add_host pri 10.77.0.1 && netns_add_host sec 10.77.0.3 &&
	netns_add_host cli 10.77.0.2 &&
	netns_add_tap pri kvp && netns_add_tap sec kvs ||
		{ echo "- - - setup network namespace setup failed"; return; }
	truncate -s 64M "$d/pri.img"
	local extra=()
	[[ $MODE == ha ]] && extra=(--interval 1000)
	# Keys as a deployment has them: the pair shares the replication key,
	# and the pair and the witness the lease key (the witness's host
	# never holds the replication key).
	(umask 077 && head -c 32 /dev/urandom >"$d/repl.key" &&
		head -c 32 /dev/urandom >"$d/lease.key")
	# The witness on the client's host: the side cut off from it stops.
	netns_spawn cli "$KAGAMI" witness --listen tcp:10.77.0.2:7900 \
		--lease-key "$d/lease.key" --grace 0 >"$d/witness.out" 2>&1
	local wit=$NETNS_PID
	local lease=(--lease "witness:tcp:10.77.0.2:7900#drill$n"
		     --lease-key "$d/lease.key" --key "$d/repl.key")
	netns_spawn sec "$KAGAMI" secondary --listen tcp:10.77.0.3:7700 \
		--disk "$d/sec.img" --net "tap:kvs,mac=$MAC" \
		--console "file:$d/sec.console" "${lease[@]}" >"$d/sec.out" 2>&1
	local sec=$NETNS_PID
	wait_for "$d/sec.out" "listening" 5
	netns_spawn pri "$KAGAMI" run --mem 128M --disk "$d/pri.img" \
		--net "tap:kvp,mac=$MAC" --console "file:$d/pri.console" \
		--control "$d/pri.sock" --replicate "$MODE" \
		--peer tcp:10.77.0.3:7700 "${extra[@]}" "${lease[@]}" \
		--cmdline "ip=$IP/24 port=$PORT" "$GUEST" >"$d/pri.out" 2>&1
	local pri=$NETNS_PID
	if ! wait_for "$d/pri.console" "kvstore: ready" 20; then
		echo "- - - setup the guest did not start"; return
	fi
	local i state=""
	for ((i = 0; i < 200; i++)); do
		state=$("$KAGAMI" ctl "$d/pri.sock" protection 2>/dev/null |
			tr -d ' \t\n' | grep -o '"protected":[a-z]*')
		[[ $state == '"protected":true' ]] && break
		sleep 0.05
	done
	[[ $state == '"protected":true' ]] ||
		{ echo "- - - setup not protected after 10 s"; return; }
	netns_spawn cli "$KAGAMI" kv --server "$IP:$PORT" load \
		--duration "$DURATION" --journal "$d/journal" \
		--history "$d/history" --key-prefix "d${n}_" --clients 4 \
		>"$d/load.json" 2>"$d/load.err"
	local load=$NETNS_PID
	# The failure comes between 1 s and duration - 1.5 s into the load.
	local span=$(((DURATION * 1000 - 2500)))
	local at=$((1000 + RANDOM % (span > 0 ? span : 1)))
	sleep "$(printf '%d.%03d' $((at / 1000)) $((at % 1000)))"
	case $KILL in
	primary-host)
		# A host that loses power sends nothing more: silence it, then
		# stop its process (whose kernel's FIN now goes nowhere).
		ip -n "$(netns_name pri)" link set eth0 down
		kill -9 "$pri" ;;
	primary) kill -9 "$pri" ;;
	secondary) kill -9 "$sec" ;;
	link) ip -n "$(netns_name sec)" link set eth0 down ;;
	esac
	wait "$load" 2>/dev/null
	# The final reads go into the same history: a write acknowledged
	# during the load and missing now makes its key non-linearizable.
	netns_exec cli timeout 30 "$KAGAMI" kv --server "$IP:$PORT" verify \
		--journal "$d/journal" --history "$d/history" \
		>"$d/verify.json" 2>"$d/verify.err"
	"$KAGAMI" check --json "$d/history" >"$d/check.json" 2>"$d/check.err"
	local crc=$?
	# Exactly one side may run the guest.
	local both=""
	if [[ $KILL == link ]] && grep -q "runs here" "$d/sec.out" &&
	   kill -0 "$pri" 2>/dev/null; then
		both=yes
	fi
	kill -9 "$pri" "$sec" "$wit" 2>/dev/null
	wait "$pri" "$sec" "$wit" 2>/dev/null
	# Everything below comes from the checker's reading of the history
	# (the outage counts one that lasts to the end of the load).
	local gap lost acked problem
	gap=$(grep -o '"outage_ms":[0-9.]*' "$d/check.json" | cut -d: -f2)
	acked=$(grep -o '"acked_writes":[0-9]*' "$d/check.json" | cut -d: -f2)
	lost=$(grep -o '"keys_bad":[0-9]*' "$d/check.json" | cut -d: -f2)
	problem=$(grep -o '"problem":"[^"]*"' "$d/check.json" | cut -d'"' -f4)
	local verdict=ok note="killed $KILL at ${at} ms"
	[[ $KILL == link ]] && note="cut the secondary's link at ${at} ms"
	[[ $KILL == primary-host ]] && note="primary host silenced and killed at ${at} ms"
	if [[ -n $both ]]; then
		verdict=FAIL note="$note; split brain: both sides ran the guest"
	elif [[ -z $lost || -z $gap || -z $acked ]]; then
		verdict=FAIL note="no verdict on the history ($(tail -c 200 "$d/check.err"))"
	elif ((acked == 0)); then
		verdict=FAIL note="$note; nothing was acknowledged"
	elif [[ $MODE != ha ]] && ((crc != 0)); then
		verdict=FAIL note="$note; $(grep -o '"verdict":"[^"]*"' "$d/check.json" | cut -d'"' -f4): $problem"
	elif [[ $MODE == ha ]] && ((lost > acked / DURATION)); then
		# HA may lose one interval (1 s): at most a second's answers.
		verdict=FAIL note="$note; HA lost $lost keys, more than one interval"
	fi
	if [[ $verdict != ok ]]; then
		# What the surviving side said, for whoever reads the log.
		note="$note [secondary: $(tail -c 240 "$d/sec.out" | tr '\n' '|')]"
		note="$note [guest: $(tail -c 160 "$d/sec.console" 2>/dev/null | tr '\n' '|')]"
	fi
	echo "${gap:--} ${lost:--} ${acked:--} $verdict ${note//\"/\'}"
	netns_cleanup
}

pct() { # pct P values...: the P-th percentile (nearest rank)
	local p=$1; shift
	printf '%s\n' "$@" | sort -g | awk -v p="$p" '{v[NR]=$1} END {
		if (!NR) { print "-"; exit }
		i = int((p * NR + 99) / 100); if (i < 1) i = 1; print v[i] }'
}

echo "kagami drill: mode $MODE, kill $KILL, $COUNT drill(s) of ${DURATION} s, seed $SEED"
printf '%-6s %12s %8s %8s %-7s %s\n' drill recovery_ms lost acked verdict note
gaps=() fails=0 rows=()
for ((k = 1; k <= COUNT; k++)); do
	read -r gap lost acked verdict note < <(drill "$k")
	printf '%-6s %12s %8s %8s %-7s %s\n' "$k" "$gap" "$lost" "$acked" "$verdict" "$note"
	[[ $verdict == ok ]] || fails=$((fails + 1))
	[[ $gap == - ]] || gaps+=("$gap")
	rows+=("{\"drill\":$k,\"recovery_ms\":${gap/#-/null},\"lost\":${lost/#-/null},\"acked\":${acked/#-/null},\"ok\":$([[ $verdict == ok ]] && echo true || echo false),\"note\":\"$note\"}")
done
p50=$(pct 50 "${gaps[@]}") p99=$(pct 99 "${gaps[@]}") max=$(pct 100 "${gaps[@]}")
echo "recovery ms: p50 $p50, p99 $p99, max $max over ${#gaps[@]} drill(s); $fails failed"
mkdir -p "$(dirname "$JSON")"
{
	printf '{"mode":"%s","kill":"%s","seed":%s,"duration_s":%s,' "$MODE" "$KILL" "$SEED" "$DURATION"
	printf '"recovery_ms":{"p50":%s,"p99":%s,"max":%s},"failed":%s,"drills":[' \
		"${p50/#-/null}" "${p99/#-/null}" "${max/#-/null}" "$fails"
	(IFS=,; printf '%s' "${rows[*]}")
	printf ']}\n'
} >"$JSON"
echo "JSON: $JSON"
((fails == 0))
