# Live migration: `kagami receive` on one side, `kagami ctl SOCK migrate`
# on the other. memstress over loopback TCP (its console lines at the
# source followed by those at the destination must be an uninterrupted
# run's, exactly), failures injected at every phase (the guest ends up
# running on exactly one side, and its output is complete), and kvstore
# under client load between two hosts of tests/netns.sh:
#
#   switch ns ── sw0 ─┬─ vmhost1 (10.77.0.1): kagami run, TAP kv0 on br0
#                     ├─ vmhost2 (10.77.0.3): kagami receive, TAP kv0 on br0
#                     └─ client  (10.77.0.2): kagami kv load / verify
#
# Self-contained: does not need 40_kvstore.sh (its helpers are copied here
# under mig_ names).

declare -F netns_setup >/dev/null || source tests/netns.sh

# memstress at the source: 32 MiB working set, 384 MiB at 64 MiB/s, so
# about 6 s; a migration starts after its second pass (~1 s in) and
# converges in a few rounds, with room to spare on a busy machine.
MIG_ARGS="mib=32 total=384 rate=64 seed=5"
# Reference outputs (uninterrupted runs), shared by the tests of this file.
MIG_CACHE=$(mktemp -d "${TMPDIR:-/tmp}/kagami-mig.XXXXXX")

MIG_KV_IP=10.77.0.10
MIG_KV_PORT=7000
MIG_KV_SERVER=$MIG_KV_IP:$MIG_KV_PORT
MIG_KV_MAC=52:54:00:77:00:0a

# ---- helpers ---------------------------------------------------------

# mig_wait_line FILE PATTERN [TENTHS]: waits until FILE has PATTERN
# (fixed string); default 10 s.
mig_wait_line() {
	local i
	for ((i = 0; i < ${3:-100}; i++)); do
		grep -qF -- "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

# mig_num FILE NAME: the number of "NAME" in a JSON object (one line or
# pretty-printed, as `kagami ctl` prints it).
mig_num() {
	grep -oE "\"$2\":[[:space:]]*-?[0-9.e+-]+" "$1" | head -1 |
		sed -E 's/.*:[[:space:]]*//'
}
# mig_bool FILE NAME: true/false.
mig_bool() {
	grep -oE "\"$2\":[[:space:]]*(true|false)" "$1" | head -1 |
		sed -E 's/.*:[[:space:]]*//'
}

# mig_ref [ARGS]: prints the path of an uninterrupted run's console with
# memstress ARGS (the rate does not change the output: run flat out).
mig_ref() {
	local args=${1:-$MIG_ARGS} flat f
	flat=$(sed -E 's/rate=[0-9]+/rate=0/' <<<"$args")
	f=$MIG_CACHE/ref.$(tr -c 'a-z0-9=' _ <<<"$flat")
	if [[ ! -s $f ]]; then
		timeout -k 5 120 "$KAGAMI" run --mem 128M --console "file:$f.tmp" \
			--cmdline "$flat" "$GUESTS/memstress.elf" >/dev/null 2>"$f.err" &&
			grep -q "memstress: done" "$f.tmp" && mv "$f.tmp" "$f"
	fi
	[[ -s $f ]] || { echo "$MIG_CACHE/missing-reference"; return 1; }
	echo "$f"
}

# mig_src [ARGS [RUN-OPTIONS...]]: memstress at the source with control
# socket ctl.sock and console src.txt; waits for its second pass.
mig_src() {
	local args=${1:-$MIG_ARGS}
	shift
	mig_trap
	rm -f src.txt
	"$KAGAMI" run --mem 128M --control ctl.sock \
		--console file:src.txt "$@" --cmdline "$args" \
		"$GUESTS/memstress.elf" >src.out 2>src.err &
	SRC_PID=$!
	MIG_PIDS+=" $SRC_PID"
	mig_wait_line src.txt "pass=2 " ||
		why "memstress did not start at the source: $(tail -c 300 src.err)"
}

# mig_recv [RECEIVE-OPTIONS...]: kagami receive on 127.0.0.1, any port,
# console dst.txt; sets RECV_PID and RECV_ADDR (tcp:127.0.0.1:PORT).
mig_recv() {
	mig_trap
	rm -f dst.txt recv.out recv.err
	link_opts receive "$@"
	"$KAGAMI" receive --listen tcp:127.0.0.1:0 \
		--console file:dst.txt "${LINK_OPTS[@]}" "$@" >recv.out 2>recv.err &
	RECV_PID=$!
	MIG_PIDS+=" $RECV_PID"
	mig_recv_addr
}
mig_recv_addr() {
	RECV_ADDR=""
	mig_wait_line recv.err "listening on " ||
		why "kagami receive does not listen: $(tail -c 300 recv.err)" || return
	RECV_ADDR=$(grep -o 'listening on [^ ]*' recv.err | head -1 | cut -d' ' -f3)
	[[ $RECV_ADDR == tcp:* ]] || why "receive printed no address: $(cat recv.err)"
}

# mig_migrate ARGS...: `kagami ctl ctl.sock migrate ARGS` (--insecure
# unless ARGS give --key); CTL = its exit
# status, the answer in ctl.json, stderr in ctl.err.
mig_migrate() {
	link_opts migrate "$@"
	timeout -k 5 90 "$KAGAMI" ctl ctl.sock migrate "$@" "${LINK_OPTS[@]}" \
		>ctl.json 2>ctl.err
	CTL=$?
}

# mig_wait PID [SECONDS]: waits for it (default 60 s; then kills it with
# SIGKILL and fails); WSTATUS = its exit status.
mig_wait() {
	local i
	for ((i = 0; i < ${2:-60} * 10; i++)); do
		kill -0 "$1" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$1" 2>/dev/null; then
		local cmd
		cmd=$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | head -c 80)
		kill -KILL "$1" 2>/dev/null
		wait "$1" 2>/dev/null
		WSTATUS=hung
		why "pid $1 ($cmd) still ran after ${2:-60} s"
		return 1
	fi
	wait "$1" 2>/dev/null
	WSTATUS=$?
}

# mig_wait_exit PID [TENTHS]: 0 once PID is gone (default 10 s).
mig_wait_exit() {
	local i
	for ((i = 0; i < ${2:-100}; i++)); do
		kill -0 "$1" 2>/dev/null || return 0
		sleep 0.1
	done
	return 1
}

# mig_trap: the kagami processes a test started (MIG_PIDS) are killed when
# it ends, however it ends. Tests run in subshells: this is theirs. (Not
# for the netns tests: netns_setup's trap kills what runs in namespaces.)
mig_trap() {
	[[ -n ${MIG_TRAPPED:-} ]] && return
	MIG_TRAPPED=1 MIG_PIDS=""
	trap 'kill -KILL $MIG_PIDS 2>/dev/null' EXIT
}

# mig_status_running: the source VM answers status with "running".
mig_status_running() {
	"$KAGAMI" ctl ctl.sock status >status.json 2>status.err &&
		grep -qE '"state":[[:space:]]*"running"' status.json ||
		why "after the failed migration the source VM is not running: $(cat status.json status.err | tr '\n' ' ')"
}

# mig_check_ok: a successful migration's answer and exits; src.txt then
# dst.txt must equal the reference run's console.
mig_check_ok() {
	local ref rounds
	[[ $CTL == 0 ]] || why "migrate failed ($CTL): $(cat ctl.err)" || return
	grep -qE '"ok":[[:space:]]*true' ctl.json || why "no ok:true: $(cat ctl.json)" || return
	rounds=$(mig_num ctl.json rounds)
	[[ -n $rounds ]] && ((rounds >= 1)) || why "rounds '$rounds': $(cat ctl.json)" || return
	[[ -n $(mig_num ctl.json downtime_ms) ]] || why "no downtime_ms: $(cat ctl.json)" || return
	[[ -n $(mig_num ctl.json total_ms) && -n $(mig_num ctl.json bytes) ]] ||
		why "no total_ms/bytes: $(cat ctl.json)" || return
	mig_wait "$SRC_PID"
	[[ $WSTATUS == 0 ]] || why "source exit status $WSTATUS: $(tail -c 300 src.err)" || return
	grep -q "kagami: migrated to $RECV_ADDR" src.err ||
		why "source stderr lacks 'migrated to $RECV_ADDR': $(tail -c 300 src.err)" || return
	mig_wait "$RECV_PID"
	[[ $WSTATUS == 0 ]] || why "receive exit status $WSTATUS: $(tail -c 400 recv.err)" || return
	grep -q "kagami receive: the guest runs here" recv.err ||
		why "receive stderr lacks 'the guest runs here': $(tail -c 300 recv.err)" || return
	mig_check_output
}

# mig_check_output: src.txt + dst.txt == the reference (memstress
# $MIG_ARGS), and both sides printed something (the guest ran on each,
# in turn).
mig_check_output() {
	local ref
	ref=$(mig_ref "$MIG_ARGS") || why "the reference run failed: $(cat "$MIG_CACHE"/*.err)" || return
	[[ -s src.txt && -s dst.txt ]] ||
		why "src.txt $(wc -l <src.txt 2>/dev/null) lines, dst.txt $(wc -l <dst.txt 2>/dev/null) lines: one side printed nothing" || return
	cat src.txt dst.txt >joined.txt
	cmp -s joined.txt "$ref" ||
		why "source+destination output differs from an uninterrupted run: $(diff "$ref" joined.txt | head -4 | tr '\n' ' ')"
}

# mig_check_failed: the migration failed, the guest kept running at the
# source (status "running"), finished there with the reference output,
# and nothing ran at the destination. RECV_WANT: the receiver's expected
# exit statuses (default "1 137": failed, or killed by --test-die-at).
mig_check_failed() {
	local ref want=${RECV_WANT:-1 137}
	[[ $CTL == 1 ]] || why "migrate exit status $CTL, expected 1: $(cat ctl.json ctl.err | tr '\n' ' ')" || return
	grep -q "kagami ctl: migrate to .* failed (the guest keeps running here): " ctl.err ||
		why "ctl error: $(cat ctl.err)" || return
	[[ $(wc -l <ctl.err) == 1 ]] || why "ctl stderr is not one line: $(cat ctl.err)" || return
	mig_status_running || return
	mig_wait "$RECV_PID"
	[[ " $want " == *" $WSTATUS "* ]] ||
		why "receive exit status $WSTATUS, expected one of $want: $(tail -c 400 recv.err)" || return
	if [[ $WSTATUS == 1 ]]; then
		grep -q "kagami receive: incoming migration failed: .*; nothing runs here" recv.err ||
			why "receive did not say it failed: $(tail -c 300 recv.err)" || return
	fi
	! grep -q "the guest runs here" recv.err || why "the receiver ran the guest: $(cat recv.err)" || return
	[[ ! -s dst.txt ]] || why "the destination printed guest output: $(head -3 dst.txt)" || return
	mig_wait "$SRC_PID"
	[[ $WSTATUS == 0 ]] || why "source exit status $WSTATUS: $(tail -c 300 src.err)" || return
	ref=$(mig_ref) || why "the reference run failed" || return
	cmp -s src.txt "$ref" ||
		why "the source's output differs from an uninterrupted run: $(diff "$ref" src.txt | head -4 | tr '\n' ' ')"
}

# mig_key FILE: a pre-shared key.
mig_key() {
	head -c 64 /dev/urandom >"$1" && chmod 600 "$1"
}

# ---- memstress over loopback ------------------------------------------

test_mig_basic() {
	mig_recv || return
	mig_src || return
	mig_migrate "$RECV_ADDR"
	mig_check_ok || return
	[[ $(mig_bool ctl.json confirmed_by_query) == false ]] ||
		why "confirmed_by_query without a fault: $(cat ctl.json)"
}

test_mig_key_bandwidth() {
	# A gentler guest (16 MiB at 32 MiB/s, 6 s) so that 50 MB/s converges
	# in a few rounds, long before the guest ends.
	local args="mib=16 total=192 rate=32 seed=9" bytes total min
	mig_key k
	mig_recv --key k || return
	mig_src "$args" || return
	mig_migrate "$RECV_ADDR" --key k --bandwidth 50 --downtime-limit 200
	MIG_ARGS=$args mig_check_ok || return
	bytes=$(mig_num ctl.json bytes) total=$(mig_num ctl.json total_ms)
	# bytes at 50 MB/s take bytes/50000 ms; allow 20% for the accounting.
	min=$(awk -v b="$bytes" 'BEGIN { printf "%d", b / 50e6 * 1000 * 0.8 }')
	awk -v t="$total" -v m="$min" 'BEGIN { exit !(t >= m) }' ||
		why "--bandwidth 50: $bytes bytes in $total ms (at least $min ms expected)"
}

test_mig_wrong_key() {
	mig_key k1
	mig_key k2
	mig_recv --key k1 || return
	mig_src || return
	mig_migrate "$RECV_ADDR" --key k2
	[[ $CTL == 1 ]] || why "migrate with the wrong key: exit $CTL: $(cat ctl.json)" || return
	[[ $(wc -l <ctl.err) == 1 ]] || why "ctl stderr is not one line: $(cat ctl.err)" || return
	grep -q "authentic" ctl.err || why "ctl error does not mention authentication: $(cat ctl.err)" || return
	grep -q "keeps running here" ctl.err || why "ctl error: $(cat ctl.err)" || return
	mig_status_running || return
	# The receiver refused that source and still waits for another.
	mig_wait_line recv.err "waiting for another source" 50 ||
		why "the receiver did not log the refusal: $(cat recv.err)" || return
	grep -q "authentic" recv.err || why "receiver's refusal: $(cat recv.err)" || return
	kill -0 "$RECV_PID" 2>/dev/null || why "the receiver exited after a refused source" || return
	kill -KILL "$RECV_PID"
	mig_wait "$RECV_PID"
	[[ ! -s dst.txt ]] || why "the destination printed guest output" || return
	mig_wait "$SRC_PID"
	[[ $WSTATUS == 0 ]] || why "source exit status $WSTATUS: $(tail -c 300 src.err)" || return
	cmp -s src.txt "$(mig_ref)" || why "the source's output differs from an uninterrupted run"
}

test_mig_recv_sigterm() {
	# Waiting for a source, SIGTERM (or SIGINT) ends kagami receive, as it
	# ends `kagami run` (README: 128+N on signal N).
	local sig
	for sig in TERM INT; do
		mig_recv || return
		kill -"$sig" "$RECV_PID"
		mig_wait_exit "$RECV_PID" 30 || {
			kill -KILL "$RECV_PID"
			why "kagami receive waiting for a source ignores SIG$sig (still running after 3 s; killed)"
			return
		}
		mig_wait "$RECV_PID"
		[[ $WSTATUS == 1 || $WSTATUS == $((128 + $(kill -l "$sig"))) ]] ||
			why "SIG$sig: exit status $WSTATUS" || return
	done
}

# ---- failures at each phase -------------------------------------------

test_mig_fail_hello() {
	mig_recv --test-die-at hello || return
	mig_src || return
	mig_migrate "$RECV_ADDR"
	RECV_WANT=137 mig_check_failed
}

test_mig_fail_refused() {
	# Nothing listens: a receiver's port after it was stopped.
	local addr
	mig_recv || return
	addr=$RECV_ADDR
	kill -KILL "$RECV_PID"
	mig_wait "$RECV_PID"
	mig_src || return
	mig_migrate "$addr"
	[[ $CTL == 1 ]] || why "migrate to a closed port: exit $CTL" || return
	[[ $(wc -l <ctl.err) == 1 ]] || why "ctl stderr is not one line: $(cat ctl.err)" || return
	grep -q "kagami ctl: migrate to $addr failed (the guest keeps running here): .*[Cc]onnection refused" ctl.err ||
		why "ctl error: $(cat ctl.err)" || return
	mig_status_running || return
	mig_wait "$SRC_PID"
	[[ $WSTATUS == 0 ]] || why "source exit status $WSTATUS" || return
	cmp -s src.txt "$(mig_ref)" || why "the source's output differs from an uninterrupted run"
}

test_mig_fail_cut() {
	mig_recv || return
	mig_src || return
	mig_migrate "$RECV_ADDR" --fault cut=20000000
	RECV_WANT=1 mig_check_failed
}

test_mig_fail_die_round() {
	mig_recv --test-die-at round || return
	mig_src || return
	mig_migrate "$RECV_ADDR"
	RECV_WANT=137 mig_check_failed || return
	grep -q "test injection: SIGKILL at receive.round" recv.err || why "receive: $(cat recv.err)"
}

test_mig_fail_flip() {
	mig_recv || return
	mig_src || return
	mig_migrate "$RECV_ADDR" --fault flip=5000000
	RECV_WANT=1 mig_check_failed || return
	grep -qi "checksum\|corrupt\|mismatch" recv.err ||
		why "the receiver did not name the corruption: $(tail -c 300 recv.err)"
}

test_mig_fail_stop_and_copy() {
	mig_recv || return
	mig_src || return
	mig_migrate "$RECV_ADDR" --inject stop-and-copy
	RECV_WANT=1 mig_check_failed
}

test_mig_fail_die_final() {
	mig_recv --test-die-at final || return
	mig_src || return
	mig_migrate "$RECV_ADDR"
	RECV_WANT=137 mig_check_failed || return
	grep -q "test injection: SIGKILL at receive.final" recv.err || why "receive: $(cat recv.err)"
}

test_mig_handover_cut() {
	# GO sent, then the link cut: the destination runs the guest; the
	# source learns it by asking, and exits.
	mig_recv || return
	mig_src || return
	mig_migrate "$RECV_ADDR" --inject handover
	mig_check_ok || return
	# (The cut must come before the destination's RUNNING is read: if
	# RUNNING got through first, the injection did not inject anything.)
	[[ $(mig_bool ctl.json confirmed_by_query) == true ]] ||
		why "--inject handover: confirmed_by_query is not true (RUNNING was read before the cut?): $(tr -d '\n\t' <ctl.json)"
}

test_mig_fail_die_go() {
	# The destination dies after GO, before running: the source's query
	# is refused, so it resumes the guest and finishes it.
	mig_recv --test-die-at go || return
	mig_src || return
	mig_migrate "$RECV_ADDR"
	RECV_WANT=137 mig_check_failed || return
	grep -q "test injection: SIGKILL at receive.go" recv.err || why "receive: $(cat recv.err)"
}

test_mig_shared_disk_locks() {
	# Shared storage: the image's lock stays with whoever runs the guest.
	# The receiver dies after GO: the source takes its lock back.
	truncate -s 16M shared.img
	mig_recv --disk shared.img --test-die-at go || return
	mig_src "$MIG_ARGS" --disk shared.img || return
	mig_migrate "$RECV_ADDR"
	[[ $CTL == 1 ]] || why "migrate: exit $CTL: $(cat ctl.json)" || return
	mig_status_running || return
	kg run --mem 32M --disk shared.img --timeout 5 "$GUESTS/hello.elf"
	expect_status 2 && err_has "shared.img: locked by another process" ||
		why "after the failed hand-over the source does not hold the image lock" || return
	RECV_WANT=137 mig_check_failed || return
	# A successful migration: the lock is the destination's, then free.
	mig_recv --disk shared.img || return
	mig_src "$MIG_ARGS" --disk shared.img || return
	mig_migrate "$RECV_ADDR"
	[[ $CTL == 0 ]] || why "migrate: exit $CTL: $(cat ctl.err)" || return
	mig_wait "$SRC_PID"
	kg run --mem 32M --disk shared.img --timeout 5 "$GUESTS/hello.elf"
	expect_status 2 && err_has "shared.img: locked by another process" ||
		why "the destination does not hold the image lock after hand-over" || return
	mig_wait "$RECV_PID"
	[[ $WSTATUS == 0 ]] || why "receive exit status $WSTATUS: $(tail -c 300 recv.err)"
}

test_mig_storage_failed_removes() {
	# --with-storage, the link cut mid-stream: the image the receiver
	# created is removed again.
	head -c 16M /dev/urandom >src.img
	mig_recv --disk new.img || return
	mig_src "$MIG_ARGS" --disk src.img || return
	mig_migrate "$RECV_ADDR" --with-storage true --fault cut=30000000
	RECV_WANT=1 mig_check_failed || return
	[[ ! -e new.img ]] || why "the receiver left new.img ($(stat -c %s new.img) bytes) after a failed migration"
}

# ---- command-line and configuration errors ------------------------------

test_mig_cli_errors() {
	kg receive
	expect_status 2 && err_has "--listen ADDR is required" && err_one_line || return
	kg receive --listen bogus --insecure
	expect_status 2 && err_one_line || return
	grep -q "bogus" "$TT/err" || why "bad address not named: $(cat "$TT/err")" || return
	kg receive --listen tcp:127.0.0.1:99999 --insecure
	expect_status 2 && err_one_line || return
	kg receive --listen tcp:127.0.0.1:0 --key missing.key
	expect_status 2 && err_has "--key" && err_one_line || return
	mig_src || return
	# No address.
	mig_migrate
	[[ $CTL == 1 ]] && grep -q "migrate needs a destination" ctl.err ||
		why "migrate without an address: $CTL $(cat ctl.err)" || return
	[[ $(wc -l <ctl.err) == 1 ]] || why "not one line: $(cat ctl.err)" || return
	# A malformed address.
	mig_migrate nowhere
	[[ $CTL == 1 && $(wc -l <ctl.err) == 1 ]] && grep -q "nowhere" ctl.err ||
		why "migrate nowhere: $CTL $(cat ctl.err)" || return
	# Neither --key nor --insecure: refused before anything is sent.
	timeout -k 5 30 "$KAGAMI" ctl ctl.sock migrate tcp:127.0.0.1:9 \
		>ctl.json 2>ctl.err
	CTL=$?
	[[ $CTL == 1 && $(wc -l <ctl.err) == 1 ]] &&
		grep -q "unauthenticated without --key FILE; pass --insecure" ctl.err ||
		why "migrate without --key/--insecure: $CTL $(cat ctl.err)" || return
	mig_status_running || return
	"$KAGAMI" ctl ctl.sock quit >/dev/null 2>&1
	mig_wait "$SRC_PID"
}

test_mig_disk_mismatch() {
	# The source has no disk; the receiver was given one.
	truncate -s 16M x.img
	mig_recv --disk x.img || return
	mig_src || return
	mig_migrate "$RECV_ADDR"
	RECV_WANT=1 mig_check_failed || return
	grep -q "disk(s) and .* network(s)" recv.err ||
		why "the receiver does not name disks/networks: $(tail -c 300 recv.err)" || return
	grep -q "disk(s)" ctl.err || why "the source's error does not say why: $(cat ctl.err)"
}

test_mig_storage_target_exists() {
	# --with-storage onto a non-empty image: refused, the image untouched.
	truncate -s 16M src.img
	head -c 1M /dev/urandom >dst.img
	cp dst.img keep.img
	mig_recv --disk dst.img || return
	mig_src "$MIG_ARGS" --disk src.img || return
	mig_migrate "$RECV_ADDR" --with-storage true
	RECV_WANT=1 mig_check_failed || return
	grep -q "dst.img: exists and is not empty" recv.err ||
		why "receiver: $(tail -c 300 recv.err)" || return
	cmp -s dst.img keep.img || why "the existing target image was changed"
}

test_mig_with_storage_flag() {
	# `migrate --with-storage` as documented (a flag, last on the line).
	head -c 16M /dev/urandom >src.img
	mig_recv --disk new.img || return
	mig_src "$MIG_ARGS" --disk src.img || return
	mig_migrate "$RECV_ADDR" --with-storage
	mig_check_ok || return
	[[ $(mig_bool ctl.json with_storage) == true ]] || why "with_storage: $(cat ctl.json)" || return
	cmp -s src.img new.img || why "the copied image differs from the source's"
}

# ---- kvstore between two hosts ------------------------------------------


mig_kv_net() {
	netns_setup &&
	netns_add_host vmhost1 10.77.0.1 &&
	netns_add_host vmhost2 10.77.0.3 &&
	netns_add_host client 10.77.0.2 &&
	netns_add_tap vmhost1 kv0 &&
	netns_add_tap vmhost2 kv0 || { why "network namespace setup failed"; return 1; }
	truncate -s 64M disk.img
}

# mig_kv_wait_ready CONSOLE PID
mig_kv_wait_ready() {
	local i
	for i in $(seq 300); do
		grep -q "kvstore: ready" "$1" 2>/dev/null && return 0
		kill -0 "$2" 2>/dev/null || break
		sleep 0.1
	done
	why "no 'kvstore: ready' on $1: $(tail -c 300 "$1" 2>/dev/null) $(tail -c 300 kagami.err 2>/dev/null)"
}

# mig_kv_src: kvstore on vmhost1 over disk.img, control socket ctl.sock.
mig_kv_src() {
	netns_spawn vmhost1 "$KAGAMI" run --mem 128M --disk disk.img \
		--net "tap:kv0,mac=$MIG_KV_MAC" --console file:console.1 \
		--control ctl.sock --cmdline "ip=$MIG_KV_IP/24 port=$MIG_KV_PORT" \
		"$GUESTS/kvstore.elf" >src.out 2>kagami.err
	SRC_PID=$NETNS_PID
	mig_kv_wait_ready console.1 "$SRC_PID"
}

# mig_kv_recv DISK: kagami receive on vmhost2 (10.77.0.3).
mig_kv_recv() {
	netns_spawn vmhost2 "$KAGAMI" receive --listen tcp:10.77.0.3:0 \
		--insecure --disk "$1" --net "tap:kv0,mac=$MIG_KV_MAC" \
		--console file:console.2 >recv.out 2>recv.err
	RECV_PID=$NETNS_PID
	mig_recv_addr
}

# mig_kvc ARGS...: `kagami kv` on the client host; STATUS, $TT/out, $TT/err.
mig_kvc() {
	netns_exec client timeout -k 5 60 "$KAGAMI" kv \
		--server "$MIG_KV_SERVER" "$@" >"$TT/out" 2>"$TT/err"
	STATUS=$?
}

mig_acked() { grep -c '^k ' journal 2>/dev/null; }

# The load starts, the VM migrates after 2 s of it, the load goes on for
# 5 s more: acknowledged writes must go on after the hand-over (the
# destination serves them), and none may be lost.
mig_kv_migrate_under_load() {
	local lp lst at_go end
	netns_spawn client "$KAGAMI" kv --server "$MIG_KV_SERVER" load \
		--duration 7 --keys 300 --clients 8 --journal journal \
		>load.json 2>load.err
	lp=$NETNS_PID
	sleep 2
	(($(mig_acked) > 0)) || why "nothing acknowledged in 2 s of load: $(cat load.err)" || return
	mig_migrate "$RECV_ADDR" "$@"
	at_go=$(mig_acked)
	[[ $CTL == 0 ]] || why "migrate failed ($CTL): $(cat ctl.err)" || return
	mig_wait "$SRC_PID"
	[[ $WSTATUS == 0 ]] || why "source exit status $WSTATUS: $(tail -c 300 kagami.err)" || return
	grep -q "the guest runs here" recv.err || why "receive: $(tail -c 300 recv.err)" || return
	# The destination announced the guest's MAC (RARP on its TAP): the
	# switch forwards to vmhost2's port (p2) now, not to vmhost1's (p1).
	local i fdb
	for i in $(seq 30); do
		fdb=$(bridge -n "$(netns_name switch)" fdb show br sw0 2>/dev/null |
			grep -i "^$MIG_KV_MAC ")
		[[ $fdb == *" dev p2 "* ]] && break
		sleep 0.1
	done
	[[ $fdb == *" dev p2 "* ]] ||
		why "after hand-over the switch still sends the guest's MAC elsewhere: '$fdb' (no announce from vmhost2?)" || return
	mig_wait "$lp"
	lst=$WSTATUS
	end=$(mig_acked)
	[[ $lst == 0 ]] || why "load exit status $lst: $(cat load.json) $(head -c 300 load.err)" || return
	((end > at_go)) ||
		why "the load stalled after the hand-over: $at_go writes acked before, $end at the end ($(cat load.json))" || return
	[[ $(mig_num load.json mismatches) == 0 ]] || why "wrong reads: $(cat load.json)" || return
	# The client's longest wait for an answer spans the downtime and the
	# switch's relearning; seconds means it stalled (loose on purpose).
	local gap
	gap=$(mig_num load.json max_gap_ms)
	[[ -n $gap ]] || why "no max_gap_ms in the load's report: $(cat load.json)" || return
	awk -v g="$gap" 'BEGIN { exit !(g < 4000) }' ||
		why "the load waited $gap ms for an answer around the hand-over: $(cat load.json)" || return
	mig_kvc verify --journal journal
	[[ $STATUS == 0 && $(mig_num "$TT/out" lost) == 0 ]] ||
		why "verify after migration: $STATUS $(cat "$TT/out") $(head -c 300 "$TT/err")"
}

test_mig_kv_shared() {
	mig_kv_net || return
	mig_kv_src || return
	mig_kv_recv disk.img || return
	mig_kv_migrate_under_load || return
	mig_kv_stop_recv
}

# The guest runs at the receiver: SIGTERM stops it as it stops `kagami run`.
mig_kv_stop_recv() {
	kill -TERM "$RECV_PID"
	mig_wait "$RECV_PID" 20 || return
	[[ $WSTATUS == 143 ]] || why "receive exit status $WSTATUS after SIGTERM, expected 143: $(tail -c 300 recv.err)"
}

test_mig_kv_with_storage() {
	mig_kv_net || return
	mig_kv_src || return
	mig_kv_recv disk2.img || return
	mig_kv_migrate_under_load --with-storage true || return
	[[ $(mig_bool ctl.json with_storage) == true ]] || why "with_storage: $(cat ctl.json)" || return
	mig_kv_stop_recv || return
	# The guest's data is in disk2.img: kvstore booted on it alone (on
	# vmhost2) finds every acknowledged write.
	mv disk.img disk.old
	netns_spawn vmhost2 "$KAGAMI" run --mem 128M --disk disk2.img \
		--net "tap:kv0,mac=$MIG_KV_MAC" --console file:console.3 \
		--cmdline "ip=$MIG_KV_IP/24 port=$MIG_KV_PORT" \
		"$GUESTS/kvstore.elf" >run3.out 2>kagami.err
	local p=$NETNS_PID
	mig_kv_wait_ready console.3 "$p" || return
	mig_kvc verify --journal journal
	[[ $STATUS == 0 && $(mig_num "$TT/out" lost) == 0 ]] ||
		why "verify on the destination's image alone: $STATUS $(cat "$TT/out") $(head -c 300 "$TT/err")"
	kill -TERM "$p"
	mig_wait "$p" 20
}

t "migrate: memstress over tcp, output continues exactly" test_mig_basic kvm
t "migrate: --key on both sides, --bandwidth limits the rate" test_mig_key_bandwidth kvm
t "migrate: wrong key refused, the guest stays at the source" test_mig_wrong_key kvm
t "receive: SIGTERM/SIGINT while waiting for a source end it" test_mig_recv_sigterm kvm
t "migrate fails before round 1: receiver dies at hello" test_mig_fail_hello kvm
t "migrate fails before round 1: nothing listens" test_mig_fail_refused kvm
t "migrate fails mid-round: link cut after 20 MB" test_mig_fail_cut kvm
t "migrate fails mid-round: receiver dies after round 1" test_mig_fail_die_round kvm
t "migrate fails mid-round: a flipped byte" test_mig_fail_flip kvm
t "migrate fails in stop-and-copy: link cut" test_mig_fail_stop_and_copy kvm
t "migrate fails in stop-and-copy: receiver dies at final" test_mig_fail_die_final kvm
t "migrate hand-over: link cut after GO, confirmed by query" test_mig_handover_cut kvm
t "migrate hand-over: receiver dies at GO, the source resumes" test_mig_fail_die_go kvm
t "migrate: shared image lock follows the guest" test_mig_shared_disk_locks kvm
t "migrate --with-storage: a failed migration removes the new image" test_mig_storage_failed_removes kvm
t "migrate: receive/migrate command-line errors" test_mig_cli_errors kvm
t "migrate: receive --disk count mismatch refused" test_mig_disk_mismatch kvm
t "migrate --with-storage: non-empty target refused" test_mig_storage_target_exists kvm
t "migrate --with-storage (flag form): image copied" test_mig_with_storage_flag kvm
t_kv "migrate kvstore under load between hosts, shared disk: nothing lost" test_mig_kv_shared
t_kv "migrate kvstore --with-storage between hosts: nothing lost, image complete" test_mig_kv_with_storage

rm -rf "$MIG_CACHE"
