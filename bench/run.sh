#!/usr/bin/env bash
# kagami's benchmark: runs each measurement BENCH_REPEAT times (default 5)
# and prints a table of medians; a JSON copy goes to build/bench/results.json.
# Builds nothing: `make bench` builds what it needs and then runs this.
# See bench/README.md for what each row means.
#
# Environment:
#   BENCH_REPEAT     runs per measurement (default 5)
#   BENCH_MEMSTRESS  memstress arguments (default "mib=64 total=2048 seed=1")
#   BENCH_EXIT_N     exits per exitbench measurement (default 20000)
#   BENCH_QEMU       QEMU binary for the boot peer (default
#                    qemu-system-x86_64; set to "" to skip it)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=$PWD/build
KAGAMI=$BUILD/kagami
HOST_MEMSTRESS=$BUILD/bench/memstress_host
GUESTS=$BUILD/guests
R=${BENCH_REPEAT:-5}
MS_ARGS=${BENCH_MEMSTRESS:-mib=64 total=2048 seed=1}
EXIT_N=${BENCH_EXIT_N:-20000}
QEMU=${BENCH_QEMU-qemu-system-x86_64}
JSON=$BUILD/bench/results.json

die() { echo "bench: $*" >&2; exit 1; }

[[ $R =~ ^[1-9][0-9]*$ ]] || die "BENCH_REPEAT must be a positive integer"
[[ $EXIT_N =~ ^[1-9][0-9]*$ ]] || die "BENCH_EXIT_N must be a positive integer"
for f in "$KAGAMI" "$HOST_MEMSTRESS" "$GUESTS/memstress.elf" \
	"$GUESTS/exitbench.elf" "$GUESTS/hello.elf"; do
	[[ -x $f || -f $f ]] || die "$f is missing; run \`make bench\`"
done
if [[ -n $QEMU ]] && ! command -v "$QEMU" >/dev/null 2>&1; then
	QEMU=
fi
mkdir -p "$BUILD/bench"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# --- helpers ---------------------------------------------------------------

source bench/lib.sh
now_us() { local t=${EPOCHREALTIME/[.,]/}; echo "$t"; }
# field NAME FILE: the value of the last "NAME=value" in FILE.
field() { { grep -o "$1=[0-9a-f]*" "$2" || true; } | tail -1 | cut -d= -f2; }

# --- (a) memstress under kagami vs the host process -------------------------

ms_mib=$(grep -o '\bmib=[0-9]*' <<<"$MS_ARGS" | cut -d= -f2 || true)
ms_mib=${ms_mib:-16}
mem_mib=$((ms_mib + 64 > 256 ? ms_mib + 64 : 256))
g_mibs=() h_mibs=() g_ms=() h_ms=()
echo "bench: memstress ($MS_ARGS), $R runs each, guest and host alternating" >&2
for ((i = 0; i < R; i++)); do
	rc=0
	"$KAGAMI" run --mem "${mem_mib}M" --timeout 600 \
		--cmdline "$MS_ARGS stats" "$GUESTS/memstress.elf" \
		>"$TMP/g.out" 2>"$TMP/g.err" || rc=$?
	[[ $rc == 0 ]] || { cat "$TMP/g.out" "$TMP/g.err" >&2;
			    die "memstress under kagami exited with $rc"; }
	"$HOST_MEMSTRESS" "$MS_ARGS" stats >"$TMP/h.out" ||
		die "memstress_host failed"
	# The two must agree on every checksum: same loop, same result.
	if ! diff <(grep -v elapsed_us "$TMP/g.out") \
		<(grep -v elapsed_us "$TMP/h.out") >"$TMP/diff"; then
		cat "$TMP/diff" >&2
		die "memstress checksums differ between guest and host"
	fi
	total=$(field total "$TMP/g.out")
	gus=$(field elapsed_us "$TMP/g.out") hus=$(field elapsed_us "$TMP/h.out")
	[[ -n $gus && -n $hus && $gus -gt 0 && $hus -gt 0 ]] ||
		die "no elapsed_us from memstress (guest '$gus', host '$hus')"
	g_mibs+=("$(calc %.1f "$total / ($gus / 1e6)")")
	h_mibs+=("$(calc %.1f "$total / ($hus / 1e6)")")
	g_ms+=("$(calc %.1f "$gus / 1e3")") h_ms+=("$(calc %.1f "$hus / 1e3")")
done
ms_checksum=$(grep -o 'done checksum=[0-9a-f]*' "$TMP/g.out" | cut -d= -f2)
# Console bytes the guest writes inside its timed region (the pass lines).
ms_console_bytes=$(grep 'pass=' "$TMP/g.out" | wc -c)
# The ratio of the medians (not the median of per-run ratios).
g_mib=$(median "${g_mibs[@]}") h_mib=$(median "${h_mibs[@]}")
ms_ratio=$(calc %.3f "$g_mib / $h_mib")
ms_goal=$(awk -v r="$ms_ratio" 'BEGIN { print (r >= 0.95 ? "met" : "MISSED") }')

# --- (b) exit costs ----------------------------------------------------------

pio=() mmio=() loop=() outsb=()
echo "bench: exitbench (n=$EXIT_N), $R runs" >&2
for ((i = 0; i < R; i++)); do
	rc=0
	"$KAGAMI" run --timeout 600 --cmdline "n=$EXIT_N" \
		"$GUESTS/exitbench.elf" >"$TMP/e.out" 2>"$TMP/e.err" || rc=$?
	[[ $rc == 0 ]] || { cat "$TMP/e.out" "$TMP/e.err" >&2;
			    die "exitbench exited with $rc"; }
	p=$(field pio_ns_per_exit "$TMP/e.out")
	m=$(field mmio_ns_per_exit "$TMP/e.out")
	l=$(field loop_ns_per_iter "$TMP/e.out")
	o=$(field outsb64_ns_per_op "$TMP/e.out")
	[[ -n $p && -n $m && -n $l && -n $o ]] ||
		{ cat "$TMP/e.out" >&2; die "exitbench printed no figures"; }
	pio+=("$(calc %.3f "$p / 1e3")") mmio+=("$(calc %.3f "$m / 1e3")")
	loop+=("$l") outsb+=("$(calc %.3f "$o / 1e3")")
done
pio_us=$(median "${pio[@]}") mmio_us=$(median "${mmio[@]}")
outsb_us=$(median "${outsb[@]}")
outsb_exits=$(calc %.0f "$outsb_us / $pio_us")
# An estimate of what those console lines cost the guest: under kagami the
# SDK writes each line through the kagami console port, one PIO exit per
# line; and the memstress ratio with that cost taken out.
g_ms_med=$(median "${g_ms[@]}") h_ms_med=$(median "${h_ms[@]}")
ms_console_lines=$(grep -c 'pass=' "$TMP/g.out")
ms_console_ms=$(calc %.1f "$ms_console_lines * $pio_us / 1e3")
ms_ratio_noconsole=$(calc %.3f "$h_ms_med / ($g_ms_med - $ms_console_ms)")

# --- (c) boot to first console output, and whole-process wall time ----------

first=() kwall=() qwall=()
echo "bench: hello.elf boot, $R runs${QEMU:+ (and under $QEMU)}" >&2
for ((i = 0; i < R; i++)); do
	rc=0
	t0=$(now_us)
	"$KAGAMI" run --summary --timeout 60 "$GUESTS/hello.elf" \
		>"$TMP/b.out" 2>"$TMP/b.err" || rc=$?
	t1=$(now_us)
	[[ $rc == 0 ]] || { cat "$TMP/b.out" "$TMP/b.err" >&2;
			    die "hello.elf under kagami exited with $rc"; }
	f=$(grep -o 'first console output after [0-9.]* ms' "$TMP/b.err" |
		grep -o '[0-9.]*' || true)
	[[ -n $f ]] || { cat "$TMP/b.err" >&2; die "no first console output"; }
	first+=("$f") kwall+=("$(calc %.2f "($t1 - $t0) / 1e3")")
	if [[ -n $QEMU ]]; then
		rc=0
		t0=$(now_us)
		timeout 120 "$QEMU" -M microvm -accel tcg -m 256M -nodefaults \
			-no-user-config -nographic -serial stdio -display none \
			-device isa-debug-exit,iobase=0xf4,iosize=0x04 \
			-kernel "$GUESTS/hello.elf" \
			>"$TMP/q.out" 2>"$TMP/q.err" </dev/null || rc=$?
		t1=$(now_us)
		# The guest's exit(0) reaches isa-debug-exit as QEMU status 1.
		[[ $rc == 1 ]] || { cat "$TMP/q.out" "$TMP/q.err" >&2;
				    die "$QEMU exited with $rc (want 1)"; }
		grep -q 'hello: hello, world' "$TMP/q.out" ||
			die "$QEMU ran hello.elf but printed no greeting"
		qwall+=("$(calc %.2f "($t1 - $t0) / 1e3")")
	fi
done
first_ms=$(median "${first[@]}") kwall_ms=$(median "${kwall[@]}")
if [[ -n $QEMU ]]; then
	qwall_ms=$(median "${qwall[@]}")
	boot_ratio=$(calc %.3f "$kwall_ms / $qwall_ms")
	qemu_ver=$("$QEMU" --version | head -1)
fi

# --- the table -----------------------------------------------------------------

cpu=$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2 | sed 's/^ *//')
kernel="$(uname -sr) $(uname -m)"
row() { printf '%-40s %12s %12s %8s %7s  %s\n' "$@"; }
echo
echo "kagami benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "machine: nproc=$(nproc), kernel $kernel${cpu:+, $cpu}"
echo "figures are medians of $R runs on a shared, noisy machine;"
echo "spread = (max - min) / median of the kagami column"
echo
row "measurement" "kagami" "peer" "ratio" "spread" "peer / note"
row "-----------" "------" "----" "-----" "------" "-----------"
row "(a) memstress throughput, MiB/s" "$g_mib" "$h_mib" "$ms_ratio" \
	"$(spread "${g_mibs[@]}")%" "host process; goal ratio >= 0.95: $ms_goal"
row "    memstress elapsed, ms" "$g_ms_med" "$h_ms_med" "" \
	"$(spread "${g_ms[@]}")%" "$MS_ARGS, checksum $ms_checksum"
row "    of which console output (est.), ms" "$ms_console_ms" "" \
	"$ms_ratio_noconsole" "" \
	"$ms_console_lines lines, 1 exit each; ratio: throughput without it"
row "(b) PIO exit, us" "$pio_us" "" "" "$(spread "${pio[@]}")%" \
	"inl KAGAMI_PORT_VERSION, n=$EXIT_N"
row "    MMIO exit, us" "$mmio_us" "" "" "$(spread "${mmio[@]}")%" \
	"read of unbacked GPA 0xc0100000"
row "    empty loop, ns/iter" "$(median "${loop[@]}")" "" "" \
	"$(spread "${loop[@]}")%" "the measurement's own overhead"
row "    64-byte rep outsb, us" "$outsb_us" "" "" "$(spread "${outsb[@]}")%" \
	"~$outsb_exits PIO exits' worth (COM1 path, as under QEMU)"
row "(c) hello.elf first console output, ms" "$first_ms" "" "" \
	"$(spread "${first[@]}")%" "kagami --summary, from vm_run start"
if [[ -n $QEMU ]]; then
	row "    hello.elf process wall time, ms" "$kwall_ms" "$qwall_ms" \
		"$boot_ratio" "$(spread "${kwall[@]}")%" \
		"qemu -M microvm -accel tcg"
else
	row "    hello.elf process wall time, ms" "$kwall_ms" "-" "-" \
		"$(spread "${kwall[@]}")%" "no QEMU: peer skipped"
fi
echo
echo "ratio: kagami / peer (for MiB/s higher is better; for times lower is better)"

# --- JSON copy -------------------------------------------------------------------

jstr() { printf '"%s"' "$(sed 's/\\/\\\\/g; s/"/\\"/g' <<<"$1")"; }
jarr() { local IFS=,; printf '[%s]' "$*"; }
{
	echo "{"
	echo "  \"date\": $(jstr "$(date -u '+%Y-%m-%dT%H:%M:%SZ')"),"
	echo "  \"machine\": {\"nproc\": $(nproc), \"kernel\": $(jstr "$kernel"), \"cpu\": $(jstr "$cpu")},"
	echo "  \"repeat\": $R,"
	echo "  \"memstress\": {\"args\": $(jstr "$MS_ARGS"), \"checksum\": $(jstr "$ms_checksum"),"
	echo "    \"guest_mib_s\": $g_mib, \"host_mib_s\": $h_mib, \"ratio\": $ms_ratio, \"goal\": 0.95,"
	echo "    \"console_bytes\": $ms_console_bytes, \"console_ms_estimate\": $ms_console_ms, \"ratio_without_console\": $ms_ratio_noconsole,"
	echo "    \"guest_mib_s_runs\": $(jarr "${g_mibs[@]}"), \"host_mib_s_runs\": $(jarr "${h_mibs[@]}")},"
	echo "  \"exits\": {\"n\": $EXIT_N, \"pio_us\": $pio_us, \"mmio_us\": $mmio_us,"
	echo "    \"loop_ns_per_iter\": $(median "${loop[@]}"), \"outsb64_us\": $outsb_us,"
	echo "    \"pio_us_runs\": $(jarr "${pio[@]}"), \"mmio_us_runs\": $(jarr "${mmio[@]}")},"
	echo "  \"boot\": {\"first_output_ms\": $first_ms, \"kagami_wall_ms\": $kwall_ms,"
	echo "    \"first_output_ms_runs\": $(jarr "${first[@]}"), \"kagami_wall_ms_runs\": $(jarr "${kwall[@]}"),"
	if [[ -n $QEMU ]]; then
		echo "    \"qemu\": $(jstr "$qemu_ver"), \"qemu_wall_ms\": $qwall_ms, \"ratio\": $boot_ratio,"
		echo "    \"qemu_wall_ms_runs\": $(jarr "${qwall[@]}")}"
	else
		echo "    \"qemu\": null}"
	fi
	echo "}"
} >"$JSON"
echo "JSON copy: ${JSON#"$PWD"/}"
