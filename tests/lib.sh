# Test helpers shared by tests/integration/*.sh (sourced by tests/run.sh).
# A test is a function; `t NAME FUNC [needs-kvm]` runs it and counts the
# result. Inside a test, `why "..."` sets the failure reason and returns 1.

PASSED=0 FAILED=0 SKIPPED=0
FAILED_NAMES=()

kvm_usable() { [[ -c /dev/kvm && -r /dev/kvm && -w /dev/kvm ]]; }

t() {
	local name=$1 fn=$2 needs=${3:-}
	local need missing=""
	[[ -z ${T:-} || $name == *$T* ]] || return 0
	for need in ${needs//,/ }; do
		case $need in
		kvm) kvm_usable || missing="/dev/kvm is missing or not usable" ;;
		qemu) command -v qemu-system-x86_64 >/dev/null ||
			missing="qemu-system-x86_64 is not installed" ;;
		iasl) command -v iasl >/dev/null ||
			missing="iasl (acpica-tools) is not installed" ;;
		kernel) [[ -n $(debian_kernel) ]] ||
			missing="no /boot/vmlinuz-* (linux-image-amd64 is not installed)" ;;
		esac
	done
	if [[ -n $missing ]]; then
		cannot_run "$name" "$missing"
		return
	fi
	TT=$(mktemp -d "${TMPDIR:-/tmp}/kagami-test.XXXXXX")
	local start=$SECONDS
	local note
	if (cd "$TT" && "$fn") >"$TT/.log" 2>&1 && [[ -z $(cat "$TT/.why" 2>/dev/null) ]]; then
		note=$(cat "$TT/.note" 2>/dev/null)
		PASSED=$((PASSED + 1))
		echo "ok   $name ($((SECONDS - start))s)${note:+; note: $note}"
	else
		FAILED=$((FAILED + 1)); FAILED_NAMES+=("$name")
		echo "FAIL $name: $(cat "$TT/.why" 2>/dev/null || echo 'see log')"
		sed 's/^/     | /' "$TT/.log" | tail -n 20
	fi
	rm -rf "$TT"
}

# debian_kernel: the newest installed distribution kernel (a bzImage).
debian_kernel() {
	ls /boot/vmlinuz-* 2>/dev/null | sort -V | tail -1
}

# cannot_run NAME REASON: NAME cannot run here for want of REASON. Under
# CI (CI=true) a missing prerequisite is a failure; elsewhere a skip.
cannot_run() {
	if [[ ${CI:-} == true ]]; then
		FAILED=$((FAILED + 1)); FAILED_NAMES+=("$1")
		echo "FAIL $1: $2 (required under CI)"
	else
		SKIPPED=$((SKIPPED + 1))
		echo "SKIP $1: $2"
	fi
}

# kv_missing [release]: why the kvstore tests cannot run here, empty when
# they can: the guest, the release build (drills use it), network
# namespaces (tests/netns.sh).
kv_missing() {
	if [[ ! -f $GUESTS/kvstore.elf ]]; then
		echo "build/guests/kvstore.elf is not built"
	elif [[ ${1:-} == release && ! -x $KAGAMI_RELEASE ]]; then
		echo "build/kagami is not built"
	elif ! netns_usable; then
		echo "$NETNS_MISSING"
	fi
}

# t_kv NAME FUNC [release]: t with /dev/kvm, once kv_missing is empty.
t_kv() {
	local reason
	reason=$(kv_missing "${3:-}")
	if [[ -n $reason ]]; then
		cannot_run "$1" "$reason"
		return
	fi
	t "$1" "$2" kvm
}

# link_opts KIND ARGS...: sets LINK_OPTS to what a replicating command
# needs besides ARGS: kagami refuses unauthenticated links and FT/HA
# without a lease unless told, so --insecure when ARGS give no --key or
# --lease-key, and (KIND replica: run --replicate, secondary) --no-lease
# when they give no --lease.
link_opts() {
	local kind=$1 a has_key="" has_lease=""
	shift
	for a in "$@"; do
		case $a in
		--key | --lease-key) has_key=1 ;;
		--lease) has_lease=1 ;;
		esac
	done
	LINK_OPTS=()
	[[ -n $has_key ]] || LINK_OPTS+=(--insecure)
	[[ $kind != replica || -n $has_lease ]] || LINK_OPTS+=(--no-lease)
}

# Tests run in a subshell: record the reason where t() can read it.
why() {
	[[ -e $TT/.why ]] || echo "$*" >"$TT/.why"
	return 1
}

# note "...": something a passing test wants said on its "ok" line (a
# retry after a failure of the test environment, not of kagami).
note() {
	echo "$*" >>"$TT/.note"
}

# kg ARGS...: runs kagami (the ASan build) with a time limit; sets
# STATUS, and leaves stdout in $TT/out and stderr in $TT/err.
kg() {
	timeout -k 5 "${KG_TIMEOUT:-60}" "$KAGAMI" "$@" >"$TT/out" 2>"$TT/err"
	STATUS=$?
}

expect_status() {
	[[ $STATUS == "$1" ]] || why "exit status $STATUS, expected $1; stderr: $(head -c 300 "$TT/err")"
}
out_has() { grep -qF -- "$1" "$TT/out" || why "stdout lacks '$1': $(head -c 300 "$TT/out")"; }
err_has() { grep -qF -- "$1" "$TT/err" || why "stderr lacks '$1': $(head -c 300 "$TT/err")"; }
err_one_line() {
	local n
	n=$(grep -vc '^==' "$TT/err")
	[[ $n == 1 ]] || why "stderr has $n lines, expected one: $(head -c 300 "$TT/err")"
}
