//! Micro-benchmarks of the WSGI bridge with the embedded interpreter: building the environ from nginx's params,
//! and a whole request through the server and the WSGI handler to the hello-world app (`bench/apps/hello.py`)
//! over an in-memory connection, so the figure is pyfcgi's and Python's per-request cost without sockets,
//! nginx or wrk.
//!
//! `cargo bench --bench wsgi` (criterion; add `-- --quick` for a short run, or a filter such as `environ`).
//! The interpreter is the one pyfcgi is built against (`PYO3_PYTHON`), started as the binary starts it.

mod common;

use std::hint::black_box;
use std::io::Read;
use std::path::PathBuf;
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use common::{encode_request, nginx_params, varied_params, Pairs, REQUEST_ID};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pyfcgi::config::{table, CliOverrides};
use pyfcgi::protocol::record::{EndRequestBody, Header, ProtocolStatus, RecordType, HEADER_LEN};
use pyfcgi::protocol::{Limits, Params};
use pyfcgi::python::StartOptions;
use pyfcgi::server::{serve_connection, Conn, Handler, ServerConfig, Shutdown};
use pyfcgi::transport::memory::MemoryStream;
use pyfcgi::wsgi::environ::{self, EnvironDefaults, PathRules};
use pyfcgi::wsgi::io::FileWrapper;
use pyfcgi::wsgi::{AppLoader, WsgiHandler};
use pyo3::prelude::*;

/// How many different requests the `*_5_changed` benchmarks rotate through (as from 16 client connections).
const VARIANTS: usize = 16;

/// What the hello-world app answers, as a CGI response.
const HELLO_RESPONSE: &[u8] =
    b"Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 14\r\n\r\nHello, World!\n";

/// Starts the interpreter once per process, as the binary does (no venv unless `VIRTUAL_ENV` names one).
fn start_python() {
    static STARTED: Once = Once::new();
    STARTED.call_once(|| {
        pyfcgi::logging::init("warn");
        let info = pyfcgi::python::start(&StartOptions::default()).expect("the embedded Python starts");
        eprintln!(
            "embedded Python {} ({})",
            info.version.split_whitespace().next().unwrap_or(""),
            info.executable
        );
    });
}

fn to_params(pairs: &Pairs) -> Params {
    Params::from_pairs(pairs.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())))
}

fn environ(c: &mut Criterion) {
    start_python();
    let params = to_params(&nginx_params());
    let varied: Vec<Params> = (0..VARIANTS).map(|i| to_params(&varied_params(i))).collect();
    let defaults = EnvironDefaults {
        multithread: false,
        multiprocess: true,
        rules: PathRules::default(),
    };
    let mut group = c.benchmark_group("environ");
    group.throughput(Throughput::Elements(1));
    Python::attach(|py| {
        let input = py
            .import("io")
            .and_then(|io| io.getattr("BytesIO")?.call0())
            .expect("io.BytesIO()");
        let errors = py
            .import("sys")
            .and_then(|sys| sys.getattr("stderr"))
            .expect("sys.stderr");
        let file_wrapper = py.get_type::<FileWrapper>();
        let environ = environ::build(py, &params, &defaults, &input, &errors, file_wrapper.as_any()).expect("environ");
        assert_eq!(
            environ
                .get_item("PATH_INFO")
                .ok()
                .flatten()
                .map(|v| v.to_string())
                .as_deref(),
            Some("/hello")
        );
        // The same request every time: the best case for anything cached between requests.
        group.bench_function(format!("build_nginx_{}_params", params.len()), |b| {
            b.iter(|| {
                environ::build(
                    py,
                    black_box(&params),
                    &defaults,
                    &input,
                    &errors,
                    file_wrapper.as_any(),
                )
                .expect("environ")
            });
        });
        // Each request differs from the previous one in the client port, URI, path and query, as in real traffic.
        group.bench_function(format!("build_nginx_{}_params_5_changed", params.len()), |b| {
            let mut next = 0;
            b.iter(|| {
                let params = &varied[next % VARIANTS];
                next += 1;
                environ::build(py, black_box(params), &defaults, &input, &errors, file_wrapper.as_any())
                    .expect("environ")
            });
        });
    });
    group.finish();
}

/// Serves `count` requests taken in turn from `requests` on one connection, inside the handler's worker context as
/// a pool worker does. Returns the time the connection took and the bytes written.
fn serve(
    handler: &WsgiHandler,
    requests: &Arc<Vec<Vec<u8>>>,
    count: usize,
    capture: bool,
) -> (Duration, usize, Vec<u8>) {
    // Like nginx on one kept connection: the next request is sent only once the response is complete, so the
    // in-memory stream produces it on the blocking read that follows the response.
    let mut next = requests.len() - 1;
    let mut remaining = count;
    let replayed = requests.clone();
    let (stream, web_server) = MemoryStream::replay(
        Box::new(move |buf| {
            if remaining == 0 {
                return false;
            }
            remaining -= 1;
            next = (next + 1) % replayed.len();
            buf.extend_from_slice(&replayed[next]);
            true
        }),
        capture,
    );
    let config = ServerConfig::default();
    let mut conn = Some(Conn::new(
        Box::new(stream),
        Limits::default(),
        config.management_values(),
    ));
    let shutdown = Shutdown::new();
    let mut elapsed = Duration::ZERO;
    handler.run_worker(&mut |suspend| {
        if let Some(conn) = conn.take() {
            let started = Instant::now();
            serve_connection(conn, handler, &shutdown, suspend);
            elapsed = started.elapsed();
        }
    });
    let written = usize::try_from(web_server.bytes_received()).expect("output fits in memory");
    let mut output = Vec::new();
    if capture {
        // The server's end is gone with the connection, so this reads to the end of what it wrote.
        let mut web_server = web_server;
        web_server.read_to_end(&mut output).expect("the captured output");
    }
    (elapsed, written, output)
}

/// Splits pyfcgi's output into responses: each one's STDOUT content, checking that every response ends with one
/// empty STDOUT and a successful END_REQUEST.
fn responses(mut output: &[u8]) -> Vec<Vec<u8>> {
    let mut done = Vec::new();
    let mut stdout = Vec::new();
    let mut stdout_ended = false;
    while !output.is_empty() {
        let header = Header::decode(output[..HEADER_LEN].try_into().expect("8 bytes")).expect("a record header");
        assert_eq!(header.request_id, REQUEST_ID);
        let content = &output[HEADER_LEN..HEADER_LEN + usize::from(header.content_length)];
        match header.record_type {
            RecordType::Stdout if content.is_empty() => stdout_ended = true,
            RecordType::Stdout => stdout.extend_from_slice(content),
            RecordType::EndRequest => {
                let end = EndRequestBody::decode(content).expect("an END_REQUEST body");
                assert_eq!(
                    (end.app_status, end.protocol_status),
                    (0, ProtocolStatus::RequestComplete)
                );
                assert!(stdout_ended, "STDOUT was closed before END_REQUEST");
                done.push(std::mem::take(&mut stdout));
                stdout_ended = false;
            }
            other => panic!("unexpected {other:?} record: {}", String::from_utf8_lossy(content)),
        }
        output = &output[HEADER_LEN + header.body_len()..];
    }
    assert!(stdout.is_empty(), "output after the last END_REQUEST");
    done
}

fn hello_handler() -> WsgiHandler {
    let app_root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("bench/apps");
    // The benchmark harness's command line: `--app hello:app --app-root bench/apps --no-access-log`.
    let loader = AppLoader::new(
        CliOverrides::default()
            .with(&table::WSGI_HANDLER, "hello:app")
            .with(&table::APP_ROOT, app_root.display().to_string())
            .with(&table::ACCESS_LOG, "false"),
        false,
    );
    let handler = WsgiHandler::new(loader).expect("the WSGI handler");
    // Loaded before the first request, as the binary does on Unix.
    Python::attach(|py| {
        if let Err(failure) = handler.loader().get(py, None) {
            panic!("{}: {}", failure.context, failure.detail);
        }
    });
    handler
}

/// Serves a few requests outside the timing and checks that each got the app's 200 and body, not an error page,
/// so the benchmark cannot silently measure an error path. Returns the bytes one response takes, which every
/// timed run must then match.
fn verified_response_len(handler: &WsgiHandler, requests: &Arc<Vec<Vec<u8>>>) -> usize {
    let checked = requests.len() + 1;
    let (_, written, output) = serve(handler, requests, checked, true);
    assert_eq!(written, output.len());
    let bodies = responses(&output);
    assert_eq!(bodies.len(), checked, "one response per request");
    for body in &bodies {
        assert_eq!(String::from_utf8_lossy(body), String::from_utf8_lossy(HELLO_RESPONSE));
    }
    written / checked
}

fn request(c: &mut Criterion) {
    start_python();
    let handler = hello_handler();
    let cases = [
        // The same request every time, as wrk sends through one nginx connection.
        ("hello_app", vec![encode_request(&nginx_params(), b"")]),
        // Requests that differ in client port, URI, path and query, as in real traffic.
        (
            "hello_app_5_changed",
            (0..VARIANTS).map(|i| encode_request(&varied_params(i), b"")).collect(),
        ),
    ];
    let mut group = c.benchmark_group("request");
    group.throughput(Throughput::Elements(1));
    for (name, requests) in cases {
        let requests = Arc::new(requests);
        let per_request = verified_response_len(&handler, &requests);
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let count = usize::try_from(iters).expect("iteration count fits usize");
                let (elapsed, written, _) = serve(&handler, &requests, count, false);
                assert_eq!(written, per_request * count, "every response is the verified one");
                elapsed
            });
        });
    }
    group.finish();
}

criterion_group!(benches, environ, request);
criterion_main!(benches);
