#!/usr/bin/env python3
"""free-ports.py [COUNT]: prints the first of COUNT consecutive loopback ports that are free now,
for the shell scripts that start servers (compliance, browser test, benchmark).

The shell side of host-tests/src/ports.rs, with the same rules: ports come from below the
kernel's ephemeral range (so no outgoing connection takes one meanwhile), a port a running test
process has claimed (its lock file in the shared directory is locked) is skipped, and so is a
port this script run was already given: with SCIM_EDGE_PORTS_FILE set, every port handed out is
appended to that file and never handed out again while it lists it.
"""
import fcntl
import os
import random
import socket
import sys
import tempfile

LOW, HIGH = 20_000, 32_000  # host-tests/src/ports.rs RANGE
LOCKS = os.path.join(tempfile.gettempdir(), "scim-edge-test-ports")


def claimed_elsewhere(port):
    try:
        fd = os.open(os.path.join(LOCKS, str(port)), os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    given_file = os.environ.get("SCIM_EDGE_PORTS_FILE")
    given = set()
    if given_file and os.path.exists(given_file):
        given = {int(p) for p in open(given_file).read().split()}
    for _ in range(2000):
        base = random.randint(LOW, HIGH - n)
        ports = range(base, base + n)
        if any(p in given or claimed_elsewhere(p) for p in ports):
            continue
        socks = []
        try:
            for p in ports:
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", p))
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
        if given_file:
            with open(given_file, "a") as f:
                f.write("".join(f"{p}\n" for p in ports))
        print(base)
        return 0
    sys.exit("free-ports.py: no free port range")


if __name__ == "__main__":
    sys.exit(main())
