# HA and checkpoint FT: `kagami run --replicate ft|ha --peer` and `kagami
# secondary`, over loopback TCP (ports 17200-17299 on 127.0.0.1), with the
# memstress guest. Its output makes the promises checkable:
#   FT  the primary's console followed by the secondary's equals an
#       uninterrupted run's exactly (nothing lost, nothing repeated: the
#       primary holds output until the secondary has the state behind it);
#   HA  lines may repeat (up to one interval), but no pass is missing and
#       the final checksum is right.
# Then the failover drills (`kagami drill`, kvstore in network namespaces
# under client load; release build, needs root) and the CLI's errors.
#
# Timing: the ASan build on a shared 2-core machine can stall for more
# than the default 100 ms --failover-timeout, and a secondary that takes a
# stall for a death runs the guest while the primary also does (split
# brain, see README). The failover tests give both sides 1000 ms: what is
# tested is what happens on a death, not how quickly it is noticed (the
# drills measure that, with the release build and the defaults).

declare -F netns_usable >/dev/null || source tests/netns.sh

# memstress: 32 MiB working set, 800 MiB at 100 MiB/s: ~8 s flat, a pass
# line every 32 MiB; longer for the tests that reconnect before the kill.
RP_ARGS="mib=32 total=800 rate=100 seed=7"
RP_LONG="mib=32 total=1200 rate=100 seed=9"
RP_FO=1000 # --failover-timeout on both sides (see above)
RP_HOST=127.0.0.1
RP_CACHE=$(mktemp -d "${TMPDIR:-/tmp}/kagami-rep.XXXXXX")

# ---- helpers ---------------------------------------------------------

# rp_trap: the processes a test started (RP_PIDS) are killed when it ends,
# however it ends (each test runs in its own subshell: this trap is its).
rp_trap() {
	[[ -n ${RP_TRAPPED:-} ]] && return
	RP_TRAPPED=1 RP_PIDS=""
	trap 'kill -KILL $RP_PIDS 2>/dev/null' EXIT
}

# rp_wait_line FILE PATTERN [TENTHS]: until FILE has PATTERN (fixed
# string); default 20 s.
rp_wait_line() {
	local i
	for ((i = 0; i < ${3:-200}; i++)); do
		grep -qF -- "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

# rp_ref [ARGS]: the path of an uninterrupted run's console (cached per
# ARGS; the rate does not change the output, so the reference runs flat
# out).
rp_ref() {
	local args=${1:-$RP_ARGS} flat f
	flat=$(sed -E 's/ ?rate=[0-9]+//' <<<"$args")
	f=$RP_CACHE/ref.$(tr -c 'a-z0-9=' _ <<<"$flat")
	if [[ ! -s $f ]]; then
		timeout -k 5 120 "$KAGAMI" run --console "file:$f.tmp" \
			--cmdline "$flat" "$GUESTS/memstress.elf" >/dev/null 2>"$f.err" &&
			grep -q "memstress: done" "$f.tmp" && mv "$f.tmp" "$f"
	fi
	[[ -s $f ]] || { echo "$RP_CACHE/missing-reference"; return 1; }
	echo "$f"
}

# rp_sec NAME PORT [SECONDARY-OPTIONS...]: `kagami secondary` on PORT with
# console NAME.txt, stderr NAME.err; waits until it listens. Sets SEC_PID.
rp_sec() {
	local name=$1 port=$2
	shift 2
	rp_trap
	rm -f "$name.txt" "$name.err"
	link_opts replica "$@"
	"$KAGAMI" secondary --listen "tcp:$RP_HOST:$port" \
		--console "file:$name.txt" "${LINK_OPTS[@]}" "$@" >"$name.out" 2>"$name.err" &
	SEC_PID=$!
	RP_PIDS+=" $SEC_PID"
	rp_wait_line "$name.err" "listening on tcp:$RP_HOST:$port" 100 ||
		why "secondary $name does not listen on $port: $(tail -c 300 "$name.err")"
}

# rp_pri MODE PORT ARGS [RUN-OPTIONS...]: the protected memstress: control
# socket pri.sock, console pri.txt, stderr pri.err. Sets PRI_PID.
rp_pri() {
	local mode=$1 port=$2 args=$3
	shift 3
	rp_trap
	rm -f pri.txt pri.err pri.sock
	link_opts replica "$@"
	"$KAGAMI" run --replicate "$mode" --peer "tcp:$RP_HOST:$port" \
		--control pri.sock --console file:pri.txt "${LINK_OPTS[@]}" "$@" \
		--cmdline "$args" "$GUESTS/memstress.elf" >pri.out 2>pri.err &
	PRI_PID=$!
	RP_PIDS+=" $PRI_PID"
}

# rp_prot SOCK: `ctl SOCK protection` as one line in prot.json.
rp_prot() {
	timeout -k 2 10 "$KAGAMI" ctl "$1" protection 2>/dev/null |
		tr -d '\n\t ' >prot.json
}
# rp_exits SOCK: the guest's exits so far (pio + mmio + other), from
# `ctl SOCK status`.
rp_exits() {
	timeout -k 2 10 "$KAGAMI" ctl "$1" status 2>/dev/null | tr -d '\n\t ' |
		grep -oE '"(pio|mmio|other)":[0-9]+' | cut -d: -f2 |
		awk '{ n += $1 } END { if (NR) print n }'
}
rp_str() { grep -o "\"$1\":\"[^\"]*\"" prot.json | head -1 | cut -d'"' -f4; }
rp_num() { grep -oE "\"$1\":-?[0-9.e+]+" prot.json | head -1 | cut -d: -f2; }
rp_bool() { grep -oE "\"$1\":(true|false)" prot.json | head -1 | cut -d: -f2; }

# rp_wait_protected SOCK [TENTHS]: until protected:true (default 30 s).
rp_wait_protected() {
	local i
	for ((i = 0; i < ${2:-300}; i++)); do
		rp_prot "$1"
		[[ $(rp_bool protected) == true ]] && return 0
		sleep 0.1
	done
	why "not protected after $((${2:-300} / 10)) s: $(cat prot.json)"
}

# rp_wait PID [SECONDS]: waits for it (default 60 s, then SIGKILL and
# fail); WSTATUS = its exit status.
rp_wait() {
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

# rp_kill PID: SIGKILL, and reap it.
rp_kill() {
	kill -KILL "$1" 2>/dev/null
	wait "$1" 2>/dev/null
	return 0
}

# rp_same REF FILES...: the files concatenated equal REF exactly.
rp_same() {
	local ref=$1
	shift
	cat "$@" >all.txt
	cmp -s "$ref" all.txt && return 0
	why "consoles ($*: $(wc -l "$@" | tail -1 | awk '{print $1}') lines) differ from the reference ($(wc -l <"$ref") lines): $(diff "$ref" all.txt | head -4 | tr '\n' '|')"
}

# rp_ft_ok REF FILES...: FT's promise across failovers: nothing printed
# twice, nothing out of order, each file a contiguous run of REF, the last
# line REF's. Output the dead primary had produced but not yet released
# (its last, unacknowledged epoch) is gone, as a network frame would be:
# a gap is allowed only between files, at a failover.
rp_ft_ok() {
	local ref=$1
	shift
	cat "$@" >all.txt
	local bad
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

# rp_ha_ok REF FILES...: HA's promise: every line of REF appears, nothing
# else does, and the last line is REF's (the right final checksum).
rp_ha_ok() {
	local ref=$1
	shift
	cat "$@" >all.txt
	local missing extra
	missing=$(grep -vxFf all.txt "$ref" | head -3 | tr '\n' '|')
	extra=$(grep -vxFf "$ref" all.txt | head -3 | tr '\n' '|')
	[[ -z $missing ]] || why "lines missing: $missing" || return
	[[ -z $extra ]] || why "lines not in the reference: $extra" || return
	[[ $(tail -1 all.txt) == "$(tail -1 "$ref")" ]] ||
		why "last line '$(tail -1 all.txt)', expected '$(tail -1 "$ref")'"
}

# rp_keys: two different valid keys, k1 and k2 (32+ bytes, mode 0600).
rp_keys() {
	head -c 48 /dev/urandom >k1
	head -c 48 /dev/urandom >k2
	chmod 600 k1 k2
}

# ---- failover --------------------------------------------------------

test_ft_failover() {
	local ref
	ref=$(rp_ref) || why "no reference run: $(cat "$ref.err" 2>/dev/null)" || return
	rp_sec sec 17201 --failover-timeout $RP_FO || return
	rp_pri ft 17201 "$RP_ARGS" --failover-timeout $RP_FO
	rp_wait_protected pri.sock || return
	local t0=$SECONDS i hold=0
	# The output rule at work: some output was held until acknowledged.
	for ((i = 0; i < 100; i++)); do
		rp_prot pri.sock
		hold=$(rp_num output_hold_p50_us)
		[[ $(rp_bool protected) == true && $(rp_str state) == protected ]] &&
			awk -v h="${hold:-0}" 'BEGIN { exit !(h > 0) }' && break
		sleep 0.1
	done
	[[ $(rp_bool protected) == true ]] || why "protection dropped: $(cat prot.json)" || return
	awk -v h="${hold:-0}" 'BEGIN { exit !(h > 0) }' ||
		why "output_hold_p50_us is ${hold:-missing}: $(cat prot.json)" || return
	grep -q '"epochs":[1-9]' prot.json && grep -q '"acked":[1-9]' prot.json ||
		why "no epochs acknowledged: $(cat prot.json)" || return
	sleep $((3 - (SECONDS - t0) > 0 ? 3 - (SECONDS - t0) : 0))
	grep -q "memstress: done" pri.txt && { why "the guest ended before the kill (too fast)"; return; }
	rp_kill "$PRI_PID"
	rp_wait "$SEC_PID" 60 || return
	[[ $WSTATUS == 0 ]] || why "secondary exited $WSTATUS: $(tail -c 400 sec.err)" || return
	grep -q "primary lost: .*resuming epoch [1-9]" sec.err &&
		grep -q "the guest runs here" sec.err ||
		why "no failover in the secondary's log: $(tail -c 400 sec.err)" || return
	[[ -s sec.txt ]] || why "the secondary printed nothing" || return
	rp_ft_ok "$ref" pri.txt sec.txt
}

test_ha_failover() {
	local ref
	ref=$(rp_ref) || why "no reference run" || return
	rp_sec sec 17205 --failover-timeout $RP_FO || return
	rp_pri ha 17205 "$RP_ARGS" --interval 300 --failover-timeout $RP_FO
	rp_wait_protected pri.sock || return
	rp_wait_line pri.txt "pass=3 " 200 || why "no pass=3 at the primary" || return
	[[ $(rp_str mode) == ha ]] || why "mode is not ha: $(cat prot.json)" || return
	sleep 2
	grep -q "memstress: done" pri.txt && { why "the guest ended before the kill (too fast)"; return; }
	rp_kill "$PRI_PID"
	rp_wait "$SEC_PID" 60 || return
	[[ $WSTATUS == 0 ]] || why "secondary exited $WSTATUS: $(tail -c 400 sec.err)" || return
	grep -q "the guest runs here" sec.err || why "no failover: $(tail -c 400 sec.err)" || return
	rp_ha_ok "$ref" pri.txt sec.txt
}

test_kill_secondary() {
	local ref
	ref=$(rp_ref) || why "no reference run" || return
	rp_sec sec 17210 --failover-timeout $RP_FO || return
	rp_pri ft 17210 "$RP_ARGS" --failover-timeout $RP_FO
	rp_wait_protected pri.sock || return
	rp_wait_line pri.txt "pass=3 " 200 || why "no pass=3 at the primary" || return
	rp_kill "$SEC_PID"
	local i
	for ((i = 0; i < 100; i++)); do
		rp_prot pri.sock
		[[ $(rp_str state) == unprotected ]] && break
		sleep 0.1
	done
	[[ $(rp_str state) == unprotected && $(rp_bool protected) == false ]] ||
		why "after the secondary's death: $(cat prot.json)" || return
	[[ -n $(rp_str why) ]] || why "no why: $(cat prot.json)" || return
	rp_wait "$PRI_PID" 90 || return
	[[ $WSTATUS == 0 ]] || why "primary exited $WSTATUS: $(tail -c 400 pri.err)" || return
	grep -q "replication to tcp:$RP_HOST:17210 lost: .*the VM runs UNPROTECTED (reconnecting" pri.err ||
		why "no UNPROTECTED line: $(tail -c 400 pri.err)" || return
	[[ $(grep -c UNPROTECTED pri.err) == 1 ]] ||
		why "UNPROTECTED said more than once: $(grep -c UNPROTECTED pri.err)" || return
	# The held output was released: all of it, once.
	rp_same "$ref" pri.txt
}

test_corrupt_frame() {
	local ref
	ref=$(rp_ref "$RP_LONG") || why "no reference run" || return
	rp_sec sec 17215 --failover-timeout $RP_FO || return
	rp_pri ft 17215 "$RP_LONG" --failover-timeout $RP_FO --test-fault flip=60000000
	rp_wait_line sec.err "keeping epoch" 300 ||
		why "the secondary did not keep its replica: $(tail -c 400 sec.err)" || return
	grep "keeping epoch" sec.err | grep -qiE "checksum|mac|authenticat|corrupt" ||
		why "the corruption is not named: $(grep 'keeping epoch' sec.err)" || return
	grep -q "primary lost" sec.err && { why "failed over on a corrupted frame: $(tail -c 400 sec.err)"; return; }
	# The primary reconnects and copies again.
	local i n
	for ((i = 0; i < 300; i++)); do
		n=$(grep -c "protecting a FT VM" sec.err)
		rp_prot pri.sock
		((n >= 2)) && [[ $(rp_bool protected) == true ]] && break
		sleep 0.1
	done
	((n >= 2)) && [[ $(rp_bool protected) == true ]] ||
		why "not protected again after the corruption ($n sessions): $(cat prot.json)" || return
	# Within its reconnect window the primary keeps its output held and
	# never runs unprotected: it must not say so.
	grep -q UNPROTECTED pri.err && { why "the primary went unprotected on a corrupted frame: $(tail -c 300 pri.err)"; return; }
	sleep 1
	grep -q "memstress: done" pri.txt && { why "the guest ended before the kill (too fast)"; return; }
	rp_kill "$PRI_PID"
	rp_wait "$SEC_PID" 60 || return
	[[ $WSTATUS == 0 ]] || why "secondary exited $WSTATUS: $(tail -c 400 sec.err)" || return
	grep -q "the guest runs here" sec.err || why "no failover: $(tail -c 400 sec.err)" || return
	rp_ft_ok "$ref" pri.txt sec.txt
}

# A primary whose secondary never came: it runs UNPROTECTED and keeps
# trying; `ctl protect --peer` onto another secondary replaces that
# attempt (the UNPROTECTED line says to do so; it was refused as
# "already replicating") and takes the timings given; a protection that
# protects is not replaced; bad timings are one line.
test_protect_replaces_lost_secondary() {
	rp_pri ft 17230 "$RP_LONG" --failover-timeout $RP_FO
	rp_wait_line pri.err "UNPROTECTED" 100 || why "no UNPROTECTED line: $(tail -c 300 pri.err)" || return
	rp_sec sec2 17231 --failover-timeout 600 || return
	timeout -k 2 20 "$KAGAMI" ctl pri.sock protect --peer "tcp:$RP_HOST:17231" --insecure \
		--failover-timeout 0 >protect.json 2>protect.err &&
		{ why "--failover-timeout 0 was accepted"; return; }
	grep -q "protect: --failover_timeout: expected a number from 1 to 600000" protect.err ||
		why "bad timing: $(cat protect.err)" || return
	timeout -k 2 20 "$KAGAMI" ctl pri.sock protect --peer "tcp:$RP_HOST:17231" --insecure \
		--failover-timeout 400 >protect.json 2>protect.err ||
		why "ctl protect onto another secondary: $(cat protect.err)" || return
	rp_wait_protected pri.sock || return
	[[ $(rp_str peer) == "tcp:$RP_HOST:17231" ]] || why "the peer: $(cat prot.json)" || return
	timeout -k 2 20 "$KAGAMI" ctl pri.sock protect --peer "tcp:$RP_HOST:17230" --insecure \
		>protect.json 2>protect.err && { why "a protecting link was replaced"; return; }
	grep -q "already replicating to tcp:$RP_HOST:17231 (protected)" protect.err ||
		why "while protected: $(cat protect.err)"
}

test_reprotect_after_failover() {
	local ref
	ref=$(rp_ref "$RP_LONG") || why "no reference run" || return
	rp_sec sec1 17220 --failover-timeout $RP_FO --control sec1.sock || return
	local sec1=$SEC_PID
	rp_pri ft 17220 "$RP_LONG" --failover-timeout $RP_FO
	rp_wait_protected pri.sock || return
	rp_wait_line pri.txt "pass=2 " 200 || why "no pass=2 at the primary" || return
	rp_kill "$PRI_PID"
	rp_wait_line sec1.err "the guest runs here" 100 ||
		why "sec1 did not take over: $(tail -c 400 sec1.err)" || return
	# Protect the new primary onto a new secondary. (ctl protect has no
	# --failover-timeout: the new primary uses the default 100 ms and
	# drops a secondary silent for 200 ms; the secondary beats every
	# --failover-timeout / 4, so 600 keeps it heard and patient.)
	rp_sec sec2 17221 --failover-timeout 600 || return
	local sec2=$SEC_PID
	# Without --key or --insecure: refused, one line.
	timeout -k 2 20 "$KAGAMI" ctl sec1.sock protect --peer "tcp:$RP_HOST:17221" \
		>protect.json 2>protect.err &&
		{ why "ctl protect without --key/--insecure succeeded"; return; }
	grep -q "unauthenticated without --key FILE; pass --insecure" protect.err ||
		why "ctl protect without --key: $(cat protect.err)" || return
	timeout -k 2 20 "$KAGAMI" ctl sec1.sock protect --peer "tcp:$RP_HOST:17221" \
		--insecure >protect.json 2>protect.err ||
		why "ctl protect failed: $(cat protect.err)" || return
	rp_wait_protected sec1.sock || return
	[[ $(rp_str mode) == ft ]] || why "mode is not ft: $(cat prot.json)" || return
	rp_wait_line sec1.txt "pass=" 100 || why "no output at sec1" || return
	sleep 1
	grep -q "memstress: done" sec1.txt && { why "the guest ended before the second kill (too fast)"; return; }
	rp_kill "$sec1"
	rp_wait "$sec2" 60 || return
	[[ $WSTATUS == 0 ]] || why "sec2 exited $WSTATUS: $(tail -c 400 sec2.err)" || return
	grep -q "the guest runs here" sec2.err || why "sec2 did not take over: $(tail -c 400 sec2.err)" || return
	rp_ft_ok "$ref" pri.txt sec1.txt sec2.txt
}

# ---- protection that ends or never starts ------------------------------

test_guest_ends_under_protection() {
	local ref args="mib=32 total=320 rate=100 seed=3"
	ref=$(rp_ref "$args") || why "no reference run" || return
	rp_sec sec 17230 --failover-timeout $RP_FO || return
	rp_pri ft 17230 "$args" --failover-timeout $RP_FO
	rp_wait_protected pri.sock || return
	rp_wait "$PRI_PID" 60 || return
	[[ $WSTATUS == 0 ]] || why "primary exited $WSTATUS: $(tail -c 400 pri.err)" || return
	rp_wait "$SEC_PID" 20 || return
	[[ $WSTATUS == 0 ]] || why "secondary exited $WSTATUS: $(tail -c 400 sec.err)" || return
	grep -q "the primary ended protection" sec.err ||
		why "no 'ended protection': $(tail -c 400 sec.err)" || return
	grep -q "runs here" sec.err && { why "the secondary ran the guest: $(tail -c 400 sec.err)"; return; }
	[[ ! -s sec.txt ]] || why "the secondary printed guest output: $(head -c 200 sec.txt)" || return
	grep -q UNPROTECTED pri.err && { why "the primary said UNPROTECTED: $(tail -c 300 pri.err)"; return; }
	rp_same "$ref" pri.txt
}

test_wrong_key() {
	local ref args="mib=32 total=320 rate=100 seed=3"
	ref=$(rp_ref "$args") || why "no reference run" || return
	rp_keys
	rp_sec sec 17235 --key k1 --failover-timeout $RP_FO || return
	rp_pri ft 17235 "$args" --key k2 --failover-timeout $RP_FO
	rp_wait_line pri.txt "pass=2 " 200 || why "the guest does not run: $(tail -c 300 pri.err)" || return
	local i
	for ((i = 0; i < 50; i++)); do
		rp_prot pri.sock
		[[ -n $(rp_str why) ]] && break
		sleep 0.1
	done
	[[ $(rp_bool protected) == false ]] || why "protected with the wrong key: $(cat prot.json)" || return
	rp_str why | grep -qiE "authenticat|key" || why "why does not name authentication: $(cat prot.json)" || return
	rp_wait "$PRI_PID" 60 || return
	[[ $WSTATUS == 0 ]] || why "primary exited $WSTATUS: $(tail -c 400 pri.err)" || return
	grep -q "runs here" sec.err && { why "the secondary ran the guest: $(tail -c 300 sec.err)"; return; }
	kill -0 "$SEC_PID" 2>/dev/null || why "the secondary died: $(tail -c 300 sec.err)" || return
	rp_same "$ref" pri.txt
}

# ---- CLI errors ------------------------------------------------------

test_cli_errors() {
	kg secondary
	expect_status 2 && err_has "--listen" && err_one_line || return
	kg run --replicate xx --peer "tcp:$RP_HOST:17240" "$GUESTS/hello.elf"
	expect_status 2 && err_has "--replicate 'xx'" && err_one_line || return
	kg run --replicate ft "$GUESTS/hello.elf"
	expect_status 2 && err_has "--peer" && err_one_line || return
	kg run --peer "tcp:$RP_HOST:17240" "$GUESTS/hello.elf"
	expect_status 2 && err_has "--replicate" && err_one_line || return
	kg run --replicate ha --peer bogus "$GUESTS/hello.elf"
	expect_status 2 && err_has "--peer" && err_one_line || return
	kg run --replicate ft --peer "tcp:$RP_HOST:17240" --test-fault nonsense=1 "$GUESTS/hello.elf"
	expect_status 2 && err_has "--test-fault" && err_one_line || return
	kg secondary --listen "tcp:$RP_HOST:17240" --failover-timeout 0
	expect_status 2 && err_has "--failover-timeout" && err_one_line || return
	rp_keys
	kg run --replicate ft --peer "tcp:$RP_HOST:17240" --key nokey "$GUESTS/hello.elf"
	expect_status 2 && err_has "--key" && err_one_line || return
	# The lease key is its own option, and only with a lease.
	kg run --replicate ft --peer "tcp:$RP_HOST:17240" --lease-key k1 "$GUESTS/hello.elf"
	expect_status 2 && err_has "--lease-key needs --lease" && err_one_line || return
	kg run --replicate ft --peer "tcp:$RP_HOST:17240" --lease "witness:tcp:$RP_HOST:17241" \
		--lease-key nokey "$GUESTS/hello.elf"
	expect_status 2 && err_has "--lease-key" && err_has "nokey" && err_one_line || return
	kg secondary --listen "tcp:$RP_HOST:17240" --lease-key k1
	expect_status 2 && err_has "--lease-key needs --lease" && err_one_line || return
	kg secondary --listen "tcp:$RP_HOST:17240" --lease "witness:tcp:$RP_HOST:17241" --lease-key nokey
	expect_status 2 && err_has "--lease-key" && err_has "nokey" && err_one_line || return
	# Authenticated and guarded by default: each omission is refused in
	# one line, and the explicit opt-outs are warned about.
	kg run --replicate ft --peer "tcp:$RP_HOST:17240" --no-lease "$GUESTS/hello.elf"
	expect_status 2 && err_has "no key: links must be authenticated" && err_one_line || return
	kg run --replicate ft --peer "tcp:$RP_HOST:17240" --key k1 "$GUESTS/hello.elf"
	expect_status 2 && err_has "need a split-brain guard" && err_has "--no-lease" && err_one_line || return
	kg run --replicate ft --peer "tcp:$RP_HOST:17240" --key k1 --insecure --no-lease "$GUESTS/hello.elf"
	expect_status 2 && err_has "--insecure and --key exclude each other" && err_one_line || return
	kg run --replicate ha --peer "tcp:$RP_HOST:17240" --key k1 --no-lease --lease file:x "$GUESTS/hello.elf"
	expect_status 2 && err_has "--no-lease and --lease exclude each other" && err_one_line || return
	kg run --replicate ft --peer "tcp:$RP_HOST:17240" --key k1 --lease "witness:tcp:$RP_HOST:17241" "$GUESTS/hello.elf"
	expect_status 2 && err_has "needs --lease-key FILE" && err_one_line || return
	kg secondary --listen "tcp:$RP_HOST:17240" --no-lease
	expect_status 2 && err_has "no key" && err_one_line || return
	kg secondary --listen "tcp:$RP_HOST:17240" --insecure
	expect_status 2 && err_has "need a split-brain guard" && err_one_line || return
	kg receive --listen "tcp:$RP_HOST:17240"
	expect_status 2 && err_has "no key" && err_one_line || return
	kg witness --listen "tcp:$RP_HOST:17240"
	expect_status 2 && err_has "no key" && err_one_line || return
	# The opt-outs run, and say what they cost, on both sides.
	KG_TIMEOUT=20 kg run --replicate ft --peer "tcp:$RP_HOST:17249" --insecure --no-lease \
		--failover-timeout 200 "$GUESTS/hello.elf"
	err_has "warning: --insecure: the links are not authenticated" &&
		err_has "warning: --no-lease: without a lease, a network partition" || return
	grep -q "hello, world" "$TT/out" || why "the guest did not run: $(head -c 300 "$TT/out")"
}

# The lease key is not the replication key: the witness holds only the
# lease key (k2), the pair also the replication key (k1); the lease is
# granted and the pair is protected.
test_lease_key() {
	rp_trap
	rp_keys
	"$KAGAMI" witness --listen "tcp:$RP_HOST:17275" --grace 0 --lease-key k2 >wit.out 2>&1 &
	RP_PIDS+=" $!"
	rp_wait_line wit.out "serving" 100 || why "no witness: $(cat wit.out)" || return
	local lease=(--lease "witness:tcp:$RP_HOST:17275" --lease-key k2 --lease-ttl 1500)
	rp_sec sec 17276 --key k1 --failover-timeout $RP_FO "${lease[@]}" || return
	rp_pri ft 17276 "$RP_ARGS" --key k1 --failover-timeout $RP_FO "${lease[@]}"
	rp_wait_protected pri.sock || return
	rp_wait_line wit.out "granted to kagami@" 100 ||
		why "the lease was not granted: $(tail -c 400 wit.out) / $(tail -c 300 pri.err)" || return
	grep -q "refused a peer" wit.out && { why "the witness refused a peer: $(cat wit.out)"; return; }
	grep -q "cannot renew the lease" pri.err && { why "the primary cannot renew: $(tail -c 300 pri.err)"; return; }
	return 0
}

# The secondary's --disk exists with data: the secondary refuses it (and
# exits 1), the primary says why (naming the disk), its guest runs on.
test_secondary_disk_in_use() {
	local ref args="mib=32 total=320 rate=100 seed=3"
	ref=$(rp_ref "$args") || why "no reference run" || return
	truncate -s 64M pri.img
	echo "precious data" >sec.img
	rp_sec sec 17245 --disk "$PWD/sec.img" --failover-timeout $RP_FO || return
	rp_pri ft 17245 "$args" --disk pri.img --failover-timeout $RP_FO
	rp_wait_line pri.txt "pass=2 " 200 || why "the guest does not run: $(tail -c 300 pri.err)" || return
	local i
	for ((i = 0; i < 50; i++)); do
		rp_prot pri.sock
		[[ -n $(rp_str why) ]] && break
		sleep 0.1
	done
	[[ $(rp_bool protected) == false && -n $(rp_str why) ]] ||
		why "protected onto a used disk: $(cat prot.json)" || return
	# ctl's why is the last failure (by now the reconnects' "connection
	# refused": the secondary gave up); the first is on stderr.
	grep -qE "replication to tcp:$RP_HOST:17245 (lost|not established): .*disk $PWD/sec.img: exists and is not empty.*UNPROTECTED" pri.err ||
		why "the primary does not name the disk: $(tail -c 300 pri.err)" || return
	grep -q "disk $PWD/sec.img: exists and is not empty" sec.err ||
		why "the secondary does not name the disk: $(tail -c 300 sec.err)" || return
	rp_wait "$SEC_PID" 20 || return
	[[ $WSTATUS == 1 ]] || why "secondary exited $WSTATUS, expected 1" || return
	[[ $(cat sec.img) == "precious data" ]] || why "the secondary changed the existing disk" || return
	rp_wait "$PRI_PID" 60 || return
	[[ $WSTATUS == 0 ]] || why "primary exited $WSTATUS: $(tail -c 400 pri.err)" || return
	rp_same "$ref" pri.txt
}

# One disk at the primary, none at the secondary: the secondary says so
# and exits 1; the primary's guest keeps running, unprotected.
test_disk_count_mismatch() {
	local ref args="mib=32 total=320 rate=100 seed=3"
	ref=$(rp_ref "$args") || why "no reference run" || return
	truncate -s 64M pri.img
	rp_sec sec 17250 --failover-timeout $RP_FO || return
	rp_pri ft 17250 "$args" --disk pri.img --failover-timeout $RP_FO
	rp_wait "$SEC_PID" 30 || return
	[[ $WSTATUS == 1 ]] || why "secondary exited $WSTATUS, expected 1: $(tail -c 300 sec.err)" || return
	grep -q "the protected VM has 1 disk(s) and 0 network(s); give as many --disk and --net (0 and 0 given)" sec.err ||
		why "secondary: $(tail -c 300 sec.err)" || return
	local i
	for ((i = 0; i < 50; i++)); do
		rp_prot pri.sock
		[[ -n $(rp_str why) ]] && break
		sleep 0.1
	done
	[[ $(rp_bool protected) == false && -n $(rp_str why) ]] || why "protected: $(cat prot.json)" || return
	grep -qE "replication to tcp:$RP_HOST:17250 (lost|not established): .*the protected VM has 1 disk\\(s\\).*UNPROTECTED" pri.err ||
		why "the primary does not say why: $(tail -c 300 pri.err)" || return
	rp_wait "$PRI_PID" 60 || return
	[[ $WSTATUS == 0 ]] || why "primary exited $WSTATUS: $(tail -c 400 pri.err)" || return
	rp_same "$ref" pri.txt
}

# ---- drills (release build, network namespaces) ------------------------

# rp_drill JSON ARGS...: `kagami drill` (release build); DSTATUS, output in
# drill.out.
rp_drill() {
	local json=$1
	shift
	timeout -k 10 600 "$KAGAMI_RELEASE" drill --json "$json" "$@" >drill.out 2>&1
	DSTATUS=$?
}

# rp_drill_ok JSON COUNT: COUNT drills in JSON, all ok, none lost a write.
rp_drill_ok() {
	local json=$1 count=$2 n
	[[ $DSTATUS == 0 ]] || why "drill exited $DSTATUS: $(grep -E 'FAIL|setup|failed' drill.out | head -3 | tr '\n' '|')" || return
	[[ -s $json ]] || why "no JSON written" || return
	n=$(grep -o '"drill":[0-9]*' "$json" | wc -l)
	[[ $n == "$count" ]] || why "$n drills in the JSON, expected $count" || return
	grep -q '"failed":0,' "$json" || why "failed drills: $(head -c 300 "$json")" || return
	[[ $(grep -o '"ok":true' "$json" | wc -l) == "$count" ]] || why "not every drill ok" || return
	grep -q '"recovery_ms":{"p50":[0-9]' "$json" || why "no recovery p50: $(head -c 200 "$json")"
}

test_drill_ft() {
	rp_drill ft.json --mode ft --count 20 --duration 3
	rp_drill_ok ft.json 20 || return
	grep -q '"kill":"primary-host"' ft.json || why "the default kill is not primary-host: $(head -c 200 ft.json)" || return
	[[ $(grep -o '"lost":0[,}]' ft.json | wc -l) == 20 ]] ||
		why "FT drills lost writes: $(grep -o '"lost":[0-9]*' ft.json | sort | uniq -c | tr '\n' ' ')"
}

# The optimistic kind: only the process dies, its kernel closes the
# connection and the secondary hears of it at once.
test_drill_ft_kill_process() {
	rp_drill ftp.json --mode ft --kill primary --count 5 --duration 3
	rp_drill_ok ftp.json 5 || return
	grep -q '"kill":"primary"' ftp.json || why "kill is not primary: $(head -c 200 ftp.json)" || return
	[[ $(grep -o '"lost":0[,}]' ftp.json | wc -l) == 5 ]] ||
		why "FT drills lost writes: $(grep -o '"lost":[0-9]*' ftp.json | sort | uniq -c | tr '\n' ' ')"
}

test_drill_ha() {
	rp_drill ha.json --mode ha --count 20 --duration 3
	rp_drill_ok ha.json 20
}

test_drill_ft_kill_secondary() {
	rp_drill fts.json --mode ft --kill secondary --count 3 --duration 3
	rp_drill_ok fts.json 3 || return
	grep -q '"kill":"secondary"' fts.json || why "kill is not secondary: $(head -c 200 fts.json)" || return
	[[ $(grep -o '"lost":0[,}]' fts.json | wc -l) == 3 ]] ||
		why "lost writes after the secondary's death: $(grep -o '"lost":[0-9]*' fts.json | tr '\n' ' ')"
}

test_drill_ft_kill_link() {
	rp_drill ftl.json --mode ft --kill link --count 2 --duration 3
	rp_drill_ok ftl.json 2 || return
	[[ $(grep -o '"lost":0[,}]' ftl.json | wc -l) == 2 ]] ||
		why "lost writes after a link cut: $(grep -o '"lost":[0-9]*' ftl.json | tr '\n' ' ')"
}

# The witness dies while the pair runs: the link stays healthy and the
# primary protected, but it warns, and pauses its guest once its lease
# ends unrenewed (test_witness_stalls has the details); a failover then
# cannot take the lease, so the secondary does not run the guest: no
# split brain, at the price of availability (said in its log).
test_witness_loss() {
	rp_trap
	"$KAGAMI" witness --listen "tcp:$RP_HOST:17270" --grace 0 --insecure >wit.out 2>&1 &
	local wit=$!
	RP_PIDS+=" $wit"
	rp_wait_line wit.out "serving" 100 || why "no witness: $(cat wit.out)" || return
	local lease=(--lease "witness:tcp:$RP_HOST:17270" --lease-ttl 600)
	rp_sec sec 17271 --failover-timeout $RP_FO "${lease[@]}" || return
	rp_pri ft 17271 "$RP_ARGS" --failover-timeout $RP_FO "${lease[@]}"
	rp_wait_protected pri.sock || return
	kill -9 "$wit"
	wait "$wit" 2>/dev/null
	rp_wait_line pri.err "cannot renew the lease" 100 ||
		why "the primary did not warn: $(tail -c 300 pri.err)" || return
	rp_wait_line pri.err "the guest is PAUSED" 100 ||
		why "the primary did not fence: $(tail -c 300 pri.err)" || return
	sleep 1
	rp_prot pri.sock
	[[ $(rp_bool protected) == true ]] || why "protection dropped with the witness: $(cat prot.json)" || return
	rp_kill "$PRI_PID"
	rp_wait_line sec.err "lease cannot be taken" 200 ||
		why "the secondary did not stand down: $(tail -c 400 sec.err)" || return
	grep -q "the guest runs here" sec.err && { why "the secondary ran the guest without the lease"; return; }
	return 0
}

# The witness stops answering (SIGSTOP) while the replication link is
# fine: the primary cannot renew its lease and pauses the guest, output
# held, before the lease ends (not only once the link is lost: a lease
# that ran out is one the secondary may take). When the witness answers
# again the same grant is renewed, the guest resumes and its output is
# whole.
test_witness_stalls() {
	local ref ttl=3000
	ref=$(rp_ref "$RP_LONG") || why "no reference run" || return
	rp_trap
	"$KAGAMI" witness --listen "tcp:$RP_HOST:17280" --grace 0 --insecure >wit.out 2>&1 &
	local wit=$!
	RP_PIDS+=" $wit"
	rp_wait_line wit.out "serving" 100 || why "no witness: $(cat wit.out)" || return
	local lease=(--lease "witness:tcp:$RP_HOST:17280" --lease-ttl $ttl)
	rp_sec sec 17281 --failover-timeout $RP_FO "${lease[@]}" || return
	rp_pri ft 17281 "$RP_LONG" --failover-timeout $RP_FO "${lease[@]}"
	rp_wait_protected pri.sock || return
	rp_wait_line pri.txt "pass=2 " 200 || why "the guest does not run: $(tail -c 300 pri.err)" || return
	local t0 ms n1 n2
	t0=$(date +%s%N)
	kill -STOP "$wit"
	if ! rp_wait_line pri.err "the guest is PAUSED" 100; then
		kill -CONT "$wit"
		why "no fence 10 s after the witness stopped: $(tail -c 400 pri.err)"
		return
	fi
	ms=$((($(date +%s%N) - t0) / 1000000))
	# Its last renewal was before the stop: the lease ended at most ttl
	# after it.
	((ms < ttl)) || { kill -CONT "$wit"; why "fenced $ms ms after the witness stopped, lease $ttl ms"; return; }
	# Paused: the guest makes no exits (its console lines, held before
	# the fence, may still be released by acknowledgements meanwhile).
	n1=$(rp_exits pri.sock)
	sleep 1.5
	n2=$(rp_exits pri.sock)
	rp_prot pri.sock
	kill -CONT "$wit"
	[[ -n $n1 && $n1 == "$n2" ]] || why "the guest ran on while fenced ($n1 -> $n2 exits)" || return
	[[ $(rp_bool protected) == true ]] || why "the link dropped: $(cat prot.json)" || return
	rp_wait_line pri.err "the guest resumes" 100 || why "no resume after the witness came back: $(tail -c 400 pri.err)" || return
	rp_wait "$PRI_PID" 90 || return
	[[ $WSTATUS == 0 ]] || why "primary exited $WSTATUS: $(tail -c 400 pri.err)" || return
	grep -q "runs here" sec.err && { why "the secondary ran the guest: $(tail -c 300 sec.err)"; return; }
	rp_same "$ref" pri.txt
}

# ---- failure detection -------------------------------------------------

# rp_gap FILE SECONDS: samples FILE's line count every 0.1 s for SECONDS;
# GAP = the longest time (ms) it did not grow.
rp_gap() {
	local i n last=-1 since=0 t
	GAP=0
	for ((i = 0; i < $2 * 10; i++)); do
		n=$(wc -l <"$1" 2>/dev/null || echo 0)
		t=$((i * 100))
		if [[ $n != "$last" ]]; then
			last=$n since=$t
		elif ((t - since > GAP)); then
			GAP=$((t - since))
		fi
		sleep 0.1
	done
}

# The primary's stream stops for 2.5 s (its sender paused, as a starved
# or stuck one would be) while the primary lives: its heartbeat link,
# apart from the stream, shows it alive, so the secondary neither takes
# over nor stands down, and protection goes on through it (no session
# lost); a failover after is exact. (When only the stream showed life,
# 1 s of silence there was a dead primary: the secondary ran the guest
# while the primary did.)
test_stalled_stream() {
	local ref
	ref=$(rp_ref "$RP_LONG") || why "no reference run" || return
	rp_sec sec 17285 --failover-timeout $RP_FO || return
	rp_pri ft 17285 "$RP_LONG" --failover-timeout $RP_FO \
		--test-fault pause=60000000,pause_ms=2500
	rp_wait_protected pri.sock || return
	# FT holds output while nothing is acknowledged: the pause shows as
	# the primary's console standing still.
	rp_gap pri.txt 6
	((GAP >= 2000)) || why "the stream never paused (longest stop of the console $GAP ms)" || return
	grep -qE "primary lost|primary unreachable|runs here" sec.err &&
		{ why "the secondary took the pause for a death: $(tail -c 400 sec.err)"; return; }
	rp_prot pri.sock
	[[ $(rp_bool protected) == true && $(rp_num links_lost) == 0 ]] ||
		why "protection was lost over the pause: $(cat prot.json)" || return
	grep -q "memstress: done" pri.txt && { why "the guest ended before the kill (too fast)"; return; }
	rp_kill "$PRI_PID"
	rp_wait "$SEC_PID" 60 || return
	[[ $WSTATUS == 0 ]] || why "secondary exited $WSTATUS: $(tail -c 400 sec.err)" || return
	grep -q "primary lost: .*resuming epoch [1-9]" sec.err ||
		why "no failover in the secondary's log: $(tail -c 400 sec.err)" || return
	rp_ft_ok "$ref" pri.txt sec.txt
}

# The primary freezes (SIGSTOP) longer than the failover timeout, well
# within its lease: the secondary suspects it, cannot take the lease, and
# stands down keeping its replica (the primary holds its output past
# it). The primary, thawed, reconnects for a new copy and dies during it:
# the secondary resumes the replica it kept, and nothing the primary
# released is lost or repeated. (A secondary that dropped its replica on
# standing down had nothing to resume.)
test_stood_down_keeps_replica() {
	local ref args="mib=32 total=4000 rate=100 seed=11" ttl=3000 kept n i
	ref=$(rp_ref "$args") || why "no reference run" || return
	rp_trap
	"$KAGAMI" witness --listen "tcp:$RP_HOST:17286" --grace 0 --insecure >wit.out 2>&1 &
	RP_PIDS+=" $!"
	rp_wait_line wit.out "serving" 100 || why "no witness: $(cat wit.out)" || return
	local lease=(--lease "witness:tcp:$RP_HOST:17286" --lease-ttl $ttl)
	rp_sec sec 17287 --failover-timeout $RP_FO "${lease[@]}" || return
	rp_pri ft 17287 "$args" --failover-timeout $RP_FO "${lease[@]}"
	rp_wait_protected pri.sock || return
	rp_wait_line pri.txt "pass=2 " 200 || why "no pass=2 at the primary" || return
	kill -STOP "$PRI_PID"
	sleep 1.8
	kill -CONT "$PRI_PID"
	rp_wait_line sec.err "lease cannot be taken" 200 ||
		why "the secondary did not stand down: $(tail -c 400 sec.err)" || return
	grep -q "lease cannot be taken.*keeping epoch [1-9]" sec.err ||
		why "the secondary did not keep its replica: $(tail -c 400 sec.err)" || return
	kept=$(grep -o "keeping epoch [0-9]*" sec.err | head -1 | grep -o "[0-9]*$")
	# The new copy begins: the primary dies in it.
	for ((i = 0; i < 1500; i++)); do
		n=$(grep -c "protecting a FT VM" sec.err)
		((n >= 2)) && break
		sleep 0.02
	done
	((n >= 2)) || why "the primary did not reconnect: $(tail -c 400 pri.err)" || return
	rp_kill "$PRI_PID"
	rp_wait "$SEC_PID" 90 || return
	[[ $WSTATUS == 0 ]] || why "secondary exited $WSTATUS: $(tail -c 400 sec.err)" || return
	grep -q "the guest runs here" sec.err || why "no failover: $(tail -c 600 sec.err)" || return
	grep -q "resuming epoch $kept\$" sec.err ||
		why "did not resume the kept epoch $kept (the new copy committed first?): $(grep 'resuming epoch' sec.err)" || return
	rp_ft_ok "$ref" pri.txt sec.txt
}


t "replicate ft: primary killed, the secondary finishes, output exact" test_ft_failover kvm
t "replicate ha: primary killed, no pass missing, final checksum right" test_ha_failover kvm
t "replicate ft: secondary killed, the primary runs on unprotected" test_kill_secondary kvm
t "replicate ft: a corrupted frame, reconnect, then failover exact" test_corrupt_frame kvm
t "replicate ft: protect again after a failover, second failover exact" test_reprotect_after_failover kvm
t "replicate ft: ctl protect replaces a protection whose secondary is lost, not one that protects" test_protect_replaces_lost_secondary kvm
t "replicate ft: the guest ends, the secondary exits 0 without running" test_guest_ends_under_protection kvm
t "replicate: a wrong key leaves the VM unprotected, the guest completes" test_wrong_key kvm
t "replicate: CLI errors are one line, exit 2" test_cli_errors
t "replicate ft: the lease key (witness) is not the replication key" test_lease_key kvm
t "replicate: a secondary disk in use is refused, the guest runs on" test_secondary_disk_in_use kvm
t "replicate: disk count mismatch, the secondary says so" test_disk_count_mismatch kvm
t_kv "drill: 20 FT failovers (primary host silenced, then killed), history linearizable" test_drill_ft release
t_kv "drill: 5 FT failovers (primary process killed), history linearizable" test_drill_ft_kill_process release
t_kv "drill: 20 HA failovers, each within one interval" test_drill_ha release
t_kv "drill: FT, secondary killed 3 times, nothing lost" test_drill_ft_kill_secondary release
t_kv "drill: FT, link cut twice (witness), one side runs, nothing lost" test_drill_ft_kill_link release
t "replicate ft: the witness dies, the primary fences; a failover then stands down" test_witness_loss kvm
t "replicate ft: the witness stalls: the primary fences before its lease ends, then resumes" test_witness_stalls kvm
t "replicate ft: the stream stalls 2.5 s, the primary beats: no takeover, no lost session" test_stalled_stream kvm
t "replicate ft: stood down (lease elsewhere), the replica kept and resumed when the primary dies in the re-copy" test_stood_down_keeps_replica kvm

rm -rf "$RP_CACHE"
