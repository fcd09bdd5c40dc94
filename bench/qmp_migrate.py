#!/usr/bin/env python3
"""Live-migrate a QEMU over QMP and print the final query-migrate as JSON.

usage: qmp_migrate.py SOCK URI [--downtime-limit MS] [--bandwidth MIBPS]
                      [--timeout S]
       qmp_migrate.py SOCK --status     (prints query-status's status)

SOCK is the source's QMP unix socket (-qmp unix:SOCK,server=on,wait=off),
URI the destination's -incoming address (tcp:HOST:PORT). Optionally sets
the downtime limit and the bandwidth cap (migrate-set-parameters), starts
`migrate`, polls query-migrate every 10 ms until the status is completed
(exit 0) or failed/cancelled/timed out (exit 1), and prints the last reply
on one line. Standard library only (bench/migration.sh).
"""
import json
import socket
import sys
import time


class QMP:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.connect(path)
        self.f = self.s.makefile("rwb", buffering=0)
        self.recv()  # the greeting
        self.cmd("qmp_capabilities")

    def recv(self):
        while True:
            line = self.f.readline()
            if not line:
                raise EOFError("QMP connection closed")
            msg = json.loads(line)
            if "event" not in msg:
                return msg

    def cmd(self, name, **args):
        req = {"execute": name}
        if args:
            req["arguments"] = args
        self.f.write(json.dumps(req).encode() + b"\n")
        reply = self.recv()
        if "error" in reply:
            raise RuntimeError(f"{name}: {reply['error'].get('desc', reply)}")
        return reply.get("return")


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    sock, uri = argv[1], argv[2]
    if uri == "--status":
        print(QMP(sock).cmd("query-status").get("status"))
        return 0
    opts = {"--downtime-limit": None, "--bandwidth": None, "--timeout": "600"}
    rest = argv[3:]
    while rest:
        if rest[0] not in opts or len(rest) < 2:
            print(f"qmp_migrate: bad argument {rest[0]}", file=sys.stderr)
            return 2
        opts[rest[0]] = rest[1]
        rest = rest[2:]
    q = QMP(sock)
    params = {}
    if opts["--downtime-limit"] is not None:
        params["downtime-limit"] = int(opts["--downtime-limit"])
    if opts["--bandwidth"] is not None:
        params["max-bandwidth"] = int(opts["--bandwidth"]) << 20
    else:
        # QEMU 7.2's default cap is 128 MiB/s (32 MiB/s before 4.x);
        # lift it so both VMMs can use the link: 0 is not "unlimited"
        # in every version, so ask for more than loopback carries.
        params["max-bandwidth"] = 1 << 40
    q.cmd("migrate-set-parameters", **params)
    q.cmd("migrate", uri=uri)
    deadline = time.monotonic() + float(opts["--timeout"])
    while True:
        st = q.cmd("query-migrate")
        status = st.get("status")
        if status in ("completed", "failed", "cancelled"):
            break
        if time.monotonic() > deadline:
            try:
                q.cmd("migrate_cancel")
            except Exception:
                pass
            st["status"] = "timeout"
            break
        time.sleep(0.01)
    print(json.dumps(st, sort_keys=True))
    return 0 if st.get("status") == "completed" else 1


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except (OSError, EOFError, RuntimeError, ValueError) as e:
        print(f"qmp_migrate: {e}", file=sys.stderr)
        sys.exit(1)
