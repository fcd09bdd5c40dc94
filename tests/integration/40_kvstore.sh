# The kvstore guest under kagami (virtio-blk + virtio-net), driven by
# `kagami kv` from another host: network namespaces from tests/netns.sh.
#
#   switch ns ── sw0 ─┬─ vmhost (10.77.0.1): kagami, TAP kv0 on br0
#                     │     └─ the guest: 10.77.0.10, UDP port 7000
#                     └─ client (10.77.0.2): kagami kv
#
# All traffic stays in these namespaces. The guest tests skip while
# build/guests/kvstore.elf is missing, and without root; under CI=true
# both are failures.

source tests/netns.sh

KV_IP=10.77.0.10
KV_PORT=7000
KV_SERVER=$KV_IP:$KV_PORT
KV_MAC=52:54:00:77:00:0a # fixed: the client's ARP entry stays valid across VMMs

# Why the kvstore guest cannot run yet (empty when it can).
kv_not_built() {
	if [[ ! -f $GUESTS/kvstore.elf ]]; then
		echo "build/guests/kvstore.elf is not built yet (guests/kvstore.c)"
	elif ! "$KAGAMI" run --help 2>/dev/null | grep -q -- '--disk'; then
		echo "kagami run has no --disk (virtio-blk) yet"
	elif ! "$KAGAMI" run --help 2>/dev/null | grep -q -- '--net'; then
		echo "kagami run has no --net (virtio-net) yet"
	fi
}

# tkv NAME FUNC [needs]: t, once what needs names is there: guest (the
# kvstore guest), netns (network namespaces), kvm, qemu. A missing one is
# a skip here and a failure under CI (cannot_run in tests/lib.sh).
tkv() {
	local name=$1 fn=$2 needs=${3:-kvm} reason=""
	[[ $needs == *guest* ]] && reason=$(kv_not_built)
	if [[ -z $reason && $needs == *netns* ]] && ! netns_usable; then
		reason=$NETNS_MISSING
	fi
	if [[ -n $reason ]]; then
		cannot_run "$name" "$reason"
		return
	fi
	local tneeds=""
	[[ $needs == *kvm* ]] && tneeds=kvm
	[[ $needs == *qemu* ]] && tneeds+=${tneeds:+,}qemu
	t "$name" "$fn" $tneeds
}

json_field() { # file name: the number of "name" in a one-line JSON object
	grep -o "\"$2\":[0-9.]*" "$1" | head -1 | cut -d: -f2
}

# ---- fixtures -------------------------------------------------------

# The two hosts, the VM's TAP, and a fresh sparse disk image.
kv_net() {
	netns_setup &&
	netns_add_host vmhost 10.77.0.1 &&
	netns_add_host client 10.77.0.2 &&
	netns_add_tap vmhost kv0 || { why "network namespace setup failed"; return 1; }
	truncate -s 256M disk.img
	KV_BOOTS=0
}

# kv_start: boots the kvstore guest on vmhost over disk.img and waits for
# "kvstore: ready" on its console (console.N for boot N).
kv_start() {
	KV_BOOTS=$((KV_BOOTS + 1))
	KV_CONSOLE=console.$KV_BOOTS
	netns_spawn vmhost "$KAGAMI" run --mem 128M --disk disk.img \
		--net "tap:kv0,mac=$KV_MAC" --console "file:$KV_CONSOLE" \
		--cmdline "ip=$KV_IP/24 port=$KV_PORT" "$GUESTS/kvstore.elf" \
		>>kagami.out 2>>kagami.err
	KV_PID=$NETNS_PID
	local i
	for i in $(seq 300); do
		grep -q "kvstore: ready" "$KV_CONSOLE" 2>/dev/null && return 0
		if ! kill -0 "$KV_PID" 2>/dev/null; then
			wait "$KV_PID"
			why "kagami exited ($?) before 'kvstore: ready': $(tail -c 300 kagami.err) console: $(tail -c 300 "$KV_CONSOLE" 2>/dev/null)"
			return 1
		fi
		sleep 0.1
	done
	why "no 'kvstore: ready' in 30 s: $(tail -c 300 "$KV_CONSOLE" 2>/dev/null)"
}

# kv_stop [SIGNAL]: stops kagami (default TERM) and waits for it.
kv_stop() {
	kill -"${1:-TERM}" "$KV_PID" 2>/dev/null
	wait "$KV_PID" 2>/dev/null
	KV_STATUS=$?
}

# kvc ARGS...: `kagami kv --server VM ARGS` on the client host; sets STATUS,
# stdout in $TT/out, stderr in $TT/err.
kvc() {
	netns_exec client timeout -k 5 "${KG_TIMEOUT:-60}" "$KAGAMI" kv \
		--server "$KV_SERVER" "$@" >"$TT/out" 2>"$TT/err"
	STATUS=$?
}

kv_dups() { # the dups counter of the server's stats
	kvc stats
	expect_status 0 || return 1
	grep -o 'dups=[0-9]*' "$TT/out" | cut -d= -f2
}

# ---- tests that need only the client or the harness -------------------

test_netns_harness() {
	local before id
	before=$(ip -o link | wc -l)
	kv_net || return
	id=$NETNS_ID
	[[ -n $(ip netns list | grep -F -- "$id-vmhost") ]] || why "no vmhost namespace" || return
	netns_exec vmhost ip link show kv0 >/dev/null 2>&1 || why "no TAP kv0 on vmhost" || return
	# UDP both ways through the switch, from the host's br0 and eth0.
	netns_spawn vmhost timeout 10 socat -u UDP-RECV:7100,bind=10.77.0.1 OPEN:got.a,creat
	local pa=$NETNS_PID
	netns_spawn client timeout 10 socat -u UDP-RECV:7100,bind=10.77.0.2 OPEN:got.b,creat
	local pb=$NETNS_PID
	sleep 0.3
	echo "to-a" | netns_exec client socat -u - UDP-SENDTO:10.77.0.1:7100
	echo "to-b" | netns_exec vmhost socat -u - UDP-SENDTO:10.77.0.2:7100
	local i
	for i in $(seq 50); do
		[[ -s got.a && -s got.b ]] && break
		sleep 0.1
	done
	kill $pa $pb 2>/dev/null
	wait $pa $pb 2>/dev/null
	[[ $(cat got.a 2>/dev/null) == to-a ]] || why "client -> vmhost: nothing received" || return
	[[ $(cat got.b 2>/dev/null) == to-b ]] || why "vmhost -> client: nothing received" || return
	if command -v ping >/dev/null; then
		netns_exec client ping -c 1 -W 2 10.77.0.1 >/dev/null ||
			why "ping client -> vmhost failed" || return
	fi
	netns_cleanup
	[[ -z $(ip netns list | grep -F -- "$id") ]] || why "namespaces left: $(ip netns list | grep -F -- "$id")" || return
	[[ $(ip -o link | wc -l) == "$before" ]] || why "links left in the root namespace: $(ip -o link | tail -3)"
}

test_kv_usage() {
	local args
	kg kv get k
	expect_status 2 && err_has "--server IP:PORT is required" && err_one_line || return
	kg kv --server 10.77.0.10:7000 frob
	expect_status 2 && err_has "unknown command 'frob'" && err_one_line || return
	kg kv --server nohost:1 get k
	expect_status 2 && err_has "expected an IPv4 address" && err_one_line || return
	kg kv --server 10.77.0.10:70000 get k
	expect_status 2 && err_has "bad port" || return
	kg kv --server 10.77.0.10:7000 put k
	expect_status 2 && err_has "expected KEY VALUE" || return
	kg kv --server 10.77.0.10:7000 get "$(head -c 200 /dev/zero | tr '\0' k)"
	expect_status 2 && err_has "key must be 1 to 128 bytes" || return
	kg kv --server 10.77.0.10:7000 load --journal j
	expect_status 2 && err_has "--duration and --journal are required" || return
	kg kv --server 10.77.0.10:7000 get k --duration 3
	expect_status 2 && err_has "option --duration does not apply" || return
	kg kv --server 10.77.0.10:7000 load --duration 1 --journal j --write-ratio 2
	expect_status 2 && err_has "--write-ratio '2'" || return
	kg kv --help
	expect_status 0 && out_has "verify --journal FILE"
}

test_kv_no_server() {
	# Loopback, nothing listening: retried until --timeout, then exit 3.
	local t0=$SECONDS
	kg kv --server 127.0.0.1:9 --timeout 1 get k
	expect_status 3 && err_has "no answer from 127.0.0.1:9 in 1 s" && err_one_line || return
	((SECONDS - t0 < 5)) || why "took $((SECONDS - t0)) s"
}

test_kv_verify_bad_journal() {
	printf 'a 0123456789abcdef 1 put k1 v1\nnonsense\n' >j
	kg kv --server 127.0.0.1:9 verify --journal j
	expect_status 3 && err_has "journal j:2: malformed line" && err_one_line || return
	kg kv --server 127.0.0.1:9 verify --journal missing
	expect_status 3 && err_has "journal missing: No such file"
}

# ---- the guest --------------------------------------------------------

test_kv_roundtrip() {
	kv_net && kv_start || return
	kvc put alpha one
	expect_status 0 && out_has OK || return
	kvc get alpha
	expect_status 0 || return
	[[ $(cat out) == one ]] || why "get alpha: '$(cat out)', expected 'one'" || return
	kvc put alpha "two words"
	kvc get alpha
	[[ $(cat out) == "two words" ]] || why "get alpha after overwrite: '$(cat out)'" || return
	kvc del alpha
	expect_status 0 && out_has OK || return
	kvc get alpha
	expect_status 1 && out_has "not found" || return
	kvc del alpha
	expect_status 1 || return
	kvc put empty ""
	kvc get empty
	expect_status 0 || return
	[[ -z $(cat out) ]] || why "empty value came back as '$(cat out)'" || return
	kvc stats
	expect_status 0 && out_has "keys=" && out_has "dups=" && out_has "log_bytes="
}

test_kv_no_double_execution() {
	kv_net && kv_start || return
	local d0 d1 cid=5eed0000cafe0001
	d0=$(kv_dups) || return
	kvc --client-id $cid --req-id 7 put dupkey first
	expect_status 0 || return
	# The same (client, req_id) again: answered from memory, not executed.
	kvc --client-id $cid --req-id 7 put dupkey second
	expect_status 0 && out_has OK || return
	kvc get dupkey
	[[ $(cat out) == first ]] || why "dupkey is '$(cat out)': the retried put was executed again" || return
	d1=$(kv_dups) || return
	((d1 >= d0 + 1)) || why "stats dups $d0 -> $d1, expected an increase" || return
	# A lower req_id is stale.
	kvc --client-id $cid --req-id 6 put dupkey third
	expect_status 3 && err_has "stale request id" || return
	# The memory of executed writes survives a restart (it is in the log).
	kv_stop && kv_start || return
	kvc --client-id $cid --req-id 7 put dupkey fourth
	expect_status 0 || return
	kvc get dupkey
	[[ $(cat out) == first ]] || why "after restart, the retried put was executed: '$(cat out)'"
}

test_kv_load_verify() {
	kv_net && kv_start || return
	kvc load --duration 3 --keys 500 --clients 8 --journal "$TT/journal"
	expect_status 0 || return
	cp out load.json
	local acked lost errors
	acked=$(json_field load.json acked) errors=$(json_field load.json errors)
	((acked > 100)) || why "only $acked requests acked: $(cat load.json)" || return
	((errors == 0)) || why "load errors: $(cat load.json)" || return
	[[ $(json_field load.json checked) -gt 0 ]] || why "no read was checked: $(cat load.json)" || return
	kvc verify --journal "$TT/journal"
	expect_status 0 || return
	lost=$(json_field out lost)
	[[ $lost == 0 ]] || why "verify: $(cat out)"
}

test_kv_verify_detects_loss() {
	# verify must be able to fail: an overwritten key, then a blank disk.
	kv_net && kv_start || return
	kvc load --duration 1 --keys 100 --journal "$TT/journal"
	expect_status 0 || return
	local key nacked
	key=$(awk '$1 == "k" { print $5; exit }' "$TT/journal")
	nacked=$(awk '$1 == "k" { print $5 }' "$TT/journal" | sort -u | wc -l)
	[[ -n $key ]] || why "no acknowledged write in the journal" || return
	kvc put "$key" not-from-the-load
	kvc verify --journal "$TT/journal"
	expect_status 1 && err_has "lost: $key is 'not-from-the-load'" || return
	[[ $(json_field out lost) == 1 ]] || why "expected lost=1: $(cat out)" || return
	kv_stop
	rm disk.img && truncate -s 256M disk.img
	kv_start || return
	kvc verify --journal "$TT/journal"
	expect_status 1 || return
	[[ $(json_field out lost) == "$nacked" ]] ||
		why "blank disk: lost $(json_field out lost), expected $nacked: $(cat out)"
}

# The history checker (kagami check) judges what the client recorded,
# independently of the client's own checks: a clean run passes; keys
# whose acknowledged writes vanish, or that hold a value no recorded
# operation wrote, fail it.
test_kv_history_check() {
	kv_net && kv_start || return
	kvc load --duration 2 --keys 200 --clients 4 --journal "$TT/journal" \
		--history "$TT/h1"
	expect_status 0 || return
	kvc verify --journal "$TT/journal" --history "$TT/h1"
	expect_status 0 || return
	"$KAGAMI" check --json "$TT/h1" >check.json 2>check.err
	[[ $? == 0 ]] || why "check of a clean run: $(cat check.json check.err)" || return
	grep -q '"verdict":"linearizable"' check.json || why "verdict: $(cat check.json)" || return
	(($(json_field check.json acked_writes) > 50)) || why "few acked writes: $(cat check.json)" || return
	(($(json_field check.json reads) > 50)) || why "few reads: $(cat check.json)" || return
	# A value written behind the client's back: no recorded operation
	# wrote it, and the next load's reads and the final reads see it.
	local key
	key=$(awk '$1 == "invoke" && $4 == "put" { print $5; exit }' "$TT/h1")
	kvc put "$key" from-elsewhere
	expect_status 0 || return
	kvc verify --journal "$TT/journal" --history "$TT/h1"
	"$KAGAMI" check "$TT/h1" >check.out 2>check.err
	[[ $? == 1 ]] || why "check after a foreign write passed: $(cat check.out)" || return
	grep -q "key $key: get .* returned 'from-elsewhere', which no operation wrote" check.out ||
		why "no explanation: $(cat check.out)" || return
	# Every acknowledged write gone (a blank disk under the same guest).
	kv_stop
	rm disk.img && truncate -s 256M disk.img
	kv_start || return
	cp "$TT/h1" "$TT/h2"
	sed -i '/from-elsewhere/d' "$TT/h2"
	kvc verify --journal "$TT/journal" --history "$TT/h2"
	"$KAGAMI" check --json "$TT/h2" >check2.json
	[[ $? == 1 ]] || why "check after a blank disk passed: $(cat check2.json)" || return
	grep -q '"verdict":"not linearizable"' check2.json || why "verdict: $(cat check2.json)" || return
	(($(json_field check2.json keys_bad) > 50)) || why "few bad keys: $(cat check2.json)"
}

test_kv_restart_keeps_data() {
	kv_net && kv_start || return
	kvc put keep me
	expect_status 0 || return
	kvc put gone soon
	kvc del gone
	expect_status 0 || return
	kvc load --duration 2 --keys 200 --journal "$TT/journal"
	expect_status 0 || return
	kv_stop TERM
	kv_start || return
	kvc get keep
	expect_status 0 || return
	[[ $(cat out) == me ]] || why "after restart keep='$(cat out)'" || return
	kvc get gone
	expect_status 1 || why "a deleted key came back after restart" || return
	kvc verify --journal "$TT/journal"
	expect_status 0 || why "verify after restart: $(cat out) $(head -c 300 err)"
}

test_kv_kill9_during_load() {
	kv_net && kv_start || return
	# The load retries every request with its req_id until the run ends,
	# so it rides over the crash and the restart.
	netns_exec client timeout -k 5 60 "$KAGAMI" kv --server "$KV_SERVER" \
		load --duration 8 --keys 300 --clients 8 \
		--journal "$TT/journal" >load.json 2>load.err &
	local lp=$!
	sleep 2
	kv_stop KILL
	[[ $KV_STATUS == 137 ]] || why "kagami exit status $KV_STATUS after SIGKILL" || return
	local acked_at_kill
	acked_at_kill=$(grep -c '^k ' "$TT/journal")
	kv_start || return
	wait $lp
	local lst=$?
	[[ $lst == 0 ]] || why "load exit status $lst: $(cat load.json) $(head -c 300 load.err)" || return
	((acked_at_kill > 0)) || why "nothing acknowledged before the kill" || return
	[[ $(json_field load.json retries) -gt 0 ]] || why "no retries across the crash: $(cat load.json)" || return
	[[ $(json_field load.json mismatches) == 0 ]] || why "wrong reads: $(cat load.json)" || return
	kvc verify --journal "$TT/journal"
	expect_status 0 || why "verify after kill -9: $(cat out) $(head -c 300 err)" || return
	[[ $(json_field out lost) == 0 ]] || why "lost writes: $(cat out)"
}

test_kv_qemu_disk_to_kagami() {
	# The same image under QEMU (microvm, TCG; modern virtio-mmio), then a
	# kill -9 of QEMU, then kagami on the disk QEMU wrote: both virtio-blk
	# implementations see the same log.
	kv_net || return
	netns_spawn vmhost qemu-system-x86_64 \
		-M microvm,acpi=off -accel tcg -m 256M -nodefaults \
		-no-user-config -nographic -display none -serial stdio \
		-device isa-debug-exit,iobase=0xf4,iosize=0x04 \
		-global virtio-mmio.force-legacy=false \
		-kernel "$GUESTS/kvstore.elf" -append "ip=$KV_IP/24 port=$KV_PORT" \
		-drive id=d0,file=disk.img,format=raw,if=none \
		-device virtio-blk-device,drive=d0 \
		-netdev tap,id=n0,ifname=kv0,script=no,downscript=no \
		-device "virtio-net-device,netdev=n0,mac=$KV_MAC" </dev/null >qemu.console 2>qemu.err
	local qp=$NETNS_PID i
	for i in $(seq 600); do
		grep -q "kvstore: ready" qemu.console && break
		kill -0 $qp 2>/dev/null || break
		sleep 0.1
	done
	grep -q "kvstore: ready" qemu.console ||
		why "QEMU: no 'kvstore: ready': $(tail -c 300 qemu.console) $(tail -c 300 qemu.err)" || return
	kvc put qkey from-qemu
	expect_status 0 || return
	kvc load --duration 2 --keys 200 --key-prefix q --journal "$TT/journal"
	expect_status 0 || return
	kill -KILL $qp
	wait $qp 2>/dev/null
	kv_start || return
	kvc get qkey
	[[ $STATUS == 0 && $(cat out) == from-qemu ]] || why "qkey under kagami: '$(cat out)' (status $STATUS)" || return
	kvc verify --journal "$TT/journal"
	expect_status 0 || why "verify under kagami: $(cat out) $(head -c 300 err)"
}

tkv "netns harness: hosts talk through the switch, cleanup is complete" test_netns_harness netns
tkv "kv client: usage errors" test_kv_usage none
tkv "kv client: no server, exit 3 after --timeout" test_kv_no_server none
tkv "kv verify: malformed or missing journal" test_kv_verify_bad_journal none
tkv "kvstore: put/get/del round trip" test_kv_roundtrip kvm,netns,guest
tkv "kvstore: a retried request is not executed twice" test_kv_no_double_execution kvm,netns,guest
tkv "kvstore: load then verify, nothing lost" test_kv_load_verify kvm,netns,guest
tkv "kvstore: verify reports overwritten and missing writes" test_kv_verify_detects_loss kvm,netns,guest
tkv "kvstore: the history checker passes a clean run, fails foreign and lost writes" test_kv_history_check kvm,netns,guest
tkv "kvstore: data survives a restart on the same disk" test_kv_restart_keeps_data kvm,netns,guest
tkv "kvstore: kill -9 during load, restart, every acked write there" test_kv_kill9_during_load kvm,netns,guest
tkv "kvstore: a disk written under QEMU, then read under kagami" test_kv_qemu_disk_to_kagami kvm,qemu,netns,guest
