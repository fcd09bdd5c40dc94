# redis-history and history-check (tests/tools/): a stock redis-server on
# this host, killed and restarted under the client, and histories edited
# to break. The checker's rules are unit-tested in
# tests/unit/test_history_check.c; here the tools meet a real server.

RH_CLIENT=$BUILD/tests/redis-history
RH_CHECK=$BUILD/tests/history-check

# Why these tests cannot run here (empty when they can).
rh_missing() {
	if [[ ! -x $RH_CLIENT || ! -x $RH_CHECK ]]; then
		echo "build/tests/redis-history or history-check is not built"
	elif ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
		echo "redis-server or redis-cli (redis-server, redis-tools) is not installed"
	fi
}

t_rh() {
	local reason
	reason=$(rh_missing)
	if [[ -n $reason ]]; then
		cannot_run "$1" "$reason"
		return
	fi
	t "$1" "$2"
}

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# port_free PORT: nothing listens on 127.0.0.1:PORT.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# redis_start: a redis-server in $TT/rd on REDIS_PORT (picked free the
# first time), every write fsynced before it is acknowledged (REDIS_AOF
# may say otherwise); waits until it answers. Sets REDIS_PID.
redis_start() {
	local i
	mkdir -p "$TT/rd"
	if [[ -z ${REDIS_PORT:-} ]]; then
		for i in 1 2 3 4 5 6 7 8; do
			REDIS_PORT=$((20000 + RANDOM % 40000))
			port_free "$REDIS_PORT" && break
		done
	fi
	redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$TT/rd" \
		${REDIS_AOF:---appendonly yes --appendfsync always} --save '' \
		--daemonize no --logfile "$TT/rd/log" &
	REDIS_PID=$!
	for i in $(seq 100); do
		[[ $(redis-cli -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]] && return 0
		kill -0 "$REDIS_PID" 2>/dev/null || break
		sleep 0.05
	done
	why "redis-server on port $REDIS_PORT did not come up: $(tail -3 "$TT/rd/log" 2>/dev/null)"
}

redis_stop() {
	[[ -n ${REDIS_PID:-} ]] || return 0
	kill "$REDIS_PID" 2>/dev/null
	wait "$REDIS_PID" 2>/dev/null
	REDIS_PID=
}

# Whatever a test started goes when its subshell ends, passed or not.
rh_cleanup() {
	[[ -z ${CLIENT_PID:-} ]] || kill "$CLIENT_PID" 2>/dev/null
	redis_stop
}

# rh_check FILE [ARGS]: history-check; sets STATUS, stdout in $TT/out,
# stderr in $TT/err.
rh_check() {
	timeout -k 5 60 "$RH_CHECK" "$@" >"$TT/out" 2>"$TT/err"
	STATUS=$?
}

# A history of a short run against a server that stays up.
rh_short_run() {
	trap rh_cleanup EXIT
	redis_start || return
	timeout -k 5 30 "$RH_CLIENT" --port "$REDIS_PORT" --seconds 1.5 --out h \
		--seed 7 >client.out 2>&1 || why "redis-history failed: $(cat client.out)"
	redis_stop
	[[ -s h ]] || why "no history written"
}

# rh_failover SECONDS: the client runs SECONDS; the server is SIGKILLed
# after 2 s and restarted on its directory 1 s later. Leaves the history
# in h and the down time in DOWN_MS.
rh_failover() {
	trap rh_cleanup EXIT
	redis_start || return
	"$RH_CLIENT" --port "$REDIS_PORT" --seconds "$1" --timeout-ms 500 --out h \
		>client.out 2>&1 &
	CLIENT_PID=$!
	local t0
	sleep 2
	t0=$(now_ms)
	kill -KILL "$REDIS_PID"
	wait "$REDIS_PID" 2>/dev/null
	sleep 1
	DOWN_MS=$(($(now_ms) - t0))
	redis_start || return
	wait "$CLIENT_PID" || why "redis-history exited $?: $(cat client.out)" || return
	CLIENT_PID=
	redis_stop
	cat client.out
	grep -q "longest outage" client.out || why "no summary: $(cat client.out)"
}

test_rh_failover() {
	rh_failover 6 || return
	rh_check h
	cat "$TT/out"
	expect_status 0 || return
	out_has "PASS: linearizable" || return
	local outage_ms
	outage_ms=$(sed -n 's/^outage: \([0-9.]*\) s.*/\1/p' "$TT/out" | awk '{ printf "%d", $1 * 1000 }')
	((outage_ms >= DOWN_MS)) || why "outage ${outage_ms} ms, but the server was down ${DOWN_MS} ms" || return
	# Every written key was read at the end, after the restart.
	out_has " 0 written keys without a final read" || return
	rh_check h --json
	expect_status 0 && out_has '"pass":true' || return
}

# Without its append-only file the restarted server has forgotten every
# acknowledged write: the checker must say so.
test_rh_forgetful_server() {
	REDIS_AOF="--appendonly no"
	rh_failover 4 || return
	rh_check h
	expect_status 1 && out_has "FAIL: not linearizable" && out_has "violation: key " || return
}

test_rh_sigterm() {
	redis_start || return
	trap rh_cleanup EXIT
	"$RH_CLIENT" --port "$REDIS_PORT" --seconds 60 --out h >client.out 2>&1 &
	CLIENT_PID=$!
	local client=$CLIENT_PID
	sleep 1
	kill -TERM "$client"
	wait "$client" || why "redis-history exited $? on SIGTERM: $(cat client.out)" || return
	redis_stop
	[[ $(tail -1 h) == end\ * ]] || why "the history does not end with its end line: $(tail -1 h)" || return
	rh_check h
	expect_status 0 || return
}

test_rh_edited() {
	rh_short_run || return
	# A final read of a register, and the set that wrote what it read.
	local line key val
	line=$(awk '$3 == "get" && $5 == "final" && $4 ~ /:r[0-9]+$/ && $8 ~ /^v:/ { print; exit }' h)
	[[ -n $line ]] || why "no final read of a register in the history" || return
	key=$(awk '{ print $4 }' <<<"$line")
	val=$(awk '{ print substr($8, 3) }' <<<"$line")
	# Drop that (acknowledged) set: the read's value is never written.
	awk -v k="$key" -v v="$val" '!($3 == "set" && $4 == k && $5 == v)' h >dropped
	(($(wc -l <h) == $(wc -l <dropped) + 1)) || why "did not drop exactly one set" || return
	rh_check dropped
	expect_status 1 && out_has "FAIL: not linearizable" && out_has "key $key: read of a value never written" || return
	# Make the final read return the first value set on that key, long
	# overwritten: a lost write (or, when others read that value, a
	# stale read: no order of the two values fits).
	local first
	first=$(awk -v k="$key" '$3 == "set" && $4 == k && $8 == "ok" { print $5; exit }' h)
	[[ -n $first && $first != "$val" ]] || why "no earlier set on $key" || return
	awk -v l="$line" -v f="$first" '$0 == l { $8 = "v:" f } { print }' h >stale
	rh_check stale
	expect_status 1 && out_has "FAIL: not linearizable" || return
	grep -Eq "^violation: key $key: (lost write|stale read): .*final get" "$TT/out" ||
		why "no lost write or stale read of $key's final read: $(head -c 600 "$TT/out")" || return
	# A truncated file and a garbled line: malformed, exit 2, one line.
	head -c -20 h >cut
	rh_check cut
	expect_status 2 && err_has "line $(($(wc -l <cut) + 1)): the last line has no newline" && err_one_line || return
	head -n -1 h >noend
	rh_check noend
	expect_status 2 && err_has "no 'end' line: the history is truncated" || return
	awk 'NR == 10 { $6 = "x" $6 } { print }' h >garbled
	rh_check garbled
	expect_status 2 && err_has "garbled line 10: bad invocation time" && err_one_line || return
	rh_check missing
	expect_status 2 && err_has "missing: No such file or directory" || return
}

test_rh_never_up() {
	local port
	for port in $(seq 5); do
		port=$((20000 + RANDOM % 40000))
		port_free "$port" && break
	done
	timeout -k 5 30 "$RH_CLIENT" --port "$port" --seconds 2 --final-ms 300 --out h \
		>client.out 2>&1 || why "redis-history exited $?: $(cat client.out)" || return
	grep -q ": 0 ok, 0 failed, 0 indeterminate" client.out || why "client summary: $(cat client.out)" || return
	rh_check h
	expect_status 1 && out_has "FAIL: nothing acknowledged" && out_has "(it lasted to the end)" || return
	local outage_ms
	outage_ms=$(sed -n 's/^outage: \([0-9.]*\) s.*/\1/p' "$TT/out" | awk '{ printf "%d", $1 * 1000 }')
	((outage_ms >= 2000)) || why "outage ${outage_ms} ms for a run of 2 s with no server"
}

t_rh "history: redis killed and restarted under the client: linearizable, outage >= the down time" test_rh_failover
t_rh "history: a server that forgets acknowledged writes on restart fails the check" test_rh_forgetful_server
t_rh "history: SIGTERM ends the client cleanly (status 0, a complete history)" test_rh_sigterm
t_rh "history: an edited history fails naming the key; truncated or garbled ones are malformed" test_rh_edited
t_rh "history: a server that never comes up: nothing acknowledged (exit 1)" test_rh_never_up
