# kagami witness: the lease server against split brain (ft/lease/). The
# leases themselves are tested in tests/unit/test_lease.c; here the
# command: it serves, survives a peer that is not kagami, stops on a
# signal, and its errors are one line.

# Starts the witness on a free loopback port; sets WPID and WADDR.
start_witness() { # extra args...
	link_opts witness "$@"
	timeout 60 "$KAGAMI" witness --listen tcp:127.0.0.1:0 "${LINK_OPTS[@]}" "$@" \
		>w.out 2>w.err &
	WPID=$!
	for _ in $(seq 100); do
		WADDR=$(sed -n 's/.*serving on \(tcp:[0-9.:]*\).*/\1/p' w.err)
		[[ -n $WADDR ]] && return 0
		sleep 0.05
	done
	why "witness never said it serves: $(cat w.err)"
}

test_witness_serves() {
	start_witness --grace 0 || return
	local port=${WADDR##*:}
	# A peer that is not kagami is refused and logged; the witness goes on.
	exec 3<>"/dev/tcp/127.0.0.1/$port" || { why "cannot connect to $WADDR"; return; }
	echo "not a kagami transport" >&3
	exec 3>&-
	for _ in $(seq 100); do grep -q "refused a peer" w.err && break; sleep 0.05; done
	grep -q "refused a peer" w.err || why "no refusal logged: $(cat w.err)" || return
	kill -0 $WPID 2>/dev/null || why "witness died after a bad peer: $(cat w.err)" || return
	exec 3<>"/dev/tcp/127.0.0.1/$port" || { why "witness stopped accepting"; return; }
	exec 3>&-
	kill -TERM $WPID
	wait $WPID
	STATUS=$?
	[[ $STATUS == 0 ]] || why "exit status $STATUS after SIGTERM: $(cat w.err)" || return
	grep -q "stopped by SIGTERM" w.err || why "no stop line: $(cat w.err)"
}

test_witness_grace_said() {
	start_witness --max-ttl 5000 || return
	grep -q "for 5000 ms only renewals are granted" w.err ||
		why "grace period not announced: $(cat w.err)" || return
	kill -INT $WPID
	wait $WPID
	STATUS=$?
	[[ $STATUS == 0 ]] && grep -q "stopped by SIGINT" w.err ||
		why "SIGINT: status $STATUS: $(cat w.err)"
}

test_witness_help() {
	kg witness --help
	expect_status 0 && out_has "usage: kagami witness --listen ADDR" &&
		out_has "--lease-key FILE" && out_has "not the replication" &&
		out_has "--max-ttl MS" || return
	kg --help
	expect_status 0 && out_has "witness"
}

test_witness_errors() {
	kg witness --listen tcp:127.0.0.1 --insecure
	expect_status 2 && err_has "tcp:127.0.0.1: missing :PORT" && err_one_line || return
	kg witness --listen bogus:addr --insecure
	expect_status 2 && err_one_line || return
	kg witness
	expect_status 2 && err_has "--listen ADDR is required" && err_one_line || return
	kg witness --listen tcp:127.0.0.1:0 --max-ttl 0 --insecure
	expect_status 2 && err_has "--max-ttl '0'" && err_one_line || return
	kg witness --listen tcp:127.0.0.1:0 --lease-key nothere.key
	expect_status 2 && err_has "--lease-key" && err_has "nothere.key" && err_one_line || return
	# The witness holds the lease key only: --key (the replication
	# key's name elsewhere) is refused, saying what to use.
	head -c 48 /dev/urandom >k && chmod 600 k
	kg witness --listen tcp:127.0.0.1:0 --key k
	expect_status 2 && err_has "--lease-key" && err_one_line || return
	kg witness --listen tcp:127.0.0.1:0 extra
	expect_status 2 && err_has "unexpected argument 'extra'" && err_one_line
}

t "witness: serves, refuses a non-kagami peer, stops on SIGTERM" test_witness_serves
t "witness: grace period after start, SIGINT" test_witness_grace_said
t "witness: --help" test_witness_help
t "witness: bad arguments are one line" test_witness_errors
