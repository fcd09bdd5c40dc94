# Network-namespace test hosts (bash, sourced). All traffic stays inside
# namespaces this file creates; nothing is added to the root namespace.
#
#   source tests/netns.sh
#   netns_usable || skip "$NETNS_MISSING"
#   netns_setup                      # the switch namespace; traps cleanup
#   netns_add_host a 10.77.0.1       # namespace "a", eth0 = 10.77.0.1/24
#   netns_add_host b 10.77.0.2
#   netns_add_tap a tap0             # TAP for a VM on host a, bridged
#   netns_exec b ping -c1 10.77.0.1  # run a command on host b
#   netns_spawn a CMD...             # in the background; NETNS_PID = CMD's pid
#   netns_cleanup                    # also runs on EXIT (and so on INT, TERM, HUP)
#
# Topology: a "switch" namespace holds bridge sw0. Each host namespace has
# eth0, a veth whose peer is a port of sw0 (the host's cable to the
# switch). The first TAP of a host turns the host into a hypervisor host:
# a local bridge br0 takes over eth0 and the host's IP, and each TAP is a
# port of br0, so the VM behind it is a peer on the same 10.77.0.0/24
# segment with its own IP. Every link is created from inside a namespace
# (`ip -n`), so interface names cannot collide with other runs; namespace
# names carry the shell's pid and a random number ($NETNS_ID).
#
# Needs root and iproute2. Test range: 10.77.0.0/24 (only inside).

NETNS_ID=""
NETNS_HOSTS=()      # logical host names, in creation order
NETNS_PORTS=0       # switch ports created
NETNS_MISSING=""
NETNS_PREV_EXIT=""  # the EXIT trap that was set before netns_setup

# netns_usable: 0 if namespaces can be made here; else sets NETNS_MISSING.
netns_usable() {
	NETNS_MISSING=""
	if [[ $(id -u) != 0 ]]; then
		NETNS_MISSING="network namespaces need root"
	elif ! command -v ip >/dev/null; then
		NETNS_MISSING="iproute2 (ip) is not installed"
	elif [[ ! -c /dev/net/tun ]]; then
		NETNS_MISSING="/dev/net/tun is missing"
	fi
	[[ -z $NETNS_MISSING ]]
}

# The kernel name of logical host NAME's namespace.
netns_name() { echo "$NETNS_ID-$1"; }

netns_setup() {
	[[ -z $NETNS_ID ]] || { echo "netns_setup: already set up ($NETNS_ID)" >&2; return 1; }
	netns_usable || { echo "netns_setup: $NETNS_MISSING" >&2; return 1; }
	NETNS_ID="kgt-${BASHPID:-$$}-$RANDOM"
	NETNS_HOSTS=()
	NETNS_PORTS=0
	# Chain to an EXIT trap set before us. bash runs the EXIT trap also
	# when SIGINT, SIGTERM or SIGHUP ends the shell, and then dies of the
	# signal, so a caller waiting on it (tests/run.sh) stops too.
	local prev
	prev=$(trap -p EXIT)
	NETNS_PREV_EXIT=""
	if [[ -n $prev ]]; then
		eval "set -- $prev" # trap -- 'CMD' EXIT
		NETNS_PREV_EXIT=$3
	fi
	trap 'netns_cleanup; eval "$NETNS_PREV_EXIT"' EXIT
	local sw
	sw=$(netns_name switch)
	ip netns add "$sw" || { netns_cleanup; return 1; }
	ip -n "$sw" link set lo up &&
	ip -n "$sw" link add sw0 type bridge &&
	ip -n "$sw" link set sw0 up || { echo "netns_setup: cannot create bridge" >&2; return 1; }
}

# netns_add_host NAME IP: a namespace with eth0 = IP/24 cabled to the switch.
netns_add_host() {
	local name=$1 ip=$2
	[[ -n $NETNS_ID ]] || { echo "netns_add_host: call netns_setup first" >&2; return 1; }
	[[ $name =~ ^[A-Za-z0-9_]+$ && $name != switch ]] ||
		{ echo "netns_add_host: bad host name '$name'" >&2; return 1; }
	[[ $ip =~ ^10\.77\.0\.[0-9]+$ ]] ||
		{ echo "netns_add_host: $ip is outside the test range 10.77.0.0/24" >&2; return 1; }
	local ns sw port
	ns=$(netns_name "$name")
	sw=$(netns_name switch)
	ip netns add "$ns" || return 1
	NETNS_HOSTS+=("$name")
	NETNS_PORTS=$((NETNS_PORTS + 1))
	port=p$NETNS_PORTS
	ip -n "$ns" link set lo up || return 1
	# The peer's namespace is resolved by name (/run/netns); once seen to
	# fail transiently ("Peer netns reference is invalid") while other
	# runs added and deleted namespaces, so try again briefly.
	local try
	for try in 1 2 3; do
		ip -n "$sw" link add "$port" type veth peer name eth0 netns "$ns" && break
		((try < 3)) || { echo "netns_add_host: cannot create the veth for $name" >&2; return 1; }
		sleep 0.2
	done
	ip -n "$sw" link set "$port" master sw0 &&
	ip -n "$sw" link set "$port" up &&
	ip -n "$ns" addr add "$ip/24" dev eth0 &&
	ip -n "$ns" link set eth0 up ||
		{ echo "netns_add_host: cannot cable $name to the switch" >&2; return 1; }
}

# netns_add_tap HOST TAPNAME: a TAP in HOST's namespace (where kagami or
# QEMU will open it by name), a port of HOST's local bridge br0.
netns_add_tap() {
	local name=$1 tap=$2 ns addrs a
	ns=$(netns_name "$name")
	[[ -e /run/netns/$ns ]] || { echo "netns_add_tap: no host '$name'" >&2; return 1; }
	[[ ${#tap} -le 15 && $tap =~ ^[A-Za-z0-9_.-]+$ ]] ||
		{ echo "netns_add_tap: bad interface name '$tap'" >&2; return 1; }
	if ! ip -n "$ns" link show br0 >/dev/null 2>&1; then
		# Move the host's address from eth0 to a local bridge over eth0.
		addrs=$(ip -n "$ns" -4 -o addr show dev eth0 | awk '{ print $4 }')
		ip -n "$ns" link add br0 type bridge &&
		ip -n "$ns" link set eth0 master br0 || return 1
		for a in $addrs; do
			ip -n "$ns" addr del "$a" dev eth0 &&
			ip -n "$ns" addr add "$a" dev br0 || return 1
		done
		ip -n "$ns" link set br0 up || return 1
	fi
	ip -n "$ns" tuntap add dev "$tap" mode tap &&
	ip -n "$ns" link set "$tap" master br0 &&
	ip -n "$ns" link set "$tap" up ||
		{ echo "netns_add_tap: cannot create $tap on $name" >&2; return 1; }
}

# netns_exec HOST CMD...: runs CMD in HOST's namespace.
netns_exec() {
	local ns
	ns=$(netns_name "$1")
	shift
	[[ -e /run/netns/$ns ]] || { echo "netns_exec: no such host namespace $ns" >&2; return 1; }
	ip netns exec "$ns" "$@"
}

# netns_spawn HOST CMD...: starts CMD in HOST's namespace in the
# background and sets NETNS_PID to its pid (`ip netns exec` execs CMD, so
# this is CMD itself: kill -9 $NETNS_PID kills CMD). Redirect as needed:
#   netns_spawn a kagami run ... >log 2>&1
netns_spawn() {
	local ns
	ns=$(netns_name "$1")
	shift
	NETNS_PID=""
	[[ -e /run/netns/$ns ]] || { echo "netns_spawn: no such host namespace $ns" >&2; return 1; }
	ip netns exec "$ns" "$@" &
	NETNS_PID=$!
}

# netns_cleanup: kills what still runs in our namespaces, deletes TAPs,
# bridges, veths and the namespaces. Idempotent.
netns_cleanup() {
	[[ -n $NETNS_ID ]] || return 0
	local n ns pids all=() i
	for n in "${NETNS_HOSTS[@]}" switch; do
		all+=("$(netns_name "$n")")
	done
	# Processes started in our namespaces (only ours can be in them).
	for ns in "${all[@]}"; do
		[[ -e /run/netns/$ns ]] || continue
		pids=$(ip netns pids "$ns" 2>/dev/null)
		[[ -n $pids ]] && kill -KILL $pids 2>/dev/null
	done
	for ns in "${all[@]}"; do
		[[ -e /run/netns/$ns ]] || continue
		for i in 1 2 3 4 5 6 7 8 9 10; do
			[[ -z $(ip netns pids "$ns" 2>/dev/null) ]] && break
			sleep 0.1
		done
		# Delete the virtual links explicitly, then the namespace.
		ip -n "$ns" -o link show 2>/dev/null | awk -F': ' '{ print $2 }' |
			sed 's/@.*//' | while read -r dev; do
				[[ $dev == lo ]] || ip -n "$ns" link del "$dev" 2>/dev/null
			done
		ip netns del "$ns" 2>/dev/null
	done
	NETNS_ID=""
	NETNS_HOSTS=()
	return 0
}

# netns_leftovers ID: prints namespaces and root-namespace links of run ID
# still present (nothing when cleanup was complete).
netns_leftovers() {
	local id=$1
	ip netns list | awk '{ print $1 }' | grep -F -- "$id" || true
}
