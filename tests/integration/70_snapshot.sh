# Snapshots taken while the guest runs (ctl snapshot), and restore.

MS_ARGS="mib=16 total=1536 seed=11 rate=256"

# Starts memstress (MS_ARGS, or $1) with a control socket; waits for its
# second pass line.
start_memstress() {
	timeout 120 "$KAGAMI" run --control ctl.sock --console file:before.txt \
		--cmdline "${1:-$MS_ARGS}" "$GUESTS/memstress.elf" >run.out 2>run.err &
	RUN_PID=$!
	for _ in $(seq 200); do
		grep -q "pass=2 " before.txt 2>/dev/null && return 0
		sleep 0.05
	done
	why "memstress did not start: $(cat run.err)"
}

test_snapshot_restore_exact() {
	kg run --cmdline "$MS_ARGS" "$GUESTS/memstress.elf"
	grep -v stats out >full.txt
	start_memstress || return
	"$KAGAMI" ctl ctl.sock snapshot --path snap.kgs >snap.json 2>snap.err ||
		why "snapshot failed: $(cat snap.err)" || return
	grep -q '"pause_us"' snap.json || why "no pause figure" || return
	"$KAGAMI" ctl ctl.sock quit >/dev/null
	wait $RUN_PID
	# Every registered device has its section, named by inspect: the
	# CMOS RTC is device #4.
	"$KAGAMI" inspect snap.kgs >inspect.txt || why "inspect: $(cat inspect.txt)" || return
	local d
	for d in "0 uart" "1 platform" "4 rtc"; do
		awk -v i="${d% *}" -v n="${d#* }" \
			'$3 == "device" && $4 == i && $7 == "ok" && $8 == n { f = 1 } END { exit !f }' \
			inspect.txt || why "inspect lists no device #${d% *} (${d#* }): $(cat inspect.txt)" || return
	done
	kg restore --console file:after.txt snap.kgs
	expect_status 0 || return
	# The restored run prints exactly the rest of an uninterrupted run.
	local n
	n=$(wc -l <after.txt)
	((n > 0)) || why "restored guest printed nothing" || return
	tail -n "$n" full.txt >expected.txt
	cmp -s expected.txt after.txt ||
		why "restored output is not the rest of the full run: $(diff expected.txt after.txt | head -4)"
}

test_snapshot_errors_keep_vm() {
	start_memstress || return
	"$KAGAMI" ctl ctl.sock snapshot --path /nonexistent/dir/s.kgs >/dev/null 2>snap.err
	[[ $? == 1 ]] && grep -q "No such file or directory" snap.err ||
		why "bad path: $(cat snap.err)" || return
	"$KAGAMI" ctl ctl.sock snapshot >/dev/null 2>snap.err
	grep -q "snapshot needs a path" snap.err || why "no path: $(cat snap.err)" || return
	"$KAGAMI" ctl ctl.sock status >st.json
	grep -q '"running"' st.json || why "VM not running after failed snapshots" || return
	"$KAGAMI" ctl ctl.sock snapshot --path good.kgs >/dev/null || why "snapshot failed" || return
	cp good.kgs keep.kgs
	# A failing snapshot to an existing name leaves the old file alone
	# (its temporary file cannot be created: a directory is in the way).
	mkdir good.kgs.partial
	"$KAGAMI" ctl ctl.sock snapshot --path good.kgs >/dev/null 2>snap.err
	grep -q "good.kgs.partial: Is a directory" snap.err || why "no error: $(cat snap.err)" || return
	"$KAGAMI" ctl ctl.sock quit >/dev/null
	wait $RUN_PID
	cmp -s good.kgs keep.kgs || why "snapshot file changed"
}

corrupt_restore() { # file offset expected-text
	cp snap.kgs bad.kgs
	printf '\xa5' | dd of=bad.kgs bs=1 seek="$2" conv=notrunc status=none
	kg restore --console none bad.kgs
}

test_restore_rejects() {
	start_memstress || return
	"$KAGAMI" ctl ctl.sock snapshot --path snap.kgs >/dev/null || why "snapshot" || return
	"$KAGAMI" ctl ctl.sock quit >/dev/null
	wait $RUN_PID
	# wrong magic
	corrupt_restore snap.kgs 0
	expect_status 2 && err_has "bad magic" && err_one_line || return
	# a byte of the config section's payload: checksum mismatch, named
	corrupt_restore snap.kgs 60
	expect_status 2 && err_has "section 0 (vm-config #0) at offset 32: checksum mismatch" && err_one_line || return
	# truncated
	cp snap.kgs short.kgs
	truncate -s 300000 short.kgs
	kg restore --console none short.kgs
	expect_status 2 && err_has "truncated" && err_one_line || return
	# newer major version
	cp snap.kgs v2.kgs
	printf '\x02' | dd of=v2.kgs bs=1 seek=8 conv=notrunc status=none
	kg restore --console none v2.kgs
	expect_status 2 && err_has "newer" || return
	# a byte of the guest's code (at 1 MiB): the page fails its hash
	# when the guest or the background load first needs it, and the VM
	# stops with the damaged page named
	local ram
	ram=$("$KAGAMI" inspect snap.kgs | awk '$3 == "ram" { print $2 }')
	corrupt_restore snap.kgs $((ram + 16 + 0x100000 + 123))
	expect_status 4 && err_has "snapshot bad.kgs: RAM page 0x100000 damaged (hash mismatch)" &&
		err_one_line || return
	# host resources must match the snapshot's devices
	kg restore --disk x.img snap.kgs
	expect_status 2 && err_has "the snapshot has 0 disk(s)" || return
	kg restore --mem 1G snap.kgs
	expect_status 2 && err_has "--mem: comes from the snapshot"
}

# The snapshot file changed while its restored guest runs. memstress with
# a 64 MiB working set written at 64 MiB/s checksums the whole set every
# second, so pages it has only read since the restore show what its RAM
# holds; the changes come once it has printed its first line.
LONG_ARGS="mib=64 total=640 seed=5 rate=64"

# A snapshot of memstress LONG_ARGS at its second pass, and the output of
# an uninterrupted run (full.txt).
long_snapshot() {
	if [[ ! -s full.txt ]]; then
		kg run --cmdline "$LONG_ARGS" "$GUESTS/memstress.elf"
		expect_status 0 || return
		grep -v stats "$TT/out" >full.txt
	fi
	rm -f before.txt ctl.sock
	start_memstress "$LONG_ARGS" || return
	"$KAGAMI" ctl ctl.sock snapshot --path snap.kgs >/dev/null 2>snap.err ||
		why "snapshot failed: $(cat snap.err)" || return
	"$KAGAMI" ctl ctl.sock quit >/dev/null
	wait $RUN_PID
}

# Restores snap.kgs (with RESTORE_OPTS), runs "$@" once the guest has
# printed a line, and waits for kagami (STATUS, $TT/err).
restore_then() {
	rm -f after.txt
	timeout -k 5 60 "$KAGAMI" restore --console file:after.txt \
		$RESTORE_OPTS snap.kgs >"$TT/out" 2>"$TT/err" &
	local pid=$! i
	for i in $(seq 400); do
		[[ -s after.txt ]] && break
		sleep 0.025
	done
	"$@"
	wait $pid
	STATUS=$?
	[[ -s after.txt ]] || why "the restored guest printed nothing: $(head -c 300 "$TT/err")"
}

# Every RAM byte past the first MiB of the snapshot, overwritten in place.
overwrite_ram() {
	local ram
	ram=$("$KAGAMI" inspect snap.kgs | awk '$3 == "ram" { print $2; exit }')
	head -c $((200 << 20)) /dev/zero | tr '\0' '\245' |
		dd of=snap.kgs bs=1M seek=$((ram + 16 + (1 << 20))) \
			oflag=seek_bytes conv=notrunc status=none
}

# A damaged snapshot is reported as one: one line, exit 4 (a host error),
# never a guest crash.
damaged() { # what
	expect_status 4 && err_has "snapshot snap.kgs: RAM page 0x" &&
		err_has "damaged ($1" && err_one_line
}

# Either the guest never saw the change (all its RAM was in and verified
# before it came: it finishes exactly as the uninterrupted run), or the
# restore stopped with the damaged-snapshot line.
unaffected_or_damaged() { # what
	if [[ $STATUS == 0 ]]; then
		tail -n "$(wc -l <after.txt)" full.txt >expected.txt
		grep -q "done checksum" after.txt && cmp -s expected.txt after.txt ||
			why "the guest saw the change: $(diff expected.txt after.txt | head -4)"
	else
		damaged "$1"
	fi
}

test_restore_file_truncated() {
	long_snapshot || return
	RESTORE_OPTS= restore_then truncate -s 1M snap.kgs || return
	unaffected_or_damaged truncated || return
	# The background load held back: it meets the cut file.
	long_snapshot || return
	RESTORE_OPTS="--test-prefetch-delay 3000" restore_then \
		truncate -s 1M snap.kgs || return
	damaged truncated
}

test_restore_file_overwritten() {
	long_snapshot || return
	RESTORE_OPTS= restore_then overwrite_ram || return
	unaffected_or_damaged "hash mismatch" || return
	long_snapshot || return
	RESTORE_OPTS="--test-prefetch-delay 3000" restore_then overwrite_ram ||
		return
	damaged "hash mismatch"
}

t "snapshot while running, restore continues exactly" test_snapshot_restore_exact kvm
t "failed snapshots leave the VM running" test_snapshot_errors_keep_vm kvm
t "restore rejects corrupt, truncated and foreign snapshots" test_restore_rejects kvm
t "the snapshot truncated during a restore: damaged, not a guest crash" test_restore_file_truncated kvm
t "the snapshot overwritten during a restore: the guest never sees it" test_restore_file_overwritten kvm
