//! ASGI end to end: the FastAPI example (`examples/fastapi_app`) and the Starlette and raw ASGI apps of
//! `tests/fixtures/asgi_apps/apps.py`, run by `<venv>/bin/pyfcgi` (the venv of `tests/e2e/requirements.txt`, see
//! `support::venv`) behind real nginx configured as `examples/fastapi_app/nginx.conf`, and behind lighttpd
//! spawning pyfcgi with the socket on fd 0. Nothing is skipped: a missing nginx or a venv that cannot be prepared
//! fails the tests.

#![cfg(unix)]

mod support;

use std::fs;
use std::io::{self, Read as _};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use support::frontends::{Frontend, Lighttpd, LighttpdConfig, Nginx, NginxConfig};
use support::http::{self, Body, Request};
use support::venv::{manifest_dir, venv};
use support::{BindKind, PatternBody, Responder, Scratch, Spawn};

const MIB: u64 = 1024 * 1024;
const UPLOAD_LEN: u64 = 20 * MIB;
const UPLOAD_SEED: u64 = 0xa5a5;

fn fastapi_root() -> PathBuf {
    manifest_dir().join("examples/fastapi_app")
}

fn fixtures_root() -> PathBuf {
    manifest_dir().join("tests/fixtures/asgi_apps")
}

/// pyfcgi from the venv serving `handler` from `root`, marks (lifespan, background tasks) written to `marks`.
fn start(name: &str, handler: &str, root: &Path, marks: &Path, kind: BindKind, extra: &[&str]) -> Responder {
    let root = root.to_str().expect("UTF-8 path");
    let marks = marks.to_str().expect("UTF-8 path");
    let mut args = vec!["--app", handler, "--app-root", root];
    args.extend_from_slice(extra);
    Responder::start(
        name,
        &venv().pyfcgi,
        &args,
        &[
            ("PYFCGI_LOG", "info"),
            ("FASTAPI_EXAMPLE_MARKS", marks),
            ("ASGI_TEST_MARKS", marks),
        ],
        kind,
    )
}

fn nginx_for(upstream: support::Upstream, static_dir: Option<PathBuf>) -> Nginx {
    // As examples/fastapi_app/nginx.conf.
    let mut config = NginxConfig::new(upstream)
        .param("SCRIPT_NAME", "\"\"")
        .param("PATH_INFO", "$uri");
    if let Some(dir) = static_dir {
        config = config.static_dir(dir);
    }
    config.response_buffering = false;
    config.extra_location = "fastcgi_read_timeout 60s;\n".into();
    Nginx::start(config)
}

fn read_mark(marks: &Path, name: &str) -> String {
    fs::read_to_string(marks.join(name)).unwrap_or_default()
}

fn wait_for_mark(marks: &Path, name: &str, within: Duration) -> String {
    let mut text = String::new();
    let found = support::wait_until(within, || {
        text = read_mark(marks, name);
        !text.is_empty()
    });
    assert!(found, "the app never wrote the `{name}` mark in {}", marks.display());
    text
}

fn wait_for_log(what: &str, log: &dyn Fn() -> String, condition: impl Fn(&str) -> bool) -> String {
    let mut text = String::new();
    let found = support::wait_until(Duration::from_secs(10), || {
        text = log();
        condition(&text)
    });
    assert!(found, "pyfcgi's log never showed {what}; log:\n{text}");
    text
}

/// Peak resident memory of a process (VmHWM), in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmHWM in /proc status");
    kib * 1024
}

fn upload_sha256() -> &'static str {
    static SHA: OnceLock<String> = OnceLock::new();
    SHA.get_or_init(|| {
        let mut child = Command::new("sha256sum")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("run sha256sum (coreutils)");
        let mut stdin = child.stdin.take().expect("stdin");
        io::copy(&mut PatternBody::new(UPLOAD_SEED, UPLOAD_LEN), &mut stdin).expect("feed sha256sum");
        drop(stdin);
        let output = child.wait_with_output().expect("sha256sum");
        String::from_utf8_lossy(&output.stdout)
            .split_whitespace()
            .next()
            .expect("digest")
            .to_owned()
    })
}

/// The FastAPI example's scenarios, for any front server.
struct FastApiSite<'a> {
    port: u16,
    label: &'a str,
    marks: &'a Path,
    log: &'a dyn Fn() -> String,
    pid: u32,
}

impl FastApiSite<'_> {
    fn run_all(&self) {
        let started = Instant::now();
        self.index_and_lifespan_state();
        self.json_and_params();
        self.echo_scope();
        self.form();
        self.upload_streamed();
        self.streaming_response();
        self.server_sent_events();
        self.file_response();
        self.static_from_front_server();
        self.background_task_does_not_delay();
        self.errors();
        self.sync_endpoint();
        self.concurrent_sleeps();
        self.disconnect_mid_stream();
        eprintln!("[timing] {}: all scenarios in {:?}", self.label, started.elapsed());
    }

    fn index_and_lifespan_state(&self) {
        let answer = http::get(self.port, "/");
        answer.assert_status(200);
        assert_eq!(answer.text(), "Hello from FastAPI on pyfcgi\n", "{}", self.label);
        let startup = read_mark(self.marks, "startup");
        assert_eq!(
            startup.lines().count(),
            1,
            "{}: startup ran once: {startup:?}",
            self.label
        );
    }

    fn json_and_params(&self) {
        let answer = http::get(self.port, "/items/caf%C3%A9?q=%E2%82%AC%20and%20%C3%BC&n=3");
        answer.assert_status(200);
        assert_eq!(
            answer.header("content-type"),
            Some("application/json"),
            "{}",
            self.label
        );
        assert_eq!(
            answer.text(),
            r#"{"name":"café","q":"€ and ü","n":3}"#,
            "{}",
            self.label
        );
        // FastAPI's validation error, from the framework as under uvicorn.
        let bad = http::get(self.port, "/items/x?n=abc");
        bad.assert_status(422);
        assert!(bad.text().contains("int_parsing"), "{}: {}", self.label, bad.text());
        http::get(self.port, "/no/such/route").assert_status(404);
    }

    fn echo_scope(&self) {
        let answer = http::request(
            self.port,
            Request::get("/echo?a=1&b=%C3%A9")
                .header("X-Trace", "t-1")
                .header("X-Other", "o"),
        );
        answer.assert_status(200);
        let text = answer.text();
        for want in [
            r#""path":"/echo""#,
            r#""root_path":"""#,
            r#""raw_path":"/echo""#,
            r#""query":{"a":"1","b":"é"}"#,
            r#""method":"GET""#,
            r#""scheme":"http""#,
            r#""http_version":"1.1""#,
            r#""x-trace":"t-1""#,
            r#""x-other":"o""#,
            r#""client":["127.0.0.1","#,
        ] {
            assert!(
                text.contains(want),
                "{}: `{want}` missing from /echo: {text}",
                self.label
            );
        }
    }

    fn form(&self) {
        let answer = http::request(
            self.port,
            Request::post("/form", "name=Zo%C3%AB").header("Content-Type", "application/x-www-form-urlencoded"),
        );
        answer.assert_status(200);
        assert_eq!(answer.text(), "Hello, Zoë!\n", "{}", self.label);
        http::request(
            self.port,
            Request::post("/form", "").header("Content-Type", "application/x-www-form-urlencoded"),
        )
        .assert_status(422);
    }

    /// 20 MiB read chunk by chunk with `request.stream()`: right digest, many chunks, pyfcgi's peak memory flat.
    fn upload_streamed(&self) {
        let before = peak_rss(self.pid);
        let request = Request::new("POST", "/upload")
            .header("Content-Type", "application/octet-stream")
            .body(Body::Sized(
                UPLOAD_LEN,
                Box::new(PatternBody::new(UPLOAD_SEED, UPLOAD_LEN)),
            ));
        let started = Instant::now();
        let answer = http::request(self.port, request);
        answer.assert_status(200);
        let text = answer.text();
        assert!(
            text.contains(&format!(r#""size":{UPLOAD_LEN}"#)),
            "{}: {text}",
            self.label
        );
        assert!(
            text.contains(&format!(r#""sha256":"{}""#, upload_sha256())),
            "{}: {text}",
            self.label
        );
        let chunks: u64 = text
            .split(r#""chunks":"#)
            .nth(1)
            .and_then(|t| t.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse().ok())
            .expect("chunks in the answer");
        assert!(
            chunks >= 100,
            "{}: the body came in {chunks} chunks: {text}",
            self.label
        );
        let growth = peak_rss(self.pid).saturating_sub(before);
        eprintln!(
            "[measure] {}: 20 MiB upload in {:?}, {chunks} chunks, peak RSS grew {} KiB",
            self.label,
            started.elapsed(),
            growth / 1024
        );
        assert!(
            growth < 12 * MIB,
            "{}: pyfcgi's peak memory grew {} MiB during a 20 MiB upload",
            self.label,
            growth / MIB
        );
    }

    fn streaming_response(&self) {
        let mut answer = Request::get("/stream?n=5&delay=0.2")
            .send(self.port)
            .expect("send /stream");
        assert_eq!(answer.status, 200, "{}", self.label);
        let (arrivals, body) = answer.read_timed();
        let text = String::from_utf8_lossy(&body);
        let events: Vec<&str> = text.lines().collect();
        assert_eq!(events.len(), 5, "{}: {text:?}", self.label);
        let spread = arrivals.last().expect("body").saturating_sub(arrivals[0]);
        assert!(
            spread >= Duration::from_millis(500) && arrivals.len() >= 3,
            "{}: the chunks arrived together ({arrivals:?}): the response was buffered",
            self.label
        );
    }

    fn server_sent_events(&self) {
        let mut answer = Request::get("/sse?n=4&delay=0.25").send(self.port).expect("send /sse");
        assert_eq!(answer.status, 200, "{}", self.label);
        assert!(
            answer
                .header("content-type")
                .is_some_and(|t| t.starts_with("text/event-stream")),
            "{}: {:?}",
            self.label,
            answer.headers
        );
        let (arrivals, body) = answer.read_timed();
        let text = String::from_utf8_lossy(&body);
        assert_eq!(text.matches("data: tick").count(), 4, "{}: {text:?}", self.label);
        let spread = arrivals.last().expect("body").saturating_sub(arrivals[0]);
        assert!(
            spread >= Duration::from_millis(600) && arrivals.len() >= 3,
            "{}: the events arrived together ({arrivals:?})",
            self.label
        );
        wait_for_mark(self.marks, "sse-done", Duration::from_secs(5));
    }

    /// FileResponse: Starlette sees `http.response.pathsend` in the scope's extensions and pyfcgi sends the file.
    fn file_response(&self) {
        let want = fs::read(fastapi_root().join("static/site.css")).expect("site.css");
        let answer = http::get(self.port, "/file");
        answer.assert_status(200);
        assert_eq!(answer.body, want, "{}: /file differs from the file", self.label);
        assert_eq!(
            answer.header("content-length"),
            Some(want.len().to_string().as_str()),
            "{}",
            self.label
        );
        let head = http::request(self.port, Request::head("/file"));
        head.assert_status(200);
        assert!(head.body.is_empty(), "{}", self.label);
    }

    fn static_from_front_server(&self) {
        let answer = http::get(self.port, "/static/site.css");
        answer.assert_status(200);
    }

    /// The answer arrives before the 2 s background task ends; the task still runs to its end.
    fn background_task_does_not_delay(&self) {
        let started = Instant::now();
        let answer = http::get(self.port, "/background?delay=2");
        let took = started.elapsed();
        answer.assert_status(200);
        assert_eq!(answer.text(), "answered before the background task\n");
        assert!(
            took < Duration::from_millis(1500),
            "{}: the response waited for the background task ({took:?})",
            self.label
        );
        assert!(
            read_mark(self.marks, "background").is_empty(),
            "{}: ran too early",
            self.label
        );
        let done = wait_for_mark(self.marks, "background", Duration::from_secs(10));
        assert!(done.contains("background task done"), "{}: {done}", self.label);
    }

    fn errors(&self) {
        let answer = http::get(self.port, "/error");
        answer.assert_status(500);
        let text = answer.text();
        for secret in ["Traceback", "RuntimeError", "fails on purpose", "app.py"] {
            assert!(
                !text.contains(secret),
                "{}: the 500 shows `{secret}`:\n{text}",
                self.label
            );
        }
        wait_for_log("the /error traceback", self.log, |log| {
            log.contains("Traceback (most recent call last)")
                && log.contains("RuntimeError: this page fails on purpose")
        });
    }

    fn sync_endpoint(&self) {
        let answer = http::get(self.port, "/sync");
        answer.assert_status(200);
        assert_eq!(answer.text(), r#"{"sync":true}"#);
    }

    /// 100 requests that each await asyncio.sleep(0.5), all at once, in one pyfcgi process.
    fn concurrent_sleeps(&self) {
        let started = Instant::now();
        let handles: Vec<_> = (0..100)
            .map(|_| {
                let port = self.port;
                thread::spawn(move || http::get(port, "/sleep?seconds=0.5"))
            })
            .collect();
        let mut pids = std::collections::BTreeSet::new();
        for handle in handles {
            let answer = handle.join().expect("request thread");
            answer.assert_status(200);
            assert_eq!(answer.text(), r#"{"slept":0.5}"#);
            pids.insert(answer.status);
        }
        let took = started.elapsed();
        eprintln!("[measure] {}: 100 concurrent 0.5 s sleeps in {took:?}", self.label);
        assert!(
            took < Duration::from_secs(2),
            "{}: 100 concurrent 0.5 s sleeps took {took:?}: requests were not served concurrently",
            self.label
        );
    }

    /// The client leaves in the middle of an event stream: the app's `request.is_disconnected()` (a `receive()`
    /// answered with `http.disconnect`) sees it and stops.
    fn disconnect_mid_stream(&self) {
        let mut answer = Request::get("/sse?n=200&delay=0.05")
            .send(self.port)
            .expect("send /sse");
        assert_eq!(answer.status, 200);
        let mut buf = [0u8; 256];
        let n = answer.read(&mut buf).expect("first event");
        assert!(String::from_utf8_lossy(&buf[..n]).contains("tick 0"));
        drop(answer);
        let mark = wait_for_mark(self.marks, "sse-disconnected", Duration::from_secs(10));
        assert!(mark.contains("disconnected after"), "{}: {mark}", self.label);
        assert!(
            read_mark(self.marks, "sse-done").lines().count() == 1,
            "{}: the abandoned stream ran to its end",
            self.label
        );
    }
}

#[test]
fn fastapi_behind_nginx_one_process() {
    let scratch = Scratch::new("fastapi-marks");
    let mut pyfcgi = start(
        "pyfcgi-fastapi",
        "app:app",
        &fastapi_root(),
        scratch.path(),
        BindKind::Unix,
        &[],
    );
    let nginx = nginx_for(pyfcgi.upstream(), Some(fastapi_root().join("static")));
    let log = || pyfcgi.log();
    wait_for_log("the interface choice", &log, |l| {
        l.contains("serving the application as ASGI 3 because PYFCGI_INTERFACE is auto and its __call__ is a coroutine function")
    });
    FastApiSite {
        port: nginx.port(),
        label: "fastapi nginx",
        marks: scratch.path(),
        log: &log,
        pid: pyfcgi.pid(),
    }
    .run_all();
    // A graceful stop runs lifespan shutdown.
    assert!(read_mark(scratch.path(), "shutdown").is_empty());
    pyfcgi.process().stop(Duration::from_secs(20));
    let shutdown = read_mark(scratch.path(), "shutdown");
    assert_eq!(
        shutdown.lines().count(),
        1,
        "lifespan shutdown did not run on stop; log:\n{}",
        pyfcgi.log()
    );
    assert!(pyfcgi.log().contains("ASGI lifespan shutdown done"), "{}", pyfcgi.log());
}

#[test]
fn fastapi_behind_lighttpd_spawned_on_fd0() {
    let scratch = Scratch::new("fastapi-lighttpd");
    let log_file = scratch.join("pyfcgi.log");
    let marks = scratch.mkdir("marks");
    let spawn = Spawn::new(&venv().pyfcgi)
        .env("WSGI_HANDLER", "app:app")
        .env("PYFCGI_APP_ROOT", fastapi_root().to_str().expect("UTF-8 path"))
        .env("WSGI_LOG", log_file.to_str().expect("UTF-8 path"))
        .env("FASTAPI_EXAMPLE_MARKS", marks.to_str().expect("UTF-8 path"));
    let mut config = LighttpdConfig::spawn(spawn)
        .streaming()
        .static_dir(fastapi_root().join("static"));
    config
        .host_options
        .push("\"fix-root-scriptname\" => \"enable\"".to_owned());
    let lighttpd = Lighttpd::start(config);
    let port = lighttpd.port();
    let answer = http::get(port, "/");
    answer.assert_status(200);
    assert_eq!(answer.text(), "Hello from FastAPI on pyfcgi\n");
    let answer = http::get(port, "/items/caf%C3%A9?q=%E2%82%AC");
    answer.assert_status(200);
    assert_eq!(answer.text(), r#"{"name":"café","q":"€","n":1}"#);
    let mut stream = Request::get("/stream?n=4&delay=0.2").send(port).expect("send /stream");
    let (arrivals, body) = stream.read_timed();
    assert_eq!(String::from_utf8_lossy(&body).lines().count(), 4);
    assert!(
        arrivals.last().expect("body").saturating_sub(arrivals[0]) >= Duration::from_millis(400),
        "lighttpd: the stream was buffered: {arrivals:?}"
    );
    let text = fs::read_to_string(&log_file).unwrap_or_default();
    assert!(text.contains("serving the application as ASGI 3"), "{text}");
}

/// The raw ASGI app of the fixtures fails at every stage: each gets the answer the issue asks for.
#[test]
fn raw_asgi_errors_at_each_stage() {
    let scratch = Scratch::new("raw-marks");
    let pyfcgi = start(
        "pyfcgi-raw",
        "apps:raw_app",
        &fixtures_root(),
        scratch.path(),
        BindKind::Tcp,
        &[],
    );
    let nginx = nginx_for(pyfcgi.upstream(), None);
    let port = nginx.port();
    let log = || pyfcgi.log();
    http::get(port, "/ok").assert_status(200);
    for (path, log_says) in [
        (
            "/raise-before-start",
            "ValueError: raw app fails before the response starts",
        ),
        ("/no-response", "returned without starting a response"),
        ("/bad-status", "'status' must be an int"),
        ("/bad-header", "contains a control character"),
        ("/str-header", "header name must be bytes, not str"),
        ("/websocket-message", "pyfcgi never opens WebSockets"),
    ] {
        let answer = http::get(port, path);
        answer.assert_status(500);
        assert!(!answer.text().contains("Traceback"), "{path}: {}", answer.text());
        wait_for_log(log_says, &log, |l| l.contains(log_says));
    }
    // After the headers went out: the connection is cut without END_REQUEST (nginx then closes the client's
    // connection: a chunked answer lacks its last chunk; the support client's close-delimited one just ends).
    for (path, log_says) in [
        (
            "/raise-after-start",
            "ValueError: raw app fails in the middle of the body",
        ),
        ("/incomplete", "returned without completing the response"),
        ("/too-long", "Response content longer than Content-Length"),
    ] {
        let result = Request::get(path).send(port).and_then(|s| s.into_response());
        if let Ok(answer) = result {
            assert!(
                !answer.text().contains("12345"),
                "{path}: more than Content-Length was sent"
            );
        }
        wait_for_log(log_says, &log, |l| l.contains(log_says));
        let incomplete = format!("incomplete method=GET uri={path} ");
        wait_for_log(&incomplete, &log, |l| l.contains(&incomplete));
    }
    // A message after the last body message is refused with RuntimeError; the answer itself was complete.
    let answer = http::get(port, "/after-complete");
    answer.assert_status(200);
    assert_eq!(answer.text(), "complete\n");
    let mark = wait_for_mark(scratch.path(), "after-complete", Duration::from_secs(5));
    assert!(mark.contains("after response already completed"), "{mark}");
    // The process kept serving throughout.
    http::get(port, "/ok").assert_status(200);
}

/// Plain Starlette: routes, path parameters, lifespan state; http.disconnect when the client leaves while the
/// app waits in receive(); shutdown on stop.
#[test]
fn starlette_lifespan_and_disconnect() {
    let scratch = Scratch::new("starlette-marks");
    let mut pyfcgi = start(
        "pyfcgi-starlette",
        "apps:starlette_app",
        &fixtures_root(),
        scratch.path(),
        BindKind::Unix,
        &[],
    );
    let nginx = nginx_for(pyfcgi.upstream(), None);
    let port = nginx.port();
    let answer = http::get(port, "/");
    answer.assert_status(200);
    assert_eq!(answer.text(), "Hello from Starlette, db connected\n");
    let answer = http::get(port, "/users/J%C3%BCrgen?q=%C3%A9t%C3%A9");
    answer.assert_status(200);
    assert_eq!(answer.text(), r#"{"user":"Jürgen","q":"été"}"#);
    // The client goes away while the app waits for http.disconnect (a raw socket: the support client would wait
    // for the response head).
    let mut client = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to nginx");
    std::io::Write::write_all(
        &mut client,
        b"POST /wait-disconnect HTTP/1.1\r\nHost: localhost\r\nContent-Length: 9\r\n\r\nsome body",
    )
    .expect("send the request");
    wait_for_mark(scratch.path(), "disconnect-waiting", Duration::from_secs(5));
    let left = Instant::now();
    drop(client);
    wait_for_mark(scratch.path(), "disconnect-seen", Duration::from_secs(10));
    eprintln!(
        "[measure] starlette: http.disconnect seen {:?} after the client left",
        left.elapsed()
    );
    pyfcgi.process().stop(Duration::from_secs(20));
    assert_eq!(read_mark(scratch.path(), "starlette-startup").lines().count(), 1);
    assert_eq!(
        read_mark(scratch.path(), "starlette-shutdown").lines().count(),
        1,
        "no shutdown on stop; log:\n{}",
        pyfcgi.log()
    );
}

/// An app without lifespan support keeps working (uvicorn's `auto`); an app whose startup fails is logged with its
/// traceback and answered with safe 500s while the process keeps running.
#[test]
fn lifespan_unsupported_and_failed_startup() {
    let scratch = Scratch::new("lifespan-marks");
    let plain = start(
        "pyfcgi-nolifespan",
        "apps:no_lifespan_app",
        &fixtures_root(),
        scratch.path(),
        BindKind::Tcp,
        &[],
    );
    let nginx = nginx_for(plain.upstream(), None);
    let answer = http::get(nginx.port(), "/");
    answer.assert_status(200);
    assert_eq!(answer.text(), "works without lifespan, state {}\n");
    assert!(
        plain.log().contains("does not support the lifespan protocol"),
        "{}",
        plain.log()
    );

    let failing = start(
        "pyfcgi-failing",
        "apps:failing_startup_app",
        &fixtures_root(),
        scratch.path(),
        BindKind::Tcp,
        &[],
    );
    let log = failing.log();
    assert!(
        log.contains("ASGI lifespan startup failed") && log.contains("the database is unreachable"),
        "{log}"
    );
    assert!(
        log.contains("Traceback"),
        "the startup failure has no traceback:\n{log}"
    );
    let nginx = nginx_for(failing.upstream(), None);
    for _ in 0..3 {
        let answer = http::get(nginx.port(), "/");
        answer.assert_status(500);
        assert!(!answer.text().contains("database"), "{}", answer.text());
    }
}

/// `pyfcgi check` reports the interface it would choose.
#[test]
fn check_reports_the_interface() {
    for (handler, root, want) in [
        (
            "app:app",
            fastapi_root(),
            "Interface: ASGI 3 (PYFCGI_INTERFACE is auto and its __call__ is a coroutine function",
        ),
        (
            "apps:raw_app",
            fixtures_root(),
            "Interface: ASGI 3 (PYFCGI_INTERFACE is auto and it is a coroutine function",
        ),
        (
            "app:app",
            manifest_dir().join("examples/flask_app"),
            "Interface: WSGI (PYFCGI_INTERFACE is auto and",
        ),
    ] {
        let output = Command::new(&venv().pyfcgi)
            .args(["check", "--app", handler, "--app-root"])
            .arg(&root)
            .output()
            .expect("run pyfcgi check");
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "check {handler}:\n{text}");
        assert!(text.contains(want), "check {handler}: `{want}` missing:\n{text}");
    }
}
