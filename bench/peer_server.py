#!/usr/bin/env python3
"""The benchmark's peer, scim2-server, at its best: its own command (`scim2-server`, the same
application, schemas and bearer-token check) served by waitress, a production WSGI server with
HTTP/1.1 keep-alive and a thread pool, instead of the command's `wsgiref` server (HTTP/1.0: a
new connection per request, listen backlog 5).

One process: the peer keeps its resources in memory, per process, so more processes would
split its data. Usage: peer_server.py [--threads N] -- <scim2-server arguments>
"""
import argparse
import sys

import waitress
from scim2_server.testserver import cli


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("rest", nargs=argparse.REMAINDER)
    a = ap.parse_args()

    class Server:
        """What scim2-server's main() expects of wsgiref's make_server, over waitress."""

        def __init__(self, host, port, app, server_class=None):
            self.server = waitress.create_server(
                app, host=host, port=port, threads=a.threads, backlog=1024, connection_limit=1000,
                channel_timeout=120, ident="scim2-server")

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.server.close()

        def serve_forever(self):
            self.server.run()

    cli.make_server = Server
    sys.argv = ["scim2-server", *[x for x in a.rest if x != "--"]]
    cli.main()


if __name__ == "__main__":
    main()
