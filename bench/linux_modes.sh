#!/usr/bin/env bash
# The Linux redis guest through the replication pipeline, on two virtual
# hosts (tests/vhost/lib.sh; this machine's KVM emulates guest ring 0):
#   load     redis-benchmark (Debian's redis-tools, from a namespace on
#            this machine) SET and GET at each connection count, ops/s
#            and p50/p99 latency, for the guest unprotected, under HA and
#            under FT at each epoch length, the secondary on the other
#            virtual host; the primary's epoch pause, ACK latency, output
#            hold and bytes per epoch after the load (ctl protection);
#   drill    FT failover drills: redis-history drives the guest while a
#            drill kills (-9) the primary's kagami or the secondary's, in
#            turn (BENCH_LX_KILLS); history-check judges each history.
#            Primary killed: the secondary takes over; client-visible
#            recovery (the longest stretch with nothing acknowledged) and
#            the secondary's own takeover time; the old host then
#            protects the guest again (ctl protect) and the next such
#            drill kills it on the other side. Secondary killed: the
#            client's longest outage, then a new secondary and ctl
#            protect on the primary;
#   migrate  live migration of the guest (RAM only, no disk) back and
#            forth, downtime and total time, and QEMU microvm migrating
#            the same guest between the same virtual hosts (QMP through
#            bench/qmp_migrate.py).
# It prints tables and writes every run to build/bench/linux_modes.json;
# it never asserts timing. Absolute figures are nested-TCG figures: only
# the ratios between the rows mean something.
#
# Environment:
#   BENCH_LX_PARTS     parts to run (default "load drill migrate")
#   BENCH_LX_MODES     load modes (default "none ha ft10 ft5 ft1")
#   BENCH_LX_CLIENTS   redis-benchmark connections (default "1 8 32")
#   BENCH_LX_REQUESTS  requests per redis-benchmark test (default 2000)
#   BENCH_LX_DRILLS    failover drills (default 10)
#   BENCH_LX_KILLS     what the drills kill in turn (default "primary
#                      secondary": the primary's kagami, the secondary's)
#   BENCH_LX_MIGRATIONS  migrations per VMM (default 4)
#
# Needs root, QEMU and socat (the virtual-host tier) and `make bench`'s
# build (kagami, build/tests/redis-history and history-check).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
BUILD=$ROOT/build
KAGAMI=$BUILD/kagami
PARTS=${BENCH_LX_PARTS:-load drill migrate}
MODES=${BENCH_LX_MODES:-none ha ft10 ft5 ft1}
CLIENTS=${BENCH_LX_CLIENTS:-1 8 32}
REQS=${BENCH_LX_REQUESTS:-2000}
DRILLS=${BENCH_LX_DRILLS:-10}
KILLS=${BENCH_LX_KILLS:-primary secondary}
MIGS=${BENCH_LX_MIGRATIONS:-4}
JSON=$BUILD/bench/linux_modes.json

die() { echo "bench/linux_modes: $*" >&2; exit 1; }
log() { echo "bench/linux_modes: $*" >&2; }
source bench/lib.sh
source tests/vhost/lib.sh

for v in "$REQS" "$DRILLS" "$MIGS" $CLIENTS; do
	posint "$v" || die "'$v' is not a positive integer (BENCH_LX_*)"
done
for k in $KILLS; do
	[[ $k == primary || $k == secondary ]] || die "BENCH_LX_KILLS: '$k' is not primary or secondary"
done
for p in $PARTS; do
	[[ $p == load || $p == drill || $p == migrate ]] || die "BENCH_LX_PARTS: '$p' is not load, drill or migrate"
done
for m in $MODES; do
	[[ $m == none || $m == ha || $m =~ ^ft[1-9][0-9]*$ ]] || die "BENCH_LX_MODES: '$m' is not none, ha or ftMS"
done
need_files "$KAGAMI" "$BUILD/tests/redis-history" "$BUILD/tests/history-check"
command -v redis-benchmark >/dev/null || die "redis-benchmark is missing (redis-tools; scripts/install-deps)"
vhost_usable || die "no virtual hosts here: $VHOST_MISSING"
"$ROOT/scripts/build-linux-guest" --quiet || die "scripts/build-linux-guest failed"
exit_on_signals
TMP=$(mktemp -d) || die "mktemp failed"
trap 'rm -rf "$TMP"' EXIT

log "starting two virtual hosts (QEMU TCG, -cpu max)"
vhost_start a --mem 2G --cpus 2 || die "$VHOST_ERROR"
vhost_start b --mem 2G --cpus 2 || die "$VHOST_ERROR"
netns_add_host client 10.77.0.2 || die "no client namespace"
IP=$(vhost_guest_ip a 1)
MAC=$(printf '52:54:00:77:%02x:%02x' "${VHOST_SLOT[a]}" 51)
head -c 64 /dev/urandom >"$TMP/kg.key" && chmod 600 "$TMP/kg.key" || die "no key"
for h in a b; do
	cp "$TMP/kg.key" "$(vhost_share $h)/kg.key" &&
		vhost_exec $h 'cp /kg/share/kg.key /root/kg.key && chmod 600 /root/kg.key && rm /kg/share/kg.key; kg-tap kt1' >/dev/null ||
		die "cannot prepare $h"
done
other() { [[ $1 == a ]] && echo b || echo a; }

declare -A V # V[key] = "run1 run2 ..."
add() { V[$1]+="${2:-} "; }

# guest_start HOST ARGS: kagami on HOST runs the guest (socket
# /root/g.sock, console share/g.log, status share/g.rc) without a disk
# (redis keeps its data in RAM: the load measures replication, not the
# nested disk).
guest_start() {
	local h=$1
	shift
	vhost_exec "$h" "rm -f /kg/share/g.log /kg/share/g.rc
(kagami run --cpus 2 --mem 512M --control /root/g.sock $* \\
	--net tap:kt1,mac=$MAC --initrd /kg/build/linux/initramfs.cpio.gz \\
	--cmdline 'console=ttyS0 loglevel=4 kg.ip=$IP/24 kg.disk=none' \\
	/kg/build/linux/bzImage >/kg/share/g.log 2>&1 &
 echo \$! >/root/g.pid; wait \$!; echo \$? >/kg/share/g.rc) &" >/dev/null
}

# secondary_start HOST: a secondary on HOST (port 7200; once it runs the
# guest: socket /root/g.sock, console share/g.log, status share/s.rc).
secondary_start() {
	vhost_exec "$1" "rm -f /kg/share/s.err /kg/share/s.rc
(kagami secondary --listen tcp:0.0.0.0:7200 --key /root/kg.key --no-lease \\
	--failover-timeout 1000 --net tap:kt1,mac=$MAC --console file:/kg/share/g.log \\
	--control /root/g.sock 2>/kg/share/s.err &
 echo \$! >/root/s.pid; wait \$!; echo \$? >/kg/share/s.rc) &" >/dev/null
}

stop_all() {
	local h
	for h in a b; do
		vhost_exec $h 'killall -9 kagami qemu-system-x86_64 2>/dev/null; sleep 1; true' >/dev/null 2>&1
	done
}

# protection HOST: the primary's figures as "key=value ..." (ms, KiB).
protection() {
	vhost_exec "$1" "kagami ctl /root/g.sock protection" 2>/dev/null | awk -F'[:,]' '
		/"state"/ { gsub(/[" \t]/, "", $2); st = $2 }
		/"pause_p50_us"/ { p50 = $2 / 1000 } /"pause_p99_us"/ { p99 = $2 / 1000 }
		/"ack_p50_us"/ { a50 = $2 / 1000 } /"ack_p99_us"/ { a99 = $2 / 1000 }
		/"output_hold_p50_us"/ { h50 = $2 / 1000 } /"output_hold_p99_us"/ { h99 = $2 / 1000 }
		/"bytes_per_epoch"/ { b = $2 / 1024 }
		END { printf "state=%s pause50=%.2f pause99=%.2f ack50=%.2f ack99=%.2f hold50=%.2f hold99=%.2f kib=%.1f\n",
			st, p50, p99, a50, a99, h50, h99, b }'
}

# wait_protected HOST: up to 180 s.
wait_protected() {
	local i
	for ((i = 0; i < 180; i++)); do
		[[ $(protection "$1") == state=protected* ]] && return 0
		sleep 1
	done
	return 1
}

wait_ready() { vhost_wait "$1" g.log "kagami-guest: (redis ready|error)" 300 >/dev/null; }

# redis_bench TEST CLIENTS: "ops/s p50_ms p99_ms" from redis-benchmark --csv.
redis_bench() {
	netns_exec client timeout 120 redis-benchmark -h "$IP" -t "$1" -n "$REQS" -c "$2" \
		-r 100000 --csv 2>/dev/null | awk -F'"' 'NR > 1 && $2 != "" { print $4, $10, $14; exit }'
}

mode_args() {
	case $1 in
	none) echo "" ;;
	ha) echo "--replicate ha --interval 1000" ;;
	ft*) echo "--replicate ft --epoch-ms ${1#ft}" ;;
	esac
}

part_load() {
	local m c t ops p50 p99 pr
	for m in $MODES; do
		log "load: $m"
		stop_all
		local args
		args=$(mode_args "$m")
		[[ -z $args ]] || args+=" --peer tcp:$(vhost_ip b):7200 --key /root/kg.key --no-lease --failover-timeout 1000"
		guest_start a "$args"
		wait_ready a || { log "$m: the guest did not boot: $(tail -n 3 "$(vhost_share a)/g.log" | oneline)"; continue; }
		if [[ $m != none ]]; then
			secondary_start b
			wait_protected a || { log "$m: not protected: $(protection a)"; continue; }
		fi
		local line="$m:"
		for c in $CLIENTS; do
			for t in set get; do
				read -r ops p50 p99 < <(redis_bench "$t" "$c")
				add "load,$m,$t$c" "$ops"
				add "load,$m,${t}p50_$c" "$p50"
				add "load,$m,${t}p99_$c" "$p99"
				line+=" $t c=$c ${ops:-?} ops/s p50 ${p50:-?} p99 ${p99:-?} ms;"
			done
		done
		if [[ $m != none ]]; then
			pr=$(protection a)
			line+=" $pr"
			local kv
			for kv in $pr; do add "load,$m,${kv%%=*}" "${kv#*=}"; done
		fi
		log "$line"
	done
	stop_all
}

# drill_load: redis-history against the guest for 30 s, in the
# background (DRILL_HP), into $TMP/hist.txt.
drill_load() {
	rm -f "$TMP/hist.txt"
	netns_exec client "$BUILD/tests/redis-history" --host "$IP" --port 6379 --clients 4 \
		--seconds 30 --timeout-ms 2000 --out "$TMP/hist.txt" >"$TMP/hist.out" 2>&1 &
	DRILL_HP=$!
}

# drill_judge N KEY: waits for the load, runs history-check; the longest
# outage goes to drill,KEY, the verdict (DRILL_VERDICT) to pass/fail.
drill_judge() {
	local out
	wait "$DRILL_HP"
	out=$("$BUILD/tests/history-check" "$TMP/hist.txt" 2>&1)
	DRILL_VERDICT=${out##*$'\n'}
	DRILL_OUTAGE=$(sed -n 's/^outage: \([0-9.]*\) s.*/\1/p' <<<"$out")
	add "drill,$2" "$DRILL_OUTAGE"
	[[ $DRILL_VERDICT == PASS:* ]] && add "drill,pass" 1 || add "drill,fail" "$1"
}

# drill_reprotect P S N: a new secondary on S, ctl protect on the
# primary P; the time until P says protected goes to drill,reprotect_s.
drill_reprotect() {
	local p=$1 s=$2 n=$3 out t1
	secondary_start "$s"
	t1=$(now)
	sleep 1
	out=$(vhost_exec "$p" "kagami ctl /root/g.sock protect --peer tcp:$(vhost_ip "$s"):7200 --mode ft --key /root/kg.key --failover-timeout 1000" 2>&1)
	grep -q '"ok":[[:space:]]*true' <<<"$out" || { log "drill $n: ctl protect: $(oneline <<<"$out")"; return 1; }
	wait_protected "$p" || { log "drill $n: not protected again: $(protection "$p")"; return 1; }
	add "drill,reprotect_s" "$(calc %.1f "$(now) - $t1")"
}

# One drill on the guest protected from P to S: kill -9 of P's kagami
# 10 s into the load; S takes over; then S protects onto P again.
drill_once() {
	local p=$1 s=$2 n=$3 took
	drill_load
	sleep 10
	vhost_exec "$p" 'kill -9 $(cat /root/g.pid)' >/dev/null
	vhost_wait "$s" s.err "the guest runs here" 60 >/dev/null || { log "drill $n: no takeover: $(tail -c 200 "$(vhost_share "$s")/s.err" | oneline)"; wait "$DRILL_HP"; return 1; }
	took=$(sed -n 's/.*the guest runs here (\([0-9.]*\) ms after.*/\1/p' "$(vhost_share "$s")/s.err" | tail -1)
	add "drill,takeover_ms" "$took"
	drill_judge "$n" recovery_s
	log "drill $n ($p killed): client-visible outage ${DRILL_OUTAGE:-?} s, takeover ${took:-?} ms after declared lost; $DRILL_VERDICT"
	drill_reprotect "$s" "$p" "$n" || return 1
	# The guest now runs as the primary on s: its pid file is s.pid.
	vhost_exec "$s" 'cp /root/s.pid /root/g.pid' >/dev/null
}

# One drill killing the secondary of the guest protected from P to S:
# kill -9 of S's kagami 10 s into the load; the primary goes on
# unprotected (the client should see no outage beyond the failover
# timeout); then S protects it again.
drill_secondary() {
	local p=$1 s=$2 n=$3
	drill_load
	sleep 10
	vhost_exec "$s" 'kill -9 $(cat /root/s.pid)' >/dev/null
	drill_judge "$n" sec_outage_s
	log "drill $n ($s's secondary killed): longest client outage ${DRILL_OUTAGE:-?} s; primary: $(protection "$p"); $DRILL_VERDICT"
	drill_reprotect "$p" "$s" "$n"
}

part_drill() {
	log "drills: FT, 10 ms epochs; the primary's kagami killed -9 (then, by BENCH_LX_KILLS, the secondary's)"
	stop_all
	guest_start a "--replicate ft --peer tcp:$(vhost_ip b):7200 --key /root/kg.key --no-lease --failover-timeout 1000"
	wait_ready a || { log "drill: the guest did not boot"; return; }
	secondary_start b
	wait_protected a || { log "drill: not protected: $(protection a)"; return; }
	local p=a s=b n
	local kinds=($KILLS)
	for ((n = 1; n <= DRILLS; n++)); do
		if [[ ${kinds[(n - 1) % ${#kinds[@]}]} == secondary ]]; then
			drill_secondary "$p" "$s" "$n" || break
		else
			drill_once "$p" "$s" "$n" || break
			p=$(other "$p") s=$(other "$s")
		fi
	done
	stop_all
}

part_migrate() {
	local n from=a to=b out
	log "migrate: kagami, RAM only, $MIGS times"
	stop_all
	guest_start a ""
	wait_ready a || { log "migrate: the guest did not boot"; return; }
	for ((n = 1; n <= MIGS; n++)); do
		vhost_exec "$to" "rm -f /kg/share/r.rc
(kagami receive --listen tcp:0.0.0.0:7100 --key /root/kg.key --net tap:kt1,mac=$MAC \\
	--console file:/kg/share/g.log --control /root/g.sock 2>/kg/share/r.err &
 echo \$! >/root/g.pid; wait \$!; echo \$? >/kg/share/r.rc) &" >/dev/null
		sleep 1
		out=$(vhost_exec "$from" "kagami ctl /root/g.sock migrate tcp:$(vhost_ip "$to"):7100 --key /root/kg.key" 2>&1)
		local down total
		down=$(sed -n 's/.*"downtime_ms":[[:space:]]*\([0-9.]*\).*/\1/p' <<<"$out")
		total=$(sed -n 's/.*"total_ms":[[:space:]]*\([0-9.]*\).*/\1/p' <<<"$out")
		grep -q '"ok":[[:space:]]*true' <<<"$out" || { log "migrate $n: $(oneline <<<"$out")"; break; }
		add "mig,kagami,down_ms" "$down"
		add "mig,kagami,total_ms" "$total"
		log "kagami migration $n $from->$to: downtime $down ms, total $total ms"
		from=$(other "$from") to=$(other "$to")
		sleep 3
	done
	stop_all
	log "migrate: QEMU microvm, RAM only, $MIGS times"
	from=a to=b
	local q="qemu-system-x86_64 -M microvm,acpi=on -accel kvm -cpu host -smp 2 -m 512M \
-nodefaults -no-user-config -display none -monitor none -L /usr/share/qemu \
-serial file:/kg/share/q.log -kernel /kg/build/linux/bzImage -initrd /kg/build/linux/initramfs.cpio.gz \
-append 'console=ttyS0 loglevel=4 kg.ip=$IP/24 kg.disk=none' \
-netdev tap,id=n,ifname=kt1,script=no,downscript=no -device virtio-net-device,netdev=n,mac=$MAC \
-qmp tcp:0.0.0.0:4444,server=on,wait=off"
	vhost_exec a "rm -f /kg/share/q.log; ($q >/kg/share/q.out 2>&1 &)" >/dev/null
	vhost_wait a q.log "kagami-guest: (redis ready|error)" 300 >/dev/null || { log "QEMU: the guest did not boot"; stop_all; return; }
	for ((n = 1; n <= MIGS; n++)); do
		vhost_exec "$to" "($q -incoming tcp:0.0.0.0:7400 >/kg/share/q-in.out 2>&1 &)" >/dev/null
		sleep 2
		netns_exec client socat UNIX-LISTEN:"$TMP/qmp.sock",fork TCP:"$(vhost_ip "$from")":4444 &
		local sp=$!
		sleep 0.5
		# QEMU's downtime limit set to kagami's default (50 ms; QEMU's
		# own is 300 ms).
		out=$(python3 bench/qmp_migrate.py "$TMP/qmp.sock" "tcp:$(vhost_ip "$to"):7400" \
			--downtime-limit 50 --timeout 300 2>&1)
		kill "$sp" 2>/dev/null; wait "$sp" 2>/dev/null; rm -f "$TMP/qmp.sock"
		local down total
		echo "$out" >"$TMP/q.res"
		down=$(jget "$TMP/q.res" "j['downtime']")
		total=$(jget "$TMP/q.res" "j['total-time']")
		[[ -n $down ]] || { log "QEMU migration $n: $(oneline <<<"$out") $(tail -c 200 "$(vhost_share "$to")/q-in.out" | oneline)"; break; }
		add "mig,qemu,down_ms" "$down"
		add "mig,qemu,total_ms" "$total"
		log "QEMU migration $n $from->$to: downtime $down ms, total $total ms"
		vhost_exec "$from" 'killall qemu-system-x86_64; sleep 1; true' >/dev/null
		from=$(other "$from") to=$(other "$to")
	done
	stop_all
}

part load && part_load
part drill && part_drill
part migrate && part_migrate
vhost_stop a >/dev/null 2>&1
vhost_stop b >/dev/null 2>&1

m() { median ${V[$1]:-} 2>/dev/null; }
echo
echo "Linux redis guest (2 vCPUs, 512 MiB, no disk), two virtual hosts; medians"
if part load; then
	echo
	echo "| mode | conn | SET ops/s | SET p50/p99 ms | GET ops/s | GET p50/p99 ms | SET vs unprotected | pause p50/p99 ms | ACK p50/p99 ms | output held p50/p99 ms | KiB/epoch |"
	echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
	for md in $MODES; do
		for c in $CLIENTS; do
			base=$(m "load,none,set$c")
			s=$(m "load,$md,set$c")
			r=$(awk -v a="$s" -v b="$base" 'BEGIN { if (a > 0 && b > 0) printf "%.2f", a / b; else print "-" }')
			printf '| %s | %s | %s | %s/%s | %s | %s/%s | %s | %s/%s | %s/%s | %s/%s | %s |\n' "$md" "$c" \
				"${s:--}" "$(m "load,$md,setp50_$c")" "$(m "load,$md,setp99_$c")" \
				"$(m "load,$md,get$c")" "$(m "load,$md,getp50_$c")" "$(m "load,$md,getp99_$c")" "$r" \
				"$(m "load,$md,pause50")" "$(m "load,$md,pause99")" "$(m "load,$md,ack50")" "$(m "load,$md,ack99")" \
				"$(m "load,$md,hold50")" "$(m "load,$md,hold99")" "$(m "load,$md,kib")"
		done
	done
fi
if part drill; then
	rec=${V[drill,recovery_s]:-}
	echo
	echo "FT drills ($KILLS killed -9 in turn, 10 ms epochs, failover timeout 1000 ms): $(wc -w <<<"${V[drill,pass]:-}") passed of $DRILLS, failed: ${V[drill,fail]:-none}"
	echo "| what | p50 | p99 (max) | n |"
	echo "| --- | --- | --- | --- |"
	for k in recovery_s takeover_ms sec_outage_s reprotect_s; do
		vals=${V[drill,$k]:-}
		[[ -n $vals ]] || continue
		printf '| %s | %s | %s | %s |\n' "$k" "$(median $vals)" "$(printf '%s\n' $vals | sort -g | tail -1)" "$(wc -w <<<"$vals")"
	done
fi
if part migrate; then
	echo
	echo "| migration (RAM only) | kagami | QEMU microvm | kagami / QEMU |"
	echo "| --- | --- | --- | --- |"
	for k in down_ms total_ms; do
		kk=$(m "mig,kagami,$k") qq=$(m "mig,qemu,$k")
		printf '| %s | %s | %s | %s |\n' "$k" "${kk:--}" "${qq:--}" \
			"$(awk -v a="$kk" -v b="$qq" 'BEGIN { if (a > 0 && b > 0) printf "%.2f", a / b; else print "-" }')"
	done
fi
json_runs V "$JSON"
log "every run: $JSON"
