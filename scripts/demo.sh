#!/usr/bin/env bash
# make demo: kagami's main job on built-in defaults. For now: boot the
# memstress guest, show its output and a one-screen summary. (Later issues
# turn this into a failover drill.)
set -euo pipefail
cd "$(dirname "$0")/.."
KAGAMI=build/kagami
if [[ ! -c /dev/kvm ]]; then
	echo "demo: /dev/kvm not found: kagami needs KVM (load kvm-intel or kvm-amd)" >&2
	exit 1
fi
CMDLINE=${DEMO_CMDLINE:-"mib=64 total=512 seed=1 rate=256 stats"}
cat <<EOT
== kagami demo: memstress under kagami
   guest:   build/guests/memstress.elf ($CMDLINE)
   what:    writes 512 MiB as random 4 KiB pages into a 64 MiB working set,
            paced to 256 MiB/s by the guest clock device, printing a
            checksum of the working set after each pass. The checksums depend
            only on mib/total/seed: every later mode (snapshot, migration,
            failover) is checked against them.

EOT
set +e
$KAGAMI run --mem 256M --summary --cmdline "$CMDLINE" build/guests/memstress.elf
status=$?
set -e
echo
echo "== demo finished: kagami exited with status $status"
exit $status
