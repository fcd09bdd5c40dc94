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

t "control socket: status, pause, resume, quit" test_control_cycle kvm
t "control socket: errors" test_control_errors kvm
t "control socket path is a file" test_control_path_taken kvm
