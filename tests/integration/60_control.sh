# The control socket (run --control) and its client (kagami ctl).

start_with_control() { # extra run args...
	timeout 60 "$KAGAMI" run --control ctl.sock --console file:console.txt "$@" \
		>run.out 2>run.err &
	RUN_PID=$!
	for _ in $(seq 100); do [[ -S ctl.sock ]] && return 0; sleep 0.05; done
	why "control socket never appeared: $(cat run.err)"
}

ctl() { "$KAGAMI" ctl ctl.sock "$@" >ctl.out 2>ctl.err; CTL=$?; }

test_control_cycle() {
	start_with_control --cmdline "mib=8 total=100000" "$GUESTS/memstress.elf" || return
	[[ $(stat -c %a ctl.sock) == 600 ]] || why "socket mode $(stat -c %a ctl.sock)" || return
	ctl status
	[[ $CTL == 0 ]] && grep -q '"state":.*"running"' ctl.out || why "status: $(cat ctl.out ctl.err)" || return
	ctl pause
	[[ $CTL == 0 ]] && grep -q pause_us ctl.out || why "pause: $(cat ctl.out)" || return
	ctl status
	grep -q '"state":.*"paused"' ctl.out || why "not paused: $(cat ctl.out)" || return
	# paused: the guest prints nothing more
	local before after
	before=$(wc -c <console.txt); sleep 0.5; after=$(wc -c <console.txt)
	[[ $before == "$after" ]] || why "console grew while paused" || return
	ctl resume
	[[ $CTL == 0 ]] || why "resume failed" || return
	ctl resume
	[[ $CTL == 1 ]] && grep -q "not paused" ctl.err || why "second resume: $(cat ctl.err)" || return
	ctl quit
	wait $RUN_PID
	STATUS=$?
	[[ $STATUS == 0 ]] || why "kagami exited $STATUS after quit: $(cat run.err)" || return
	grep -q "stopped by the control socket" run.err || why "no stop message"
	[[ ! -e ctl.sock ]] || why "socket left behind"
}

test_control_errors() {
	start_with_control --cmdline spin "$GUESTS/hello.elf" || return
	ctl frobnicate
	[[ $CTL == 1 ]] && grep -q "unknown command 'frobnicate'" ctl.err || why "unknown: $(cat ctl.err)" || return
	printf 'this is not json\n{"nocmd":1}\n' | timeout 5 socat - UNIX-CONNECT:ctl.sock >raw.out
	grep -q '"error":"request is not valid JSON","kind":"invalid"' raw.out || why "bad JSON: $(cat raw.out)" || return
	grep -q 'no \\"cmd\\" string' raw.out || why "no cmd: $(cat raw.out)" || return
	ctl help
	grep -q '"quit"' ctl.out || why "help lacks quit" || return
	"$KAGAMI" ctl nothere.sock status >/dev/null 2>ctl.err
	[[ $? == 2 ]] && grep -q "connect nothere.sock" ctl.err || why "missing socket: $(cat ctl.err)" || return
	kill -TERM $RUN_PID
	wait $RUN_PID
	return 0
}

test_control_path_taken() {
	echo x >plain
	kg run --control plain "$GUESTS/hello.elf"
	expect_status 2 && err_has "control socket plain: exists and is not a socket"
}

# A client that floods requests and never reads its answers: the others
# are still served (the server queues at most 1 MiB for it, then drops it).
test_control_nonreading_client() {
	start_with_control --cmdline spin "$GUESTS/hello.elf" || return
	python3 - ctl.sock <<'PY' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.settimeout(2)
try:
    while True:
        s.send(b'{"cmd":"status"}\n' * 1000)
except OSError:
    pass
time.sleep(15)
PY
	local flood=$!
	sleep 1
	local t0=$SECONDS
	timeout 5 "$KAGAMI" ctl ctl.sock status >ctl.out 2>ctl.err
	local rc=$?
	kill "$flood" 2>/dev/null; wait "$flood" 2>/dev/null
	[[ $rc == 0 ]] && grep -q '"running"' ctl.out ||
		why "status while a client does not read: exit $rc after $((SECONDS - t0)) s: $(cat ctl.out ctl.err)"
	kill -TERM $RUN_PID; wait $RUN_PID
	return 0
}

# Twenty idle connections: the longest idle ones give way to new clients.
test_control_idle_clients() {
	start_with_control --cmdline spin "$GUESTS/hello.elf" || return
	python3 - ctl.sock <<'PY' &
import socket, sys, time
socks = []
for _ in range(20):
    s = socket.socket(socket.AF_UNIX)
    s.connect(sys.argv[1])
    socks.append(s)
time.sleep(15)
PY
	local idle=$!
	sleep 1
	timeout 5 "$KAGAMI" ctl ctl.sock status >ctl.out 2>ctl.err
	local rc=$?
	kill "$idle" 2>/dev/null; wait "$idle" 2>/dev/null
	[[ $rc == 0 ]] && grep -q '"running"' ctl.out ||
		why "status behind 20 idle clients: exit $rc: $(cat ctl.out ctl.err)"
	kill -TERM $RUN_PID; wait $RUN_PID
	return 0
}

# A second kagami on the same control path is refused while the first
# lives; the first keeps its socket; once it is dead (kill -9 leaves the
# socket file behind) the path is reused.
test_control_live_path() {
	"$KAGAMI" run --control ctl.sock --console file:console.txt \
		--cmdline spin "$GUESTS/hello.elf" >run.out 2>run.err &
	local first=$!
	for _ in $(seq 100); do [[ -S ctl.sock ]] && break; sleep 0.05; done
	kg run --control ctl.sock --cmdline spin "$GUESTS/hello.elf"
	expect_status 2 && err_has "control socket ctl.sock: in use by a running kagami" && err_one_line ||
		{ kill -9 $first; return 1; }
	ctl status
	[[ $CTL == 0 ]] || { why "the first kagami lost its socket: $(cat ctl.err)"; kill -9 $first; return; }
	kill -9 $first; wait $first 2>/dev/null
	[[ -S ctl.sock ]] || why "no stale socket left by kill -9" || return
	"$KAGAMI" run --control ctl.sock --console file:console.txt \
		--cmdline spin "$GUESTS/hello.elf" >run2.out 2>run2.err &
	local second=$!
	local i
	for i in $(seq 100); do
		"$KAGAMI" ctl ctl.sock status >ctl.out 2>/dev/null && break
		kill -0 $second 2>/dev/null || break
		sleep 0.05
	done
	kill -0 $second 2>/dev/null || { why "the stale socket was refused: $(cat run2.err)"; return; }
	grep -q '"running"' ctl.out || { why "no answer on the reused path"; kill -9 $second; return; }
	[[ $(stat -c %a ctl.sock) == 600 ]] || { why "socket mode $(stat -c %a ctl.sock)"; kill -9 $second; return; }
	ls -a | grep -q kagami-ctl && { why "bind directory left behind: $(ls -a)"; kill -9 $second; return; }
	kill -TERM $second; wait $second
	return 0
}

t "control socket: status, pause, resume, quit" test_control_cycle kvm
t "control socket: a client that never reads does not block others" test_control_nonreading_client kvm
t "control socket: idle clients give way to new ones" test_control_idle_clients kvm
t "control socket: a live socket path is refused, a stale one reused" test_control_live_path kvm
t "control socket: errors" test_control_errors kvm
t "control socket path is a file" test_control_path_taken kvm
