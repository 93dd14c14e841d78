//! Micro-benchmarks of the sans-IO FastCGI code: decoding a whole request with the connection state machine,
//! encoding a response, and parsing a request's PARAMS. No I/O and no Python; see `benches/wsgi.rs` for those.
//!
//! `cargo bench --bench protocol` (criterion; add `-- --quick` for a short run, or a filter such as `decode`).

mod common;

use std::hint::black_box;

use common::{encode_request, nginx_params, params_bytes, REQUEST_ID};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pyfcgi::protocol::nv;
use pyfcgi::protocol::{Event, Limits, ManagementValues, Params, Parser, ResponseEncoder};

const BODY_64K: usize = 64 * 1024;

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
            Some(Event::Rejected { reason, .. }) => panic!("the benchmark request was rejected: {reason}"),
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
        let input = encode_request(&nginx_params(), &vec![b'x'; body_len]);
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
    let raw = params_bytes(&nginx_params());
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
