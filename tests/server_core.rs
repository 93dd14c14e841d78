//! The connection driver (`src/server/`) over in-memory connections: keep-conn, abort polling, draining an unread
//! body before END_REQUEST, back-pressure and full-duplex requests, each in milliseconds and without processes.
//! The web server's side is the same blocking test client the protocol tests use (tests/support/fcgi.rs), on the
//! other end of a `pyfcgi::transport::memory` pipe pair whose bounded capacity stands for the socket buffers.

#![cfg(unix)] // the shared test client lives with the Unix socket helpers

#[path = "support/fcgi.rs"]
mod fcgi;

use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use fcgi::*;
use pyfcgi::protocol::{Limits, RequestHead};
use pyfcgi::server::{serve_connection, Conn, Exchange, Handler, NoSuspend, RequestError, ServerConfig, Shutdown};
use pyfcgi::transport::memory::MemoryStream;

const KIB: usize = 1024;

/// What the handler saw, for assertions the response cannot show.
#[derive(Default)]
struct Seen {
    outcomes: Mutex<Vec<String>>,
}

/// Behaviour by path, as the echo responder chooses it:
/// `/hello`; `/ignore-body`; `/stream` (flushes chunks until the web server gives up); `/big?bytes=N`;
/// `/write-first?bytes=N` (writes N bytes, then reads the whole body and reports its length).
struct Scripted {
    seen: Arc<Seen>,
}

fn query_usize(uri: &str, name: &str) -> usize {
    uri.split_once('?')
        .map(|(_, q)| q)
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

impl Scripted {
    fn respond(&self, uri: &str, ex: &mut Exchange) -> Result<String, RequestError> {
        ex.set_head(b"Status: 200 OK\r\nContent-Type: text/plain\r\n\r\n".to_vec());
        let path = uri.split('?').next().unwrap_or("");
        match path {
            "/hello" | "/ignore-body" => {
                ex.write(b"hello\n")?;
                Ok("answered".into())
            }
            "/stream" => {
                for i in 0.. {
                    ex.write(format!("chunk {i}\n").as_bytes())?;
                    ex.flush()?;
                    thread::sleep(Duration::from_millis(1));
                }
                unreachable!()
            }
            "/big" => {
                let block = vec![b'x'; 16 * KIB];
                let mut left = query_usize(uri, "bytes");
                while left > 0 {
                    let n = left.min(block.len());
                    ex.write(&block[..n])?;
                    left -= n;
                }
                Ok("answered".into())
            }
            "/write-first" => {
                let block = vec![b'y'; 16 * KIB];
                let mut left = query_usize(uri, "bytes");
                while left > 0 {
                    let n = left.min(block.len());
                    ex.write(&block[..n])?;
                    left -= n;
                }
                ex.flush()?;
                let mut body = Vec::new();
                loop {
                    let chunk = ex.fill_body()?;
                    if chunk.is_empty() {
                        break;
                    }
                    body.extend_from_slice(chunk);
                    let n = chunk.len();
                    ex.consume_body(n);
                }
                Ok(format!("read {} bytes, fnv {}", body.len(), fnv1a(&body)))
            }
            other => Ok(format!("no route {other}")),
        }
    }
}

impl Handler for Scripted {
    fn handle(&self, request: RequestHead, mut exchange: Exchange) -> (Exchange, u32) {
        let uri = request.params.get_str("REQUEST_URI").unwrap_or_default().into_owned();
        let outcome = match self.respond(&uri, &mut exchange) {
            Ok(done) => done,
            Err(err) => format!("failed: {err}"),
        };
        self.seen.outcomes.lock().unwrap().push(format!("{uri}: {outcome}"));
        (exchange, 0)
    }
}

/// A connection to the server core on its own thread, `capacity` bytes of "socket buffer" each way.
struct Served {
    client: Client,
    seen: Arc<Seen>,
    server: Option<JoinHandle<()>>,
}

impl Served {
    fn start(capacity: usize) -> Self {
        let seen = Arc::new(Seen::default());
        let handler = Scripted { seen: seen.clone() };
        let (server_end, web_end) = MemoryStream::pair(capacity);
        let conn = Conn::new(
            Box::new(server_end),
            Limits::default(),
            ServerConfig::default().management_values(),
        );
        let server = thread::spawn(move || {
            serve_connection(conn, &handler, &Shutdown::new(), &NoSuspend);
        });
        Self {
            client: Client {
                sock: Sock::memory(web_end),
            },
            seen,
            server: Some(server),
        }
    }

    fn outcomes(&self) -> Vec<String> {
        self.seen.outcomes.lock().unwrap().clone()
    }

    /// Waits for the driver to return (the connection is over for it).
    fn join(&mut self) {
        let server = self.server.take().expect("joined once");
        let deadline = Instant::now() + IO_TIMEOUT;
        while !server.is_finished() {
            assert!(Instant::now() < deadline, "the connection driver did not return");
            thread::sleep(Duration::from_millis(1));
        }
        server.join().expect("the connection driver does not panic");
    }
}

fn get(client: &mut Client, id: u16, keep_conn: bool, uri: &str) {
    client.begin(id, 1, keep_conn);
    client.params_owned(id, &request_params("GET", uri, 0));
    client.stdin_end(id);
}

#[test]
fn keep_conn_serves_requests_in_turn_and_closes_after_one_without_it() {
    let mut served = Served::start(64 * KIB);
    for id in [1, 2, 7] {
        get(&mut served.client, id, true, "/hello");
        let response = served.client.read_response(id);
        assert_eq!(response.protocol_status, REQUEST_COMPLETE);
        assert_eq!(response.body(), b"hello\n");
    }
    get(&mut served.client, 3, false, "/hello");
    assert_eq!(served.client.read_response(3).body(), b"hello\n");
    served.client.expect_eof();
    served.join();
    assert_eq!(served.outcomes().len(), 4);
}

#[test]
fn a_kept_connection_ends_when_the_web_server_closes_it_between_requests() {
    let mut served = Served::start(64 * KIB);
    get(&mut served.client, 1, true, "/hello");
    served.client.read_response(1);
    served.client.sock.shutdown_write().unwrap();
    served.client.expect_eof();
    served.join();
}

#[test]
fn an_abort_during_a_streamed_response_stops_the_app_and_still_ends_the_request() {
    let mut served = Served::start(64 * KIB);
    get(&mut served.client, 1, true, "/stream");
    // Let a few chunks through, so the abort arrives while the app is flushing.
    for _ in 0..3 {
        let rec = served.client.expect_record();
        assert_eq!(rec.record_type, STDOUT);
    }
    let aborted_at = Instant::now();
    served.client.abort(1);
    let rest = served.client.read_response(1);
    let noticed = aborted_at.elapsed();
    assert_eq!(
        rest.protocol_status, REQUEST_COMPLETE,
        "an aborted request still gets END_REQUEST"
    );
    assert!(noticed < Duration::from_secs(2), "the abort took {noticed:?} to notice");
    assert_eq!(
        served.outcomes(),
        vec!["/stream: failed: the web server aborted the request".to_string()]
    );
    // The connection stays usable.
    get(&mut served.client, 2, true, "/hello");
    assert_eq!(served.client.read_response(2).body(), b"hello\n");
}

#[test]
fn an_unread_body_is_drained_before_end_request_and_the_next_request_parses() {
    let mut served = Served::start(256 * KIB);
    let body: Vec<u8> = (0..200 * KIB).map(|i| (i % 251) as u8).collect();
    let client = &mut served.client;
    client.begin(1, 1, true);
    client.params_owned(1, &request_params("POST", "/ignore-body", body.len()));
    client.stdin(1, &body[..100 * KIB], 8 * KIB);
    // The app has answered, but the rest of its body is still to come: no END_REQUEST before it.
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_millis(100);
    client.sock.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    while Instant::now() < deadline {
        match client.read_record() {
            Ok(Some(rec)) => seen.push(rec.record_type),
            Ok(None) => panic!("closed"),
            Err(_) => {}
        }
    }
    client.sock.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    assert!(
        !seen.contains(&END_REQUEST),
        "END_REQUEST before the body was drained: {seen:?}"
    );
    client.stdin(1, &body[100 * KIB..], 8 * KIB);
    client.stdin_end(1);
    let response = client.read_response(1);
    assert_eq!(response.protocol_status, REQUEST_COMPLETE);
    // The next request on the connection is parsed from a record boundary.
    get(client, 2, true, "/hello");
    assert_eq!(client.read_response(2).body(), b"hello\n");
    assert_eq!(served.outcomes().len(), 2);
}

#[test]
fn a_response_larger_than_the_buffers_waits_for_a_slow_reader_and_arrives_whole() {
    let capacity = 32 * KIB;
    let total = 1024 * KIB;
    let mut served = Served::start(capacity);
    get(&mut served.client, 1, true, &format!("/big?bytes={total}"));
    thread::sleep(Duration::from_millis(50));
    let Sock::Memory(web) = &served.client.sock else {
        unreachable!()
    };
    let sent = web.bytes_received();
    assert!(
        sent <= capacity as u64,
        "the server wrote {sent} bytes into a {capacity}-byte buffer nobody read"
    );
    assert!(sent > 0, "the first part of the response is written at once");
    assert!(served.outcomes().is_empty(), "the app is held up by back-pressure");
    let response = served.client.read_response(1);
    assert_eq!(response.body().len(), total);
    assert!(response.body().iter().all(|b| *b == b'x'));
    assert_eq!(served.outcomes(), vec![format!("/big?bytes={total}: answered")]);
}

/// mod_fcgid and IIS send the whole body before they read any of the answer, and nginx stops sending the body once
/// it has the response headers, so an application that answers before it reads its body (an echo, a handler
/// that sends its headers first) used to stall both: nothing of the answer may go out before the body is in. The
/// rest of the body is spooled (here past the spool's memory limit, so through its temporary file) and the
/// application reads it from there.
#[test]
fn an_app_answering_before_reading_its_body_sends_nothing_until_the_body_is_in_and_then_reads_all_of_it() {
    let capacity = 32 * KIB;
    let answer_len = 1024 * KIB;
    let mut served = Served::start(capacity);
    let body: Vec<u8> = (0..3 * 1024 * KIB + 77).map(|i| (i % 251) as u8).collect();
    let want = format!("read {} bytes, fnv {}", body.len(), fnv1a(&body));
    let mut client = std::mem::replace(
        &mut served.client,
        Client {
            sock: Sock::memory(MemoryStream::pair(1).0),
        },
    );
    client.begin(1, 1, true);
    client.params_owned(
        1,
        &request_params("POST", &format!("/write-first?bytes={answer_len}"), body.len()),
    );
    // As mod_fcgid does: the whole body, 100 times what the buffers hold, before reading anything. On another
    // thread, so a stall fails the test instead of hanging it.
    let sender = thread::spawn(move || {
        client.stdin(1, &body, 16 * KIB);
        client
    });
    let deadline = Instant::now() + IO_TIMEOUT;
    while !sender.is_finished() {
        assert!(
            Instant::now() < deadline,
            "stalled: the server stopped reading the body while its answer waited"
        );
        thread::sleep(Duration::from_millis(5));
    }
    served.client = sender.join().expect("the sender does not panic");
    thread::sleep(Duration::from_millis(50));
    let Sock::Memory(web) = &served.client.sock else {
        unreachable!()
    };
    assert_eq!(
        web.bytes_received(),
        0,
        "part of the answer went out before the end of the body (nginx would stop sending the body here)"
    );
    served.client.stdin_end(1);
    let response = served.client.read_response(1);
    assert_eq!(response.protocol_status, REQUEST_COMPLETE);
    assert_eq!(response.body().len(), answer_len);
    assert_eq!(
        served.outcomes(),
        vec![format!("/write-first?bytes={answer_len}: {want}")]
    );
    // The kept connection goes on from a record boundary.
    get(&mut served.client, 2, true, "/hello");
    assert_eq!(served.client.read_response(2).body(), b"hello\n");
}
