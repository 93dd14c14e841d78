#!/usr/bin/env python3
"""Spawn a FastCGI program the way mod_fcgid, lighttpd's spawn-fcgi or IIS
(protocol="Tcp") do: with a listening socket as its fd 0
(FCGI_LISTENSOCK_FILENO).

    fd0spawn.py HOST:PORT PROGRAM [ARGS...]
    fd0spawn.py unix:/path/to/sock PROGRAM [ARGS...]

Creates and binds the listening socket, dup2()s it onto fd 0 and execs
PROGRAM, which therefore keeps this process's pid.
"""
import os
import socket
import sys


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    addr, argv = sys.argv[1], sys.argv[2:]
    if addr.startswith("unix:"):
        path = addr[len("unix:"):]
        if os.path.exists(path):
            os.unlink(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(path)
    else:
        host, _, port = addr.rpartition(":")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, int(port)))
    sock.listen(1024)
    os.dup2(sock.fileno(), 0)  # dup2 makes fd 0 inheritable
    sock.close()
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    main()
