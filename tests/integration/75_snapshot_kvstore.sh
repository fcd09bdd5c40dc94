# A snapshot of kvstore taken during a write load, restored on the same
# disk after kagami is killed: every acknowledged write is there. Uses the
# fixtures of 40_kvstore.sh (sourced before this file).

test_kv_snapshot_during_load() {
	kv_net || return
	netns_spawn vmhost "$KAGAMI" run --mem 128M --disk disk.img \
		--net "tap:kv0,mac=$KV_MAC" --console file:console.1 \
		--control ctl.sock \
		--cmdline "ip=$KV_IP/24 port=$KV_PORT" "$GUESTS/kvstore.elf" \
		>>kagami.out 2>>kagami.err
	KV_PID=$NETNS_PID
	local i
	for i in $(seq 300); do
		grep -q "kvstore: ready" console.1 2>/dev/null && break
		sleep 0.1
	done
	grep -q "kvstore: ready" console.1 || why "no ready: $(cat kagami.err)" || return
	netns_spawn client "$KAGAMI" kv --server "$KV_SERVER" load --duration 8 \
		--keys 300 --key-prefix s --journal "$TT/journal" >load.json 2>load.err
	local lp=$NETNS_PID
	sleep 2
	# Pause (the disk stops changing), snapshot, and kill kagami: the
	# snapshot and the disk are of the same instant.
	"$KAGAMI" ctl ctl.sock pause >/dev/null || why "pause failed" || return
	"$KAGAMI" ctl ctl.sock snapshot --path snap.kgs >snap.json 2>snap.err ||
		why "snapshot: $(cat snap.err)" || return
	"$KAGAMI" ctl ctl.sock status | grep -q '"paused"' ||
		why "the snapshot resumed a paused VM" || return
	local acked
	acked=$(grep -c '^k ' "$TT/journal")
	kv_stop KILL
	netns_spawn vmhost "$KAGAMI" restore --disk disk.img \
		--net "tap:kv0,mac=$KV_MAC" --console file:console.2 snap.kgs \
		>>kagami.out 2>>kagami.err
	KV_PID=$NETNS_PID
	wait $lp
	local lst=$?
	[[ $lst == 0 ]] || why "load: $lst $(cat load.json) $(head -c 300 load.err)" || return
	((acked > 0)) || why "nothing acknowledged before the snapshot" || return
	kvc verify --journal "$TT/journal"
	expect_status 0 || why "verify after restore: $(cat "$TT/out") $(head -c 300 "$TT/err")" || return
	[[ $(json_field "$TT/out" lost) == 0 ]] || why "lost writes: $(cat "$TT/out")" || return
	kv_stop
}

tkv "kvstore: snapshot during load, kill, restore: nothing acked lost" test_kv_snapshot_during_load kvm,netns,guest
