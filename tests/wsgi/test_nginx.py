"""Behaviour only a real front server shows (issue 12): what nginx makes of a response pyfcgi ends, through
nginx started on loopback in front of the real binary, spoken to over HTTP/1.1 keep-alive."""

import http.client

from test_response import assert_safe_500  # noqa: F401  (the FastCGI-level check of the same page)


def get(conn, path, route, method="GET"):
    conn.request(method, path, headers={"X-Route": route})
    resp = conn.getresponse()
    return resp, resp.read()


def test_close_error_after_a_complete_body_keeps_nginx_client_connection_alive(servers, nginx_in_front):
    server = servers("bridge:app")
    front = nginx_in_front(server)
    conn = http.client.HTTPConnection("127.0.0.1", front.port, timeout=10)
    resp, body = get(conn, "/?tag=n1&body=1", "close_error")
    assert resp.status == 200 and body == b"body"
    assert not resp.will_close, "nginx closed its client's keep-alive connection"
    sock = conn.sock
    resp, body = get(conn, "/", "hello")
    assert resp.status == 200 and body == b"hello" and conn.sock is sock, "the second request reused the connection"
    assert "prematurely closed" not in front.errors(), front.errors()
    assert "OSError: failure in close n1" in server.log()


def test_a_huge_header_is_a_500_from_pyfcgi_not_a_502_from_nginx(servers, nginx_in_front):
    server = servers("bridge:app")
    front = nginx_in_front(server)
    conn = http.client.HTTPConnection("127.0.0.1", front.port, timeout=30)
    conn.request("GET", f"/?n={100 * 1024 * 1024}", headers={"X-Route": "big_header"})
    resp = conn.getresponse()
    body = resp.read()
    assert resp.status == 500 and b"Internal Server Error" in body, (resp.status, body[:200])
    assert "too big header" not in front.errors()
    assert 'header "X-Big" (104857607 bytes)' in server.log()


def test_no_content_length_reaches_the_client_on_a_204(servers, nginx_in_front):
    server = servers("bridge:app")
    front = nginx_in_front(server)
    conn = http.client.HTTPConnection("127.0.0.1", front.port, timeout=10)
    resp, body = get(conn, "/?status=204%20No%20Content&cl=0&body=oops", "bodiless")
    assert resp.status == 204 and body == b""
    assert resp.getheader("Content-Length") is None, resp.getheaders()
    resp, body = get(conn, "/", "hello")
    assert resp.status == 200 and body == b"hello"
