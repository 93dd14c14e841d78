"""FastCGI framing as the WSGI bridge produces it, seen by a strict client."""

import struct

from fcgi_client import END_REQUEST, STDOUT, cgi_params


def test_simple_request_is_framed_correctly(bridge):
    resp = bridge.request("/", route="hello")
    assert resp.ended and resp.app_status == 0 and resp.protocol_status == 0
    assert resp.status == 200 and resp.body == b"hello"
    assert resp.header("Content-Type") == "text/plain"
    empties = [r for r in resp.records if r.type == STDOUT and not r.content]
    assert len(empties) == 1
    assert resp.records[-1].type == END_REQUEST
    assert resp.stderr == b""


def test_keep_conn_reuses_the_connection(bridge):
    with bridge.connect() as conn:
        for i in range(5):
            resp = conn.request(cgi_params("/", query=f"i={i}", headers={"X-Route": "hello"}), keep_conn=True)
            assert resp.ended and resp.status == 200 and resp.body == b"hello"
        # Without FCGI_KEEP_CONN the server closes the connection after END_REQUEST.
        resp = conn.request(cgi_params("/", headers={"X-Route": "hello"}), keep_conn=False)
        assert resp.ended and resp.body == b"hello"
        assert conn.wait_closed(5)


def test_unread_body_is_drained_before_the_next_request_on_a_kept_connection(bridge):
    body = b"x" * 300_000
    with bridge.connect() as conn:
        params = cgi_params("/", query="op=partial&n=10", body_len=len(body), headers={"X-Route": "input"})
        resp = conn.request(params, body, keep_conn=True, record_size=65535)
        assert resp.ended and resp.json()["parts"] == ["x" * 10]
        resp = conn.request(cgi_params("/", headers={"X-Route": "hello"}), keep_conn=True)
        assert resp.ended and resp.body == b"hello"


def test_get_values_reports_no_multiplexing(bridge):
    with bridge.connect() as conn:
        values = conn.get_values(["FCGI_MAX_CONNS", "FCGI_MAX_REQS", "FCGI_MPXS_CONNS"])
    assert values[b"FCGI_MPXS_CONNS"] == b"0"
    assert int(values[b"FCGI_MAX_REQS"]) >= 1 and int(values[b"FCGI_MAX_CONNS"]) >= 1


def test_end_request_body_layout(bridge):
    with bridge.connect() as conn:
        rid = conn.begin(cgi_params("/", headers={"X-Route": "hello"}), request_id=7)
        conn.send_body(rid)
        resp = conn.read_response(rid)
    end = resp.records[-1]
    assert end.request_id == 7 and struct.unpack(">IB3x", end.content) == (0, 0)


def test_tcp_bind(servers):
    server = servers("bridge:app", transport="tcp")
    assert server.request("/", route="hello").body == b"hello"
    assert server.request("/", route="environ").json()["environ"]["wsgi.input_terminated"] is True


def test_listening_socket_on_fd0(servers):
    server = servers("bridge:app", transport="fd0")
    for _ in range(3):
        assert server.request("/", route="hello").body == b"hello"


def test_the_validator_wrapper_is_active(validated_bridge):
    """Guards the validated runs against passing vacuously: a violation must be seen and recorded."""
    before = len(validated_bridge.record("validate"))
    resp = validated_bridge.request("/", route="bad_status", query="s=200OK")
    assert resp.ended and resp.status == 500
    new = validated_bridge.record("validate")[before:]
    assert any(line.startswith("AssertionError") for line in new), new
    mark = validated_bridge.mark()
    validated_bridge.request("/", route="environ", method="BREW")  # an unknown method is a WSGIWarning
    assert any("WSGIWarning" in line for line in validated_bridge.record("validate")), \
        validated_bridge.log_since(mark)
