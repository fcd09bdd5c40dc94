# Guests under `kagami run`: output, exit status, devices, reset, signals.

test_hello() {
	kg run "$GUESTS/hello.elf"
	expect_status 0 || return
	out_has "hello: hello, world" && out_has "hello: cmdline=[]"
}

test_hello_cmdline_exit() {
	kg run --cmdline "exit=42 foo=bar" "$GUESTS/hello.elf"
	expect_status 42 || return
	out_has "hello: cmdline=[exit=42 foo=bar]"
}

test_poweroff() {
	kg run --cmdline poweroff "$GUESTS/hello.elf"
	expect_status 0 && out_has "hello: powering off"
}

test_reset() {
	kg run --summary --cmdline reset "$GUESTS/hello.elf"
	expect_status 0 || return
	out_has "hello: resetting" && out_has "hello: boot_count=1" || return
	[[ $(grep -c "hello: hello, world" out) == 2 ]] || why "expected two boots"
	err_has "resets       1"
}

test_initrd() {
	head -c 300000 /dev/urandom >initrd.bin
	# The content is checked against QEMU in 30_qemu.sh.
	kg run --cmdline initrd --initrd initrd.bin "$GUESTS/hello.elf"
	expect_status 0 || return
	out_has "hello: modules=1 initrd_size=300000 "
}

memstress_expect() { # mib total seed: the lines an uninterrupted run prints
	local passes=$(($2 / $1))
	[[ $(grep -c '^memstress: pass=' out) == "$passes" ]] ||
		why "expected $passes pass lines"
	grep -qE '^memstress: done checksum=[0-9a-f]{16}$' out || why "no done line"
}

test_memstress() {
	kg run --cmdline "mib=8 total=64 seed=3" "$GUESTS/memstress.elf"
	expect_status 0 || return
	memstress_expect 8 64 3 || return
	out_has "memstress: mib=8 total=64 seed=3"
}

test_memstress_deterministic() {
	kg run --cmdline "mib=4 total=32 seed=9" "$GUESTS/memstress.elf"
	expect_status 0 || return
	mv out first
	kg run --cpus 2 --mem 512M --cmdline "mib=4 total=32 seed=9" "$GUESTS/memstress.elf"
	expect_status 0 || return
	cmp -s first out || why "output differs between runs: $(diff first out | head -5)"
	kg run --cmdline "mib=4 total=32 seed=10" "$GUESTS/memstress.elf"
	cmp -s first out && why "a different seed gave the same output"
	return 0
}

test_memstress_paced() {
	# 8 MiB at 32 MiB/s cannot finish in under 0.25 s if pacing works;
	# the output must not change.
	kg run --cmdline "mib=4 total=8 seed=1" "$GUESTS/memstress.elf"
	mv out unpaced
	local t0=$(date +%s%N)
	kg run --cmdline "mib=4 total=8 seed=1 rate=32" "$GUESTS/memstress.elf"
	local ms=$((($(date +%s%N) - t0) / 1000000))
	expect_status 0 || return
	cmp -s unpaced out || why "pacing changed the output"
	((ms >= 200)) || why "paced run took ${ms} ms, pacing not applied"
}

test_memstress_no_memory() {
	kg run --mem 32M --cmdline "mib=64 total=64" "$GUESTS/memstress.elf"
	expect_status 2 && out_has "memstress: cannot allocate 64 MiB"
}

test_high_memory() {
	# RAM above the 3 GiB hole: the memory map has a region at 4 GiB.
	kg run --mem 3584M --cmdline "mib=16 total=16" "$GUESTS/memstress.elf"
	expect_status 0
}

crash_mode() { # mode vector-text
	kg run --cmdline "mode=$1" "$GUESTS/crashme.elf"
	expect_status 3 || return
	err_has "$2" && err_has "rip=" && err_has "rsp=" && err_has "rax="
}
test_crash_pf() { crash_mode pf "vector 14 (#PF page fault)" && err_has "cr2=00000dead0000000"; }
test_crash_gp() { crash_mode gp "vector 13 (#GP general protection)"; }
test_crash_ud() { crash_mode ud "vector 6 (#UD invalid opcode)"; }
test_crash_de() { crash_mode de "vector 0 (#DE divide error)"; }
test_crash_io() { crash_mode io "vector 13 (#GP general protection)"; }

test_console_file() {
	kg run --console file:console.txt --cmdline "exit=5" "$GUESTS/hello.elf"
	expect_status 5 || return
	grep -q "hello: hello, world" console.txt || why "console file lacks output"
	[[ ! -s out ]] || why "stdout not empty with a file console"
}

test_console_unix() {
	# Output written before a client connects is replayed to it.
	timeout 30 "$KAGAMI" run --console unix:con.sock --cmdline spin \
		"$GUESTS/hello.elf" >out 2>err &
	local pid=$!
	for _ in $(seq 100); do [[ -S con.sock ]] && break; sleep 0.05; done
	[[ $(stat -c %a con.sock) == 600 ]] || why "socket mode $(stat -c %a con.sock), expected 600"
	sleep 0.3
	timeout 2 socat -u UNIX-CONNECT:con.sock STDOUT >client.txt
	kill -TERM $pid
	wait $pid
	STATUS=$?
	expect_status 143 || return
	grep -q "hello: hello, world" client.txt || why "client got: $(head -c 200 client.txt)"
	[[ ! -e con.sock ]] || why "socket left behind"
}

# On a terminal the console is raw (keys go to the guest) with Ctrl-A as
# the escape key: Ctrl-A h lists the keys, Ctrl-A x quits (exit 0), and
# the terminal is as it was afterwards, also after a stop by signal.
test_console_terminal() {
	command -v script >/dev/null || { why "script (bsdutils) is missing"; return; }
	(sleep 2; printf '\001h'; sleep 0.5; printf '\001x') |
		timeout 30 script -qfec "stty -g >before; $KAGAMI run --cmdline spin $GUESTS/hello.elf; echo rc=\$?; stty -g >after" /dev/null >typescript 2>&1
	tr -d '\r' <typescript >t.txt
	grep -q "C-a x    quit" t.txt || why "no key help: $(tail -c 300 t.txt)" || return
	grep -q "stopped from the console (Ctrl-A x)" t.txt || why "no quit: $(tail -c 300 t.txt)" || return
	grep -q "rc=0" t.txt || why "exit status: $(tail -c 300 t.txt)" || return
	cmp -s before after || why "terminal settings changed: $(cat before) -> $(cat after)" || return
	# Stopped by a signal: the terminal comes back too.
	(sleep 2; pkill -TERM -f "^$KAGAMI run --cmdline spin console-$$") &
	sleep 6 | timeout 30 script -qfec "stty -g >before2; $KAGAMI run --cmdline 'spin console-$$' $GUESTS/hello.elf; echo rc=\$?; stty -g >after2" /dev/null >typescript2 2>&1
	wait
	grep -q "rc=143" typescript2 || why "SIGTERM: $(tail -c 300 typescript2)" || return
	cmp -s before2 after2 || why "terminal settings changed after SIGTERM"
}

test_timeout() {
	kg run --timeout 0.5 --cmdline spin "$GUESTS/hello.elf"
	expect_status 124 && err_has "--timeout of 0.5 s expired"
}

test_sigterm() {
	"$KAGAMI" run --cmdline spin "$GUESTS/hello.elf" >out 2>err &
	local pid=$!
	sleep 0.5
	kill -TERM $pid
	wait $pid
	STATUS=$?
	expect_status 143 && err_has "stopped by SIGTERM"
}

test_summary() {
	kg run --summary "$GUESTS/hello.elf"
	expect_status 0 || return
	err_has "kagami: summary" && err_has "first console output after" && err_has "exits        pio"
}

# The guest that lets rdtsc steer it (for replay's divergence tests): it
# reads platform version 3 from ring 3, and two runs print differently.
test_rdtsc_guest() {
	kg run --cmdline rounds=20 "$GUESTS/rdtsc.elf"
	expect_status 0 || return
	out_has "rdtsc: platform=3 deterministic=0 rounds=20" || return
	[[ $(grep -c '^rdtsc: round=' out) == 20 ]] || why "expected 20 rounds"
	out_has "rdtsc: done odd=" || return
	mv out first
	kg run --cmdline rounds=20 "$GUESTS/rdtsc.elf"
	expect_status 0 || return
	cmp -s first out && why "two runs printed the same rdtsc values"
	return 0
}

test_smp() {
	kg run --cpus 4 "$GUESTS/hello.elf"
	expect_status 0 && out_has "hello: hello, world"
}

t "hello prints and exits 0" test_hello kvm
t "guest exit code and command line" test_hello_cmdline_exit kvm
t "clean power-off" test_poweroff kvm
t "reset reboots the guest" test_reset kvm
t "initrd reaches the guest as a PVH module" test_initrd kvm
t "memstress runs to done" test_memstress kvm
t "memstress output depends only on mib/total/seed" test_memstress_deterministic kvm
t "memstress pacing by the clock device" test_memstress_paced kvm
t "memstress reports too little memory" test_memstress_no_memory kvm
t "RAM above the 4 GiB boundary" test_high_memory kvm
t "crashme page fault report" test_crash_pf kvm
t "crashme #GP report" test_crash_gp kvm
t "crashme #UD report" test_crash_ud kvm
t "crashme #DE report" test_crash_de kvm
t "crashme ungranted port report" test_crash_io kvm
t "console to a file" test_console_file kvm
t "console on a unix socket" test_console_unix kvm
t "console on a terminal: raw, Ctrl-A x quits, the terminal restored" test_console_terminal kvm
t "--timeout stops the guest" test_timeout kvm
t "SIGTERM stops the guest" test_sigterm kvm
t "--summary" test_summary kvm
t "4 vCPUs" test_smp kvm
t "rdtsc guest: platform 3, output follows the TSC" test_rdtsc_guest kvm
