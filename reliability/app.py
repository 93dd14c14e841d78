"""The reliability suite's WSGI app: well-behaved routes for load, and misbehaving ones for the matrix.

The route is the first path segment (``/hello``, ``/bytes/65536``, ``/bad/crlf_value``...). Every response
iterable this app returns is counted when it is made and when its ``close()`` is called; ``/stats`` answers the
counts (a JSON object), so the suite can check that close() ran for every request, aborted or not. Exceptions
raised on purpose carry ``SECRET_MARKER``: it must appear in pyfcgi's log and never in a response.
"""

import json
import threading
import time

SECRET_MARKER = "reliability-secret-7f3a9c"

_lock = threading.Lock()
_counts = {"made": 0, "closed": 0}


def _count(key):
    with _lock:
        _counts[key] += 1


class Counted:
    """A response iterable whose creation and close() are counted; optionally sleeps between chunks."""

    def __init__(self, chunks, pause=0.0, close_raises=False):
        self.chunks = chunks
        self.pause = pause
        self.close_raises = close_raises
        _count("made")

    def __iter__(self):
        for i, chunk in enumerate(self.chunks):
            if i and self.pause:
                time.sleep(self.pause)
            yield chunk

    def close(self):
        _count("closed")
        if self.close_raises:
            raise RuntimeError(f"close() failed on purpose {SECRET_MARKER}")


class Boom:
    """An iterable that raises on the given item (0 = before anything is sent)."""

    def __init__(self, good_items):
        self.good_items = good_items
        _count("made")

    def __iter__(self):
        for _ in range(self.good_items):
            yield b"partial body "
        raise RuntimeError(f"iteration failed on purpose {SECRET_MARKER}")

    def close(self):
        _count("closed")


def ok(start_response, body, ctype="text/plain", extra=()):
    start_response("200 OK", [("Content-Type", ctype), ("Content-Length", str(len(body))), *extra])
    return Counted([body])


def read_body(environ):
    length = int(environ.get("CONTENT_LENGTH") or 0)
    stream = environ["wsgi.input"]
    got = 0
    digest = 0
    while got < length:
        chunk = stream.read(min(65536, length - got))
        if not chunk:
            break
        got += len(chunk)
        digest = (digest + sum(chunk[::997])) % 1_000_000_007
    return got, digest


# Misbehaviours: name -> a WSGI app. Each is expected to end in a safe 500 or a cut connection (see suite.py).
def _raise_before_start(environ, start_response):
    raise RuntimeError(f"app raised before start_response {SECRET_MARKER}")


def _raise_after_start(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    raise RuntimeError(f"app raised after start_response {SECRET_MARKER}")


def _raise_first_item(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return Boom(0)


def _raise_mid_body(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return Boom(3)


def _no_start_response(environ, start_response):
    return Counted([b"never started"])


def _start_twice(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    start_response("200 OK", [("X-Second", "1")])
    return Counted([b"twice"])


def _status(value):
    def app(environ, start_response):
        start_response(value, [("Content-Type", "text/plain")])
        return Counted([b"status"])

    return app


def _header(name, value):
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain"), (name, value)])
        return Counted([b"header"])

    return app


def _headers_not_list(environ, start_response):
    start_response("200 OK", {"Content-Type": "text/plain"})
    return Counted([b"dict headers"])


def _body(items):
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Counted(items)

    return app


def _body_not_iterable(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return 42


def _huge_header(size):
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-Huge", "h" * size)])
        return Counted([b"huge header"])

    return app


def _many_headers(count):
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")] + [(f"X-H{i}", "v" * 64) for i in range(count)])
        return Counted([b"many headers"])

    return app


def _short_body(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "100")])
    return Counted([b"only ten b"])


def _close_raises(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "4")])
    return Counted([b"body"], close_raises=True)


def _no_content_with_length(environ, start_response):
    # What Django's CommonMiddleware does for a 204; RFC 9110 forbids both the header and the body.
    start_response("204 No Content", [("Content-Length", "4")])
    return Counted([b"oops"])


MISBEHAVIOURS = {
    "raise_before_start": _raise_before_start,
    "raise_after_start": _raise_after_start,
    "raise_first_item": _raise_first_item,
    "raise_mid_body": _raise_mid_body,
    "no_start_response": _no_start_response,
    "start_twice": _start_twice,
    "status_garbage": _status("abc"),
    "status_short": _status("99 Too Short"),
    "status_no_reason": _status("200"),
    "status_crlf": _status("200 OK\r\nX-Injected: 1"),
    "status_not_str": _status(200),
    "header_name_space": _header("Bad Name", "x"),
    "header_name_colon": _header("X-A:B", "x"),
    "header_name_crlf": _header("X-A\r\nX-Injected", "1"),
    "header_value_crlf": _header("X-Test", "a\r\nX-Injected: 1"),
    "header_value_lf": _header("X-Test", "a\nX-Injected: 1"),
    "header_value_cr": _header("X-Test", "a\rX-Injected: 1"),
    "header_value_nul": _header("X-Test", "a\0b"),
    "header_value_nonlatin1": _header("X-Test", "\u20ac"),
    "header_value_not_str": _header("X-Test", 12),
    "header_name_not_str": _header(12, "x"),
    "header_status": _header("Status", "302 Found"),
    "headers_not_list": _headers_not_list,
    "body_str_item": _body(["a str, not bytes"]),
    "body_int_item": _body([b"ok", 7]),
    "body_none_item": _body([None]),
    "body_not_iterable": _body_not_iterable,
    "short_body": _short_body,
    "many_headers_10000": _many_headers(10000),
    "huge_header_1mib": _huge_header(1 << 20),
    "close_raises": _close_raises,
    "no_content_with_length": _no_content_with_length,
}


def app(environ, start_response):
    parts = environ.get("PATH_INFO", "/").strip("/").split("/")
    route, arg = parts[0], (parts[1] if len(parts) > 1 else "")
    if route in ("", "hello"):
        return ok(start_response, b"Hello, World!")
    if route == "bytes":
        return ok(start_response, b"x" * int(arg or 1024), "application/octet-stream")
    if route == "upload":
        got, digest = read_body(environ)
        return ok(start_response, f"{got} {digest}".encode())
    if route == "stream":
        # Many chunks with a pause between them, so a client can abort mid-response.
        count = int(arg or 50)
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return Counted([b"s" * 4096] * count, pause=0.005)
    if route == "sleep":
        time.sleep(float(arg or 0.1))
        return ok(start_response, b"slept")
    if route == "stats":
        with _lock:
            body = json.dumps(_counts).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]
    if route == "bad" and arg in MISBEHAVIOURS:
        return MISBEHAVIOURS[arg](environ, start_response)
    start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "9")])
    return [b"not found"]
