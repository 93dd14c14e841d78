//! The FastCGI protocol end to end: the real server binary (the echo responder, which runs pyfcgi's start-up
//! path, transports, worker pool and exchange with a Rust handler instead of Python) started the ways web
//! servers start it, spoken to by a hand-built client and by the `fastcgi-client` crate.

#![cfg(unix)] // Unix transports and front servers; the Windows side is tests/fake_iis under Wine.

#[path = "support/fcgi.rs"]
mod fcgi;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use fcgi::*;

fn body_of(len: usize, seed: u32) -> Vec<u8> {
    // xorshift, so bodies are not compressible patterns that could hide an offset error.
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn local_peer(client: &Client) -> String {
    match &client.sock {
        Sock::Tcp(s) => s.local_addr().unwrap().to_string(),
        Sock::Unix(_) | Sock::Memory(_) => String::new(),
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Every way of starting: keep-conn with many requests, no keep-conn, GET_VALUES.

fn basic_suite(launch: Launch) {
    let server = Server::start(launch, &["--workers", "3", "--max-conns", "16"], &[]);

    // 200 requests on one kept connection, with different ids and bodies.
    let mut c = server.connect();
    for i in 0..200u16 {
        let id = 1 + i % 7;
        let body = body_of(usize::from(i) * 37 % 3000, u32::from(i));
        let uri = format!("/info?n={i}");
        let resp = c.request(id, true, &uri, &body);
        assert_eq!(resp.protocol_status, REQUEST_COMPLETE);
        assert_eq!(resp.app_status, 0);
        assert!(resp.head().starts_with("Status: 200 OK"), "{}", resp.head());
        let info = resp.info();
        assert_eq!(info["method"], "POST");
        assert_eq!(info["uri"], uri);
        assert_eq!(info["request_id"], id.to_string());
        assert_eq!(info["keep_conn"], "true");
        assert_eq!(info["body_len"], body.len().to_string());
        assert_eq!(info["body_fnv"], fnv1a(&body));
        assert_eq!(info["CONTENT_LENGTH"], body.len().to_string());
    }
    // /echo on the same connection.
    let body = body_of(20_000, 99);
    let resp = c.request(3, true, "/echo", &body);
    assert_eq!(resp.body(), &body[..]);

    // Without FCGI_KEEP_CONN the server closes the connection after END_REQUEST.
    let mut c = server.connect();
    let resp = c.request(1, false, "/info", b"abc");
    assert_eq!(resp.info()["keep_conn"], "false");
    c.expect_eof();

    // GET_VALUES answers the real limits.
    let mut c = server.connect();
    let values = c.get_values(&["FCGI_MAX_CONNS", "FCGI_MAX_REQS", "FCGI_MPXS_CONNS"]);
    assert_eq!(
        values,
        vec![
            ("FCGI_MAX_CONNS".to_owned(), "16".to_owned()),
            ("FCGI_MAX_REQS".to_owned(), "3".to_owned()),
            ("FCGI_MPXS_CONNS".to_owned(), "0".to_owned()),
        ]
    );
    // ...and the connection carries a request afterwards.
    assert_eq!(c.request(1, true, "/info", b"").info()["body_len"], "0");
}

#[test]
fn bind_tcp_keep_conn_close_and_get_values() {
    basic_suite(Launch::BindTcp);
}

#[test]
fn bind_unix_keep_conn_close_and_get_values() {
    basic_suite(Launch::BindUnix);
}

#[test]
fn fd0_tcp_keep_conn_close_and_get_values() {
    basic_suite(Launch::Fd0Tcp);
}

#[test]
fn fd0_unix_keep_conn_close_and_get_values() {
    basic_suite(Launch::Fd0Unix);
}

#[test]
fn unix_socket_file_mode_and_removal() {
    let mut server = Server::start(Launch::BindUnix, &["--socket-mode", "600"], &[]);
    let Addr::Unix(path) = server.addr().clone() else {
        unreachable!()
    };
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    server.signal(libc::SIGTERM);
    assert!(server.wait_exit(Duration::from_secs(10)).expect("exit").success());
    assert!(
        !path.exists(),
        "the socket file is removed at exit; log:\n{}",
        server.log_text()
    );
}

// ---------------------------------------------------------------------------------------------------------------
// The fastcgi-client crate as a black-box client.

#[test]
fn fastcgi_client_crate_keep_alive_and_short_connections() {
    use fastcgi_client::{Client as FcgiClient, Params, Request};
    use futures_executor::block_on;

    for launch in [Launch::BindTcp, Launch::Fd0Unix] {
        let server = Server::start(launch, &[], &[]);
        let sock = Sock::connect(server.addr()).unwrap();
        let mut client = FcgiClient::new_keep_alive(BlockingIo(sock));
        for i in 0..60usize {
            let body = body_of(i * 211 % 5000, i as u32);
            let (uri, expect) = match i % 3 {
                0 => (format!("/info?i={i}"), None),
                1 => ("/echo".to_owned(), Some(body.clone())),
                _ => (format!("/big?bytes={}", i * 1000), Some(vec![b'x'; i * 1000])),
            };
            let params = Params::default()
                .request_method("POST")
                .request_uri(uri.as_str())
                .script_name("")
                .query_string("")
                .content_length(body.len());
            let resp = block_on(client.execute(Request::new(params, &body[..])))
                .unwrap_or_else(|e| panic!("request {i} ({uri}) failed: {e}"));
            let stdout = resp.stdout.expect("stdout");
            let split = stdout.windows(4).position(|w| w == b"\r\n\r\n").expect("header block") + 4;
            match expect {
                Some(expected) => assert_eq!(stdout[split..].len(), expected.len(), "{uri}"),
                None => {
                    let text = String::from_utf8_lossy(&stdout[split..]).into_owned();
                    assert!(text.contains(&format!("body_len={}\n", body.len())), "{text}");
                    assert!(text.contains(&format!("body_fnv={}\n", fnv1a(&body))), "{text}");
                    assert!(text.contains("keep_conn=true\n"), "{text}");
                }
            }
        }

        // Short connections: FCGI_KEEP_CONN off, one request per connection. (fastcgi-client 0.12 ends an
        // empty body with two empty STDIN records; the second can reach a connection the server has already
        // closed after END_REQUEST, failing the client's write with EPIPE. So these requests carry a body.)
        for i in 0..5 {
            let sock = Sock::connect(server.addr()).unwrap();
            let client = FcgiClient::new(BlockingIo(sock));
            let params = Params::default()
                .request_method("POST")
                .request_uri("/info")
                .content_length(1);
            let resp = block_on(client.execute_once(Request::new(params, &b"x"[..]))).unwrap();
            let text = String::from_utf8(resp.stdout.unwrap()).unwrap();
            assert!(text.contains("keep_conn=false\n"), "{i}: {text}");
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Request life cycle: abort, multiplexing attempts, roles, management records.

#[test]
fn abort_mid_body_ends_the_request_and_the_connection_goes_on() {
    let server = Server::start(Launch::BindTcp, &[], &[]);
    let mut c = server.connect();
    c.begin(5, 1, true);
    c.params_owned(5, &request_params("POST", "/info", 100_000));
    c.stdin(5, &body_of(3000, 1), 1000);
    // Let the handler start reading the body, then abort.
    std::thread::sleep(Duration::from_millis(100));
    c.abort(5);
    let resp = c.read_response(5);
    assert_eq!(resp.protocol_status, REQUEST_COMPLETE);
    // A following request on the same connection works (and may reuse the id).
    for id in [5, 6] {
        let body = body_of(5000, id.into());
        let resp = c.request(id, true, "/info", &body);
        assert_eq!(resp.info()["body_fnv"], fnv1a(&body));
    }

    // Abort before the body started: also answered, also keeps the connection.
    c.begin(7, 1, true);
    c.params_owned(7, &request_params("POST", "/info", 10));
    c.abort(7);
    let resp = c.read_response(7);
    assert_eq!(resp.protocol_status, REQUEST_COMPLETE);
    assert_eq!(c.request(8, true, "/info", b"x").info()["body_len"], "1");

    // Abort while the parameters are still arriving: the server ends the request without running it.
    c.begin(9, 1, true);
    let mut partial = params_bytes(9, &request_params("GET", "/info", 0));
    partial.truncate(partial.len() - 8); // without the empty PARAMS record
    c.send(&partial);
    c.abort(9);
    let rec = c.expect_record();
    assert_eq!((rec.record_type, rec.id), (END_REQUEST, 9), "{rec:?}");
    assert_eq!(rec.content[4], REQUEST_COMPLETE);
    assert_eq!(c.request(10, true, "/info", b"").info()["request_id"], "10");

    // Without keep-conn the connection is closed after the aborted request's END_REQUEST.
    let mut c = server.connect();
    c.begin(1, 1, false);
    c.params_owned(1, &request_params("POST", "/echo", 100));
    c.stdin(1, b"some", 4);
    c.abort(1);
    let resp = c.read_response(1);
    assert_eq!(resp.protocol_status, REQUEST_COMPLETE);
    c.expect_eof();
}

#[test]
fn second_begin_request_while_one_is_active_gets_cant_mpx_conn() {
    let server = Server::start(Launch::BindTcp, &[], &[]);
    let mut c = server.connect();
    let body = body_of(4000, 3);
    c.begin(1, 1, true);
    c.params_owned(1, &request_params("POST", "/info", body.len()));
    c.stdin(1, &body[..1500], 500);
    // A second request on the busy connection, complete with its own body.
    c.begin(2, 1, true);
    c.params_owned(2, &request_params("POST", "/info", 3));
    c.stdin(2, b"two", 3);
    c.stdin_end(2);
    let refused = c.read_response(2);
    assert_eq!(refused.protocol_status, CANT_MPX_CONN);
    assert!(refused.stdout.is_empty());
    // The first request completes with exactly its own body.
    c.stdin(1, &body[1500..], 700);
    c.stdin_end(1);
    let resp = c.read_response(1);
    let info = resp.info();
    assert_eq!(info["request_id"], "1");
    assert_eq!(info["body_len"], body.len().to_string());
    assert_eq!(info["body_fnv"], fnv1a(&body));
    // The connection is still good.
    assert_eq!(c.request(2, true, "/info", b"ok").info()["body_len"], "2");
}

#[test]
fn unknown_role_is_refused() {
    let server = Server::start(Launch::BindUnix, &[], &[]);
    for role in [2u16, 3, 77] {
        // With keep-conn: refused, and the connection carries the next request.
        let mut c = server.connect();
        c.begin(4, role, true);
        let resp = c.read_response(4);
        assert_eq!(resp.protocol_status, UNKNOWN_ROLE, "role {role}");
        // The web server may still send the refused request's records; they are ignored.
        c.params_owned(4, &request_params("GET", "/info", 0));
        c.stdin_end(4);
        assert_eq!(c.request(5, true, "/info", b"").info()["request_id"], "5");

        // Without keep-conn: refused and closed.
        let mut c = server.connect();
        c.begin(4, role, false);
        let resp = c.read_response(4);
        assert_eq!(resp.protocol_status, UNKNOWN_ROLE);
        c.expect_eof();
    }
}

#[test]
fn unknown_management_record_gets_unknown_type() {
    let server = Server::start(Launch::BindTcp, &[], &[]);
    let mut c = server.connect();
    for t in [42u8, 200, STDIN, END_REQUEST] {
        c.record(t, 0, b"whatever");
        let rec = c.expect_record();
        assert_eq!((rec.record_type, rec.id), (UNKNOWN_TYPE, 0), "{rec:?}");
        assert_eq!(rec.content, [t, 0, 0, 0, 0, 0, 0, 0]);
    }
    // GET_VALUES without names: an empty result; with unknown names: they are left out.
    assert!(c.get_values(&[]).is_empty());
    assert_eq!(
        c.get_values(&["NOT_A_VALUE", "FCGI_MPXS_CONNS"]),
        vec![("FCGI_MPXS_CONNS".to_owned(), "0".to_owned())]
    );
    // And in the middle of a request.
    c.begin(1, 1, true);
    c.params_owned(1, &request_params("POST", "/info", 4));
    c.stdin(1, b"ab", 2);
    c.record(99, 0, b"");
    let rec = c.expect_record();
    assert_eq!((rec.record_type, rec.content[0]), (UNKNOWN_TYPE, 99));
    c.stdin(1, b"cd", 2);
    c.stdin_end(1);
    assert_eq!(c.read_response(1).info()["body_fnv"], fnv1a(b"abcd"));
}

// ---------------------------------------------------------------------------------------------------------------
// Bodies: large uploads, draining, large and streamed responses.

#[test]
fn ten_mib_body_in_small_records() {
    let server = Server::start(Launch::BindTcp, &[], &[]);
    let mut c = server.connect();
    let body = body_of(10 << 20, 7);
    let started = Instant::now();
    c.send_request(1, true, "/info", &body, 1000);
    let resp = c.read_response(1);
    let info = resp.info();
    assert_eq!(info["body_len"], (10usize << 20).to_string());
    assert_eq!(info["body_fnv"], fnv1a(&body));
    // The same connection, and a body of odd-sized records with full 65535-byte ones.
    let body = body_of(300_001, 8);
    c.send_request(2, true, "/info", &body, 65535);
    assert_eq!(c.read_response(2).info()["body_fnv"], fnv1a(&body));
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn ignored_body_is_drained_on_a_kept_connection() {
    let server = Server::start(Launch::BindUnix, &[], &[]);
    let mut c = server.connect();
    for (i, len) in [3usize << 20, 1, 65535, 65536, 0].into_iter().enumerate() {
        let id = i as u16 + 1;
        let body = body_of(len, id.into());
        c.send_request(id, true, "/ignore-body", &body, 8192);
        let resp = c.read_response(id);
        assert_eq!(resp.body(), b"ignored the body\n");
        // The next request on the connection starts at a record boundary.
        let resp = c.request(100 + id, true, "/info", b"next");
        assert_eq!(resp.info()["body_fnv"], fnv1a(b"next"));
    }
}

#[test]
fn big_response_has_exact_length_and_whole_records() {
    let server = Server::start(Launch::Fd0Tcp, &[], &[]);
    let mut c = server.connect();
    for bytes in [200_000usize, 65535, 0, 1] {
        let resp = c.request(1, true, &format!("/big?bytes={bytes}"), b"");
        assert_eq!(resp.body().len(), bytes);
        assert!(resp.body().iter().all(|b| *b == b'x'));
        // Records carry at most 65535 bytes (a u16 cannot say more); content is split across several.
        let data_records = resp.stdout_records().filter(|r| !r.content.is_empty()).count();
        assert!(
            data_records >= bytes / 65535,
            "{data_records} records for {bytes} bytes"
        );
    }
}

#[test]
fn streamed_response_arrives_incrementally() {
    let server = Server::start(Launch::BindTcp, &[], &[]);
    let mut c = server.connect();
    let sent = Instant::now();
    c.send_request(1, true, "/stream?n=4&ms=300", b"", 1);
    let resp = c.read_response(1);
    let data: Vec<_> = resp.stdout_records().filter(|r| !r.content.is_empty()).collect();
    assert_eq!(resp.body(), b"chunk 0\nchunk 1\nchunk 2\nchunk 3\n");
    assert!(data.len() >= 4, "one record per flushed chunk: {}", data.len());
    let first = data[0].arrived.duration_since(sent);
    let last = data[data.len() - 1].arrived.duration_since(sent);
    // The last chunk is written about 900 ms after the first; the first must not wait for it.
    assert!(first < Duration::from_millis(600), "first chunk after {first:?}");
    assert!(
        last - first >= Duration::from_millis(600),
        "first {first:?}, last {last:?}"
    );
}

// ---------------------------------------------------------------------------------------------------------------
// Malformed input and refused peers.

/// What a malformed-input case sends on its connection.
type Sender = dyn Fn(&mut Client);

/// Each kind of malformed input closes its connection, is logged with the peer and the problem, and leaves
/// the server serving other connections.
#[test]
fn malformed_input_closes_that_connection_only() {
    let server = Server::start(Launch::BindTcp, &["--max-params-bytes", "1000"], &[]);
    let mut bystander = server.connect();
    assert_eq!(bystander.request(1, true, "/info", b"").info()["request_id"], "1");

    let garbage = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec();
    let mut version2 = Vec::new();
    {
        let mut c = Vec::new();
        pyfcgi::protocol::record::write_record(
            &mut c,
            pyfcgi::protocol::record::RecordType::BeginRequest,
            1,
            &[0, 1, 1, 0, 0, 0, 0, 0],
        );
        c[0] = 2;
        version2.extend(c);
    }
    let cases: Vec<(&str, Box<Sender>, &str)> = vec![
        (
            "garbage",
            Box::new(move |c| c.send(&garbage)),
            "unsupported FastCGI version 71",
        ),
        (
            "version 2",
            Box::new(move |c| c.send(&version2)),
            "unsupported FastCGI version 2",
        ),
        (
            "malformed name-value pair",
            Box::new(|c| {
                c.begin(1, 1, true);
                c.record(PARAMS, 1, &[10, 10, b'a']);
                c.record(PARAMS, 1, &[]);
            }),
            "malformed name-value pair",
        ),
        (
            "STDOUT from the web server",
            Box::new(|c| c.record(STDOUT, 1, b"hello")),
            "unexpected record of type 6",
        ),
        (
            "truncated record, then close",
            Box::new(|c| {
                c.begin(1, 1, true);
                let params = params_bytes(1, &request_params("GET", "/info", 0));
                c.send(&params[..params.len() / 2]);
                c.sock.shutdown_write().unwrap();
            }),
            "connection closed in the middle of a request",
        ),
    ];
    for (name, send, problem) in cases {
        let mut c = server.connect();
        let peer = local_peer(&c);
        send(&mut c);
        c.expect_eof();
        let line = server
            .wait_log(|l| l.contains(problem) && l.contains(&peer), Duration::from_secs(10))
            .unwrap_or_else(|| {
                panic!(
                    "{name}: no log line naming {problem:?} and {peer}:\n{}",
                    server.log_text()
                )
            });
        assert!(line.contains("WARN"), "{name}: {line}");
        // A new connection with a valid request still works, and so does the bystander.
        let mut fresh = server.connect();
        assert_eq!(
            fresh.request(3, false, "/info", b"ok").info()["body_len"],
            "2",
            "{name}"
        );
        assert_eq!(
            bystander.request(2, true, "/info", b"").info()["request_id"],
            "2",
            "{name}"
        );
    }
}

/// An oversized PARAMS block (a huge cookie, a long parameter name) used to close the connection without an
/// answer (nginx: 502). Records are framed, so the request is skipped to its end and answered 431, and the
/// connection stays in step for the next request.
#[test]
fn oversized_params_are_answered_431_and_the_kept_connection_goes_on() {
    let server = Server::start(Launch::BindTcp, &["--max-params-bytes", "20000"], &[]);
    let mut c = server.connect();
    let peer = local_peer(&c);
    let cases: [(&str, (String, String), &str); 2] = [
        (
            "oversized block",
            ("HTTP_COOKIE".into(), "c".repeat(30_000)),
            "request parameters exceed the limit of 20000 bytes",
        ),
        (
            "parameter name too long",
            ("N".repeat(9000), "v".into()),
            "parameter name of 9000 bytes exceeds the limit",
        ),
    ];
    for (id, (name, pair, problem)) in (1u16..).zip(cases) {
        let body = body_of(100_000, u32::from(id));
        c.begin(id, 1, true);
        let mut params = request_params("POST", "/info", body.len());
        params.push(("HTTP_X", String::new()));
        let (big_name, big_value) = pair;
        let mut content = Vec::new();
        for (n, v) in &params {
            pyfcgi::protocol::nv::write_pair(&mut content, n.as_bytes(), v.as_bytes());
        }
        pyfcgi::protocol::nv::write_pair(&mut content, big_name.as_bytes(), big_value.as_bytes());
        let mut out = Vec::new();
        pyfcgi::protocol::record::write_stream(&mut out, pyfcgi::protocol::record::RecordType::Params, id, &content);
        pyfcgi::protocol::record::write_stream_end(&mut out, pyfcgi::protocol::record::RecordType::Params, id);
        c.send(&out);
        c.stdin(id, &body, 8000);
        c.stdin_end(id);
        let resp = c.read_response(id);
        assert_eq!(resp.protocol_status, REQUEST_COMPLETE, "{name}");
        assert!(
            resp.head().starts_with("Status: 431 Request Header Fields Too Large"),
            "{name}: {}",
            resp.head()
        );
        server
            .wait_log(
                |l| l.contains(problem) && l.contains(&peer) && l.contains("431"),
                Duration::from_secs(10),
            )
            .unwrap_or_else(|| panic!("{name}: no log line naming {problem:?}:\n{}", server.log_text()));
        // The same connection serves the next request.
        let next = c.request(id + 10, true, "/info", b"after");
        assert_eq!(next.info()["body_len"], "5", "{name}");
    }
}

#[test]
fn peers_outside_fcgi_web_server_addrs_are_refused() {
    // Only an address this test never talks to is allowed, so the loopback peer is refused.
    let server = Server::start(Launch::BindTcp, &[], &[("FCGI_WEB_SERVER_ADDRS", "192.0.2.10, ::2")]);
    let mut c = server.connect();
    let peer = local_peer(&c);
    // The request may or may not be written before the server closes the socket.
    let _ = c.try_send(&{
        let mut out = Vec::new();
        pyfcgi::protocol::record::write_record(
            &mut out,
            pyfcgi::protocol::record::RecordType::BeginRequest,
            1,
            &[0, 1, 1, 0, 0, 0, 0, 0],
        );
        out
    });
    c.expect_eof();
    server
        .wait_log(
            |l| l.contains("FCGI_WEB_SERVER_ADDRS") && l.contains(&peer),
            Duration::from_secs(10),
        )
        .unwrap_or_else(|| panic!("no refusal logged for {peer}:\n{}", server.log_text()));

    // Listed peers are served; Unix-socket peers are not filtered (the spec's filter is about TCP).
    let server = Server::start(
        Launch::BindTcp,
        &[],
        &[("FCGI_WEB_SERVER_ADDRS", "192.0.2.10,127.0.0.1")],
    );
    assert_eq!(
        server.connect().request(1, false, "/info", b"").info()["request_id"],
        "1"
    );
    let server = Server::start(Launch::Fd0Unix, &[], &[("FCGI_WEB_SERVER_ADDRS", "192.0.2.10")]);
    assert_eq!(
        server.connect().request(1, false, "/info", b"").info()["request_id"],
        "1"
    );
}

// ---------------------------------------------------------------------------------------------------------------
// Connections, workers and limits.

#[test]
fn idle_keep_alive_connections_do_not_starve_the_pool() {
    let server = Server::start(Launch::BindTcp, &["--workers", "2"], &[]);
    let mut idle = Vec::new();
    for i in 0..10u16 {
        let mut c = server.connect();
        match i % 3 {
            // Connected, nothing sent.
            0 => {}
            // One finished request, connection kept.
            1 => assert_eq!(c.request(i, true, "/info", b"").info()["request_id"], i.to_string()),
            // Half a record header sent.
            _ => c.send(&[1, 1, 0]),
        }
        idle.push(c);
    }
    let started = Instant::now();
    let mut c = server.connect();
    let resp = c.request(11, false, "/info", b"eleventh");
    assert_eq!(resp.info()["body_len"], "8");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    // The idle connections are still served afterwards.
    for (i, c) in idle.iter_mut().enumerate() {
        if i % 3 != 2 {
            let resp = c.request(20, true, "/info", b"later");
            assert_eq!(resp.info()["body_len"], "5");
        }
    }
}

#[test]
fn max_conns_holds_further_connections_in_the_backlog_while_all_are_busy() {
    let server = Server::start(Launch::BindTcp, &["--max-conns", "2", "--workers", "4"], &[]);
    let mut a = server.connect();
    let mut b = server.connect();
    assert_eq!(
        a.get_values(&["FCGI_MAX_CONNS"]),
        vec![("FCGI_MAX_CONNS".into(), "2".into())]
    );
    // b sleeps longer so that a is, without a race, the only idle connection (the one closed to make room) when
    // the third connection is taken.
    a.send_request(1, true, "/sleep?ms=2000", b"", 65535);
    b.send_request(1, true, "/sleep?ms=3500", b"", 65535);
    // The server must have taken both requests before the third connection arrives: a connection whose request
    // has not been read yet counts as idle, and would be closed to make room for the third.
    thread::sleep(Duration::from_millis(300));
    // A third connection is not served while both are busy...
    let mut c = server.connect();
    c.send_request(1, true, "/info", b"third", 65535);
    c.expect_silence(Duration::from_millis(700));
    // ...and is served as soon as one of them is done: idle, it makes room (it is closed after its answer).
    assert_eq!(a.read_response(1).body(), b"slept\n");
    let resp = c.read_response(1);
    assert_eq!(resp.info()["body_len"], "5");
    assert_eq!(b.read_response(1).body(), b"slept\n");
    a.expect_eof();
    drop(b);
    drop(c);
    // Connections are released: two new ones are served at once.
    let mut d = server.connect();
    let mut e = server.connect();
    assert_eq!(d.request(1, true, "/info", b"").info()["request_id"], "1");
    assert_eq!(e.request(1, true, "/info", b"").info()["request_id"], "1");
}

/// Idle kept connections used to hold every slot: at the limit a new connection waited in the listen backlog
/// until an idle one happened to close. Now the connection idle longest is closed to make room.
#[test]
fn at_max_conns_a_new_connection_closes_the_longest_idle_one() {
    let server = Server::start(Launch::BindTcp, &["--max-conns", "2", "--workers", "2"], &[]);
    let mut oldest = server.connect();
    assert_eq!(oldest.request(1, true, "/info", b"").info()["request_id"], "1");
    thread::sleep(Duration::from_millis(50));
    let mut newer = server.connect();
    assert_eq!(newer.request(1, true, "/info", b"").info()["request_id"], "1");
    let started = Instant::now();
    let mut third = server.connect();
    assert_eq!(third.request(1, true, "/info", b"x").info()["body_len"], "1");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the third connection waited {:?}",
        started.elapsed()
    );
    oldest.expect_eof();
    assert_eq!(newer.request(2, true, "/info", b"").info()["request_id"], "2");
}

/// Without an idle timeout, connections a front server keeps but never uses stayed open for ever.
#[test]
fn kept_connections_idle_past_the_idle_timeout_are_closed() {
    let server = Server::start(Launch::BindTcp, &["--idle-timeout", "1", "--workers", "2"], &[]);
    let mut kept = server.connect();
    assert_eq!(kept.request(1, true, "/info", b"").info()["request_id"], "1");
    let mut silent = server.connect();
    let mut busy = server.connect();
    let idle_since = Instant::now();
    // A request running longer than the idle timeout is not idle.
    busy.send_request(1, true, "/sleep?ms=1800", b"", 65535);
    kept.expect_silence(Duration::from_millis(600));
    kept.expect_eof();
    silent.expect_eof();
    let closed_after = idle_since.elapsed();
    assert!(
        closed_after >= Duration::from_millis(900) && closed_after < Duration::from_secs(4),
        "idle connections closed after {closed_after:?}"
    );
    assert_eq!(busy.read_response(1).body(), b"slept\n");
    // The server goes on serving new connections.
    assert_eq!(
        server.connect().request(3, true, "/info", b"").info()["request_id"],
        "3"
    );
}

#[test]
fn graceful_stop_finishes_the_request_in_flight() {
    for launch in [Launch::BindTcp, Launch::Fd0Unix] {
        let mut server = Server::start(launch, &["--shutdown-timeout", "10"], &[]);
        let mut idle = server.connect();
        assert_eq!(idle.request(1, true, "/info", b"").info()["request_id"], "1");
        let mut busy = server.connect();
        busy.send_request(1, true, "/sleep?ms=1500", b"", 1);
        std::thread::sleep(Duration::from_millis(300));
        let stopped = Instant::now();
        server.signal(libc::SIGTERM);
        server
            .wait_log(|l| l.contains("SIGTERM"), Duration::from_secs(5))
            .expect("SIGTERM logged");
        // The request in flight completes.
        let resp = busy.read_response(1);
        assert_eq!(resp.body(), b"slept\n");
        // The process exits 0 within the timeout, without waiting for the idle connection.
        let status = server
            .wait_exit(Duration::from_secs(10))
            .expect("the server did not exit");
        assert!(status.success(), "{status:?}");
        assert!(stopped.elapsed() < Duration::from_secs(8), "{:?}", stopped.elapsed());
        idle.expect_eof();
        // No new connections afterwards.
        match server.addr() {
            Addr::Tcp(addr) => {
                let err = TcpStream::connect_timeout(addr, Duration::from_secs(2)).unwrap_err();
                assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
            }
            Addr::Unix(path) => {
                // The test made this socket and still has its path; nobody listens on it any more.
                let err = std::os::unix::net::UnixStream::connect(path).unwrap_err();
                assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
            }
        }
    }
}

#[test]
fn connections_arriving_during_a_stop_are_not_served() {
    let mut server = Server::start(Launch::BindTcp, &["--shutdown-timeout", "10"], &[]);
    let mut busy = server.connect();
    busy.send_request(1, true, "/sleep?ms=1200", b"", 1);
    std::thread::sleep(Duration::from_millis(200));
    server.signal(libc::SIGTERM);
    server
        .wait_log(|l| l.contains("SIGTERM"), Duration::from_secs(5))
        .expect("SIGTERM logged");
    let Addr::Tcp(addr) = server.addr().clone() else {
        unreachable!()
    };
    // Connecting may still succeed (the listen backlog), but no request on it is answered.
    if let Ok(mut late) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
        late.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        let mut req = Vec::new();
        let mut c = Vec::new();
        pyfcgi::protocol::record::write_record(
            &mut c,
            pyfcgi::protocol::record::RecordType::BeginRequest,
            1,
            &[0, 1, 0, 0, 0, 0, 0, 0],
        );
        req.extend(c);
        req.extend(params_bytes(1, &request_params("GET", "/info", 0)));
        let _ = late.write_all(&req);
        let mut buf = [0u8; 64];
        match late.read(&mut buf) {
            Ok(0) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            other => panic!("a connection made during the stop was answered: {other:?}"),
        }
    }
    assert_eq!(busy.read_response(1).body(), b"slept\n");
    assert!(server.wait_exit(Duration::from_secs(10)).expect("exit").success());
}

#[test]
fn stop_timeout_cuts_off_a_hung_request() {
    let mut server = Server::start(Launch::BindUnix, &["--shutdown-timeout", "1"], &[]);
    let mut hung = server.connect();
    hung.begin(1, 1, true);
    hung.params_owned(1, &request_params("POST", "/info", 1000));
    hung.stdin(1, b"only part of the body", 100);
    std::thread::sleep(Duration::from_millis(200));
    let stopped = Instant::now();
    server.signal(libc::SIGINT);
    let status = server
        .wait_exit(Duration::from_secs(10))
        .expect("the server did not exit");
    assert!(status.success(), "{status:?}");
    let took = stopped.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "{took:?}"
    );
    server
        .wait_log(|l| l.contains("stop timeout reached"), Duration::from_secs(2))
        .unwrap_or_else(|| panic!("no timeout warning:\n{}", server.log_text()));
}

// ---------------------------------------------------------------------------------------------------------------
// Web servers that go away or change their mind.

#[test]
fn web_server_vanishing_frees_the_worker() {
    // One worker: if any of these left it stuck, the last request would never be answered.
    let server = Server::start(Launch::BindTcp, &["--workers", "1"], &[]);

    // Gone in the middle of a large response.
    let mut c = server.connect();
    c.send_request(1, true, "/big?bytes=50000000", b"", 1);
    let first = c.expect_record();
    assert_eq!(first.record_type, STDOUT);
    drop(c);

    // Gone in the middle of the request body.
    let mut c = server.connect();
    c.begin(1, 1, true);
    c.params_owned(1, &request_params("POST", "/info", 100_000));
    c.stdin(1, &body_of(5000, 1), 1000);
    drop(c);

    // Gone in the middle of a record header and of a record body.
    let mut c = server.connect();
    c.begin(1, 1, true);
    c.send(&[1, 4, 0]);
    drop(c);
    let mut c = server.connect();
    c.begin(1, 1, true);
    c.send(&[1, 4, 0, 1, 0, 100, 4, 0, 1, 2, 3]);
    drop(c);

    // Gone while a streamed response is being written.
    let mut c = server.connect();
    c.send_request(1, true, "/stream?n=20&ms=50", b"", 1);
    let _ = c.expect_record();
    drop(c);

    let mut c = server.connect();
    let started = Instant::now();
    assert_eq!(c.request(2, true, "/info", b"still here").info()["body_len"], "10");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
}

#[test]
fn abort_during_a_streamed_response_ends_it_early() {
    // The handler never reads the (empty) body, like most GET handlers: the abort must be seen anyway.
    let server = Server::start(Launch::BindTcp, &[], &[]);
    let mut c = server.connect();
    c.send_request(3, true, "/stream?n=50&ms=40", b"", 1);
    let first = c.expect_record();
    assert_eq!((first.record_type, first.id), (STDOUT, 3));
    c.abort(3);
    let started = Instant::now();
    // The rest of the response: some more chunks maybe, then the end, well before 50 chunks' 2 seconds.
    let rest = c.read_response(3);
    assert_eq!(rest.protocol_status, REQUEST_COMPLETE);
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    let mut all = first.content.clone();
    all.extend_from_slice(&rest.stdout);
    let chunks = String::from_utf8_lossy(&all).matches("chunk ").count();
    assert!(chunks < 50, "{chunks} chunks: the abort was not noticed");
    assert_eq!(c.request(4, true, "/info", b"").info()["request_id"], "4");
}

#[test]
fn abort_during_a_stream_without_pauses_is_still_noticed() {
    // Flushes this close together are not each followed by a look for the abort (at most every few ms); the abort
    // must be seen all the same, long before the million chunks are written.
    let server = Server::start(Launch::BindTcp, &[], &[]);
    let mut c = server.connect();
    c.send_request(3, true, "/stream?n=1000000&ms=0", b"", 1);
    let first = c.expect_record();
    assert_eq!((first.record_type, first.id), (STDOUT, 3));
    c.abort(3);
    let rest = c.read_response(3);
    assert_eq!(rest.protocol_status, REQUEST_COMPLETE);
    let mut all = first.content.clone();
    all.extend_from_slice(&rest.stdout);
    let chunks = String::from_utf8_lossy(&all).matches("chunk ").count();
    assert!(chunks < 1_000_000, "{chunks} chunks: the abort was not noticed");
    assert_eq!(c.request(4, true, "/info", b"").info()["request_id"], "4");
}

#[test]
fn repeated_empty_stdin_record_is_tolerated() {
    // fastcgi-client 0.12 (and so anything built on it) ends an empty body with two empty STDIN records. The
    // second one arrives while the response is being streamed, and must not break the response or the
    // connection.
    use fastcgi_client::{Client as FcgiClient, Params, Request};
    use futures_executor::block_on;

    let server = Server::start(Launch::BindTcp, &[], &[]);
    let mut client = FcgiClient::new_keep_alive(BlockingIo(Sock::connect(server.addr()).unwrap()));
    for i in 0..3 {
        let params = Params::default().request_method("GET").request_uri("/stream?n=3&ms=20");
        let resp =
            block_on(client.execute(Request::new(params, &b""[..]))).unwrap_or_else(|e| panic!("request {i}: {e}"));
        let text = String::from_utf8(resp.stdout.unwrap()).unwrap();
        assert!(text.ends_with("chunk 0\nchunk 1\nchunk 2\n"), "{i}: {text}");
    }

    // The same by hand: the duplicate is ignored, the next request is served.
    let mut c = server.connect();
    c.begin(1, 1, true);
    c.params_owned(1, &request_params("GET", "/stream?n=3&ms=20", 0));
    c.stdin_end(1);
    c.stdin_end(1);
    assert_eq!(c.read_response(1).body(), b"chunk 0\nchunk 1\nchunk 2\n");
    assert_eq!(c.request(2, true, "/info", b"").info()["request_id"], "2");
    // Body data after the end of the body is still a protocol error.
    c.send_request(3, true, "/stream?n=3&ms=20", b"", 1);
    c.stdin(3, b"late", 4);
    let _ = c.read_record();
    server
        .wait_log(|l| l.contains("unexpected record of type 5"), Duration::from_secs(5))
        .unwrap_or_else(|| panic!("late body data not refused:\n{}", server.log_text()));
}

#[test]
fn large_params_span_several_records() {
    let server = Server::start(Launch::BindTcp, &[], &[]);
    let mut c = server.connect();
    let cookie: String = (0..150_000).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
    let mut params = request_params("GET", "/info", 0);
    params.push(("HTTP_COOKIE", cookie.clone()));
    params.push(("HTTP_X_EMPTY", String::new()));
    params.push(("HTTP_X_UTF8", "grüße/日本".into()));
    c.begin(1, 1, true);
    c.params_owned(1, &params);
    c.stdin_end(1);
    let resp = c.read_response(1);
    let info = resp.info();
    assert_eq!(info["HTTP_COOKIE"], cookie);
    assert_eq!(info["HTTP_X_EMPTY"], "");
    assert_eq!(info["HTTP_X_UTF8"], "grüße/日本");
}

/// The kernel's count of connections dropped because a listen queue was full (system-wide; `None` where
/// /proc/net/netstat cannot be read).
fn listen_overflows() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/net/netstat").ok()?;
    let mut lines = text.lines().filter(|l| l.starts_with("TcpExt:"));
    let (names, values) = (lines.next()?, lines.next()?);
    let at = names.split_whitespace().position(|n| n == "ListenOverflows")?;
    values.split_whitespace().nth(at)?.parse().ok()
}

/// A front server opening its pool, or a flood of clients, right after start-up: with std's fixed backlog of
/// 128 (and the fd-table growth stalls of a multi-threaded process in accept4) hundreds of handshakes were
/// dropped and waited for SYN retransmits. Every connection must be answered and none dropped.
#[test]
fn a_burst_of_1000_connections_to_a_fresh_process_loses_none() {
    use socket2::{Domain, Socket, Type};
    const BURST: usize = 1000;
    let server = Server::start(Launch::BindTcp, &["--workers", "4", "--max-conns", "1100"], &[]);
    let Addr::Tcp(addr) = server.addr().clone() else {
        unreachable!()
    };
    let before = listen_overflows();
    let started = Instant::now();
    // All the handshakes at once: non-blocking connects, none waited for.
    let sockets: Vec<Socket> = (0..BURST)
        .map(|_| {
            let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
            socket.set_nonblocking(true).expect("non-blocking");
            match socket.connect(&addr.into()) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
                Err(e) => panic!("connect: {e}"),
            }
            socket
        })
        .collect();
    // Then GET_VALUES on each (a blocking write waits for its handshake) and its answer.
    let mut clients: Vec<Client> = sockets
        .into_iter()
        .map(|socket| {
            socket.set_nonblocking(false).expect("blocking");
            let stream = TcpStream::from(socket);
            stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
            stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
            Client {
                sock: Sock::Tcp(stream),
            }
        })
        .collect();
    let mut slowest = Duration::ZERO;
    for client in &mut clients {
        assert_eq!(
            client.get_values(&["FCGI_MAX_CONNS"]),
            vec![("FCGI_MAX_CONNS".into(), "1100".into())]
        );
        slowest = slowest.max(started.elapsed());
    }
    let dropped = before.zip(listen_overflows()).map(|(b, a)| a.saturating_sub(b));
    eprintln!("[timing] {BURST} connections answered within {slowest:?}; listen overflows: {dropped:?}");
    match dropped {
        Some(dropped) => assert_eq!(dropped, 0, "{dropped} handshakes were dropped by a full listen queue"),
        // A dropped SYN is retried after a second.
        None => assert!(slowest < Duration::from_secs(1), "the burst took {slowest:?}"),
    }
}
