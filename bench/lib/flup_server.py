#!/usr/bin/env python3
"""Run a WSGI app under flup's threaded FastCGI server (flup.server.fcgi).

    flup_server.py tcp:HOST:PORT  APP_ROOT MODULE:CALLABLE
    flup_server.py unix:/path     APP_ROOT MODULE:CALLABLE

flup's defaults are kept: ThreadPool(minSpare=1, maxSpare=5), not
multiplexed, FCGI_KEEP_CONN honoured.
"""
import importlib
import sys

from flup.server.fcgi import WSGIServer


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    addr, app_root, spec = sys.argv[1:]
    sys.path.insert(0, app_root)
    module, _, name = spec.partition(":")
    app = getattr(importlib.import_module(module), name or "app")
    if addr.startswith("unix:"):
        bind = addr[len("unix:"):]
    elif addr.startswith("tcp:"):
        host, _, port = addr[len("tcp:"):].rpartition(":")
        bind = (host, int(port))
    else:
        sys.exit("address must start with tcp: or unix:")
    WSGIServer(app, bindAddress=bind, umask=0o000).run()


if __name__ == "__main__":
    main()
