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
# They skip while kvstore.elf is missing, and without root (a failure
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
