#!/usr/bin/env bash
# Runs the whole suite: cmocka unit tests, then integration tests that boot
# real guests under kagami (ASan+UBSan build) and under QEMU. Ends with one
# line "N passed, N failed, N skipped".
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=$ROOT/build
KAGAMI=${KAGAMI:-$BUILD/asan/kagami}
KAGAMI_RELEASE=$BUILD/kagami
GUESTS=$BUILD/guests
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
source tests/lib.sh

# ONLY=PATTERN runs just the integration files whose name matches it;
# T=PATTERN just the tests whose name contains it
# (while working on one area; `make test` runs everything).
ONLY=${ONLY:-}
[[ -n $ONLY ]] || echo "== unit tests"
for bin in "$BUILD"/tests/test_*; do
	[[ -z $ONLY ]] || break
	[[ -x $bin ]] || continue
	name=$(basename "$bin")
	log=$(mktemp)
	"$bin" >"$log" 2>&1
	rc=$?
	# cmocka's summary lines may share a line (stdout and stderr mixed).
	count() { grep -o "\[  $1 *\] [0-9]* test" "$log" | tail -1 | grep -o '[0-9]*'; }
	p=$(count PASSED) f=$(count FAILED) s=$(count SKIPPED)
	p=${p:-0} f=${f:-0} s=${s:-0}
	if [[ $rc != 0 && $f == 0 ]]; then
		f=1 # crashed or a sanitizer stopped it
	fi
	PASSED=$((PASSED + p)); FAILED=$((FAILED + f)); SKIPPED=$((SKIPPED + s))
	if ((f)); then
		FAILED_NAMES+=("$name")
		echo "FAIL $name ($p passed, $f failed)"
		tail -n 30 "$log" | sed 's/^/     | /'
	else
		echo "ok   $name ($p passed${s:+, $s skipped})"
	fi
	rm -f "$log"
done

for f in tests/integration/*.sh; do
	[[ -z $ONLY || $(basename "$f") == *$ONLY* ]] || continue
	echo "== $(basename "$f" .sh)"
	source "$f"
done

echo
if ((FAILED)); then
	echo "failed: ${FAILED_NAMES[*]}"
fi
echo "$PASSED passed, $FAILED failed, $SKIPPED skipped"
((FAILED == 0))
