#!/usr/bin/env bash
# make demo: kagami's main job on built-in defaults — a short failover
# drill. A kvstore guest protected with checkpoint FT runs on one
# network-namespace host with its replica on another; a client writes to
# it; the primary is killed with SIGKILL mid-load; the secondary takes
# over; the client checks that no acknowledged write was lost.
set -euo pipefail
cd "$(dirname "$0")/.."
KAGAMI=build/kagami
if [[ ! -c /dev/kvm ]]; then
	echo "demo: /dev/kvm not found: kagami needs KVM (load kvm-intel or kvm-amd)" >&2
	exit 1
fi
if [[ $(id -u) != 0 ]]; then
	echo "demo: the drill builds network namespaces and TAP devices: run it as root" >&2
	exit 1
fi
COUNT=${DEMO_COUNT:-3}
cat <<EOT
== kagami demo: $COUNT failover drills of a VM protected with checkpoint FT
   primary:   kagami run --replicate ft --peer ... kvstore.elf  (host "pri")
   secondary: kagami secondary --listen ...                    (host "sec")
   client:    kagami kv load, then kagami kv verify            (host "cli"),
              recording every request in a history
   failure:   the primary's host loses power at a random moment of the load
              (its network goes silent, then kagami is killed)
   measured:  by 'kagami check', from the client's history alone: recovery
              (the longest time without an answer) and keys whose history
              is not linearizable, e.g. an acknowledged write lost (FT
              promises none)

EOT
$KAGAMI drill --mode ft --count "$COUNT" --kill primary-host
