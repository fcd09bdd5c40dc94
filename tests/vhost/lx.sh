# Helpers of the Linux-guest tests (tests/integration/99_linux*.sh),
# sourced after tests/lib.sh and tests/vhost/lib.sh.

# tlx NAME FUNC: a test of the virtual-host tier (lx_once_more FUNC).
tlx() {
	if ! vhost_usable; then
		cannot_run "$1" "$VHOST_MISSING"
		return
	fi
	LX_FN=$2 t "$1" lx_once_more qemu
}

# lx_once_more: runs $LX_FN; if it failed while one of its virtual hosts
# itself broke (vhost_broken: seen now and then on these nested hosts,
# under QEMU microvm too; docs/architecture.md), or the test said the
# failure was the nested hosts' (lx_env_failure), or because the guest
# triple-faulted (a known failure on the virtual hosts whose cause is not
# found yet: docs/architecture.md, "Known failures"), once more on new
# virtual hosts, and the ok line's note says so. Any other failure is
# final. A virtual host the test killed on purpose (its name in
# LX_KILLED) is not a broken one.
lx_once_more() {
	LX_KILLED=""
	"$LX_FN" && [[ ! -s $TT/.why ]] && return 0
	local broken="" first n b
	for n in "${!VHOST_SLOT[@]}"; do
		[[ " $LX_KILLED " == *" $n "* ]] && continue
		b=$(vhost_broken "$n") && broken+="virtual host $n broke: $b; "
	done
	for n in "${!VHOST_SLOT[@]}"; do
		grep -qs "guest triple fault" "$(vhost_share "$n")"/*.log "$(vhost_share "$n")"/*.err &&
			broken+="the guest triple-faulted in $n; "
	done
	[[ -s $TT/.envfail ]] && broken+="$(cat "$TT/.envfail"); "
	rm -f "$TT/.envfail"
	[[ -n $broken ]] || return 1
	first=$(head -c 300 "$TT/.why" 2>/dev/null)
	rm -f "$TT/.why"
	for n in "${!VHOST_PID[@]}"; do
		vhost_kill "$n"
	done
	[[ -z ${LX_WITNESS_PID:-} ]] || { kill "$LX_WITNESS_PID"; wait "$LX_WITNESS_PID"; } 2>/dev/null
	LX_WITNESS_PID=""
	for n in "${!VHOST_SLOT[@]}"; do
		[[ -n $VHOST_DIR && -d $VHOST_DIR/$n/share ]] && rm -f "$VHOST_DIR/$n/share/"*
	done
	LX_KILLED=""
	"$LX_FN" && [[ ! -s $TT/.why ]] || return 1
	note "${broken%; } (the first try: $first); passed on new virtual hosts"
}

# lx_env_failure WHAT: the failure at hand is one of the nested hosts'
# (e.g. QEMU microvm's reference guest stopped answering), not of kagami:
# lx_once_more may try once more.
lx_env_failure() {
	echo "$*" >>"$TT/.envfail"
}

# lx_witness KEYFILE: a lease witness (kagami witness) in the client
# namespace on 10.77.0.2:7300, fresh (--grace 0); lx_once_more stops it
# before another try.
lx_witness() {
	netns_spawn client "$KAGAMI" witness --listen tcp:10.77.0.2:7300 --lease-key "$1" --grace 0 \
		>witness.out 2>witness.err
	LX_WITNESS_PID=$NETNS_PID
}

# lx_client: the client namespace 10.77.0.2 (once per test).
lx_client() {
	[[ " ${NETNS_HOSTS[*]} " == *" client "* ]] || netns_add_host client 10.77.0.2
}

lx_build() {
	"$ROOT/scripts/build-linux-guest" >build.out 2>&1 ||
		why "scripts/build-linux-guest: $(tail -c 300 build.out)"
}

# lx_fact LOG KEY: the value of "kagami-guest: KEY: VALUE" in LOG.
lx_fact() {
	sed -n "s/^kagami-guest: $2: //p" "$1" | tr -d '\r' | head -1
}

# lx_redis IP: the same commands against a guest's redis, answers on stdout.
lx_redis() {
	local ip=$1 c
	for c in "set k1 v1" "incr n" "incr n" "append s ab" "append s cd" \
		 "get k1" "get n" "get s" "get missing"; do
		# shellcheck disable=SC2086 # c holds a command and its words
		netns_exec client redis-cli -h "$ip" $c 2>&1
	done
}

# lx_mac NAME K: the MAC vhost_kagami_linux gives guest K of NAME.
lx_mac() { printf '52:54:00:77:%02x:%02x' "${VHOST_SLOT[$1]}" "$(($2 + 50))"; }

# lx_key FILE NAME...: a new key (64 random bytes) in ./FILE, mode 0600,
# and in /root/FILE of each virtual host NAME.
lx_key() {
	local f=$1 n
	shift
	head -c 64 /dev/urandom >"$f" && chmod 600 "$f" || return 1
	for n in "$@"; do
		cp "$f" "$(vhost_share "$n")/$f" &&
			vhost_exec "$n" "cp /kg/share/$f /root/$f && chmod 600 /root/$f && rm /kg/share/$f" ||
			{ why "cannot place the key in $n"; return 1; }
	done
}

# lx_bg NAME TAG CMD: runs kagami CMD... in NAME in the background with
# its stderr in share/TAG.err, its status in share/TAG.rc and its pid in
# /root/TAG.pid once it ends.
lx_bg() {
	local name=$1 tag=$2
	shift 2
	vhost_exec "$name" "rm -f /kg/share/$tag.rc /kg/share/$tag.err
(kagami $* 2>/kg/share/$tag.err &
 echo \$! >/root/$tag.pid
 wait \$!
 echo \$? >/kg/share/$tag.rc) &" || { why "cannot start kagami $1 in $name"; return 1; }
}

# lx_rc NAME TAG [S]: waits for TAG's exit status; prints it.
lx_rc() {
	vhost_wait "$1" "$2.rc" '^[0-9]+$' "${3:-60}" >/dev/null || return 1
	cat "$(vhost_share "$1")/$2.rc"
}

# lx_history IP SECONDS: redis-history against IP from the client
# namespace, in the background (LX_HIST_PID); history in hist.txt.
lx_history() {
	netns_exec client "$BUILD/tests/redis-history" --host "$1" --port 6379 \
		--clients 4 --seconds "$2" --timeout-ms 3000 --out hist.txt \
		>hist.out 2>&1 &
	LX_HIST_PID=$!
}

# lx_history_check: waits for the client, runs history-check; fails
# unless the history is linearizable and the service answered again
# before the end. LX_OUTAGE: the longest outage and when it began (from
# the client's start), LX_HIST: the summary. LX_WHERE: a file whose tail
# a failure quotes (the stderr of the kagami that should serve).
# LX_LOSS_OK=1 (HA, whose output is not held): a history that lost
# acknowledged writes passes; LX_VERDICT says what the checker found.
lx_history_check() {
	wait "$LX_HIST_PID"
	LX_VERDICT=linearizable
	if ! "$BUILD/tests/history-check" hist.txt >check.out 2>&1; then
		LX_VERDICT="$(tail -n 1 check.out), e.g. $(grep -m1 '^violation' check.out | head -c 200)"
		[[ ${LX_LOSS_OK:-} == 1 ]] && grep -q '^FAIL: not linearizable' check.out ||
			{ why "history-check: $(head -c 400 check.out | tr '\n' ' ') (client: $(tail -c 200 hist.out))"; return 1; }
	fi
	LX_OUTAGE=$(sed -n 's/^outage: \([0-9.]*\) s with nothing acknowledged, from \([0-9.]*\) s.*/\1 s from \2 s/p' check.out)
	LX_HIST=$(head -n 1 check.out | sed 's/^history-check: [^:]*: //')
	! grep -q "lasted to the end" check.out ||
		{ why "the service did not come back: $(grep '^outage' check.out)${LX_WHERE:+; $(tail -c 300 "$LX_WHERE" | tr '\n' ' ')}"; return 1; }
}

# lx_whole_lines FILE...: each FILE but its last line (which may still be
# being written).
lx_whole_lines() {
	local f
	for f; do sed '$d' "$f"; done
}

# lx_ticks LOG...: the kg.tick lines of the guest's consoles in order go
# on: at least 3 after the last LOG's start, the uptime never goes back,
# the guest says nothing about its clock, the last wall clock is within
# 6 s of this host's. Only whole tick lines count: a console may still be
# written (its last line cut), and another line of the guest's can land
# inside a tick line (the serial console takes bytes).
lx_ticks() {
	local last=${*: -1} n up prev=0 wall now
	local tick='kagami-guest: tick [0-9]+ up [0-9.]+ wall [0-9]+[[:space:]]*$'
	n=$(lx_whole_lines "$last" | grep -acE "$tick")
	((n >= 3)) || { why "the guest ticked $n times in $(basename "$last")"; return 1; }
	grep -aq "clock went back" "$@" && { why "$(grep -ah 'clock went back' "$@" | head -1)"; return 1; }
	while read -r up; do
		awk -v a="$prev" -v b="$up" 'BEGIN { exit !(b < a) }' &&
			{ why "the guest's uptime went back from $prev to $up across $*"; return 1; }
		prev=$up
	done < <(lx_whole_lines "$@" | grep -aoE "$tick" | sed 's/.* up \([0-9.]*\) .*/\1/')
	wall=$(lx_whole_lines "$last" | grep -aoE "$tick" | tail -1 | sed 's/.* wall \([0-9]*\).*/\1/')
	now=$(date +%s)
	((wall > now - 6 && wall < now + 6)) ||
		{ why "the guest's wall clock says $wall, this host's $now"; return 1; }
}

# lx_complaints LOG...: the kernel's complaints in the consoles, if any.
lx_complaints() {
	grep -ahE 'BUG:|Oops|soft lockup|hung task|clocksource.*unstable|rcu.*stall|triple fault' "$@" | head -2
}
