//! Micro-benchmarks of the sans-IO FastCGI code: decoding a whole request with the connection state machine,
//! encoding a response, and parsing a request's PARAMS. No I/O and no Python; see `benches/wsgi.rs` for those.
//!
//! `cargo bench --bench protocol` (criterion; add `-- --quick` for a short run, or a filter such as `decode`).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pyfcgi::protocol::nv::{self, write_pair};
use pyfcgi::protocol::record::{self, BeginRequestBody, RecordType, Role, FLAG_KEEP_CONN};
use pyfcgi::protocol::{Event, Limits, ManagementValues, Params, Parser, ResponseEncoder};

const REQUEST_ID: u16 = 1;
const BODY_64K: usize = 64 * 1024;

/// The params nginx sends for `GET /hello?name=world` with the benchmark harness's configuration (Debian's
/// `fastcgi_params` with `SCRIPT_NAME ""` and `PATH_INFO $uri`) and a browser's request headers.
fn nginx_params() -> Vec<(&'static str, &'static str)> {
    vec![
        ("QUERY_STRING", "name=world"),
        ("REQUEST_METHOD", "GET"),
        ("CONTENT_TYPE", ""),
        ("CONTENT_LENGTH", ""),
        ("SCRIPT_NAME", ""),
        ("PATH_INFO", "/hello"),
        ("REQUEST_URI", "/hello?name=world"),
        ("DOCUMENT_URI", "/hello"),
        ("DOCUMENT_ROOT", "/usr/share/nginx/html"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("REQUEST_SCHEME", "http"),
        ("GATEWAY_INTERFACE", "CGI/1.1"),
        ("SERVER_SOFTWARE", "nginx/1.22.1"),
        ("REMOTE_ADDR", "127.0.0.1"),
        ("REMOTE_PORT", "52814"),
        ("SERVER_ADDR", "127.0.0.1"),
        ("SERVER_PORT", "8080"),
        ("SERVER_NAME", "localhost"),
        ("HTTP_HOST", "localhost:8080"),
        (
            "HTTP_USER_AGENT",
            "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
        ),
        (
            "HTTP_ACCEPT",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        ),
        ("HTTP_ACCEPT_LANGUAGE", "en-US,en;q=0.5"),
        ("HTTP_ACCEPT_ENCODING", "gzip, deflate, br"),
        ("HTTP_CONNECTION", "keep-alive"),
    ]
}

/// The PARAMS stream content (name-value pairs) of [`nginx_params`].
fn params_bytes() -> Vec<u8> {
    let mut raw = Vec::new();
    for (name, value) in nginx_params() {
        write_pair(&mut raw, name.as_bytes(), value.as_bytes());
    }
    raw
}

/// A whole keep-conn request as a web server sends it: BEGIN_REQUEST, the PARAMS stream and its end, the body as
/// STDIN records of at most 65535 bytes, and the end of STDIN.
fn encode_request(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let begin = BeginRequestBody {
        role: Role::Responder,
        flags: FLAG_KEEP_CONN,
    };
    record::write_record(&mut out, RecordType::BeginRequest, REQUEST_ID, &begin.encode());
    record::write_stream(&mut out, RecordType::Params, REQUEST_ID, &params_bytes());
    record::write_stream_end(&mut out, RecordType::Params, REQUEST_ID);
    record::write_stream(&mut out, RecordType::Stdin, REQUEST_ID, body);
    record::write_stream_end(&mut out, RecordType::Stdin, REQUEST_ID);
    out
}

/// Feeds one whole request to `parser` a record at a time, as the connection does, and ends the request the way
/// the server does after END_REQUEST, so the same parser serves the next iteration (a kept connection).
/// Returns the body bytes seen, so the work cannot be optimised away.
fn decode_request(parser: &mut Parser, mut input: &[u8]) -> usize {
    let mut body = 0;
    let mut ended = false;
    while !input.is_empty() {
        let parsed = parser.parse(input).expect("a well-formed request");
        assert!(parsed.consumed > 0, "the input holds whole records");
        match parsed.event {
            Some(Event::Request(head)) => {
                black_box(head);
            }
            Some(Event::Stdin(data)) => body += black_box(data).len(),
            Some(Event::StdinEnd) => ended = true,
            Some(Event::Abort) => panic!("no abort was sent"),
            None => {}
        }
        input = &input[parsed.consumed..];
    }
    assert!(
        ended && parser.finish_request(),
        "the request ended and the connection stays open"
    );
    body
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    for (name, body_len) in [("request_no_body", 0), ("request_64KiB_body", BODY_64K)] {
        let input = encode_request(&vec![b'x'; body_len]);
        let mut parser = Parser::new(Limits::default(), ManagementValues::default());
        assert_eq!(decode_request(&mut parser, &input), body_len);
        group.throughput(Throughput::Bytes(input.len() as u64));
        group.bench_function(name, |b| b.iter(|| decode_request(&mut parser, black_box(&input))));
    }
    group.finish();
}

/// The header block the hello-world app's response gets (what `wsgi::head` builds from its start_response).
const SMALL_HEAD: &[u8] = b"Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 14\r\n\r\n";

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    let big_head =
        format!("Status: 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {BODY_64K}\r\n\r\n");
    let cases = [
        ("response_14B_body", SMALL_HEAD.to_vec(), b"Hello, World!\n".to_vec()),
        ("response_64KiB_body", big_head.into_bytes(), vec![b'x'; BODY_64K]),
    ];
    // One output buffer for all iterations, as the exchange keeps one per request and writes it out in one go.
    let mut out = Vec::with_capacity(2 * BODY_64K);
    for (name, head, body) in cases {
        group.throughput(Throughput::Bytes(body.len() as u64));
        // Each response's header block is a fresh allocation (start_response builds it) that the encoder consumes
        // and frees; the clone stands in for it.
        group.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                let mut encoder = ResponseEncoder::new(REQUEST_ID);
                encoder.set_head(black_box(&head).clone());
                encoder.body(&mut out, black_box(&body));
                encoder.finish(&mut out, 0);
                black_box(out.len())
            });
        });
    }
    group.finish();
}

fn params(c: &mut Criterion) {
    let mut group = c.benchmark_group("params");
    let raw = params_bytes();
    let max_name_len = Limits::default().max_name_len;
    assert_eq!(
        Params::parse(raw.clone(), max_name_len).expect("valid params").len(),
        nginx_params().len()
    );
    group.throughput(Throughput::Bytes(raw.len() as u64));
    // Includes copying the raw bytes into a fresh buffer, which the parser does as PARAMS records arrive.
    group.bench_function("parse", |b| {
        b.iter(|| Params::parse(black_box(&raw).clone(), max_name_len).expect("valid params"));
    });
    group.bench_function("pair_iterator", |b| {
        b.iter(|| {
            nv::pairs(black_box(&raw))
                .map(|pair| pair.map(|(name, value)| name.len() + value.len()).expect("valid pair"))
                .sum::<usize>()
        });
    });
    group.finish();
}

criterion_group!(benches, decode, encode, params);
criterion_main!(benches);
