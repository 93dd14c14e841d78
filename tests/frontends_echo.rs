//! End to end through real front servers: the echo responder (`tests/fixtures/echo_responder.rs`, pyfcgi's real
//! start-up path and server with a Rust handler) behind nginx (TCP and Unix socket, buffered and streaming),
//! lighttpd spawning it with the listening socket on fd 0, Apache `mod_proxy_fcgi` (TCP and Unix socket) and
//! Apache `mod_fcgid` spawning it. A missing server fails these tests; nothing is skipped.

#![cfg(unix)] // Unix transports and front servers; the Windows side is tests/fake_iis under Wine.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use support::frontends::{Apache, ApacheBackend, ApacheConfig, Frontend, Lighttpd, LighttpdConfig, Nginx, NginxConfig};
use support::http::{self, Body, Request};
use support::{
    descendant_pids, echo_responder_path, exe_of, info_value, BindKind, PatternBody, Responder, Scratch, Spawn,
};

const MIB: usize = 1024 * 1024;

/// `GET /info?...` with a custom header: the CGI parameters every server must send.
fn check_info_params(port: u16, server_protocol: &str) -> String {
    let answer = http::request(
        port,
        Request::get("/info?a=1&b=two%20words").header("X-Test-Header", "yes"),
    );
    answer.assert_status(200);
    assert_eq!(answer.header("Content-Type"), Some("text/plain"));
    let text = answer.text();
    assert_eq!(info_value(&text, "method"), "GET");
    assert_eq!(info_value(&text, "uri"), "/info?a=1&b=two%20words");
    assert_eq!(info_value(&text, "body_len"), "0");
    assert_eq!(info_value(&text, "REQUEST_METHOD"), "GET");
    assert_eq!(info_value(&text, "REQUEST_URI"), "/info?a=1&b=two%20words");
    assert_eq!(info_value(&text, "QUERY_STRING"), "a=1&b=two%20words");
    assert_eq!(info_value(&text, "SERVER_PROTOCOL"), server_protocol);
    assert_eq!(info_value(&text, "GATEWAY_INTERFACE"), "CGI/1.1");
    assert_eq!(info_value(&text, "SERVER_PORT"), port.to_string());
    assert_eq!(info_value(&text, "REMOTE_ADDR"), "127.0.0.1");
    assert_eq!(info_value(&text, "HTTP_X_TEST_HEADER"), "yes");
    assert_eq!(info_value(&text, "HTTP_HOST"), format!("127.0.0.1:{port}"));
    text
}

/// A 10 MiB POST to `/info` (length and checksum as the application saw them), an `/echo` round trip of
/// `echo_len` bytes and a 5,000,000-byte `/big` answer.
///
/// `/echo` answers while it is still reading the body, which front servers that stop sending the body once the
/// answer has begun (nginx) or that send the whole body before reading any of the answer (mod_fcgid) allow only
/// because pyfcgi holds the answer until the body is in (see the tests at the end).
fn check_bodies(port: u16, echo_len: usize) {
    let started = Instant::now();
    let len = 10 * MIB;
    let (want_len, want_fnv) = PatternBody::checksum(1, len as u64);
    let answer = http::request(
        port,
        Request::new("POST", "/info")
            .header("Content-Type", "application/octet-stream")
            .body(Body::Sized(len as u64, Box::new(PatternBody::new(1, len as u64)))),
    );
    answer.assert_status(200);
    let text = answer.text();
    assert_eq!(info_value(&text, "body_len"), want_len.to_string());
    assert_eq!(info_value(&text, "body_fnv"), format!("{want_fnv:016x}"));
    assert_eq!(info_value(&text, "CONTENT_LENGTH"), len.to_string());
    assert_eq!(info_value(&text, "CONTENT_TYPE"), "application/octet-stream");
    let post_time = started.elapsed();

    check_echo(port, echo_len);

    let answer = http::get(port, "/big?bytes=5000000");
    answer.assert_status(200);
    assert_eq!(answer.body.len(), 5_000_000);
    assert!(answer.body.iter().all(|b| *b == b'x'), "/big body is not all `x`");
    eprintln!(
        "[timing] port {port}: 10 MiB POST {post_time:?}, all bodies {:?}",
        started.elapsed()
    );
}

/// `POST /echo` with `len` bytes: the same bytes come back.
fn check_echo(port: u16, len: usize) {
    let body = PatternBody::bytes(2, len);
    let started = Instant::now();
    let answer = http::post(port, "/echo", body.clone());
    answer.assert_status(200);
    assert_eq!(answer.body.len(), body.len(), "echo length");
    assert!(answer.body == body, "echoed body differs");
    eprintln!("[timing] port {port}: /echo of {len} bytes in {:?}", started.elapsed());
}

/// `HEAD /info`: the status and headers without a body.
fn check_head(port: u16) {
    let answer = http::request(port, Request::head("/info"));
    answer.assert_status(200);
    assert!(answer.body.is_empty());
    assert_eq!(answer.header("Content-Type"), Some("text/plain"));
}

/// A static file served by the front server itself, and a 404 for a missing one.
fn static_dir(scratch: &Scratch) -> std::path::PathBuf {
    let dir = scratch.mkdir("static");
    std::fs::write(dir.join("hello.txt"), "static hello\n").expect("write static file");
    dir
}

fn check_static(port: u16) {
    let answer = http::get(port, "/static/hello.txt");
    answer.assert_status(200);
    assert_eq!(answer.text(), "static hello\n");
    http::get(port, "/static/missing.txt").assert_status(404);
}

/// `/stream?n=5&ms=300`: the first chunk must arrive long before the last (the answer is not buffered anywhere).
fn check_streaming(port: u16) {
    let mut answer = Request::get("/stream?n=5&ms=300").send(port).expect("send /stream");
    assert_eq!(answer.status, 200);
    let (arrivals, body) = answer.read_timed();
    let text = String::from_utf8_lossy(&body);
    let expected: String = (0..5).map(|i| format!("chunk {i}\n")).collect();
    assert_eq!(text, expected);
    let first = arrivals[0];
    let last = *arrivals.last().expect("some body");
    eprintln!("[timing] port {port}: /stream pieces arrived at {arrivals:?}");
    assert!(
        first < Duration::from_millis(700),
        "first chunk took {first:?}: the answer was held back"
    );
    assert!(
        last - first >= Duration::from_millis(900),
        "chunks arrived together ({arrivals:?}): the answer was buffered"
    );
    assert!(
        arrivals.len() >= 4,
        "expected the chunks in separate reads: {arrivals:?}"
    );
}

/// `count` sequential requests; returns their `/info` texts.
fn sequential(port: u16, count: usize) -> (Vec<String>, Duration) {
    let started = Instant::now();
    let texts = (0..count)
        .map(|i| {
            let answer = http::get(port, &format!("/info?i={i}"));
            answer.assert_status(200);
            let text = answer.text();
            assert_eq!(info_value(&text, "QUERY_STRING"), format!("i={i}"));
            text
        })
        .collect();
    (texts, started.elapsed())
}

/// The echo responder process that `server_pid` spawned: checks it is the echo binary, that it was not given
/// `--bind` (it serves the socket on fd 0) and that it moved the socket off fd 0 (which now reads `/dev/null`).
fn check_spawned_on_fd0(server_pid: u32) -> u32 {
    let echo = echo_responder_path().canonicalize().expect("echo path");
    let mut found = None;
    support::wait_until(Duration::from_secs(5), || {
        found = descendant_pids(server_pid)
            .into_iter()
            .find(|pid| exe_of(*pid).as_deref() == Some(echo.as_path()));
        found.is_some()
    });
    let pid = found.unwrap_or_else(|| panic!("no echo_responder process under pid {server_pid}"));
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).expect("cmdline");
    assert!(
        !String::from_utf8_lossy(&cmdline).contains("--bind"),
        "spawned with --bind: {cmdline:?}"
    );
    let fd0 = std::fs::read_link(format!("/proc/{pid}/fd/0")).expect("fd 0");
    assert_eq!(
        fd0,
        Path::new("/dev/null"),
        "fd 0 should be /dev/null after taking the socket"
    );
    pid
}

// ---------------------------------------------------------------------------------------------------------------
// nginx

#[test]
fn nginx_tcp_params_and_keepalive_reuse() {
    let echo = Responder::echo(BindKind::Tcp);
    let nginx = Nginx::start(NginxConfig::new(echo.upstream()));
    let port = nginx.port();
    let baseline = echo.open_sockets();

    let text = check_info_params(port, "HTTP/1.1");
    assert_eq!(info_value(&text, "keep_conn"), "true");
    assert!(info_value(&text, "SERVER_SOFTWARE").starts_with("nginx/"));
    assert_eq!(info_value(&text, "SCRIPT_NAME"), "/info");
    assert_eq!(info_value(&text, "CONTENT_LENGTH"), "");

    // Sequential requests through nginx's keep-alive upstream: every one with FCGI_KEEP_CONN, all on the same
    // FastCGI connection (the responder's open sockets, sampled after each answer, hold one new socket).
    let mut connections = BTreeSet::new();
    let mut samples_with_connection = 0;
    let started = Instant::now();
    let count = 200;
    for i in 0..count {
        let answer = http::get(port, &format!("/info?i={i}"));
        answer.assert_status(200);
        let text = answer.text();
        assert_eq!(info_value(&text, "keep_conn"), "true");
        assert_eq!(info_value(&text, "request_id"), "1");
        let now: BTreeSet<u64> = echo.open_sockets().difference(&baseline).copied().collect();
        if !now.is_empty() {
            samples_with_connection += 1;
        }
        connections.extend(now);
    }
    let elapsed = started.elapsed();
    eprintln!(
        "[timing] nginx keep-alive: {count} sequential requests in {elapsed:?}; FastCGI connections seen: {}",
        connections.len()
    );
    assert!(
        samples_with_connection == count,
        "the FastCGI connection was not kept open between requests ({samples_with_connection}/{count} samples)"
    );
    assert!(
        connections.len() <= 2,
        "nginx opened {} FastCGI connections for {count} sequential requests",
        connections.len()
    );
    assert!(elapsed < Duration::from_secs(20), "{count} requests took {elapsed:?}");
}

#[test]
fn nginx_without_keepalive_closes_connections() {
    let echo = Responder::echo(BindKind::Tcp);
    let nginx = Nginx::start(NginxConfig::new(echo.upstream()).keepalive(None));
    let (texts, elapsed) = sequential(nginx.port(), 30);
    for text in &texts {
        assert_eq!(info_value(text, "keep_conn"), "false");
    }
    eprintln!("[timing] nginx without keep-alive: 30 requests in {elapsed:?}");
}

#[test]
fn nginx_tcp_buffered_bodies_head_and_static() {
    let scratch = Scratch::new("static");
    let echo = Responder::echo(BindKind::Tcp);
    let nginx = Nginx::start(NginxConfig::new(echo.upstream()).static_dir(static_dir(&scratch)));
    // Over loopback TCP the socket buffers take the whole 1 MiB before the answer begins.
    check_bodies(nginx.port(), MIB);
    check_head(nginx.port());
    check_static(nginx.port());
}

#[test]
fn nginx_unix_socket() {
    let echo = Responder::echo(BindKind::Unix);
    let nginx = Nginx::start(NginxConfig::new(echo.upstream()));
    let text = check_info_params(nginx.port(), "HTTP/1.1");
    assert_eq!(info_value(&text, "keep_conn"), "true");
    check_bodies(nginx.port(), MIB);
    check_head(nginx.port());
    let (_, elapsed) = sequential(nginx.port(), 50);
    eprintln!("[timing] nginx unix: 50 requests in {elapsed:?}");
}

#[test]
fn nginx_streaming_both_ways() {
    let echo = Responder::echo(BindKind::Tcp);
    let nginx = Nginx::start(NginxConfig::new(echo.upstream()).streaming());
    let port = nginx.port();
    check_streaming(port);

    // A 20 MiB upload with chunked transfer encoding: nginx streams it on without a CONTENT_LENGTH.
    let len = 20 * MIB as u64;
    let (want_len, want_fnv) = PatternBody::checksum(3, len);
    let started = Instant::now();
    let answer = http::request(
        port,
        Request::new("POST", "/info").body(Body::Chunked(Box::new(PatternBody::new(3, len)))),
    );
    answer.assert_status(200);
    let text = answer.text();
    assert_eq!(info_value(&text, "body_len"), want_len.to_string());
    assert_eq!(info_value(&text, "body_fnv"), format!("{want_fnv:016x}"));
    assert_eq!(info_value(&text, "CONTENT_LENGTH"), "");
    eprintln!(
        "[timing] nginx streaming: 20 MiB chunked upload in {:?}",
        started.elapsed()
    );

    check_bodies(port, MIB);
}

// ---------------------------------------------------------------------------------------------------------------
// lighttpd

/// Median time of `count` POSTs of `len` bytes to `/info` (nginx reuses its kept upstream connection for each).
fn median_post(port: u16, len: usize, count: usize) -> Duration {
    let body = PatternBody::bytes(3, len);
    let mut times: Vec<Duration> = (0..count)
        .map(|_| {
            let started = Instant::now();
            let answer = http::post(port, "/info", body.clone());
            answer.assert_status(200);
            assert_eq!(info_value(&answer.text(), "body_len"), len.to_string());
            started.elapsed()
        })
        .collect();
    times.sort();
    times[count / 2]
}

/// nginx sends a buffered body in two writes and sets TCP_NODELAY only on client sockets, so its second write
/// waits for our ACK. Linux delays that ACK (up to 40 ms) unless quick-ACK mode is re-armed after every read that
/// took data, including the non-blocking ones: otherwise every POST above about 16 KiB took 44 ms.
#[test]
fn nginx_posts_over_16_kib_on_a_kept_connection_do_not_wait_for_a_delayed_ack() {
    let echo = Responder::echo(BindKind::Tcp);
    let nginx = Nginx::start(NginxConfig::new(echo.upstream()).keepalive(Some(1)));
    // The first requests open the kept connection and leave TCP's initial quick-ACK phase.
    median_post(nginx.port(), 64 * 1024, 20);
    for len in [16 * 1024, 64 * 1024] {
        let median = median_post(nginx.port(), len, 31);
        eprintln!("[timing] POST of {len} bytes through nginx: median {median:?}");
        assert!(
            median < Duration::from_millis(20),
            "POST of {len} bytes: median {median:?}, a delayed-ACK stall (40 ms) is back"
        );
    }
}

/// A request whose FastCGI parameters exceed `--max-params-bytes` (here a 6,000-byte cookie) used to close the
/// connection without an answer, which nginx turned into a 502. Now it is a 431 and the next request is served.
#[test]
fn nginx_gets_431_not_502_for_oversized_params() {
    let echo = Responder::start(
        "echo",
        &echo_responder_path(),
        &["--workers", "2", "--max-params-bytes", "4000"],
        &[],
        BindKind::Tcp,
    );
    let nginx = Nginx::start(NginxConfig::new(echo.upstream()).keepalive(Some(1)));
    for body_len in [0, 50_000] {
        let answer = http::request(
            nginx.port(),
            Request::post("/info", vec![b'b'; body_len]).header("Cookie", &"c".repeat(6000)),
        );
        answer.assert_status(431);
        let after = http::post(nginx.port(), "/info", b"after".to_vec());
        after.assert_status(200);
        assert_eq!(info_value(&after.text(), "body_len"), "5");
    }
    assert!(echo.log().contains("request refused with 431"), "{}", echo.log());
}

#[test]
fn lighttpd_spawns_echo_on_fd0() {
    let scratch = Scratch::new("static");
    let lighttpd = Lighttpd::start(LighttpdConfig::spawn(Spawn::echo_responder()).static_dir(static_dir(&scratch)));
    let port = lighttpd.port();
    let text = check_info_params(port, "HTTP/1.1");
    assert!(info_value(&text, "SERVER_SOFTWARE").starts_with("lighttpd/"));
    check_spawned_on_fd0(lighttpd.pid());
    check_bodies(port, MIB);
    check_head(port);
    check_static(port);
    let (_, elapsed) = sequential(port, 50);
    eprintln!("[timing] lighttpd: 50 requests in {elapsed:?}");
    assert!(
        lighttpd.logs().contains("serving FastCGI listen=unix:"),
        "the spawned responder's start line is missing from lighttpd's logs:\n{}",
        lighttpd.logs()
    );
}

#[test]
fn lighttpd_streaming() {
    let lighttpd = Lighttpd::start(LighttpdConfig::spawn(Spawn::echo_responder()).streaming());
    check_streaming(lighttpd.port());
    check_bodies(lighttpd.port(), MIB);
}

// ---------------------------------------------------------------------------------------------------------------
// Apache

#[test]
fn apache_proxy_fcgi_tcp() {
    let scratch = Scratch::new("static");
    let echo = Responder::echo(BindKind::Tcp);
    let apache = Apache::start(ApacheConfig::proxy_fcgi(echo.upstream()).static_dir(static_dir(&scratch)));
    let port = apache.port();
    let text = check_info_params(port, "HTTP/1.1");
    assert!(info_value(&text, "SERVER_SOFTWARE").starts_with("Apache/"));
    check_bodies(port, MIB);
    check_head(port);
    check_static(port);
    let (_, elapsed) = sequential(port, 50);
    eprintln!("[timing] apache proxy_fcgi tcp: 50 requests in {elapsed:?}");
}

#[test]
fn apache_proxy_fcgi_unix_streaming_with_reuse() {
    let echo = Responder::echo(BindKind::Unix);
    let mut config = ApacheConfig::proxy_fcgi(echo.upstream()).streaming();
    config.backend = ApacheBackend::ProxyFcgi {
        upstream: echo.upstream(),
        enablereuse: true,
    };
    let apache = Apache::start(config);
    let port = apache.port();
    let text = check_info_params(port, "HTTP/1.1");
    eprintln!(
        "[info] apache enablereuse=on sends keep_conn={}",
        info_value(&text, "keep_conn")
    );
    check_streaming(port);
    check_bodies(port, MIB);
    let (_, elapsed) = sequential(port, 50);
    eprintln!("[timing] apache proxy_fcgi unix: 50 requests in {elapsed:?}");
}

#[test]
fn apache_fcgid_spawns_echo_on_fd0() {
    let apache = Apache::start(ApacheConfig::fcgid(Spawn::echo_responder()).streaming());
    let port = apache.port();
    let text = check_info_params(port, "HTTP/1.1");
    assert!(info_value(&text, "SERVER_SOFTWARE").contains("mod_fcgid"));
    let pid = check_spawned_on_fd0(apache.pid());
    // mod_fcgid runs the application as Apache's `User`.
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).expect("Uid line");
    assert!(
        uid_line.split_whitespace().nth(1) == Some("33"),
        "not www-data: {uid_line}"
    );
    check_bodies(port, MIB);
    check_head(port);
    check_streaming(port);
    let (_, elapsed) = sequential(port, 50);
    eprintln!("[timing] apache fcgid: 50 requests in {elapsed:?}");
}

// ---------------------------------------------------------------------------------------------------------------
// Answering while the body is still arriving: the echo answers as it reads, with a body larger than the socket
// buffers. These stalled until the response was held back until the whole body had arrived (src/server/spool.rs):
// nginx stops sending the body once it has the response headers, mod_fcgid sends the whole body before reading.

#[test]
fn nginx_buffered_echo_of_1mib_answered_while_reading() {
    let echo = Responder::echo(BindKind::Unix);
    let mut config = NginxConfig::new(echo.upstream());
    config.extra_location = "fastcgi_read_timeout 10s;".into();
    let nginx = Nginx::start(config);
    check_echo(nginx.port(), MIB);
}

#[test]
fn apache_fcgid_echo_of_1mib_answered_while_reading() {
    let mut config = ApacheConfig::fcgid(Spawn::echo_responder());
    config.extra = "FcgidIOTimeout 10".into();
    let apache = Apache::start(config);
    check_echo(apache.port(), MIB);
}

#[test]
fn nginx_unbuffered_echo_of_10mib_answered_while_reading() {
    // Stalled about 1 run in 4: the client had 4 MB unsent, nginx left 400 KB of the body unread in its client
    // socket, the FastCGI connection was idle both ways and the responder waited for STDIN (holding up to
    // 64 KiB of unflushed answer in its write buffer) until fastcgi_read_timeout. The body (over the spool's
    // memory limit) now goes through the temporary file.
    let echo = Responder::echo(BindKind::Tcp);
    let mut config = NginxConfig::new(echo.upstream()).streaming();
    config.extra_location = "fastcgi_read_timeout 10s;".into();
    let nginx = Nginx::start(config);
    for _ in 0..4 {
        check_echo(nginx.port(), 10 * MIB);
    }
}
