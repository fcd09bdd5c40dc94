# Record and replay: `kagami record --log FILE` runs a guest in
# deterministic mode and logs every input; `kagami replay FILE` re-executes
# it and checks every exit and state digest. A matching replay prints
# "replay matched the recording: N exits, M digests..." and exits 0; a
# divergence exits 1 with a report; a corrupt, cut or foreign file is
# refused (exit 2) naming the section and its offset.
#
# The kvstore tests record under client traffic in network namespaces
# (tests/netns.sh, the topology of 40_kvstore.sh with its own names):
#
#   switch ns ── sw0 ─┬─ vmhost (10.77.0.1): kagami record, TAP rkv0
#                     │     └─ the guest: 10.77.0.10, UDP port 7000
#                     └─ client (10.77.0.2): kagami kv load
#
# They skip while kvstore.elf is missing or without root (both failures
# under CI=true).

source tests/netns.sh

RR_KV_IP=10.77.0.10
RR_KV_PORT=7000
RR_KV_MAC=52:54:00:77:00:1a

# rr_record NAME ARGS...: `kagami record --log NAME.rec --console
# file:NAME.con ARGS`; RSTATUS, stderr in NAME.rerr.
rr_record() {
	local name=$1
	shift
	timeout -k 5 "${KG_TIMEOUT:-120}" "$KAGAMI" record --log "$name.rec" \
		--console "file:$name.con" "$@" >"$name.rout" 2>"$name.rerr"
	RSTATUS=$?
}

# rr_replay NAME ARGS...: `kagami replay --console file:NAME.replay.con
# ARGS NAME.rec`; PSTATUS, stderr in NAME.perr.
rr_replay() {
	local name=$1
	shift
	timeout -k 5 "${KG_TIMEOUT:-120}" "$KAGAMI" replay \
		--console "file:$name.replay.con" "$@" "$name.rec" \
		>"$name.pout" 2>"$name.perr"
	PSTATUS=$?
}

# rr_count FILE WHAT: N of the first "N WHAT" on the summary line of a
# record ("kagami record: F: N exits, M digests") or replay ("replay
# matched the recording: N exits, M digests") in FILE.
rr_count() {
	grep -E "kagami record: .*: [0-9]+ exits|replay matched the recording" "$1" |
		head -1 | grep -oE "[0-9]+ $2" | head -1 | cut -d' ' -f1
}

# rr_matched NAME: the replay of NAME exited 0, said it matched, with the
# recording's exit count and as many digests (more than 0 unless
# NAME.rec was made with --digest-ms 0).
rr_matched() {
	local name=$1 rexits rdig pexits pdig
	[[ $PSTATUS == 0 ]] ||
		why "$name: replay exited $PSTATUS: $(grep -v '^kagami: replay: end' "$name.perr" | head -c 600)" || return
	grep -q "replay matched the recording" "$name.perr" ||
		why "$name: no 'replay matched': $(head -c 400 "$name.perr")" || return
	rexits=$(rr_count "$name.rerr" exits) rdig=$(rr_count "$name.rerr" digests)
	pexits=$(rr_count "$name.perr" exits) pdig=$(rr_count "$name.perr" digests)
	[[ -n $rexits && -n $rdig ]] || why "$name: no record summary line: $(head -c 300 "$name.rerr")" || return
	[[ $pexits == "$rexits" ]] || why "$name: replayed $pexits exits, recorded $rexits" || return
	[[ $pdig == "$rdig" ]] || why "$name: $pdig digests matched, $rdig recorded" || return
	((rdig > 0)) || why "$name: no digest recorded: $(head -c 300 "$name.rerr")"
}

# rr_sections FILE KIND: "offset length" of each KIND section (inspect's
# table: index offset kind instance version length crc).
rr_sections() {
	"$KAGAMI" inspect "$1" 2>/dev/null | awk -v k="$2" '$3 == k { print $2, $6 }'
}

# rr_patch FILE SECTION FIELD FMT OP [nocrc]: edits a field of the section
# at offset SECTION (FIELD: offset in its payload; FMT: python struct
# format; OP: +N, =N or ^N), then recomputes the section's CRC32C (a
# corruption the checksum does not catch: the log decoder must) unless
# nocrc is given.
rr_patch() {
	python3 - "$@" <<-'EOF'
		import struct, sys
		path, sec, field, fmt, op = sys.argv[1:6]
		sec, field = int(sec), int(field)
		data = bytearray(open(path, "rb").read())
		at = sec + 16 + field
		v = struct.unpack_from(fmt, data, at)[0]
		n = int(op[1:], 0)
		v = {"+": v + n, "=": n, "^": v ^ n}[op[0]]
		struct.pack_into(fmt, data, at, v)
		if len(sys.argv) < 7:
		    tab = []
		    for i in range(256):
		        c = i
		        for _ in range(8):
		            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
		        tab.append(c)
		    end = sec + 16 + struct.unpack_from("<Q", data, sec + 8)[0]
		    c = 0xFFFFFFFF
		    for b in data[sec:end]:
		        c = tab[(c ^ b) & 0xFF] ^ (c >> 8)
		    struct.pack_into("<I", data, end, c ^ 0xFFFFFFFF)
		open(path, "wb").write(bytes(data))
	EOF
}

# Background kagamis of a test, stopped when the test's subshell exits
# (also on a failure's early return): `trap rr_reap EXIT` and add each pid
# to RR_PIDS. A TERM to `timeout` reaches the kagami under it.
RR_PIDS=""
rr_reap() {
	local p
	for p in $RR_PIDS; do
		kill -TERM "$p" 2>/dev/null
	done
	wait 2>/dev/null
}

# rr_mem NAME SEED: records memstress (a short run, a digest every 10 ms).
rr_mem() {
	rr_record "$1" --mem 64M --digest-ms 10 \
		--cmdline "mib=16 total=${3:-96} rate=100 stats seed=$2" \
		"$GUESTS/memstress.elf"
	[[ $RSTATUS == 0 ]] || why "$1: record exited $RSTATUS: $(head -c 400 "$1.rerr")" || return
	[[ -f $1.rec && ! -e $1.rec.tmp ]] || why "$1: no $1.rec (or $1.rec.tmp left): $(ls)" || return
	grep -q "memstress: done checksum=" "$1.con" || why "$1: the recorded guest did not finish: $(tail -c 300 "$1.con")"
}

# ---- memstress ------------------------------------------------------

test_rr_memstress_seeds() {
	local s n=0 rsum psum
	for s in 1 7 42 1234 99991; do
		rr_mem m$s $s $((64 + 16 * n)) || return
		n=$((n + 1))
		rr_replay m$s
		rr_matched m$s || return
		rsum=$(grep -o "done checksum=[0-9a-f]*" m$s.con)
		psum=$(grep -o "done checksum=[0-9a-f]*" m$s.replay.con)
		[[ -n $psum && $psum == "$rsum" ]] ||
			why "seed $s: replay '$psum', recorded '$rsum'" || return
		# Time comes from the log: even the stats line is the same.
		cmp -s m$s.con m$s.replay.con ||
			why "seed $s: the replayed console differs: $(diff m$s.con m$s.replay.con | head -5)" || return
	done
	# The same seed without recording: the same result.
	timeout -k 5 60 "$KAGAMI" run --deterministic --mem 64M --console file:det.con \
		--cmdline "mib=16 total=64 rate=100 stats seed=1" "$GUESTS/memstress.elf" \
		>/dev/null 2>det.err || why "run --deterministic: $(head -c 300 det.err)" || return
	[[ $(grep -o "done checksum=[0-9a-f]*" det.con) == "$(grep -o "done checksum=[0-9a-f]*" m1.con)" ]] ||
		why "run --deterministic: $(tail -1 det.con), record: $(tail -1 m1.con)"
}

test_rr_check_and_no_digests() {
	rr_mem m 5 || return
	kg replay --check m.rec
	expect_status 0 || return
	err_has "m.rec: $(rr_count m.rerr exits) exits, $(rr_count m.rerr digests) digests" || return
	[[ ! -s $TT/out ]] || why "--check wrote to stdout: $(head -c 200 "$TT/out")" || return
	# Without digests: the exits are still all checked.
	rr_replay m --no-digests
	[[ $PSTATUS == 0 ]] && grep -q "replay matched the recording: $(rr_count m.rerr exits) exits, 0 digests" m.perr ||
		why "--no-digests: status $PSTATUS: $(head -c 300 m.perr)" || return
	cmp -s m.con m.replay.con || why "--no-digests: the replayed console differs"
}

# ---- kvstore under client traffic -----------------------------------

test_rr_kvstore_load() {
	netns_setup &&
	netns_add_host vmhost 10.77.0.1 &&
	netns_add_host client 10.77.0.2 &&
	netns_add_tap vmhost rkv0 || { why "network namespace setup failed"; return; }
	truncate -s 256M disk.img
	local s i pid acked st before
	# One disk for every seed: later recordings boot over earlier data
	# (the log's device writes carry what the guest read).
	for s in 11 22 33; do
		netns_spawn vmhost timeout -k 5 120 "$KAGAMI" record --log kv$s.rec \
			--digest-ms 50 --mem 128M --disk disk.img \
			--net "tap:rkv0,mac=$RR_KV_MAC" --console "file:kv$s.con" \
			--cmdline "ip=$RR_KV_IP/24 port=$RR_KV_PORT" "$GUESTS/kvstore.elf" \
			>kv$s.rout 2>kv$s.rerr
		pid=$NETNS_PID
		for i in $(seq 300); do
			grep -q "kvstore: ready" kv$s.con 2>/dev/null && break
			kill -0 $pid 2>/dev/null || break
			sleep 0.1
		done
		grep -q "kvstore: ready" kv$s.con 2>/dev/null ||
			why "seed $s: no 'kvstore: ready': $(tail -c 300 kv$s.rerr) $(tail -c 200 kv$s.con 2>/dev/null)" || return
		netns_exec client timeout -k 5 60 "$KAGAMI" kv --server "$RR_KV_IP:$RR_KV_PORT" \
			load --duration 2 --clients 4 --keys 300 --seed $s \
			--journal "$TT/journal$s" >load$s.json 2>load$s.err
		st=$?
		[[ $st == 0 ]] || why "seed $s: load exited $st: $(head -c 300 load$s.err)" || return
		acked=$(grep -o '"acked":[0-9]*' load$s.json | cut -d: -f2)
		((acked > 50)) || why "seed $s: only $acked requests acked: $(cat load$s.json)" || return
		kill -TERM $pid
		wait $pid
		st=$?
		[[ $st == 143 || $st == 0 ]] || why "seed $s: record exited $st after SIGTERM: $(tail -c 400 kv$s.rerr)" || return
		[[ -f kv$s.rec && ! -e kv$s.rec.tmp ]] || why "seed $s: no complete recording: $(ls) $(tail -c 300 kv$s.rerr)" || return
		before=$(md5sum <disk.img)
		rr_replay kv$s
		rr_matched kv$s || return
		[[ $(md5sum <disk.img) == "$before" ]] || why "seed $s: the replay changed the disk" || return
		cmp -s kv$s.con kv$s.replay.con ||
			why "seed $s: the replayed console differs: $(diff kv$s.con kv$s.replay.con | head -5)" || return
		grep -q ", 0 device writes" kv$s.rerr &&
			{ why "seed $s: no device write recorded under load: $(head -c 300 kv$s.rerr)"; return; }
	done
	netns_cleanup
}

# ---- divergence -----------------------------------------------------

test_rr_rdtsc_diverges() {
	rr_record r --cmdline "rounds=200" "$GUESTS/rdtsc.elf"
	[[ $RSTATUS == 0 ]] || why "record exited $RSTATUS: $(head -c 300 r.rerr)" || return
	rr_replay r
	[[ $PSTATUS == 1 ]] || why "replay exited $PSTATUS, expected 1: $(head -c 400 r.perr)" || return
	grep -q "kagami replay: DIVERGED" r.perr || why "no DIVERGED: $(head -c 400 r.perr)" || return
	grep -qE "replay diverged at exit [0-9]+ " r.perr || why "no exit index: $(head -c 400 r.perr)" || return
	grep -qE "^ *expected: " r.perr && grep -qE "^ *actual: " r.perr ||
		why "no expected:/actual: lines: $(head -c 400 r.perr)" || return
	grep -q "registers that differ" r.perr || why "no 'registers that differ': $(head -c 400 r.perr)" || return
	grep -qE "^ +(r[a-z0-9]+) +0x[0-9a-f]+ -> 0x[0-9a-f]+" r.perr ||
		why "no register named with both values: $(head -c 500 r.perr)" || return
	grep -q "replay matched" r.perr && { why "said matched too: $(head -c 400 r.perr)"; return; }
	# The console stopped at the divergence: the replay did not finish.
	grep -q "rdtsc: done" r.replay.con && { why "the diverged replay ran to the end"; return; }
	return 0
}

# ---- interrupts: the 8259A/8254 timer --------------------------------

# ticks.elf takes IRQ 0 from the PIT on vector 0x20 (sdk_irq_enable_timer)
# and hashes the tick count at every exit: a replay that injected one
# interrupt at another exit would print other lines.

# rr_ticks_done CON: CON ends with "ticks: done ticks=N" and N > 0; prints N.
rr_ticks_done() {
	grep -oE "^ticks: done ticks=[0-9]+" "$1" | grep -oE "[0-9]+$"
}

test_rr_ticks() {
	local rirq pirq n
	rr_record t --digest-ms 10 --cmdline "hz=200 rounds=40" "$GUESTS/ticks.elf"
	[[ $RSTATUS == 0 ]] || why "record exited $RSTATUS: $(head -c 400 t.rerr) $(tail -c 300 t.con)" || return
	n=$(rr_ticks_done t.con)
	[[ -n $n ]] && ((n >= 40)) || why "the recorded guest did not finish with ticks: $(tail -c 300 t.con)" || return
	grep -q "deterministic=1" t.con || why "not deterministic: $(head -1 t.con)" || return
	rr_replay t
	rr_matched t || return
	rirq=$(rr_count t.rerr interrupts) pirq=$(rr_count t.perr interrupts)
	[[ -n $rirq ]] && ((rirq >= n)) ||
		why "the record summary reports '${rirq}' interrupts for $n ticks: $(head -c 300 t.rerr)" || return
	[[ $pirq == "$rirq" ]] || why "replayed $pirq interrupts, recorded $rirq: $(head -c 300 t.perr)" || return
	cmp -s t.con t.replay.con ||
		why "the replayed console differs: $(diff t.con t.replay.con | head -5)"
}

# Under plain kagami run the in-kernel 8259A and 8254 deliver IRQ 0.
test_ticks_run() {
	local n
	kg run --console "file:$TT/run.con" --cmdline "hz=200 rounds=10" "$GUESTS/ticks.elf"
	expect_status 0 || return
	grep -q "deterministic=0" run.con || why "deterministic: $(head -1 run.con)" || return
	n=$(rr_ticks_done run.con)
	[[ -n $n ]] && ((n >= 10)) || why "no ticks: $(tail -c 300 run.con)" || return
	# Every round saw the count advance.
	[[ $(grep -cE "^ticks: round=[0-9]+ ticks=[1-9]" run.con) == 10 ]] ||
		why "rounds without ticks: $(head -c 400 run.con)" || return
	kg run --console "file:$TT/bad.con" --cmdline "hz=5" "$GUESTS/ticks.elf"
	expect_status 2 && grep -q "out of range" bad.con || why "hz=5: $(cat bad.con)"
}

# run --deterministic: kagami's own PIC and PIT, interrupts at exits only
# (the guest exits 1 if a tick arrives between exits).
test_ticks_run_deterministic() {
	local n
	kg run --deterministic --console "file:$TT/det.con" --cmdline "hz=200 rounds=10" \
		"$GUESTS/ticks.elf"
	expect_status 0 || why "$(tail -c 300 det.con)" || return
	grep -q "deterministic=1" det.con || why "not deterministic: $(head -1 det.con)" || return
	n=$(rr_ticks_done det.con)
	[[ -n $n ]] && ((n >= 10)) || why "no ticks: $(tail -c 300 det.con)"
}

# ---- refused files --------------------------------------------------

test_rr_corrupt() {
	trap rr_reap EXIT
	rr_mem m 3 256 || return
	local secs last off len at cut
	secs=$(rr_sections m.rec exec-log)
	(($(wc -l <<<"$secs") >= 2)) || why "expected 2+ exec-log sections: $(cat m.rerr)" || return
	last=$(tail -1 <<<"$secs")
	off=${last% *} len=${last#* }

	# One flipped byte in the middle of the last log section's records.
	cp m.rec flip.rec
	rr_patch flip.rec $off $((24 + (len - 24) / 2)) B ^0xff nocrc ||
		why "cannot edit the file (python3)" || return
	cmp -s m.rec flip.rec && { why "the byte did not change"; return; }
	kg replay flip.rec
	expect_status 2 && err_one_line || return
	grep -qE "section [0-9]+ \(exec-log[^)]*\) at offset $off: " "$TT/err" ||
		why "does not name the log section at offset $off: $(cat "$TT/err")" || return
	err_has checksum || return
	kg replay --check flip.rec
	expect_status 2 || return

	# Edited with the checksum fixed: the log decoder must catch it.
	# One record more than the section holds:
	cp m.rec count.rec
	rr_patch count.rec $off 16 '<Q' +1 || return
	kg replay count.rec
	expect_status 2 && err_one_line || return
	grep -qE "section [0-9]+ \(exec-log[^)]*\) at offset $off: execution log record [0-9]+ \(at byte [0-9]+ of its section's records" "$TT/err" ||
		why "bad record count: $(cat "$TT/err")" || return
	# A section whose first exit does not continue the previous one's:
	cp m.rec first.rec
	rr_patch first.rec $off 8 '<Q' =0 || return
	kg replay first.rec
	expect_status 2 && err_one_line || return
	grep -qE "at offset $off: .*starts at exit 0, expected [1-9]" "$TT/err" ||
		why "first exit: $(cat "$TT/err")" || return
	# Unknown section flags:
	cp m.rec flags.rec
	rr_patch flags.rec $off 0 B ^0x80 || return
	kg replay flags.rec
	expect_status 2 && err_one_line && err_has "at offset $off: " && err_has "flags" || return
	# The records length (uncompressed) one byte short:
	cp m.rec rawlen.rec
	rr_patch rawlen.rec $off 4 '<I' +-1 || return
	kg replay rawlen.rec
	expect_status 2 && err_one_line && err_has "at offset $off: " || return

	# Cut in the middle of the last log section.
	cut=$((off + 16 + len / 2))
	head -c $cut m.rec >cut.rec
	kg replay cut.rec
	expect_status 2 && err_one_line || return
	grep -qE "section [0-9]+ \(exec-log[^)]*\) at offset $off" "$TT/err" ||
		why "the cut does not name the section at $off: $(cat "$TT/err")" || return
	grep -qiE "truncated|cut|ends" "$TT/err" || why "does not say it was cut: $(cat "$TT/err")" || return
	# Cut just before the end marker: every log section is whole.
	head -c $((off + 16 + len + 4)) m.rec >noend.rec
	kg replay noend.rec
	expect_status 2 && err_one_line && err_has "end marker" || return

	# Not a recording: a snapshot of a running (non-deterministic) VM.
	timeout -k 5 60 "$KAGAMI" run --mem 32M --control s.sock --console none \
		--cmdline "mib=8 total=1000000 rate=100 seed=1" "$GUESTS/memstress.elf" \
		>run.out 2>run.err &
	local pid=$! i
	RR_PIDS+=" $pid"
	for i in $(seq 100); do
		[[ -S s.sock ]] && break
		sleep 0.1
	done
	timeout 30 "$KAGAMI" ctl s.sock snapshot "$PWD/s.snap" >snap.json 2>&1
	kill -TERM $pid
	wait $pid
	[[ -s s.snap ]] || why "no snapshot: $(cat snap.json)" || return
	kg replay s.snap
	expect_status 2 && err_one_line || return
	grep -qE "not a (kagami )?recording" "$TT/err" || why "snapshot: $(cat "$TT/err")" || return
	# Nor is anything else.
	head -c 5000 /dev/urandom >junk.rec
	kg replay junk.rec
	expect_status 2 && err_one_line || return
	: >empty.rec
	kg replay empty.rec
	expect_status 2 && err_one_line || return
	kg replay missing.rec
	expect_status 2 && err_one_line && err_has "missing.rec" && err_has "No such file"
}

# ---- --until --------------------------------------------------------

# rr_ctl SOCK ARGS...: kagami ctl; CSTATUS, output in ctl.json.
rr_ctl() {
	timeout -k 2 30 "$KAGAMI" ctl "$@" >ctl.json 2>&1
	CSTATUS=$?
}

rr_exits_now() { # the exits the status reports (pio + mmio + other)
	grep -oE '"(pio|mmio|other)":[[:space:]]*[0-9]+' ctl.json | grep -oE '[0-9]+$' |
		awk '{ s += $1 } END { print s + 0 }'
}

test_rr_until() {
	trap rr_reap EXIT
	rr_mem m 9 || return
	local exits n pid i e1 e2 st
	exits=$(rr_count m.rerr exits)
	((exits > 100)) || why "only $exits exits recorded" || return
	n=$((exits / 2))
	timeout -k 5 120 "$KAGAMI" replay --until $n --control u.sock \
		--console file:u.con m.rec >u.out 2>u.err &
	pid=$!
	RR_PIDS+=" $pid"
	for i in $(seq 300); do
		[[ -S u.sock ]] && { rr_ctl u.sock status; grep -q '"paused"' ctl.json && break; }
		kill -0 $pid 2>/dev/null || break
		sleep 0.1
	done
	grep -q '"state":[[:space:]]*"paused"' ctl.json ||
		why "not paused at --until $n: $(cat ctl.json) $(head -c 300 u.err)" || return
	e1=$(rr_exits_now)
	sleep 1
	kill -0 $pid 2>/dev/null || why "the replay ended instead of staying paused: $(head -c 300 u.err)" || return
	rr_ctl u.sock status
	[[ $CSTATUS == 0 ]] || why "ctl status: $(cat ctl.json)" || return
	e2=$(rr_exits_now)
	[[ $e1 == "$e2" ]] || why "the paused VM ran on: $e1 then $e2 exits" || return
	grep -q "memstress: done" u.con && { why "the guest finished despite --until"; return; }
	head -c "$(stat -c %s u.con)" m.con | cmp -s - u.con ||
		why "the paused replay's console is not a prefix of the recorded one" || return
	if "$KAGAMI" ctl u.sock help 2>/dev/null | grep -q '"snapshot"'; then
		rr_ctl u.sock snapshot "$PWD/u.snap"
		[[ $CSTATUS == 0 && -s u.snap ]] || why "ctl snapshot while paused: $(cat ctl.json)" || return
		"$KAGAMI" inspect u.snap >/dev/null 2>&1 || why "the snapshot does not inspect: $("$KAGAMI" inspect u.snap 2>&1 | tail -1)" || return
		rm -f u.snap
	fi
	rr_ctl u.sock quit
	wait $pid
	st=$?
	[[ $st == 0 ]] || why "replay --until exited $st after ctl quit: $(head -c 300 u.err)" || return
	grep -q "replay paused after exit $n " u.err || why "no 'paused after exit $n': $(head -c 300 u.err)" || return

	# Paused again, ended by SIGTERM.
	n=$((exits / 4))
	# --foreground: timeout passes one SIGTERM on (by default it signals
	# the process group too: two, and the second may come after kagami
	# stopped listening and turn its status into 143).
	timeout --foreground -k 5 120 "$KAGAMI" replay --until $n --control u2.sock --console none \
		m.rec >u2.out 2>u2.err &
	pid=$!
	RR_PIDS+=" $pid"
	: >ctl.json
	for i in $(seq 300); do
		[[ -S u2.sock ]] && { rr_ctl u2.sock status; grep -q '"paused"' ctl.json && break; }
		kill -0 $pid 2>/dev/null || break
		sleep 0.1
	done
	grep -q '"paused"' ctl.json || why "not paused at --until $n: $(cat ctl.json) $(head -c 300 u2.err)" || return
	kill -0 $pid 2>/dev/null || why "replay --until $n did not stay: $(head -c 300 u2.err)" || return
	kill -TERM $pid
	wait $pid
	st=$?
	[[ $st == 0 ]] || why "replay --until exited $st after SIGTERM: $(head -c 300 u2.err)" || return
	grep -q "replay paused after exit $n " u2.err || why "no 'paused after exit $n': $(head -c 300 u2.err)" || return

	# Beyond the last exit: refused before anything runs.
	kg replay --until "$exits" m.rec
	expect_status 2 && err_one_line && err_has "--until $exits" || return
	kg replay --until 99999999999 m.rec
	expect_status 2 && err_one_line
}

# ctl resume on a replay paused by --until: the guest must not run on
# unchecked past the pause (beyond the log, on inputs nobody recorded).
# Either resume is refused, or the replay goes on checking every exit and
# ends matched at the recording's last exit.
test_rr_until_resume() {
	trap rr_reap EXIT
	rr_mem m 13 || return
	local exits n pid i st now
	exits=$(rr_count m.rerr exits)
	n=$((exits / 5))
	timeout -k 5 120 "$KAGAMI" replay --until $n --control r.sock --console file:r.con \
		m.rec >r.out 2>r.err &
	pid=$!
	RR_PIDS+=" $pid"
	: >ctl.json
	for i in $(seq 300); do
		[[ -S r.sock ]] && { rr_ctl r.sock status; grep -q '"paused"' ctl.json && break; }
		kill -0 $pid 2>/dev/null || break
		sleep 0.1
	done
	grep -q '"paused"' ctl.json || why "not paused at --until $n: $(cat ctl.json) $(head -c 300 r.err)" || return
	rr_ctl r.sock resume
	if [[ $CSTATUS == 0 ]]; then
		for i in $(seq 100); do
			kill -0 $pid 2>/dev/null || break
			rr_ctl r.sock status
			now=$(rr_exits_now)
			((now <= exits)) || break
			sleep 0.1
		done
		rr_ctl r.sock status
		now=$(rr_exits_now)
		kill -TERM $pid 2>/dev/null
		wait $pid
		st=$?
		((now <= exits)) ||
			why "after ctl resume the guest ran on unchecked: $now exits, the recording has $exits; the replay then exited $st: $(tr '\n' '|' <r.err | head -c 300)" || return
		[[ $st == 0 ]] && grep -q "replay matched the recording: $exits exits" r.err ||
			why "resumed replay: status $st: $(head -c 300 r.err)"
	else
		kill -TERM $pid
		wait $pid
		grep -q "replay paused after exit $n " r.err || why "no 'paused after exit $n': $(head -c 300 r.err)"
	fi
}

# ctl pause/resume and a snapshot while recording: the recording stays
# whole and replays with every digest matching. The snapshot would take
# the dirty-page log the digests are computed from: it is refused with
# one line saying why, and nothing else changes.
test_rr_record_ctl() {
	trap rr_reap EXIT
	rr_record p --mem 32M --digest-ms 10 --control p.sock \
		--cmdline "mib=16 total=200 rate=100 stats seed=4" "$GUESTS/memstress.elf" &
	local pid=$! i
	for i in $(seq 100); do
		[[ -S p.sock ]] && break
		sleep 0.1
	done
	sleep 0.3
	rr_ctl p.sock pause && [[ $CSTATUS == 0 ]] || why "ctl pause: $(cat ctl.json)" || return
	sleep 0.3
	rr_ctl p.sock resume && [[ $CSTATUS == 0 ]] || why "ctl resume: $(cat ctl.json)" || return
	sleep 0.2
	rr_ctl p.sock snapshot "$PWD/p.snap"
	[[ $CSTATUS != 0 ]] || why "ctl snapshot while recording succeeded: $(cat ctl.json)" || return
	grep -q "not while recording" ctl.json || why "snapshot refusal does not say why: $(cat ctl.json)" || return
	[[ ! -e p.snap ]] || why "a refused snapshot left p.snap" || return
	wait $pid
	[[ -f p.rec ]] || why "no recording after a snapshot: $(cat p.rerr 2>/dev/null | tr '\n' '|' | head -c 300)" || return
	grep -q "memstress: done" p.con || why "the recorded guest did not finish: $(tail -c 200 p.con)" || return
	rr_replay p
	rr_matched p || return
	cmp -s p.con p.replay.con || why "the replayed console differs"
}

# ---- CLI ------------------------------------------------------------

test_rr_cli_errors() {
	kg record "$GUESTS/hello.elf"
	expect_status 2 && err_one_line && err_has "--log" || return
	kg record --log x.rec --cpus 2 "$GUESTS/hello.elf"
	expect_status 2 && err_one_line && err_has "needs exactly 1 vCPU" || return
	[[ ! -e x.rec && ! -e x.rec.tmp ]] || why "a refused record left $(ls x.rec*)" || return
	kg run --deterministic --cpus 2 "$GUESTS/hello.elf"
	expect_status 2 && err_one_line && err_has "needs exactly 1 vCPU" || return
	kg record --log x.rec
	expect_status 2 && err_one_line || return
	kg record --log x.rec --frob "$GUESTS/hello.elf"
	expect_status 2 && err_one_line && err_has "unknown option '--frob'" || return
	kg record --log x.rec --digest-ms abc "$GUESTS/hello.elf"
	expect_status 2 && err_one_line && err_has "--digest-ms 'abc'" || return
	kg record --log "$TT/no/such/dir/x.rec" "$GUESTS/hello.elf"
	expect_status 2 && err_one_line || return
	kg replay
	expect_status 2 && err_one_line && err_has "no recording given" || return
	kg replay a.rec b.rec
	expect_status 2 && err_one_line || return
	kg replay --frob x.rec
	expect_status 2 && err_one_line && err_has "unknown option '--frob'" || return
	kg replay --until abc x.rec
	expect_status 2 && err_one_line && err_has "--until 'abc'" || return
	kg replay --until -1 x.rec
	expect_status 2 && err_one_line || return
	kg replay --until
	expect_status 2 && err_one_line || return
	kg record --help
	expect_status 0 && out_has "--log FILE" || return
	kg replay --help
	expect_status 0 && out_has "--until"
}

# ---- a recording that never completed --------------------------------

test_rr_sigkill() {
	trap rr_reap EXIT
	# kagami itself (no timeout wrapper), so that the SIGKILL reaches it.
	"$KAGAMI" record --log k.rec --mem 32M --console file:k.con \
		--cmdline "mib=16 total=1000000 rate=100 seed=1" "$GUESTS/memstress.elf" \
		>k.out 2>k.err &
	local pid=$! i
	RR_PIDS+=" $pid"
	for i in $(seq 300); do
		(($(stat -c %s k.rec.tmp 2>/dev/null || echo 0) > 200000)) && break
		kill -0 $pid 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL $pid
	wait $pid
	[[ $? == 137 ]] || why "record did not die of SIGKILL: $(head -c 300 k.err)" || return
	[[ ! -e k.rec ]] || why "k.rec exists after SIGKILL" || return
	[[ -s k.rec.tmp ]] || why "no k.rec.tmp after SIGKILL: $(ls)" || return
	kg replay k.rec.tmp
	expect_status 2 && err_one_line || return
	grep -qiE "end marker|truncated" "$TT/err" || why "not refused as cut: $(cat "$TT/err")" || return
	kg replay --check k.rec.tmp
	expect_status 2
}


t "record/replay: memstress, 5 seeds, every digest matches, same output" test_rr_memstress_seeds kvm
t "record/replay: --check summary, --no-digests" test_rr_check_and_no_digests kvm
t_kv "record/replay: kvstore under load, 3 seeds, replay without I/O matches" test_rr_kvstore_load
t "record/replay: rdtsc diverges, the report names exit and registers" test_rr_rdtsc_diverges kvm
t "record/replay: timer interrupts (ticks, 200 Hz), replay matches, same output" test_rr_ticks kvm
t "run: timer interrupts from the in-kernel PIC/PIT advance (ticks)" test_ticks_run kvm
t "run --deterministic: timer interrupts from kagami's PIC/PIT advance (ticks)" test_ticks_run_deterministic kvm
t "record/replay: corrupt, cut and foreign files are refused (exit 2)" test_rr_corrupt kvm
t "record/replay: --until pauses, ctl answers, quit and SIGTERM end it" test_rr_until kvm
t "record/replay: ctl resume after --until does not run the guest unchecked" test_rr_until_resume kvm
t "record/replay: ctl pause, resume and snapshot while recording" test_rr_record_ctl kvm
t "record/replay: CLI errors are one line, exit 2" test_rr_cli_errors
t "record/replay: record killed -9 leaves FILE.tmp, which is refused" test_rr_sigkill kvm
