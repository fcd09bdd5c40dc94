# The Linux redis guest (tests/integration/99_linux.sh) through the
# replication pipeline, across two virtual hosts on one switch: live
# migration with its disk, and FT failover when the primary's virtual host
# loses power. A client on this machine drives redis throughout and
# records every request (tests/tools/redis-history); history-check says
# afterwards whether anything acknowledged was lost or read wrong.
#
#   switch ns ── sw0 ─┬─ virtual host a (10.77.0.101): kagami, the guest
#                     ├─ virtual host b (10.77.0.102): kagami receive|secondary
#                     └─ client (10.77.0.2): redis-history
#
# The guest keeps its address (10.77.0.11) and MAC wherever it runs: the
# side that takes it announces the MAC, and the switch learns the port.

source tests/vhost/lib.sh
source tests/vhost/lx.sh

# The guest: 2 vCPUs, a disk, redis (appendfsync always), a tick a second
# on its console (loglevel 5: the kernel's warnings too).
lx_guest_a() {
	vhost_kagami_linux a 1 --cpus 2 --append "loglevel=5 kg.tick=1" \
		--args "--control /root/kagami-1.sock $*" || why "$VHOST_ERROR" || return
}

# lx_moved_ok LOG TAG: the guest, moved from a (console LOG) to b's
# kagami TAG (console share/TAG.log, socket /root/TAG.sock): the client's
# history is linearizable, the clocks went on, the kernel complained of
# nothing, it runs at b with both vCPUs; then b's kagami is stopped (TERM).
lx_moved_ok() {
	local sb out c
	sb=$(vhost_share b)
	LX_WHERE=$sb/$2.err lx_history_check || return
	lx_ticks "$1" "$sb/$2.log" || return
	c=$(lx_complaints "$1" "$sb/$2.log")
	[[ -z $c ]] || why "kernel complaint: $c" || return
	out=$(vhost_exec b "kagami ctl /root/$2.sock status" 2>&1)
	grep -q '"state":[[:space:]]*"running"' <<<"$out" && grep -q '"vcpus":[[:space:]]*2' <<<"$out" ||
		why "the guest at b: $out" || return
	vhost_exec b "kill \$(cat /root/$2.pid)" >/dev/null
}

# A running 2-vCPU Linux guest under redis load: its disk moves to a new
# image (ctl storage-migrate) while redis writes; then the guest moves from virtual host a to b with its disk (ctl migrate --with-storage,
# authenticated). Throughout, the client's history is
# linearizable with nothing acknowledged lost; the guest's clocks go on
# (uptime never back, wall clock right), its kernel complains of nothing,
# the source exits 0 and the guest runs on at b.
test_linux_migrate() {
	lx_build || return
	vhost_start a --mem 2G --cpus 2 || why "$VHOST_ERROR" || return
	vhost_start b --mem 2G --cpus 2 || why "$VHOST_ERROR" || return
	lx_client || why "no client namespace" || return
	lx_key kg.key a b || return
	local ip sa sb out
	ip=$(vhost_guest_ip a 1)
	sa=$(vhost_share a)
	sb=$(vhost_share b)
	lx_guest_a || return
	vhost_exec b "kg-tap kt1" >/dev/null || why "no TAP in b" || return
	vhost_wait a kagami-1.log "kagami-guest: (redis ready|error)" 300 ||
		why "$VHOST_ERROR" || return
	lx_history "$ip" 75
	sleep 5
	# Storage migration of the guest's disk while redis writes to it.
	out=$(vhost_exec a "kagami ctl /root/kagami-1.sock storage-migrate /root/moved.img" 2>&1)
	grep -q '"ok":[[:space:]]*true' <<<"$out" || why "ctl storage-migrate: $(tail -c 300 <<<"$out")" || return
	# (A migration to a receiver killed in the pre-copy rounds, then a
	# second one, left redis silent at the destination in 2 of 3 runs:
	# the guest triple fault of docs/architecture.md "Known failures",
	# which npt=0 avoids; under npt=0 the tier is not stable enough for
	# the suite. Not in here until one of the two is solved.)
	lx_bg b recv receive --listen tcp:0.0.0.0:7100 --key /root/kg.key \
		--disk /root/recv.img --net "tap:kt1,mac=$(lx_mac a 1)" \
		--console file:/kg/share/recv.log --control /root/recv.sock || return
	sleep 1
	out=$(vhost_exec a "kagami ctl /root/kagami-1.sock migrate tcp:$(vhost_ip b):7100 --with-storage --key /root/kg.key" 2>&1)
	grep -q '"ok":[[:space:]]*true' <<<"$out" || why "ctl migrate: $(tail -c 300 <<<"$out")" || return
	local total down
	total=$(sed -n 's/.*"total_ms":[[:space:]]*\([0-9]*\).*/\1/p' <<<"$out")
	down=$(sed -n 's/.*"downtime_ms":[[:space:]]*\([0-9]*\).*/\1/p' <<<"$out")
	vhost_wait a kagami-1.rc '^[0-9]+$' 30 || why "the source did not exit: $VHOST_ERROR" || return
	[[ $(cat "$sa/kagami-1.rc") == 0 ]] || why "the source exited $(cat "$sa/kagami-1.rc")" || return
	lx_moved_ok "$sa/kagami-1.log" recv || return
	[[ $(lx_rc b recv) == 143 ]] || why "receive exited $(cat "$sb/recv.rc" 2>/dev/null): $(tail -c 300 "$sb/recv.err")" || return
	note "total ${total} ms, downtime ${down} ms; $LX_HIST; longest outage ${LX_OUTAGE}"
}

tlx "Linux across virtual hosts: storage migration, then live migration with storage under redis load, history linearizable, clocks go on" test_linux_migrate

# lx_protection NAME SOCK: the primary's replication figures, one line.
lx_protection() {
	local j
	j=$(vhost_exec "$1" "kagami ctl $2 protection" 2>&1)
	awk -F'[:,]' '
		/"state"/ { gsub(/[" \t]/, "", $2); st = $2 }
		/"epochs"/ { ep = $2 + 0 }
		/"pause_p50_us"/ { p50 = $2 / 1000 } /"pause_p99_us"/ { p99 = $2 / 1000 }
		/"ack_p50_us"/ { a50 = $2 / 1000 } /"ack_p99_us"/ { a99 = $2 / 1000 }
		/"output_hold_p50_us"/ { h50 = $2 / 1000 } /"output_hold_p99_us"/ { h99 = $2 / 1000 }
		/"bytes_per_epoch"/ { b = $2 / 1024 }
		END { printf "%s, %d epochs, pause p50/p99 %.1f/%.1f ms, ACK %.1f/%.1f ms, output held %.1f/%.1f ms, %.0f KiB/epoch\n",
			st, ep, p50, p99, a50, a99, h50, h99, b }' <<<"$j"
}

# Checkpoint FT of the 2-vCPU Linux guest, primary in virtual host a,
# secondary in b, a lease witness on this machine: under redis load, a's
# whole virtual host loses power (kill -9 of its QEMU). b takes over
# once the lease has run out; the client's history is linearizable with
# nothing acknowledged lost (the output rule held every reply until b
# had the state behind it), redis answers again, the clocks go on and
# the kernel complains of nothing.
test_linux_ft_failover() {
	lx_build || return
	vhost_start a --mem 2G --cpus 2 || why "$VHOST_ERROR" || return
	vhost_start b --mem 2G --cpus 2 || why "$VHOST_ERROR" || return
	lx_client || why "no client namespace" || return
	lx_key kg.key a b && lx_key lease.key a b || return
	lx_witness lease.key
	local ip sa sb out lease="--lease witness:tcp:10.77.0.2:7300#linux --lease-key /root/lease.key"
	ip=$(vhost_guest_ip a 1)
	sa=$(vhost_share a)
	sb=$(vhost_share b)
	# The guest boots unprotected: its primary finds the secondary
	# once that listens (it retries every second). (A boot under FT
	# epochs ends in a guest triple fault on these virtual hosts unless
	# kvm-amd runs with npt=0: docs/architecture.md, "Known failures".)
	lx_guest_a --replicate ft --peer tcp:$(vhost_ip b):7200 --key /root/kg.key $lease \
		--failover-timeout 1000 || return
	vhost_wait a kagami-1.log "kagami-guest: (redis ready|error)" 300 ||
		why "$VHOST_ERROR" || return
	vhost_exec b "kg-tap kt1" >/dev/null || why "no TAP in b" || return
	lx_bg b sec secondary --listen tcp:0.0.0.0:7200 --key /root/kg.key $lease \
		--failover-timeout 1000 --disk /root/sec.img --net "tap:kt1,mac=$(lx_mac a 1)" \
		--console file:/kg/share/sec.log --control /root/sec.sock || return
	local prot i
	for ((i = 0; i < 120; i++)); do
		prot=$(lx_protection a /root/kagami-1.sock)
		[[ $prot == protected,* ]] && break
		sleep 1
	done
	[[ $prot == protected,* ]] || why "the primary: $prot; secondary: $(tail -c 200 "$sb/sec.err")" || return
	lx_history "$ip" 60
	sleep 15
	prot=$(lx_protection a /root/kagami-1.sock)
	[[ $prot == protected,* ]] || why "the primary under load: $prot" || return
	local t0 t1
	t0=$(date +%s%N)
	LX_KILLED="a"
	vhost_kill a
	vhost_wait b sec.err "the guest runs here" 60 ||
		why "no takeover at b: $(tail -c 300 "$sb/sec.err")" || return
	t1=$(date +%s%N)
	lx_moved_ok "$sa/kagami-1.log" sec || return
	[[ $(lx_rc b sec) == 143 ]] || why "secondary exited $(cat "$sb/sec.rc" 2>/dev/null): $(tail -c 300 "$sb/sec.err")" || return
	note "before the kill: $prot; $(grep -o "the guest runs here.*" "$sb/sec.err" | head -1), seen here $(((t1 - t0) / 1000000)) ms after the kill; $LX_HIST; longest outage ${LX_OUTAGE}"
}

tlx "Linux across virtual hosts: FT (2 vCPUs) under redis load, the primary's host loses power, nothing acknowledged lost" test_linux_ft_failover

# lx_protected NAME SOCK S: waits up to S s for NAME's primary at SOCK to
# say protected; LX_PROT is its last line of figures.
lx_protected() {
	local i
	for ((i = 0; i < $3; i++)); do
		LX_PROT=$(lx_protection "$1" "$2")
		[[ $LX_PROT == protected,* ]] && return 0
		sleep 1
	done
	return 1
}

# HA of the 2-vCPU Linux guest (a checkpoint every 500 ms, output not
# held), primary in a, secondary in b, the lease witness here: under
# redis load only the primary's kagami dies (kill -9; its virtual host
# lives on). b takes over from the last checkpoint: redis answers again
# with its clocks going on; what the client saw acknowledged in the last
# interval may be lost (HA's contract: the checker's verdict is in the
# note). Then the old host comes back as the secondary (ctl protect on
# b) and the guest is protected again.
test_linux_ha_reprotect() {
	lx_build || return
	vhost_start a --mem 2G --cpus 2 || why "$VHOST_ERROR" || return
	vhost_start b --mem 2G --cpus 2 || why "$VHOST_ERROR" || return
	lx_client || why "no client namespace" || return
	lx_key kg.key a b && lx_key lease.key a b || return
	lx_witness lease.key
	local ip sa sb out lease="--lease witness:tcp:10.77.0.2:7300#linux --lease-key /root/lease.key"
	local timing="--failover-timeout 1000 --interval 500"
	ip=$(vhost_guest_ip a 1)
	sa=$(vhost_share a)
	sb=$(vhost_share b)
	lx_guest_a --replicate ha --peer tcp:$(vhost_ip b):7200 --key /root/kg.key $lease $timing || return
	vhost_wait a kagami-1.log "kagami-guest: (redis ready|error)" 300 ||
		why "$VHOST_ERROR" || return
	vhost_exec b "kg-tap kt1" >/dev/null || why "no TAP in b" || return
	lx_bg b sec secondary --listen tcp:0.0.0.0:7200 --key /root/kg.key $lease \
		--failover-timeout 1000 --disk /root/sec.img --net "tap:kt1,mac=$(lx_mac a 1)" \
		--console file:/kg/share/sec.log --control /root/sec.sock || return
	lx_protected a /root/kagami-1.sock 120 ||
		why "the primary: $LX_PROT; secondary: $(tail -c 200 "$sb/sec.err")" || return
	lx_history "$ip" 60
	sleep 15
	local before=$LX_PROT t0 t1
	t0=$(date +%s%N)
	vhost_exec a "kill -9 \$(cat /root/kagami-1.pid)" >/dev/null || why "cannot kill a's kagami" || return
	vhost_wait b sec.err "the guest runs here" 60 ||
		why "no takeover at b: $(tail -c 300 "$sb/sec.err")" || return
	t1=$(date +%s%N)
	local seen=$(((t1 - t0) / 1000000))
	LX_LOSS_OK=1 LX_WHERE=$sb/sec.err lx_history_check || return
	lx_ticks "$sa/kagami-1.log" "$sb/sec.log" || return
	local c
	c=$(lx_complaints "$sa/kagami-1.log" "$sb/sec.log")
	[[ -z $c ]] || why "kernel complaint: $c" || return
	# The old host comes back as the secondary.
	lx_bg a sec2 secondary --listen tcp:0.0.0.0:7201 --key /root/kg.key $lease \
		--failover-timeout 1000 --disk /root/sec2.img --net "tap:kt1,mac=$(lx_mac a 1)" \
		--console file:/kg/share/sec2.log --control /root/sec2.sock || return
	t0=$(date +%s%N)
	out=$(vhost_exec b "kagami ctl /root/sec.sock protect --peer tcp:$(vhost_ip a):7201 --key /root/kg.key $timing" 2>&1)
	grep -q '"ok":[[:space:]]*true' <<<"$out" || why "ctl protect: $(tail -c 300 <<<"$out")" || return
	lx_protected b /root/sec.sock 180 ||
		why "not protected again: $LX_PROT; b: $(tail -c 200 "$sb/sec.err"); a: $(tail -c 200 "$sa/sec2.err")" || return
	t1=$(date +%s%N)
	out=$(netns_exec client redis-cli -h "$ip" ping 2>&1)
	[[ $out == PONG ]] || why "redis after re-protection: $out" || return
	vhost_exec b "kill \$(cat /root/sec.pid)" >/dev/null
	vhost_exec a "kill \$(cat /root/sec2.pid)" >/dev/null
	note "before the kill: $before; $(grep -o "the guest runs here.*" "$sb/sec.err" | head -1), seen here ${seen} ms after the kill; longest outage ${LX_OUTAGE}; $LX_HIST; checker: $LX_VERDICT; protected again $(((t1 - t0) / 1000000)) ms after ctl protect"
}

tlx "Linux across virtual hosts: HA (2 vCPUs) under redis load, the primary's kagami killed, the old host re-protects" test_linux_ha_reprotect
