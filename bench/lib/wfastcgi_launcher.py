#!/usr/bin/env python3
"""An inetd-style launcher that runs wfastcgi.py the way IIS does.

    wfastcgi_launcher.py unix:/path/to/socket PYTHON WFASTCGI_PY
    wfastcgi_launcher.py HOST:PORT PYTHON WFASTCGI_PY

IIS starts `python.exe wfastcgi.py` with the server end of a named pipe as
its stdin; the process reads and writes FastCGI records on that one handle
(fd 0) for as long as the pipe lives, one request at a time, and IIS runs up
to maxInstances such processes. Here every accepted connection from nginx
plays the pipe (a Unix stream socket is the closest Linux analogue of the
duplex named pipe; over TCP, wfastcgi's many small unbuffered writes per
response meet Nagle's algorithm and the peer's delayed ACK, about 40 ms a
request, a cost IIS's pipe does not have, so the harness uses Unix sockets): a fresh `PYTHON wfastcgi_shim.py WFASTCGI_PY` process gets the
connected socket as fd 0 and keeps it until nginx closes it (wfastcgi then
reads EOF and exits). nginx's upstream keepalive pool thus decides how many
wfastcgi processes live at once, like IIS's process pool.

fd 1 and 2 go to this launcher's stderr (the log): wfastcgi swaps sys.stdout
and sys.stderr for StringIO at each request and never writes fd 1, and under
IIS both are invalid handles; pointing them at the socket would let a stray
print corrupt the FastCGI stream.

The environment is passed through (IIS passes its <environmentVariables>);
wfastcgi's own settings come from Web.config in APPL_PHYSICAL_PATH, which
nginx sends as a FastCGI param as IIS does.
"""
import os
import signal
import socket
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    addr, python, wfastcgi_py = sys.argv[1:]
    shim = os.path.join(HERE, "wfastcgi_shim.py")

    if addr.startswith("unix:"):
        path = addr[len("unix:"):]
        if os.path.exists(path):
            os.unlink(path)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(path)
        os.chmod(path, 0o777)
    else:
        host, _, port = addr.rpartition(":")
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, int(port)))
    listener.listen(1024)
    listener.settimeout(0.5)

    children = set()
    stopping = False

    def stop(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    spawned = 0
    while not stopping:
        try:
            conn, _ = listener.accept()
        except socket.timeout:
            conn = None
        except InterruptedError:
            continue
        if conn is not None:
            conn.setblocking(True)
            child = subprocess.Popen(
                [python, shim, wfastcgi_py],
                stdin=conn.fileno(),
                stdout=sys.stderr.fileno(),
                stderr=sys.stderr.fileno(),
                close_fds=True,
            )
            conn.close()
            children.add(child)
            spawned += 1
        for child in [c for c in children if c.poll() is not None]:
            if child.returncode != 0:
                print("wfastcgi pid %d exited with %d" % (child.pid, child.returncode),
                      file=sys.stderr, flush=True)
            children.discard(child)

    listener.close()
    for child in children:
        child.terminate()
    for child in children:
        try:
            child.wait(timeout=5)
        except subprocess.TimeoutExpired:
            child.kill()
    print("launcher: spawned %d wfastcgi processes" % spawned, file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
