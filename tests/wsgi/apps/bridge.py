"""The fixture app for the WSGI bridge tests: one route per behaviour, chosen by the X-Route request header (so
PATH_INFO stays free for the environ tests). ``app`` serves the routes as they are; ``validated_app`` wraps each in
``wsgiref.validate.validator`` and records every warning and unraisable error (e.g. an iterator never closed) in
the ``validate`` record file.
"""

import hashlib
import io
import json
import sys
import threading
import time
import warnings
from urllib.parse import parse_qs
from wsgiref.validate import validator

from recorder import record

ROUTES = {}


def route(name):
    def register(fn):
        ROUTES[name] = fn
        return fn

    return register


def query(environ):
    return {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True).items()}


def text(start_response, body, status="200 OK", ctype="text/plain"):
    data = body.encode("utf-8") if isinstance(body, str) else body
    start_response(status, [("Content-Type", ctype), ("Content-Length", str(len(data)))])
    return [data]


def jsonable(v):
    if isinstance(v, bool) or v is None or isinstance(v, (int, float, str)):
        return v
    if isinstance(v, bytes):
        return {"bytes": v.decode("latin-1")}
    if isinstance(v, tuple):
        return {"tuple": [jsonable(x) for x in v]}
    return {"type": type(v).__name__}


def reply_json(start_response, obj):
    return text(start_response, json.dumps(obj), ctype="application/json")


@route("hello")
def hello(environ, start_response):
    return text(start_response, "hello")


@route("environ")
def environ_dump(environ, start_response):
    reply = reply_json(start_response, {
        "environ": {k: jsonable(v) for k, v in environ.items()},
        "types": {k: type(v).__name__ for k, v in environ.items()},
        "file_wrapper_callable": callable(environ.get("wsgi.file_wrapper")),
        "errors_methods": all(hasattr(environ["wsgi.errors"], m) for m in ("write", "writelines", "flush")),
    })
    if "mutate" in query(environ):
        # Frameworks write into the environ; none of it may reach the next request.
        environ["PATH_INFO"] = "/mutated"
        environ["HTTP_HOST"] = "mutated"
        environ["framework.request"] = object()
        del environ["SERVER_NAME"]
    return reply


@route("input")
def input_ops(environ, start_response):
    q = query(environ)
    op = q.get("op", "read")
    n = int(q.get("n", "0") or 0)
    inp = environ["wsgi.input"]
    out = []
    if op == "read":
        out.append(inp.read())
        out.append(inp.read())  # at the end: b""
    elif op == "readn":
        while True:
            chunk = inp.read(n)
            out.append(chunk)
            if not chunk:
                break
    elif op == "readline":
        while True:
            line = inp.readline()
            out.append(line)
            if not line:
                break
    elif op == "readline_size":
        while True:
            line = inp.readline(n)
            out.append(line)
            if not line:
                break
    elif op == "readlines":
        out = inp.readlines()
    elif op == "readlines_hint":
        out = inp.readlines(n)
        out.append(b"|")
        out.append(inp.read(1 << 30))
    elif op == "iter":
        out = list(inp)
    elif op == "partial":
        out.append(inp.read(n))
    elif op == "sha":
        h, total, biggest, reads = hashlib.sha256(), 0, 0, 0
        while True:
            chunk = inp.read(n)
            if not chunk:
                break
            reads += 1
            total += len(chunk)
            biggest = max(biggest, len(chunk))
            h.update(chunk)
        return reply_json(start_response, {"sha256": h.hexdigest(), "total": total, "biggest": biggest,
                                           "reads": reads})
    return reply_json(start_response, {"parts": [p.decode("latin-1") for p in out]})


@route("write")
def write_then_iterable(environ, start_response):
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"written-")
    return [b"returned"]


@route("exc_info_before")
def exc_info_before(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-First", "yes")])
    try:
        raise ValueError("replaced before the body")
    except ValueError:
        start_response("500 Replaced", [("Content-Type", "text/plain"), ("X-Second", "yes")], sys.exc_info())
    return [b"custom error page"]


@route("exc_info_after")
def exc_info_after(environ, start_response):
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"partial")
    try:
        raise ValueError("too late to change the status")
    except ValueError:
        start_response("500 Oops", [("Content-Type", "text/plain")], sys.exc_info())
    return [b"never"]


@route("start_twice")
def start_twice(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"never"]


@route("stream")
def stream(environ, start_response):
    delay = float(query(environ).get("delay", "1"))
    start_response("200 OK", [("Content-Type", "text/event-stream")])

    def gen():
        yield b"data: first\n\n"
        time.sleep(delay)
        yield b"data: last\n\n"

    return gen()


@route("stream_write")
def stream_write(environ, start_response):
    delay = float(query(environ).get("delay", "1"))
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"first")
    time.sleep(delay)
    write(b"last")
    return []


@route("empty_then_raise")
def empty_then_raise(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])

    def gen():
        yield b""
        raise RuntimeError("failure after an empty chunk")

    return gen()


class Tracked:
    """An iterable whose close() is recorded in the ``closed`` record file."""

    def __init__(self, tag, mode, chunks):
        self.tag, self.mode, self.chunks = tag, mode, chunks

    def __iter__(self):
        if self.mode == "raise":
            raise RuntimeError("iteration failed " + self.tag)
        for i in range(self.chunks):
            if self.mode == "slow":
                time.sleep(0.05)
            yield b"chunk %d\n" % i

    def close(self):
        record("closed", self.tag)


@route("close")
def close_tracking(environ, start_response):
    q = query(environ)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return Tracked(q.get("tag", "?"), q.get("mode", "normal"), int(q.get("chunks", "3")))


@route("file_wrapper")
def file_wrapper(environ, start_response):
    q = query(environ)
    headers = [("Content-Type", "application/octet-stream")]
    if "cl" in q:
        headers.append(("Content-Length", q["cl"]))
    start_response("200 OK", headers)
    if q.get("kind") == "bytesio":
        f = io.BytesIO(bytes(range(256)) * 1000)
    else:
        f = open(q["path"], "rb")
        if "skip" in q:
            f.seek(int(q["skip"]))
    return environ["wsgi.file_wrapper"](f, 32768)


@route("bad_status")
def bad_status(environ, start_response):
    start_response(query(environ)["s"], [("Content-Type", "text/plain")])
    return [b"should never be sent"]


BAD_HEADERS = {
    "crlf": ("X-Injected", "a\r\nSet-Cookie: evil=1"),
    "lf": ("X-Injected", "a\nb"),
    "nonlatin1": ("X-Euro", "\u20ac"),
    "hopbyhop": ("Connection", "close"),
    "transfer": ("Transfer-Encoding", "chunked"),
    "badname": ("Bad Name", "x"),
    "status": ("Status", "302 Found"),
}


@route("bad_header")
def bad_header(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), BAD_HEADERS[query(environ)["kind"]]])
    return [b"should never be sent"]


@route("latin1_header")
def latin1_header(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-Cafe", "caf\xe9")])
    return [b"ok"]


@route("short_body")
def short_body(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "100")])
    return [b"only ten b"]


@route("long_body")
def long_body(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
    if query(environ).get("kind") == "gen":
        return iter([b"012", b"3456789", b"abc"])
    return [b"0123456789"]


@route("str_body")
def str_body(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return ["a str, not bytes"]


@route("no_start_response")
def no_start_response(environ, start_response):
    return []


@route("head")
def head(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
    return [] if environ["REQUEST_METHOD"] == "HEAD" else [b"hello"]


@route("big_header")
def big_header(environ, start_response):
    q = query(environ)
    value = "v" * int(q.get("n", "100"))
    headers = [("Content-Type", "text/plain"), (q.get("name", "X-Big"), value)]
    if q.get("kind") == "bytes":
        headers[1] = (headers[1][0].encode(), value.encode())
    start_response("200 OK", headers)
    return [b"big header sent"]


@route("bodiless")
def bodiless(environ, start_response):
    """A response HTTP says has no body, sent the way frameworks do: Django's CommonMiddleware adds
    Content-Length: 0 to its 204s, and careless apps return a body with 204 or 304."""
    q = query(environ)
    status = q.get("status", "204 No Content")
    headers = [("Content-Type", "text/plain")]
    if "cl" in q:
        headers.append(("Content-Length", q["cl"]))
    start_response(status, headers)
    body = q.get("body", "").encode()
    if q.get("kind") == "gen":
        def gen():
            yield body
            yield body
        return gen()
    return [body] if body else []


@route("bytes_headers")
def bytes_headers(environ, start_response):
    start_response(b"200 OK", [(b"Content-Type", b"text/plain"), ("X-Str", b"from bytes")])
    return [b"bytes headers"]


@route("logging")
def logging_route(environ, start_response):
    tag = query(environ).get("tag", "")
    environ["wsgi.errors"].write("wsgi.errors line %s\n" % tag)
    environ["wsgi.errors"].flush()
    print("print line %s" % tag)
    sys.stderr.write("sys.stderr line %s\n" % tag)
    return text(start_response, "logged")


@route("long_log")
def long_log(environ, start_response):
    """One long log line (a traceback's worth), so lines of processes sharing a log could interleave."""
    tag = query(environ).get("tag", "")
    print("long line %s %s end" % (tag, "x" * 5000))
    return text(start_response, "logged")


@route("call_error")
def call_error(environ, start_response):
    raise ValueError("failure in the call " + query(environ).get("tag", ""))


@route("iter_error")
def iter_error(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])

    def gen():
        raise KeyError("failure in iteration " + query(environ).get("tag", ""))
        yield b"never"

    return gen()


class CloseFails:
    def __init__(self, items, tag):
        self.items, self.tag = items, tag

    def __iter__(self):
        return iter(self.items)

    def close(self):
        raise OSError("failure in close " + self.tag)


@route("close_error")
def close_error(environ, start_response):
    q = query(environ)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return CloseFails([b"body"] if q.get("body") else [b""], q.get("tag", ""))


_thread = None


@route("thread")
def start_thread(environ, start_response):
    global _thread
    if _thread is None:
        def tick():
            for i in range(400):
                record("ticks", str(i))
                time.sleep(0.02)

        _thread = threading.Thread(target=tick, daemon=True)
        _thread.start()
    return text(start_response, "started")


def app(environ, start_response):
    name = environ.get("HTTP_X_ROUTE", "hello")
    return ROUTES[name](environ, start_response)


# ---- the validator-wrapped variant ----

_VALIDATED = {name: validator(fn) for name, fn in ROUTES.items()}


def _record_warning(message, category, filename, lineno, file=None, line=None):
    record("validate", "%s: %s" % (category.__name__, message))


def _record_unraisable(unraisable):
    record("validate", "unraisable: %r %r" % (unraisable.exc_value, unraisable.object))


def validated_app(environ, start_response):
    warnings.simplefilter("always")
    warnings.showwarning = _record_warning
    sys.unraisablehook = _record_unraisable
    name = environ.get("HTTP_X_ROUTE", "hello")
    try:
        return _VALIDATED[name](environ, start_response)
    except AssertionError as e:
        record("validate", "AssertionError: %s" % e)
        raise
