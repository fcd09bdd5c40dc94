# Storage live migration (ctl storage-migrate) while the guest writes.

DISKSUM=$BUILD/tests/disksum

# start_churn IMAGE SECS [kagami run args...]: blktest churning on IMAGE
# with a control socket, in the background; waits until it writes.
start_churn() {
	local img=$1 secs=$2
	shift 2
	timeout 60 "$KAGAMI" run --control ctl.sock --console file:con.txt \
		--disk "$img" "$@" --cmdline "mode=churn secs=$secs seed=5" \
		"$GUESTS/blktest.elf" >run.out 2>run.err &
	RUN_PID=$!
	for _ in $(seq 200); do
		grep -q "blktest: churning" con.txt 2>/dev/null && return 0
		sleep 0.05
	done
	why "blktest did not start: $(cat run.err)"
}

# Waits for the guest; its read-back checksum must equal FILE's.
guest_sum_is() {
	wait $RUN_PID
	local rc=$? want got
	[[ $rc == 0 ]] || why "kagami exited $rc: $(cat run.err con.txt)" || return
	want=$(sed -n 's/.*churn writes=.* checksum=\([0-9a-f]*\).*/\1/p' con.txt)
	[[ -n $want ]] || why "no checksum from the guest: $(cat con.txt)" || return
	got=$("$DISKSUM" "$1")
	[[ $got == "$want" ]] ||
		why "$1 holds $got, the guest read back $want"
}

test_storage_migrate_while_writing() {
	truncate -s 32M old.img
	start_churn old.img 4 || return
	sleep 0.5
	# Raw socket: the progress events come before the answer.
	echo '{"cmd":"storage-migrate","args":["new.img"]}' |
		timeout 30 socat -t 30 - UNIX-CONNECT:ctl.sock >raw.out
	sha256sum old.img >old.sum
	grep -q '"phase":"storage"' raw.out && grep -q '"event":"progress"' raw.out ||
		why "no progress events: $(head -c 300 raw.out)" || return
	tail -n 1 raw.out >reply.json
	grep -q '"ok":true' reply.json && grep -q '"pause_ms":' reply.json &&
		grep -q '"rounds":' reply.json && grep -q '"path":"new.img"' reply.json ||
		why "bad reply: $(cat reply.json)" || return
	# The lock moved with the disk: the new image is taken, the old free.
	kg run --disk new.img "$GUESTS/hello.elf"
	expect_status 2 && err_has "disk new.img: locked by another process" || return
	kg run --disk old.img "$GUESTS/hello.elf"
	expect_status 0 || return
	"$KAGAMI" ctl ctl.sock status | grep -q '"running"' || why "VM not running" || return
	guest_sum_is new.img || return
	# The guest went on writing after the switch, to the new image only.
	sha256sum --quiet -c old.sum || why "old image written after the switch" || return
	[[ $("$DISKSUM" old.img) != $("$DISKSUM" new.img) ]] ||
		why "no writes after the switch: the test proves nothing"
}

test_storage_migrate_with_snapshot() {
	truncate -s 16M old.img
	start_churn old.img 5 || return
	"$KAGAMI" ctl ctl.sock snapshot --path snap.kgs >snap.json 2>snap.err ||
		why "snapshot: $(cat snap.err)" || return
	kg ctl ctl.sock storage-migrate new.img
	expect_status 0 && out_has '"ok":	true' || return
	kg ctl ctl.sock snapshot --path snap2.kgs
	expect_status 0 || return
	guest_sum_is new.img || return
	kg inspect snap.kgs
	expect_status 0 || return
	kg inspect snap2.kgs
	expect_status 0
}

# ctl_fails WANT ARGS...: the command fails with one line containing WANT.
ctl_fails() {
	local want=$1
	shift
	kg ctl ctl.sock "$@"
	expect_status 1 && err_has "$want" && err_one_line
}

test_storage_migrate_errors() {
	# 8 MiB of data: more than the small filesystem below can take.
	head -c 8M /dev/urandom >old.img
	truncate -s 16M old.img
	mkdir small
	# A 4 MiB filesystem only kagami sees, for "disk full".
	timeout 60 unshare -m sh -c 'mount -t tmpfs -o size=4M tmpfs small &&
		exec "$0" run --control ctl.sock --console file:con.txt \
		--disk old.img --cmdline "mode=churn secs=4 seed=5" "$1"' \
		"$KAGAMI" "$GUESTS/blktest.elf" >run.out 2>run.err &
	RUN_PID=$!
	for _ in $(seq 200); do
		grep -q "blktest: churning" con.txt 2>/dev/null && break
		sleep 0.05
	done
	echo keep >exists.img
	ctl_fails "storage-migrate: exists.img already exists (refusing to overwrite it)" \
		storage-migrate exists.img || return
	[[ $(cat exists.img) == keep ]] || why "existing file changed" || return
	ctl_fails "storage-migrate: creating nodir/new.img: No such file or directory" \
		storage-migrate nodir/new.img || return
	ctl_fails "storage-migrate: writing small/new.img: No space left on device" \
		storage-migrate small/new.img || return
	[[ -z $(ls "/proc/$RUN_PID/root$PWD/small") ]] ||
		why "the partial copy was left behind" || return
	ctl_fails "storage-migrate: no disk 1 (the VM has 1, numbered from 0)" \
		storage-migrate new.img --disk 1 || return
	ctl_fails "--disk wants a disk number" storage-migrate new.img --disk x || return
	ctl_fails "storage-migrate needs one target" storage-migrate || return
	[[ ! -e new.img ]] || why "new.img created by a failed command" || return
	"$KAGAMI" ctl ctl.sock status | grep -q '"running"' || why "VM not running" || return
	guest_sum_is old.img || return
	# A VM without a disk.
	timeout 30 "$KAGAMI" run --control ctl.sock --console none --cmdline spin \
		"$GUESTS/hello.elf" >run.out 2>run.err &
	RUN_PID=$!
	for _ in $(seq 100); do [[ -S ctl.sock ]] && break; sleep 0.05; done
	ctl_fails "storage-migrate: the VM has no disk" storage-migrate new.img || return
	"$KAGAMI" ctl ctl.sock quit >/dev/null
	wait $RUN_PID
}

t "storage-migrate while the guest writes" test_storage_migrate_while_writing kvm
t "storage-migrate with a snapshot of the VM present" test_storage_migrate_with_snapshot kvm
t "storage-migrate errors leave the VM on its old image" test_storage_migrate_errors kvm
