# A migration source that tries to make `kagami receive` hold memory
# without bound (build/tests/mkstream --send: a valid HELLO, header and
# configuration of a 64 MiB VM, then the hostile part): what the receiver
# holds for a peer is bounded by --max-stream-memory (default 2x the
# guest's RAM + 64 MiB), and beyond it the migration is refused at once
# with one line. Before, a section announcing 1 GiB was allocated before
# a byte of it came (then the receiver waited 10 s for the rest), and an
# epoch that never ended was staged whole (2 GiB here).

HOSTILE=$BUILD/tests/mkstream

# hostile HOW [receive options]: runs kagami receive against the hostile
# source; STATUS, $TT/err (the receiver's), $TT/rss (its peak RSS in KiB
# when /usr/bin/time is there), $TT/src (what the source heard).
# --insecure: mkstream does not authenticate (the budget is the same
# with a key: an authenticated peer may still be broken).
hostile() {
	[[ -x $HOSTILE ]] || { why "$HOSTILE missing (make $HOSTILE)"; return 1; }
	local timer=()
	[[ -x /usr/bin/time ]] && timer=(/usr/bin/time -f %M -o "$TT/rss")
	rm -f r.sock "$TT/rss"
	"${timer[@]}" timeout -k 5 60 "$KAGAMI" receive --listen unix:r.sock \
		--console none --insecure "${@:2}" >"$TT/out" 2>"$TT/err" &
	local pid=$! i
	for i in $(seq 200); do
		[[ -S r.sock ]] && break
		sleep 0.05
	done
	timeout 60 "$HOSTILE" --send unix:r.sock --hostile "$1" >"$TT/src" 2>&1
	wait $pid
	STATUS=$?
}

# The refusal: exit 1, one line after the listening line, naming the
# section and the budget; the source heard it as the receiver's ABORT.
refused() { # budget-text
	expect_status 1 || return
	local lines
	lines=$(grep -v '^kagami receive: listening on\|^kagami receive: warning: --insecure' "$TT/err" |
		grep -vc '^==')
	[[ $lines == 1 ]] || why "stderr has $lines lines: $(head -c 400 "$TT/err")" || return
	err_has "incoming migration failed: section " &&
		err_has "(ram-pages #0)" &&
		err_has "beyond the stream memory budget of $1 (--max-stream-memory); nothing runs here" ||
		return
	grep -q "^refused: .*beyond the stream memory budget" "$TT/src" ||
		why "the source heard: $(cat "$TT/src")"
}

# Peak RSS below $1 MiB (skipped without /usr/bin/time).
rss_below() {
	[[ -s $TT/rss ]] || return 0
	local kb
	kb=$(tail -1 "$TT/rss")
	((kb < $1 * 1024)) || why "the receiver held $((kb / 1024)) MiB (limit $1 MiB)"
}

test_receive_huge_section() {
	local t0=$SECONDS
	hostile huge || return
	refused "192 MiB" || return
	err_has "would hold 1073741824 bytes more" || return
	((SECONDS - t0 < 8)) || why "took $((SECONDS - t0)) s: not refused at once" || return
	rss_below 128
}

test_receive_endless_epoch() {
	hostile many || return
	refused "192 MiB" || return
	rss_below 400 || return
	hostile many --max-stream-memory 32M || return
	refused "32 MiB" || return
	rss_below 160
}

# A source whose guest sees a CPU feature this host's KVM lacks (the
# stream's "cpuid" section, ft/checkpoint/cpuid_state.h): refused in one
# line naming the feature, before any RAM is taken in; nothing runs here.
test_receive_cpu_beyond_host() {
	hostile cpu || return
	expect_status 1 || return
	local lines
	lines=$(grep -v '^kagami receive: listening on\|^kagami receive: warning: --insecure' "$TT/err" |
		grep -vc '^==')
	[[ $lines == 1 ]] || why "stderr has $lines lines: $(head -c 400 "$TT/err")" || return
	err_has "incoming migration failed: the guest's CPU at the source does not fit this host: the target lacks CPU feature " ||
		return
	grep -qE "CPU feature (sha|rdpid|avx512f|avx2|pku) \(CPUID 0x7 E[BC]X bit [0-9]+\)" "$TT/err" ||
		why "the feature is not named: $(cat "$TT/err")" || return
	grep -q "^refused: .*does not fit this host" "$TT/src" ||
		why "the source heard: $(cat "$TT/src")" || return
	[[ ! -s $TT/out ]] || why "the guest printed here: $(head -c 200 "$TT/out")"
}

test_receive_budget_option() {
	kg receive --listen unix:x.sock --max-stream-memory lots
	expect_status 2 && err_has "--max-stream-memory" && err_one_line
}

t "receive: a section announcing 1 GiB is refused unread" test_receive_huge_section kvm
t "receive: an epoch that never ends is refused at the budget" test_receive_endless_epoch kvm
t "receive: a guest that sees a CPU feature this host lacks is refused" test_receive_cpu_beyond_host kvm
t "receive: --max-stream-memory takes a size" test_receive_budget_option
