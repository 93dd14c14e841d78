"""The response side: start_response and write(), exc_info, streaming, close(), wsgi.file_wrapper, and every way
an application can produce an invalid response (each must become a logged 500, or a cut connection once the
headers are out, never a broken response)."""

import hashlib
import os
import time

import pytest

from fcgi_client import STDOUT, cgi_params


def assert_safe_500(resp):
    assert resp.ended and resp.status == 500, resp
    assert resp.header("Content-Type", ) == "text/html; charset=utf-8"
    assert int(resp.header("Content-Length")) == len(resp.body)
    assert b"Traceback" not in resp.body and b"Internal Server Error" in resp.body
    assert resp.stderr == b""


def test_write_callable(any_bridge):
    resp = any_bridge.request("/", route="write")
    assert resp.ended and resp.status == 200 and resp.body == b"written-returned"


def test_exc_info_replaces_headers_before_any_body(any_bridge):
    resp = any_bridge.request("/", route="exc_info_before")
    assert resp.ended and resp.status == 500 and resp.reason == "Replaced"
    assert resp.header("X-Second") == "yes" and resp.header("X-First") is None
    assert resp.body == b"custom error page"


def test_exc_info_after_the_body_started_reraises(bridge):
    mark = bridge.mark()
    resp = bridge.request("/", route="exc_info_after", allow_incomplete=True)
    # The headers and the first bytes are out: the connection is cut so the web server sees an incomplete
    # response instead of a complete 200.
    assert not resp.ended and resp.status == 200 and resp.body == b"partial"
    log = bridge.log_since(mark)
    assert "ValueError: too late to change the status" in log and "Traceback" in log
    bridge.assert_serving()


def test_second_start_response_without_exc_info_fails(bridge):
    mark = bridge.mark()
    assert_safe_500(bridge.request("/", route="start_twice"))
    assert "start_response has already been called" in bridge.log_since(mark)
    bridge.assert_serving()


def test_headers_held_until_first_non_empty_chunk(bridge):
    # The app yields b"" (which must not send the 200 headers) and then fails: a clean 500 is still possible.
    mark = bridge.mark()
    assert_safe_500(bridge.request("/", route="empty_then_raise"))
    assert "RuntimeError: failure after an empty chunk" in bridge.log_since(mark)
    bridge.assert_serving()


@pytest.mark.parametrize("route", ["stream", "stream_write"])
def test_each_item_is_flushed_as_produced(any_bridge, route):
    with any_bridge.connect() as conn:
        rid = conn.begin(cgi_params("/", query="delay=1.0", headers={"X-Route": route}))
        conn.send_body(rid)
        started = time.monotonic()
        resp = conn.read_response(rid)
    times = resp.stdout_times()
    assert len(times) >= 2, resp.records
    # The first chunk arrived before the generator produced the last one (1 s later), not together with it.
    assert times[0] - started < 0.9, times[0] - started
    assert times[-1] - times[0] >= 0.5, times
    assert resp.status == 200 and resp.body in (b"data: first\n\ndata: last\n\n", b"firstlast")


def test_close_is_called_after_normal_iteration(any_bridge):
    tag = f"normal-{any_bridge.validated}"
    resp = any_bridge.request("/", route="close", query=f"tag={tag}")
    assert resp.ended and resp.body == b"chunk 0\nchunk 1\nchunk 2\n"
    assert tag in any_bridge.wait_record("closed", lambda lines: tag in lines)


def test_close_is_called_when_iteration_raises(bridge):
    mark = bridge.mark()
    assert_safe_500(bridge.request("/", route="close", query="tag=raising&mode=raise"))
    bridge.wait_record("closed", lambda lines: "raising" in lines)
    assert "RuntimeError: iteration failed raising" in bridge.log_since(mark)
    bridge.assert_serving()


def test_close_is_called_on_abort_request(any_bridge):
    tag = f"aborted-{any_bridge.validated}"
    with any_bridge.connect() as conn:
        rid = conn.begin(cgi_params("/", query=f"tag={tag}&mode=slow&chunks=400", headers={"X-Route": "close"}),
                         keep_conn=True)
        conn.send_body(rid)
        records = conn.records(rid)
        first = next(records)
        assert first.type == STDOUT and b"chunk 0" in first.content
        conn.abort(rid)
        rest = list(records)
        # The aborted request still ends with END_REQUEST, long before the 400 chunks (20 s) were produced.
        assert rest and rest[-1].type == 3, rest
        assert sum(len(r.content) for r in rest if r.type == STDOUT) < 400 * 8
        # And the connection remains usable.
        resp = conn.request(cgi_params("/", headers={"X-Route": "hello"}), keep_conn=True)
        assert resp.body == b"hello"
    any_bridge.wait_record("closed", lambda lines: tag in lines)


def test_close_is_called_when_the_web_server_disconnects(any_bridge):
    tag = f"disconnected-{any_bridge.validated}"
    conn = any_bridge.connect()
    rid = conn.begin(cgi_params("/", query=f"tag={tag}&mode=slow&chunks=400", headers={"X-Route": "close"}))
    conn.send_body(rid)
    assert next(conn.records(rid)).type == STDOUT
    conn.close()
    any_bridge.wait_record("closed", lambda lines: tag in lines, timeout=10)
    any_bridge.assert_serving()


def test_file_wrapper_streams_a_large_file(any_bridge):
    path = any_bridge.records / "big.bin"
    data = os.urandom(1 << 20) * 8 + b"tail"
    path.write_bytes(data)
    resp = any_bridge.request("/", route="file_wrapper", query=f"path={path}", timeout=60)
    assert resp.ended and resp.status == 200
    assert len(resp.body) == len(data) and hashlib.sha256(resp.body).digest() == hashlib.sha256(data).digest()
    # Content-Length limits what is sent; a seek before wrapping is honoured.
    resp = any_bridge.request("/", route="file_wrapper", query=f"path={path}&cl=1000&skip=5")
    assert resp.ended and resp.body == data[5:1005]


def test_file_wrapper_iterates_other_file_likes(any_bridge):
    resp = any_bridge.request("/", route="file_wrapper", query="kind=bytesio")
    assert resp.ended and resp.body == bytes(range(256)) * 1000


def test_latin1_header_values_pass(any_bridge):
    resp = any_bridge.request("/", route="latin1_header")
    assert resp.ended and resp.header("X-Cafe") == "caf\xe9"


def test_head_with_content_length_and_no_body(any_bridge):
    resp = any_bridge.request("/", route="head", method="HEAD")
    assert resp.ended and resp.status == 200 and resp.header("Content-Length") == "5" and resp.body == b""


@pytest.mark.parametrize("status", ["200OK", "OK", "20 OK", "2000 OK", "200 OK\r\nX-Evil: 1", "099 Low", ""])
def test_invalid_status_is_a_logged_500(bridge, status):
    mark = bridge.mark()
    from urllib.parse import quote

    assert_safe_500(bridge.request("/", route="bad_status", query="s=" + quote(status)))
    log = bridge.log_since(mark)
    assert "is not of the form" in log and "Traceback" in log
    bridge.assert_serving()


@pytest.mark.parametrize("kind, message", [
    ("crlf", "contains a control character"),
    ("lf", "contains a control character"),
    ("nonlatin1", "not encodable as latin-1"),
    ("hopbyhop", "hop-by-hop"),
    ("transfer", "hop-by-hop"),
    ("badname", "not a valid HTTP token"),
    ("status", "reserved"),
])
def test_invalid_header_is_a_logged_500(bridge, kind, message):
    mark = bridge.mark()
    resp = bridge.request("/", route="bad_header", query=f"kind={kind}")
    assert_safe_500(resp)
    assert b"evil" not in resp.stdout and b"should never be sent" not in resp.stdout
    assert message in bridge.log_since(mark)
    bridge.assert_serving()


def test_fewer_bytes_than_content_length_ends_the_connection(bridge):
    mark = bridge.mark()
    resp = bridge.request("/", route="short_body", allow_incomplete=True)
    assert not resp.ended, "a short body must not be reported as a complete response"
    assert resp.status == 200 and resp.body == b"only ten b"
    assert "fewer bytes than its Content-Length" in bridge.log_since(mark)
    bridge.assert_serving()


@pytest.mark.parametrize("kind", ["list", "gen"])
def test_more_bytes_than_content_length_are_truncated(bridge, kind):
    mark = bridge.mark()
    resp = bridge.request("/", route="long_body", query=f"kind={kind}")
    assert resp.ended and resp.status == 200 and resp.body == b"01234"
    assert "more bytes than its Content-Length" in bridge.log_since(mark)


def test_str_body_item_is_a_500(bridge):
    mark = bridge.mark()
    assert_safe_500(bridge.request("/", route="str_body"))
    assert "content must be encoded before sending" in bridge.log_since(mark)
    bridge.assert_serving()


def test_returning_without_start_response_is_a_500(bridge):
    mark = bridge.mark()
    assert_safe_500(bridge.request("/", route="no_start_response"))
    assert "without calling start_response" in bridge.log_since(mark)
    bridge.assert_serving()


# ---- the response head's size (issue 12, defect 4) ----

def test_a_header_larger_than_the_limit_is_a_logged_500_naming_the_header_and_its_size(bridge):
    mark = bridge.mark()
    n = 8 * 1024 * 1024
    resp = bridge.request("/", route="big_header", query=f"n={n}&name=X-Huge")
    assert_safe_500(resp)
    assert resp.header("X-Huge") is None
    log = bridge.log_since(mark)
    assert f'header "X-Huge" ({n + 8} bytes)' in log, log[-2000:]
    assert "65536" in log and "PYFCGI_MAX_RESPONSE_HEADER_BYTES" in log
    assert "v" * 1000 not in log, "the value itself must not be logged"
    bridge.assert_serving()


def test_headers_just_under_the_limit_pass(bridge):
    resp = bridge.request("/", route="big_header", query="n=60000")
    assert resp.ended and resp.status == 200 and resp.header("X-Big") == "v" * 60000


def test_max_response_header_bytes_raises_the_limit(servers):
    server = servers("bridge:app", env={"PYFCGI_MAX_RESPONSE_HEADER_BYTES": "300000"})
    resp = server.request("/", route="big_header", query="n=200000")
    assert resp.ended and resp.status == 200 and len(resp.header("X-Big")) == 200000
    resp = server.request("/", route="big_header", query="n=400000")
    assert_safe_500(resp)
    assert "300000 bytes (PYFCGI_MAX_RESPONSE_HEADER_BYTES)" in server.log()


def test_an_invalid_max_response_header_bytes_is_a_configuration_error(servers):
    server = servers("bridge:app", env={"PYFCGI_MAX_RESPONSE_HEADER_BYTES": "lots"})
    assert "PYFCGI_MAX_RESPONSE_HEADER_BYTES = " in server.log() and "is not valid" in server.log()
    assert_safe_500(server.request("/", route="hello"))


# ---- responses valid HTTP whatever the app sends (issue 12, defect 8) ----

@pytest.mark.parametrize("status", ["204 No Content", "101 Switching Protocols", "100 Continue"])
def test_content_length_is_not_sent_on_1xx_and_204(bridge, status):
    resp = bridge.request("/", route="bodiless", query=f"status={status}&cl=0")
    assert resp.ended and resp.status == int(status[:3]), resp
    assert resp.header("Content-Length") is None, resp
    assert resp.header("Content-Type") == "text/plain" and resp.body == b""


@pytest.mark.parametrize("status, cl", [("204 No Content", None), ("304 Not Modified", "4"),
                                        ("204 No Content", "4")])
@pytest.mark.parametrize("kind", ["list", "gen"])
def test_no_body_is_sent_on_204_and_304(bridge, status, cl, kind):
    query = f"status={status}&body=oops&kind={kind}" + (f"&cl={cl}" if cl else "")
    mark = bridge.mark()
    with bridge.connect() as conn:
        params = cgi_params("/", query=query, headers={"X-Route": "bodiless"})
        resp = conn.request(params, keep_conn=True)
        assert resp.ended and resp.status == int(status[:3]) and resp.body == b"", resp
        # 304 may keep the Content-Length a 200 would have had; 204 may not have one.
        assert resp.header("Content-Length") == (cl if status.startswith("304") else None), resp
        again = conn.request(cgi_params("/", headers={"X-Route": "hello"}), keep_conn=True)
        assert again.ended and again.body == b"hello", "the connection stays usable"
    assert "fewer bytes than its Content-Length" not in bridge.log_since(mark)
    assert "more bytes than its Content-Length" not in bridge.log_since(mark)


@pytest.mark.parametrize("route", ["hello", "stream", "file_wrapper"])
def test_no_body_is_sent_on_head_requests(bridge, route, tmp_path):
    query = "delay=0"
    if route == "file_wrapper":
        path = tmp_path / "f.bin"
        path.write_bytes(b"x" * 100_000)
        query = f"path={path}&cl=100000"
    resp = bridge.request("/", route=route, method="HEAD", query=query)
    assert resp.ended and resp.status == 200 and resp.body == b"", resp
    if route == "hello":
        assert resp.header("Content-Length") == "5", "HEAD keeps the Content-Length of the GET"
    if route == "file_wrapper":
        assert resp.header("Content-Length") == "100000"


def test_bytes_status_and_headers_are_accepted_as_latin1_like_wfastcgi(bridge):
    resp = bridge.request("/", route="bytes_headers")
    assert resp.ended and resp.status == 200 and resp.header("X-Str") == "from bytes", resp


def test_bytes_header_values_are_validated_like_str(bridge):
    resp = bridge.request("/", route="big_header", query="n=70000&kind=bytes")
    assert_safe_500(resp)
