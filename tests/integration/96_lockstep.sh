# Lockstep FT: `kagami run --replicate lockstep --peer` records the guest's
# execution (deterministic mode, 1 vCPU) and streams the log to `kagami
# secondary`, which replays it in a live VM with its outputs suppressed;
# the primary releases an output only once the secondary has acknowledged
# the log up to it. On the primary's death the secondary replays what it
# has and goes live.
#
# memstress over loopback TCP (ports 17600-17619 on 127.0.0.1): its
# console makes the promises checkable (as in 95_replicate.sh). kvstore
# under client load in network namespaces (tests/netns.sh):
#
#   switch ── pri (10.77.0.1): kagami run --replicate lockstep, TAP lsp
#          ├─ sec (10.77.0.3): kagami secondary, TAP lss
#          └─ cli (10.77.0.2): kagami kv load / verify, kagami witness
#   the guest: 10.77.0.10, on whichever side runs it
#
# Both sides hold a lease from the witness (as in the drills). Timing: the
# ASan build on a shared 2-core machine stalls, so the failover tests give
# both sides --failover-timeout 1000 (as 95_replicate.sh does): what is
# tested is what happens on a death, not how quickly it is noticed (the
# drills measure that, with the release build and the defaults).

declare -F netns_usable >/dev/null || source tests/netns.sh

LS_HOST=127.0.0.1
LS_FO=1000
LS_ARGS="mib=32 total=320 rate=100 seed=3"   # ~3.5 s
LS_LONG="mib=32 total=1200 rate=100 seed=9"  # ~12 s
LS_CACHE=$(mktemp -d "${TMPDIR:-/tmp}/kagami-ls.XXXXXX")
LS_KV_IP=10.77.0.10
LS_KV_PORT=7000
LS_KV_MAC=52:54:00:77:00:2a
LS_SEC_ADDR=tcp:10.77.0.3:7700
LS_LEASE=(--lease "witness:tcp:10.77.0.2:7900#ls")

# ---- helpers ---------------------------------------------------------

# ls_trap: what a test started (LS_PIDS) is killed when it ends (each test
# runs in its own subshell; netns_setup chains this trap).
ls_trap() {
	[[ -n ${LS_TRAPPED:-} ]] && return
	LS_TRAPPED=1 LS_PIDS=""
	trap 'kill -KILL $LS_PIDS 2>/dev/null' EXIT
}

# ls_wait_line FILE PATTERN [TENTHS]: until FILE has PATTERN (fixed
# string); default 20 s.
ls_wait_line() {
	local i
	for ((i = 0; i < ${3:-200}; i++)); do
		grep -qF -- "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

# ls_ref ARGS: the path of an uninterrupted (unprotected) memstress run's
# console, cached per ARGS; the rate does not change the output.
ls_ref() {
	local flat f
	flat=$(sed -E 's/ ?rate=[0-9]+//' <<<"$1")
	f=$LS_CACHE/ref.$(tr -c 'a-z0-9=' _ <<<"$flat")
	if [[ ! -s $f ]]; then
		timeout -k 5 120 "$KAGAMI" run --console "file:$f.tmp" \
			--cmdline "$flat" "$GUESTS/memstress.elf" >/dev/null 2>"$f.err" &&
			grep -q "memstress: done" "$f.tmp" && mv "$f.tmp" "$f"
	fi
	[[ -s $f ]] || { echo "$LS_CACHE/missing-reference"; return 1; }
	echo "$f"
}

# ls_sec NAME PORT [OPTIONS...]: `kagami secondary` on loopback PORT,
# console NAME.txt, stderr NAME.err; waits until it listens. Sets SEC_PID.
ls_sec() {
	local name=$1 port=$2
	shift 2
	ls_trap
	rm -f "$name.txt" "$name.err"
	link_opts replica "$@"
	"$KAGAMI" secondary --listen "tcp:$LS_HOST:$port" \
		--console "file:$name.txt" "${LINK_OPTS[@]}" "$@" >"$name.out" 2>"$name.err" &
	SEC_PID=$!
	LS_PIDS+=" $SEC_PID"
	ls_wait_line "$name.err" "listening on tcp:$LS_HOST:$port" 100 ||
		why "secondary $name does not listen on $port: $(tail -c 300 "$name.err")"
}

# ls_pri PORT ARGS [OPTIONS...]: memstress under lockstep, control socket
# pri.sock, console pri.txt, stderr pri.err. Sets PRI_PID.
ls_pri() {
	local port=$1 args=$2
	shift 2
	ls_trap
	rm -f pri.txt pri.err pri.sock
	link_opts replica "$@"
	"$KAGAMI" run --replicate lockstep --peer "tcp:$LS_HOST:$port" \
		--control pri.sock --console file:pri.txt "${LINK_OPTS[@]}" "$@" \
		--cmdline "$args" "$GUESTS/memstress.elf" >pri.out 2>pri.err &
	PRI_PID=$!
	LS_PIDS+=" $PRI_PID"
}

# ls_prot SOCK: `ctl SOCK protection` as one line in prot.json.
ls_prot() {
	timeout -k 2 10 "$KAGAMI" ctl "$1" protection 2>/dev/null |
		tr -d '\n\t ' >prot.json
}
ls_str() { grep -o "\"$1\":\"[^\"]*\"" prot.json | head -1 | cut -d'"' -f4; }
ls_num() { grep -oE "\"$1\":-?[0-9.e+]+" prot.json | head -1 | cut -d: -f2; }
ls_bool() { grep -oE "\"$1\":(true|false)" prot.json | head -1 | cut -d: -f2; }

# ls_wait_protected SOCK [TENTHS]: until protected:true (default 30 s).
ls_wait_protected() {
	local i
	for ((i = 0; i < ${2:-300}; i++)); do
		ls_prot "$1"
		[[ $(ls_bool protected) == true ]] && return 0
		sleep 0.1
	done
	why "not protected after $((${2:-300} / 10)) s: $(cat prot.json)"
}

# ls_wait PID [SECONDS]: waits for it (default 60 s, then SIGKILL and
# fail); WSTATUS = its exit status.
ls_wait() {
	local i
	for ((i = 0; i < ${2:-60} * 10; i++)); do
		kill -0 "$1" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$1" 2>/dev/null; then
		kill -KILL "$1" 2>/dev/null
		wait "$1" 2>/dev/null
		WSTATUS=hung
		why "pid $1 still ran after ${2:-60} s"
		return 1
	fi
	wait "$1" 2>/dev/null
	WSTATUS=$?
}

ls_kill() {
	kill -KILL "$1" 2>/dev/null
	wait "$1" 2>/dev/null
	return 0
}

# ls_ft_ok REF FILES...: across failovers nothing printed twice or out of
# order, each file a contiguous run of REF, the last line REF's (a gap only
# between files: the dead primary's unreleased output is gone).
ls_ft_ok() {
	local ref=$1 bad
	shift
	cat "$@" >all.txt
	bad=$(awk 'FNR == NR { idx[$0] = FNR; next }
		FNR == 1 { first = 1 }
		{
			if (!($0 in idx)) { print "not in the reference: " $0; exit }
			i = idx[$0]
			if (i <= last) { print "twice or out of order: " $0; exit }
			if (!first && i != last + 1) { print "gap inside " FILENAME " before: " $0; exit }
			last = i; first = 0
		}' "$ref" "$@")
	[[ -z $bad ]] || why "$bad" || return
	[[ $(tail -1 all.txt) == "$(tail -1 "$ref")" ]] ||
		why "last line '$(tail -1 all.txt)', expected '$(tail -1 "$ref")'"
}

# ---- kvstore fixture (network namespaces) ------------------------------

# ls_kv_net: hosts pri, sec, cli, the TAPs, the primary's disk, and a
# witness on the client's host.
ls_kv_net() {
	ls_trap
	netns_setup &&
	netns_add_host pri 10.77.0.1 &&
	netns_add_host sec 10.77.0.3 &&
	netns_add_host cli 10.77.0.2 &&
	netns_add_tap pri lsp &&
	netns_add_tap sec lss || { why "network namespace setup failed"; return 1; }
	truncate -s 64M pri.img
	netns_spawn cli "$KAGAMI" witness --listen tcp:10.77.0.2:7900 --grace 0 \
		--insecure >wit.out 2>&1
	ls_wait_line wit.out "serving" 100 || why "no witness: $(cat wit.out)"
}

# ls_kv_sec NAME [OPTIONS...]: a secondary on host sec (replica image
# NAME.img, console NAME.con, output NAME.err); waits until it listens.
# Sets SEC_PID.
ls_kv_sec() {
	local name=$1
	shift
	rm -f "$name.img" "$name.con" "$name.err"
	link_opts replica "${LS_LEASE[@]}" "$@"
	netns_spawn sec "$KAGAMI" secondary --listen "$LS_SEC_ADDR" \
		--disk "$PWD/$name.img" --net "tap:lss,mac=$LS_KV_MAC" \
		--console "file:$name.con" --failover-timeout $LS_FO \
		"${LINK_OPTS[@]}" "${LS_LEASE[@]}" "$@" >"$name.out" 2>"$name.err"
	SEC_PID=$NETNS_PID
	ls_wait_line "$name.err" "listening on $LS_SEC_ADDR" 100 ||
		why "secondary $name does not listen: $(tail -c 300 "$name.err")"
}

# ls_kv_pri: the kvstore guest under lockstep on host pri (control socket
# pri.sock, console pri.con, stderr pri.err); waits for "kvstore: ready"
# and protection. Sets PRI_PID.
ls_kv_pri() {
	link_opts replica "${LS_LEASE[@]}"
	netns_spawn pri "$KAGAMI" run --mem 128M --disk pri.img \
		--net "tap:lsp,mac=$LS_KV_MAC" --console file:pri.con \
		--control pri.sock --replicate lockstep --peer "$LS_SEC_ADDR" \
		--failover-timeout $LS_FO "${LINK_OPTS[@]}" "${LS_LEASE[@]}" \
		--cmdline "ip=$LS_KV_IP/24 port=$LS_KV_PORT" "$GUESTS/kvstore.elf" \
		>pri.out 2>pri.err
	PRI_PID=$NETNS_PID
	local i
	for ((i = 0; i < 300; i++)); do
		grep -q "kvstore: ready" pri.con 2>/dev/null && break
		kill -0 "$PRI_PID" 2>/dev/null || break
		sleep 0.1
	done
	grep -q "kvstore: ready" pri.con 2>/dev/null ||
		why "no 'kvstore: ready' at the primary: $(tail -c 300 pri.err) $(tail -c 200 pri.con 2>/dev/null)" || return
	ls_wait_protected pri.sock || return
	[[ $(ls_str mode) == lockstep ]] || why "mode is not lockstep: $(cat prot.json)"
}

# ls_load N SECONDS: `kv load` from the client in the background, journal
# jN, key prefix lN_, report loadN.json. Sets LOAD_PID.
ls_load() {
	netns_spawn cli timeout -k 5 $(($2 + 60)) "$KAGAMI" kv \
		--server "$LS_KV_IP:$LS_KV_PORT" load --duration "$2" \
		--journal "$PWD/j$1" --key-prefix "l$1_" --clients 4 \
		>"load$1.json" 2>"load$1.err"
	LOAD_PID=$NETNS_PID
}

ls_field() { grep -oE "\"$2\":-?[0-9.]+" "$1" | head -1 | cut -d: -f2; }

# ls_load_done N [MAX_GAP_MS]: waits for load N: exit 0, something
# acknowledged, and (if given) no silence longer than MAX_GAP_MS.
ls_load_done() {
	local n=$1 max=${2:-} st acked gap
	ls_wait "$LOAD_PID" 90 || return
	st=$WSTATUS
	[[ $st == 0 ]] || why "load $n exited $st: $(head -c 300 "load$n.err") $(head -c 300 "load$n.json")" || return
	acked=$(ls_field "load$n.json" acked)
	gap=$(ls_field "load$n.json" max_gap_ms)
	((${acked:-0} > 50)) || why "load $n: only ${acked:-no} writes acknowledged: $(head -c 300 "load$n.json")" || return
	[[ -n $gap ]] || why "load $n: no max_gap_ms: $(head -c 300 "load$n.json")" || return
	if [[ -n $max ]]; then
		awk -v g="$gap" -v m="$max" 'BEGIN { exit !(g < m) }' ||
			why "load $n: the service stopped for $gap ms (at most $max expected): $(head -c 300 "load$n.json")"
	fi
}

# ls_verify N...: `kv verify` of each journal against whichever side runs
# the guest: exit 0, lost 0.
ls_verify() {
	local n st lost
	for n in "$@"; do
		netns_exec cli timeout -k 5 60 "$KAGAMI" kv \
			--server "$LS_KV_IP:$LS_KV_PORT" verify --journal "$PWD/j$n" \
			>"verify$n.json" 2>"verify$n.err"
		st=$?
		lost=$(ls_field "verify$n.json" lost)
		[[ $st == 0 && $lost == 0 ]] ||
			why "verify of load $n: exit $st, lost ${lost:-?}: $(head -c 300 "verify$n.json") $(head -c 200 "verify$n.err")" || return
	done
}

# ls_took_over NAME: the secondary NAME went live after the primary's
# death.
ls_took_over() {
	ls_wait_line "$1.err" "the guest runs here" 150 ||
		why "$1 did not take over: $(tail -c 400 "$1.err")" || return
	grep -qE "primary lost: .*; replayed the log to exit [0-9]+; the guest runs here" "$1.err" ||
		why "$1's takeover line: $(grep 'runs here' "$1.err")"
}

# ---- memstress -------------------------------------------------------

test_ls_memstress_end() {
	local ref i hold=0
	ref=$(ls_ref "$LS_ARGS") || why "no reference run" || return
	ls_sec sec 17601 --failover-timeout $LS_FO || return
	ls_pri 17601 "$LS_ARGS" --failover-timeout $LS_FO
	ls_wait_protected pri.sock || return
	[[ $(ls_str mode) == lockstep ]] || why "mode is not lockstep: $(cat prot.json)" || return
	# The output rule at work: output was held until acknowledged.
	for ((i = 0; i < 50; i++)); do
		ls_prot pri.sock
		hold=$(ls_num output_hold_p50_us)
		awk -v h="${hold:-0}" 'BEGIN { exit !(h > 0) }' && break
		sleep 0.1
	done
	awk -v h="${hold:-0}" 'BEGIN { exit !(h > 0) }' ||
		why "output_hold_p50_us is ${hold:-missing}: $(cat prot.json)" || return
	((${hold%.*} > 0)) && (($(ls_num acked) > 0)) || why "nothing acked: $(cat prot.json)" || return
	grep -q "protecting a lockstep VM" sec.err && grep -q "replaying the primary's execution log" sec.err ||
		why "the secondary does not replay: $(tail -c 300 sec.err)" || return
	ls_wait "$PRI_PID" 60 || return
	[[ $WSTATUS == 0 ]] || why "primary exited $WSTATUS: $(tail -c 400 pri.err)" || return
	ls_wait "$SEC_PID" 20 || return
	[[ $WSTATUS == 0 ]] || why "secondary exited $WSTATUS: $(tail -c 400 sec.err)" || return
	grep -q "the guest runs here" sec.err && { why "the secondary took over: $(tail -c 400 sec.err)"; return; }
	[[ ! -s sec.txt ]] || why "the secondary printed guest output: $(head -c 200 sec.txt)" || return
	grep -q UNPROTECTED pri.err && { why "the primary said UNPROTECTED: $(tail -c 300 pri.err)"; return; }
	cmp -s "$ref" pri.txt || why "the primary's console differs from the reference: $(diff "$ref" pri.txt | head -4 | tr '\n' '|')"
}

test_ls_memstress_failover() {
	local ref
	ref=$(ls_ref "$LS_LONG") || why "no reference run" || return
	ls_sec sec 17605 --failover-timeout $LS_FO || return
	ls_pri 17605 "$LS_LONG" --failover-timeout $LS_FO
	ls_wait_protected pri.sock || return
	ls_wait_line pri.txt "pass=3 " 300 || why "no pass=3 at the primary: $(tail -c 300 pri.err)" || return
	grep -q "memstress: done" pri.txt && { why "the guest ended before the kill (too fast)"; return; }
	[[ ! -s sec.txt ]] || why "the secondary printed output while replaying: $(head -c 200 sec.txt)" || return
	ls_kill "$PRI_PID"
	ls_wait "$SEC_PID" 60 || return
	[[ $WSTATUS == 0 ]] || why "secondary exited $WSTATUS: $(tail -c 400 sec.err)" || return
	ls_took_over sec || return
	ls_ft_ok "$ref" pri.txt sec.txt
}

# ---- kvstore ---------------------------------------------------------

test_ls_kv_failover() {
	ls_kv_net || return
	ls_kv_sec sec || return
	ls_kv_pri || return
	ls_load 1 5
	sleep 2
	kill -0 "$PRI_PID" 2>/dev/null || why "the primary died under load: $(tail -c 400 pri.err)" || return
	ls_kill "$PRI_PID"
	ls_took_over sec || return
	ls_load_done 1 || return
	# The guest serves on at the secondary: new writes, and nothing lost.
	ls_load 2 2
	ls_load_done 2 1000 || return
	ls_verify 1 2 || return
	kill -0 "$SEC_PID" 2>/dev/null || why "the new primary exited: $(tail -c 300 sec.err)"
}

test_ls_kv_kill_secondary() {
	ls_kv_net || return
	ls_kv_sec sec1 || return
	local sec1=$SEC_PID
	ls_kv_pri || return
	ls_load 1 8
	sleep 1.5
	ls_kill "$sec1"
	ls_wait_line pri.err "UNPROTECTED" 100 ||
		why "the primary did not say it runs unprotected: $(tail -c 300 pri.err)" || return
	ls_prot pri.sock
	[[ $(ls_bool protected) == false ]] || why "still protected without a secondary: $(cat prot.json)" || return
	[[ $(ls_str mode) == lockstep ]] || why "mode: $(cat prot.json)" || return
	kill -0 "$PRI_PID" 2>/dev/null || why "the primary died: $(tail -c 300 pri.err)" || return
	# A new secondary on the same address gets a fresh copy.
	sleep 1
	ls_kv_sec sec2 || return
	local sec2=$SEC_PID
	ls_wait_protected pri.sock 300 || return
	grep -q "protecting a lockstep VM" sec2.err || why "sec2: $(tail -c 300 sec2.err)" || return
	# Nothing stopped for long: the 1 s reconnect window and a copy.
	ls_load_done 1 2000 || return
	ls_verify 1 || return
	# A second failover, to the new secondary, loses nothing.
	ls_load 2 5
	sleep 2
	ls_kill "$PRI_PID"
	ls_took_over sec2 || return
	ls_load_done 2 || return
	ls_verify 1 2 || return
	kill -0 "$sec2" 2>/dev/null || why "the new primary exited: $(tail -c 300 sec2.err)"
}

# The secondary corrupts its replica's RAM after exit LS_CORRUPT_AT: the
# next state digest catches it, the secondary drops the replica and waits,
# the primary copies again without stopping its guest.
LS_CORRUPT_AT=${LS_CORRUPT_AT:-2000}
test_ls_kv_diverge() {
	ls_kv_net || return
	ls_kv_sec sec --test-corrupt-at "$LS_CORRUPT_AT" || return
	ls_kv_pri || return
	ls_load 1 6
	ls_wait_line sec.err "DIVERGED" 100 ||
		why "no divergence caught within 10 s: $(tail -c 400 sec.err)" || return
	ls_wait_line sec.err "RAM hash" 20 || why "no RAM hash report: $(tail -c 400 sec.err)" || return
	grep -qE "the replica DIVERGED after [0-9]+ exits; dropping it: the primary will send a new copy" sec.err ||
		why "the DIVERGED line: $(grep DIVERGED sec.err)" || return
	grep -qE "replay diverged at exit [0-9]+ .*the state digest differs" sec.err ||
		why "no digest report: $(tail -c 400 sec.err)" || return
	grep -qE "RAM hash: recorded [0-9a-f]{16}, replayed [0-9a-f]{16}$" sec.err ||
		why "the RAM hashes do not differ: $(grep 'RAM hash' sec.err)" || return
	grep -q "the guest runs here" sec.err && { why "the diverged replica went live: $(tail -c 400 sec.err)"; return; }
	kill -0 "$SEC_PID" 2>/dev/null || why "the secondary exited after the divergence: $(tail -c 400 sec.err)" || return
	# The primary copies again: a second session, protected.
	local i n=0
	for ((i = 0; i < 300; i++)); do
		n=$(grep -c "protecting a lockstep VM" sec.err)
		ls_prot pri.sock
		((n >= 2)) && [[ $(ls_bool protected) == true ]] && break
		sleep 0.1
	done
	((n >= 2)) && [[ $(ls_bool protected) == true ]] ||
		why "not protected again after the divergence ($n sessions): $(cat prot.json)" || return
	grep -q UNPROTECTED pri.err && { why "the primary went unprotected on a divergence: $(tail -c 300 pri.err)"; return; }
	kill -0 "$PRI_PID" 2>/dev/null || why "the primary died: $(tail -c 300 pri.err)" || return
	ls_load_done 1 1500 || return
	ls_verify 1 || return
	# And the resynchronised replica takes over with nothing lost.
	ls_load 2 5
	sleep 2
	ls_kill "$PRI_PID"
	ls_took_over sec || return
	ls_load_done 2 || return
	ls_verify 1 2
}

# ---- CLI -------------------------------------------------------------

test_ls_cli() {
	kg run --replicate lockstep --peer "tcp:$LS_HOST:17610" --insecure --no-lease --cpus 2 "$GUESTS/hello.elf"
	expect_status 2 && err_has "needs exactly 1 vCPU" && err_one_line || return
	kg run --replicate bogus --peer "tcp:$LS_HOST:17610" "$GUESTS/hello.elf"
	expect_status 2 && err_has "lockstep" && err_has "--replicate 'bogus'" && err_one_line || return
	kg secondary --listen "tcp:$LS_HOST:17610" --test-corrupt-at 0
	expect_status 2 && err_has "--test-corrupt-at" && err_one_line
}

# ---- drills (release build, network namespaces) ------------------------

# ls_drill JSON COUNT ARGS...: `kagami drill --mode lockstep --count
# COUNT` (release build): all ok, each with a recovery time and 0 lost.
ls_drill() {
	local json=$1 count=$2 n
	shift 2
	timeout -k 10 600 "$KAGAMI_RELEASE" drill --mode lockstep --count "$count" \
		--duration 3 --json "$json" "$@" >drill.out 2>&1
	local st=$?
	[[ $st == 0 ]] || why "drill exited $st: $(grep -E 'FAIL|setup|failed' drill.out | head -3 | tr '\n' '|')" || return
	[[ -s $json ]] || why "no JSON written" || return
	grep -q '"mode":"lockstep"' "$json" || why "mode: $(head -c 200 "$json")" || return
	n=$(grep -o '"drill":[0-9]*' "$json" | wc -l)
	[[ $n == "$count" ]] || why "$n drills in the JSON, expected $count" || return
	grep -q '"failed":0,' "$json" || why "failed drills: $(head -c 300 "$json")" || return
	[[ $(grep -o '"ok":true' "$json" | wc -l) == "$count" ]] || why "not every drill ok" || return
	[[ $(grep -o '"lost":0[,}]' "$json" | wc -l) == "$count" ]] ||
		why "lockstep drills lost writes: $(grep -o '"lost":[0-9a-z]*' "$json" | sort | uniq -c | tr '\n' ' ')" || return
	grep -q '"recovery_ms":{"p50":[0-9]' "$json" || why "no recovery p50: $(head -c 200 "$json")"
}

test_ls_drill_primary() { ls_drill lp.json 10; }
test_ls_drill_secondary() {
	ls_drill ls.json 2 --kill secondary || return
	grep -q '"kill":"secondary"' ls.json || why "kill is not secondary: $(head -c 200 ls.json)"
}
test_ls_drill_link() {
	ls_drill ll.json 1 --kill link || return
	grep -q '"kill":"link"' ll.json || why "kill is not link: $(head -c 200 ll.json)"
}

# tls NAME FUNC [kv|drill]: t, or t_kv for kvstore tests (drills also
# need the release build).
tls() {
	case ${3:-} in
	"") t "$1" "$2" kvm ;;
	drill) t_kv "$1" "$2" release ;;
	*) t_kv "$1" "$2" ;;
	esac
}

t "lockstep: CLI errors are one line, exit 2" test_ls_cli
tls "lockstep: memstress to its end, the secondary exits 0 without running" test_ls_memstress_end
tls "lockstep: memstress, primary killed, the secondary finishes, output exact" test_ls_memstress_failover
tls "lockstep: kvstore, primary killed under load, nothing lost, writes go on" test_ls_kv_failover kv
tls "lockstep: kvstore, secondary killed, unprotected, fresh copy, second failover" test_ls_kv_kill_secondary kv
tls "lockstep: kvstore, replica diverges, resync without a stop, then failover" test_ls_kv_diverge kv
tls "drill: 10 lockstep failovers, no acknowledged write lost" test_ls_drill_primary drill
tls "drill: lockstep, secondary killed twice, nothing lost" test_ls_drill_secondary drill
tls "drill: lockstep, link cut (witness), one side runs, nothing lost" test_ls_drill_link drill

rm -rf "$LS_CACHE"
