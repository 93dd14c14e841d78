"""wsgi.input: every read method, streamed bodies in any record size, and a 20 MiB upload read in chunks."""

import hashlib
import os

import pytest

BODY = b"line one\nline two is longer\n\nshort\nno newline at the end"
LINES = [b"line one\n", b"line two is longer\n", b"\n", b"short\n", b"no newline at the end"]


def parts(server, op, n=0, body=BODY, record_size=8192):
    resp = server.request("/upload", route="input", method="POST", query=f"op={op}&n={n}", body=body,
                          record_size=record_size, content_type="text/plain")
    assert resp.ended and resp.status == 200, resp
    return [p.encode("latin-1") for p in resp.json()["parts"]]


def test_read_all(bridge):
    # read() without a size is not allowed by wsgiref.validate, so it runs on the plain bridge only.
    assert parts(bridge, "read") == [BODY, b""]


@pytest.mark.parametrize("record_size", [1, 3, 10, 8192, 65535])
def test_read_n_with_any_record_size(any_bridge, record_size):
    got = parts(any_bridge, "readn", 7, record_size=record_size)
    assert b"".join(got) == BODY and got[-1] == b""
    assert all(len(p) <= 7 for p in got)
    # read(n) blocks until n bytes are there or the body ends: only the last non-empty chunk may be short.
    assert all(len(p) == 7 for p in got[:-2])


@pytest.mark.parametrize("record_size", [1, 5, 8192])
def test_readline(any_bridge, record_size):
    assert parts(any_bridge, "readline", record_size=record_size) == LINES + [b""]


def test_readline_with_size(any_bridge):
    got = parts(any_bridge, "readline_size", 6)
    assert got == [b"line o", b"ne\n", b"line t", b"wo is ", b"longer", b"\n", b"\n", b"short\n", b"no new",
                   b"line a", b"t the ", b"end", b""]


def test_readlines(any_bridge):
    assert parts(any_bridge, "readlines") == LINES


def test_readlines_with_hint(any_bridge):
    # The hint stops after the line that reaches it; the rest stays readable.
    got = parts(any_bridge, "readlines_hint", 12)
    assert got == [b"line one\n", b"line two is longer\n", b"|", b"\nshort\nno newline at the end"]


def test_iteration(any_bridge):
    assert parts(any_bridge, "iter", record_size=4) == LINES


def test_empty_body(any_bridge):
    assert parts(any_bridge, "readline", body=b"") == [b""]
    assert parts(any_bridge, "readlines", body=b"") == []


def test_binary_body_is_exact(any_bridge):
    body = bytes(range(256)) * 300
    got = parts(any_bridge, "readn", 1000, body=body, record_size=777)
    assert b"".join(got) == body


def test_20_mib_upload_read_in_chunks(any_bridge):
    body = os.urandom(1 << 20) * 20
    resp = any_bridge.request("/upload", route="input", method="POST", query="op=sha&n=65536", body=body,
                              record_size=65535, content_type="application/octet-stream", timeout=60)
    assert resp.ended and resp.status == 200, resp
    result = resp.json()
    assert result["total"] == len(body)
    assert result["sha256"] == hashlib.sha256(body).hexdigest()
    assert result["biggest"] <= 65536


def test_upload_in_uneven_records(bridge):
    body = os.urandom(300_001)
    with bridge.connect() as conn:
        from fcgi_client import cgi_params

        params = cgi_params("/", method="POST", query="op=sha&n=4096", body_len=len(body),
                            headers={"X-Route": "input"})
        rid = conn.begin(params)
        sizes = [1, 65535, 2, 333, 7, 4096, 65535]
        chunks, i, k = [], 0, 0
        while i < len(body):
            n = sizes[k % len(sizes)]
            chunks.append(body[i:i + n])
            i += n
            k += 1
        conn.send_body_chunks(rid, chunks)
        resp = conn.read_response(rid)
    assert resp.json()["sha256"] == hashlib.sha256(body).hexdigest()


def _peak_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_upload_is_streamed_not_held_in_memory(servers):
    server = servers("bridge:app")
    server.request("/", route="input", method="POST", query="op=sha&n=65536", body=b"warm-up" * 1000)
    before = _peak_rss_kib(server.proc.pid)
    body = os.urandom(1 << 20) * 40
    resp = server.request("/", route="input", method="POST", query="op=sha&n=65536", body=body,
                          record_size=65535, timeout=60)
    assert resp.json()["total"] == len(body)
    grown = _peak_rss_kib(server.proc.pid) - before
    assert grown < 16 * 1024, f"peak memory grew by {grown} KiB during a 40 MiB upload"
