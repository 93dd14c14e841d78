#!/usr/bin/env python3
"""Check that one benchmark URL answers correctly before it is loaded.

    probe.py APP URL [status-only]

Exit 0 if the answer is right for APP (hello, flask, stream, upload, postNk), else
print what was wrong and exit 1. With status-only (for the ceiling, which
answers a constant body whatever the request) only a 200 is required.
Standard library only.
"""
import sys
import urllib.request

MIB = 1024 * 1024


def main():
    app, url = sys.argv[1], sys.argv[2]
    status_only = sys.argv[3:] == ["status-only"]
    data = None
    if app == "upload":
        data = b"u" * MIB
    elif app.startswith("post") and app.endswith("k"):
        data = b"u" * (int(app[4:-1]) * 1024)
    req = urllib.request.Request(url, data=data, method="POST" if data else "GET")
    if data:
        req.add_header("Content-Type", "application/octet-stream")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            status, body = resp.status, resp.read()
    except urllib.error.HTTPError as e:
        status, body = e.code, e.read()
    except Exception as e:  # connection refused, reset, timeout
        print("probe %s: %s: %s" % (url, type(e).__name__, e))
        return 1
    expect = {
        "hello": b"Hello, World!\n",
        "flask": b"Hello, World!\n",
        "upload": b"%d\n" % MIB,
    }.get(app, b"%d\n" % len(data) if data else None)
    ok = status == 200 and status_only or status == 200 and (
        body == b"x" * MIB if app == "stream"
        else expect is None or body == expect
    )
    if not ok:
        print("probe %s: status %s, %d body bytes: %r" % (url, status, len(body), body[:300]))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
