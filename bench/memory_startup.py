"""Measures what the throughput harness cannot: pyfcgi's memory while 1 GiB goes through it in each direction,
and its start-up time against plain `python -c "import app"`.

    python3 bench/memory_startup.py --pyfcgi target/release/pyfcgi [--venv bench/.work/venv-py311] [--gib 1] [--runs 5]

Memory: pyfcgi serves an app on a Unix socket; a FastCGI client written here sends a body of --gib GiB in 64 KiB
records (generated on the fly, never stored) that the app reads in 64 KiB chunks, then asks for a response of the
same size that the app yields in 64 KiB chunks, reading and discarding it. pyfcgi's RSS (/proc/PID/status) is
sampled every 20 ms; the figure is peak RSS minus the RSS after a warm-up request.

Start-up: wall time from spawning pyfcgi to the first complete response (hello world and Flask), against the wall
time of `python -c "import MODULE"` with the same interpreter and sys.path; medians of --runs.
Prints a Markdown report. Stdlib only.
"""

import argparse
import os
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

CHUNK = 64 * 1024

APP = '''
import hashlib

CHUNK = 64 * 1024

def app(environ, start_response):
    if environ["REQUEST_METHOD"] == "POST":
        digest = hashlib.sha256()
        stream = environ["wsgi.input"]
        size = 0
        while True:
            data = stream.read(CHUNK)
            if not data:
                break
            digest.update(data)
            size += len(data)
        body = ("%d %s" % (size, digest.hexdigest())).encode()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]
    total = int(environ.get("QUERY_STRING") or "0")
    start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(total))])
    block = b"x" * CHUNK

    def generate():
        left = total
        while left > 0:
            n = min(left, CHUNK)
            yield block[:n]
            left -= n

    return generate()
'''


def record(rtype, request_id, content=b""):
    return struct.pack(">BBHHBB", 1, rtype, request_id, len(content), 0, 0) + content


def pair(name, value):
    out = b""
    for item in (name, value):
        out += bytes([len(item)]) if len(item) < 128 else struct.pack(">I", len(item) | 0x80000000)
    return out + name + value


def request_head(method, query=b"", length=0):
    params = b"".join(
        pair(n, v)
        for n, v in [
            (b"REQUEST_METHOD", method),
            (b"REQUEST_URI", b"/?" + query),
            (b"QUERY_STRING", query),
            (b"PATH_INFO", b"/"),
            (b"SCRIPT_NAME", b""),
            (b"SERVER_PROTOCOL", b"HTTP/1.1"),
            (b"SERVER_NAME", b"localhost"),
            (b"SERVER_PORT", b"80"),
            (b"CONTENT_LENGTH", str(length).encode()),
            (b"CONTENT_TYPE", b"application/octet-stream"),
        ]
    )
    return record(1, 1, struct.pack(">HB5x", 1, 1)) + record(4, 1, params) + record(4, 1)


def read_response(sock, keep=False):
    """Reads records until END_REQUEST; returns (stdout bytes kept, stdout byte count)."""
    buf = b""
    kept = []
    count = 0
    while True:
        while len(buf) < 8:
            data = sock.recv(1 << 20)
            if not data:
                raise RuntimeError("connection closed before END_REQUEST")
            buf += data
        _, rtype, _, clen, plen, _ = struct.unpack(">BBHHBB", buf[:8])
        need = 8 + clen + plen
        while len(buf) < need:
            data = sock.recv(1 << 20)
            if not data:
                raise RuntimeError("connection closed in a record")
            buf += data
        content, buf = buf[8 : 8 + clen], buf[need:]
        if rtype == 6:
            count += len(content)
            if keep:
                kept.append(content)
        elif rtype == 3:
            return b"".join(kept), count


class RssSampler(threading.Thread):
    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.peak, self.running = pid, 0, True

    @staticmethod
    def rss_kib(pid):
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def run(self):
        while self.running:
            self.peak = max(self.peak, self.rss_kib(self.pid))
            time.sleep(0.02)


def wait_for_socket(path, proc, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("pyfcgi exited during start-up")
        if os.path.exists(path):
            try:
                s = socket.socket(socket.AF_UNIX)
                s.connect(path)
                return s
            except OSError:
                pass
        time.sleep(0.002)
    raise RuntimeError("pyfcgi did not start listening")


def memory(pyfcgi, gib, venv_args):
    work = tempfile.mkdtemp(prefix="pyfcgi-mem-")
    with open(os.path.join(work, "bigio.py"), "w") as f:
        f.write(APP)
    path = os.path.join(work, "s.sock")
    proc = subprocess.Popen(
        [pyfcgi, "--bind", "unix:" + path, "--workers", "1", "--app", "bigio:app", "--app-root", work, "--no-access-log"]
        + venv_args,
        stderr=subprocess.DEVNULL,
    )
    try:
        sock = wait_for_socket(path, proc)
        sock.sendall(request_head(b"GET", b"65536") + record(5, 1))
        read_response(sock)
        sock.close()
        baseline = RssSampler.rss_kib(proc.pid)
        total = gib << 30
        results = {}
        for direction in ("upload", "download"):
            sampler = RssSampler(proc.pid)
            sampler.peak = RssSampler.rss_kib(proc.pid)
            sampler.start()
            sock = socket.socket(socket.AF_UNIX)
            sock.connect(path)
            started = time.monotonic()
            if direction == "upload":
                sock.sendall(request_head(b"POST", length=total))
                block = record(5, 1, b"y" * (CHUNK - 8))
                for _ in range(total // (CHUNK - 8)):
                    sock.sendall(block)
                rest = total % (CHUNK - 8)
                sock.sendall(record(5, 1, b"y" * rest) + record(5, 1))
                body, _ = read_response(sock, keep=True)
                size = int(body.split(b"\r\n\r\n", 1)[1].split()[0])
                assert size == total, f"app read {size} bytes of {total}"
            else:
                sock.sendall(request_head(b"GET", str(total).encode()) + record(5, 1))
                _, count = read_response(sock)
                assert count > total, f"got {count} stdout bytes for {total}"
            elapsed = time.monotonic() - started
            sampler.running = False
            sampler.join()
            sock.close()
            results[direction] = ((sampler.peak - baseline) / 1024, total / elapsed / (1 << 20))
        return baseline / 1024, results
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


def startup(pyfcgi, app_dir, module, callable_name, runs, python, venv_args):
    served, imported = [], []
    for _ in range(runs):
        work = tempfile.mkdtemp(prefix="pyfcgi-start-")
        path = os.path.join(work, "s.sock")
        started = time.monotonic()
        proc = subprocess.Popen(
            [pyfcgi, "--bind", "unix:" + path, "--workers", "1", "--app", f"{module}:{callable_name}",
             "--app-root", app_dir, "--no-access-log"] + venv_args,
            stderr=subprocess.DEVNULL,
        )
        try:
            sock = wait_for_socket(path, proc)
            sock.sendall(request_head(b"GET") + record(5, 1))
            read_response(sock)
            served.append(time.monotonic() - started)
            sock.close()
        finally:
            proc.terminate()
            proc.wait(timeout=10)
            shutil.rmtree(work, ignore_errors=True)
        started = time.monotonic()
        subprocess.run([python, "-c", f"import {module}"], cwd=app_dir, check=True)
        imported.append(time.monotonic() - started)
    return statistics.median(served) * 1000, statistics.median(imported) * 1000


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pyfcgi", required=True)
    parser.add_argument("--venv", default=None, help="virtual environment with Flask (pyfcgi uses it; so does the import)")
    parser.add_argument("--gib", type=int, default=1)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--apps", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "apps"))
    args = parser.parse_args()
    pyfcgi = os.path.abspath(args.pyfcgi)
    venv_args = ["--venv", os.path.abspath(args.venv)] if args.venv else []
    python = os.path.join(os.path.abspath(args.venv), "bin", "python") if args.venv else sys.executable

    print(f"## Memory and start-up ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})\n")
    venv_text = f" --venv {args.venv}" if args.venv else ""
    print(f"- Command: `python3 bench/memory_startup.py --pyfcgi {args.pyfcgi} --gib {args.gib} --runs {args.runs}{venv_text}`")
    print(f"- Load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs\n")
    baseline, results = memory(pyfcgi, args.gib, venv_args)
    print(f"| {args.gib} GiB through one request | RSS growth over the {baseline:.1f} MiB baseline | throughput |")
    print("|---|---:|---:|")
    for direction, (growth, rate) in results.items():
        label = "upload, read by the app in 64 KiB chunks" if direction == "upload" else "download, yielded in 64 KiB chunks"
        print(f"| {label} | {growth:.1f} MiB | {rate:.0f} MiB/s |")
    print()
    print("| app | pyfcgi: spawn to first response (median) | `python -c \"import app\"` (median) | difference |")
    print("|---|---:|---:|---:|")
    for module, callable_name in (("hello", "app"), ("flask_hello", "app")):
        served, imported = startup(pyfcgi, args.apps, module, callable_name, args.runs, python, venv_args)
        print(f"| {module} | {served:.1f} ms | {imported:.1f} ms | {served - imported:+.1f} ms |")


if __name__ == "__main__":
    main()
