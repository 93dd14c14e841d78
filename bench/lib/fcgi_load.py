"""Sends N FastCGI requests, one after another, on one kept connection, the way nginx does with
`fastcgi_keep_conn on`: the same 22 parameters nginx sends for `GET /` and an empty body. Each response is read
to its END_REQUEST and checked for a 200 status. Used by bench/profile.sh to drive the backend under callgrind.

    python3 fcgi_load.py unix:/path/to.sock COUNT [--warmup N] [--callgrind-pid PID]
"""

import argparse
import socket
import subprocess
import struct
import sys

BEGIN, END, PARAMS, STDIN, STDOUT, STDERR = 1, 3, 4, 5, 6, 7
KEEP_CONN = 1

# What nginx 1.22's fastcgi_params plus the Host/User-Agent/Accept headers of wrk produce for GET /.
NGINX_PARAMS = [
    ("QUERY_STRING", ""),
    ("REQUEST_METHOD", "GET"),
    ("CONTENT_TYPE", ""),
    ("CONTENT_LENGTH", ""),
    ("SCRIPT_NAME", ""),
    ("REQUEST_URI", "/"),
    ("DOCUMENT_URI", "/"),
    ("DOCUMENT_ROOT", "/usr/share/nginx/html"),
    ("SERVER_PROTOCOL", "HTTP/1.1"),
    ("REQUEST_SCHEME", "http"),
    ("GATEWAY_INTERFACE", "CGI/1.1"),
    ("SERVER_SOFTWARE", "nginx/1.22.1"),
    ("REMOTE_ADDR", "127.0.0.1"),
    ("REMOTE_PORT", "40000"),
    ("REMOTE_USER", ""),
    ("SERVER_ADDR", "127.0.0.1"),
    ("SERVER_PORT", "8080"),
    ("SERVER_NAME", "localhost"),
    ("REDIRECT_STATUS", "200"),
    ("PATH_INFO", "/"),
    ("HTTP_HOST", "127.0.0.1:8080"),
    ("HTTP_USER_AGENT", "wrk"),
]


def record(rtype, request_id, content=b""):
    pad = -len(content) % 8
    return struct.pack(">BBHHBx", 1, rtype, request_id, len(content), pad) + content + b"\0" * pad


def nv_len(n):
    return bytes([n]) if n < 128 else struct.pack(">I", n | 0x80000000)


def request(request_id, remote_port):
    params = b""
    for name, value in NGINX_PARAMS:
        if name == "REMOTE_PORT":
            value = str(remote_port)
        name, value = name.encode(), value.encode()
        params += nv_len(len(name)) + nv_len(len(value)) + name + value
    return (
        record(BEGIN, request_id, struct.pack(">HB5x", 1, KEEP_CONN))
        + record(PARAMS, request_id, params)
        + record(PARAMS, request_id)
        + record(STDIN, request_id)
    )


def read_response(sock, buf):
    stdout = b""
    while True:
        while len(buf) < 8:
            chunk = sock.recv(65536)
            if not chunk:
                raise SystemExit("backend closed the connection")
            buf += chunk
        _, rtype, _, length, pad = struct.unpack(">BBHHBx", buf[:8])
        while len(buf) < 8 + length + pad:
            chunk = sock.recv(65536)
            if not chunk:
                raise SystemExit("backend closed the connection mid-record")
            buf += chunk
        content, buf = buf[8 : 8 + length], buf[8 + length + pad :]
        if rtype == STDOUT:
            stdout += content
        elif rtype == END:
            return stdout, buf


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("address", help="unix:/path or HOST:PORT")
    parser.add_argument("count", type=int, help="requests to measure")
    parser.add_argument("--warmup", type=int, default=0, help="requests before the measured ones")
    parser.add_argument("--callgrind-pid", type=int,
                        help="switch callgrind's instrumentation of this pid on and off around the measured requests")
    args = parser.parse_args()
    if args.address.startswith("unix:"):
        sock = socket.socket(socket.AF_UNIX)
        sock.connect(args.address[5:])
    else:
        host, port = args.address.rsplit(":", 1)
        sock = socket.create_connection((host, int(port)))
    buf = b""

    def run(count, first):
        nonlocal buf
        for i in range(first, first + count):
            # Ports vary per request as they do behind a real front server.
            sock.sendall(request(1, 40000 + i % 20000))
            stdout, buf = read_response(sock, buf)
            if not stdout.startswith(b"Status: 200"):
                raise SystemExit(f"request {i}: unexpected response {stdout[:60]!r}")

    def instrument(state):
        if args.callgrind_pid:
            subprocess.run(["callgrind_control", "-i", state, str(args.callgrind_pid)], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    run(args.warmup, 0)
    instrument("on")
    run(args.count, args.warmup)
    instrument("off")
    sock.close()


if __name__ == "__main__":
    main()
