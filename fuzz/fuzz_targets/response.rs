//! The response encoder driven by an arbitrary sequence of calls. Each 4-byte step of the input is an
//! operation (set_head, body, stderr, finish) and a size. Checked: no panic, and the output is whole records of
//! at most 65535 bytes ending with exactly one empty STDOUT and one END_REQUEST, with the STDOUT bytes being
//! the held header block followed by the body.
//!
//! Speed: an input moves up to 200 KB, so the target keeps its buffers between runs and compares the output in
//! place; allocating and copying afresh each run made it 100 times slower under the sanitizer.
#![no_main]

use std::cell::RefCell;
use std::ops::Range;

use libfuzzer_sys::fuzz_target;
use pyfcgi::protocol::record::{EndRequestBody, Header, ProtocolStatus, RecordType, HEADER_LEN, MAX_CONTENT_LEN};
use pyfcgi::protocol::ResponseEncoder;

/// At most this many payload bytes per input, so the fuzzer keeps a useful speed.
const BUDGET: usize = 200_000;
const STEPS: usize = 16;

/// Each step's bytes are its own tag (the step's index), so a reordering or a lost or repeated piece shows.
/// Expected streams are kept as (tag, length) runs rather than bytes.
struct Buffers {
    filled: Vec<Vec<u8>>,
    out: Vec<u8>,
    records: Vec<(RecordType, Range<usize>)>,
}

thread_local! {
    static BUFFERS: RefCell<Buffers> = RefCell::new(Buffers {
        filled: (0..STEPS as u8).map(|tag| vec![tag; BUDGET]).collect(),
        out: Vec::with_capacity(4 * BUDGET),
        records: Vec::new(),
    });
}

fn push_run(runs: &mut Vec<(u8, usize)>, tag: u8, len: usize) {
    if len > 0 {
        runs.push((tag, len));
    }
}

/// Whether the contents of `kind`'s records, concatenated, are exactly the expected runs.
fn stream_is(
    filled: &[Vec<u8>],
    out: &[u8],
    records: &[(RecordType, Range<usize>)],
    kind: RecordType,
    runs: &[(u8, usize)],
) -> bool {
    let mut expected = runs.iter().copied();
    let mut current = expected.next();
    for (_, range) in records.iter().filter(|(t, _)| *t == kind) {
        let mut content = &out[range.clone()];
        while !content.is_empty() {
            let Some((tag, left)) = current.as_mut() else {
                return false;
            };
            let n = (*left).min(content.len());
            // A slice comparison (memcmp), not a byte loop: the comparison tracing costs a call per byte.
            if content[..n] != filled[usize::from(*tag)][..n] {
                return false;
            }
            content = &content[n..];
            *left -= n;
            if *left == 0 {
                current = expected.next();
            }
        }
    }
    current.is_none()
}

fuzz_target!(|data: &[u8]| {
    BUFFERS.with(|buffers| {
        let buffers = &mut *buffers.borrow_mut();
        let Buffers { filled, out, records } = buffers;
        out.clear();
        records.clear();
        let mut enc = ResponseEncoder::new(7);
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        let mut held: Option<(u8, usize)> = None;
        let mut done = false;
        let mut budget = BUDGET;
        for (n, step) in data.chunks_exact(4).take(STEPS).enumerate() {
            // Sizes up to 3 * 65535 + a little, so every record-boundary case is reachable.
            let len = usize::from(u16::from_be_bytes([step[1], step[2]])) + 65_535 * usize::from(step[3] % 3);
            let len = len.min(budget);
            budget -= len;
            let tag = n as u8;
            let bytes = &filled[n][..len];
            match step[0] % 4 {
                0 => {
                    if !enc.head_sent() {
                        held = Some((tag, len));
                    }
                    enc.set_head(bytes.to_vec());
                }
                1 => {
                    if !done && !bytes.is_empty() {
                        if let Some((t, l)) = held.take() {
                            push_run(&mut stdout, t, l);
                        }
                        push_run(&mut stdout, tag, len);
                    }
                    enc.body(out, bytes);
                }
                2 => {
                    if !done {
                        push_run(&mut stderr, tag, len);
                    }
                    enc.stderr(out, bytes);
                }
                _ => {
                    if !done {
                        if let Some((t, l)) = held.take() {
                            push_run(&mut stdout, t, l);
                        }
                        done = true;
                    }
                    enc.finish(out, u32::from(step[1]));
                }
            }
        }
        if !done {
            if let Some((t, l)) = held.take() {
                push_run(&mut stdout, t, l);
            }
        }
        enc.finish(out, 0);

        let mut at = 0;
        while at < out.len() {
            let rest = &out[at..];
            assert!(rest.len() >= HEADER_LEN);
            let header = Header::decode(rest[..HEADER_LEN].try_into().unwrap()).unwrap();
            assert!(usize::from(header.content_length) <= MAX_CONTENT_LEN);
            assert_eq!(header.request_id, 7);
            assert!(rest.len() >= HEADER_LEN + header.body_len());
            let start = at + HEADER_LEN;
            records.push((header.record_type, start..start + usize::from(header.content_length)));
            at += HEADER_LEN + header.body_len();
        }
        let n = records.len();
        assert!(n >= 2);
        assert!(records[n - 2].0 == RecordType::Stdout && records[n - 2].1.is_empty());
        assert_eq!(records[n - 1].0, RecordType::EndRequest);
        assert_eq!(
            EndRequestBody::decode(&out[records[n - 1].1.clone()])
                .unwrap()
                .protocol_status,
            ProtocolStatus::RequestComplete
        );
        assert_eq!(
            records
                .iter()
                .filter(|(t, c)| *t == RecordType::Stdout && c.is_empty())
                .count(),
            1
        );
        assert_eq!(records.iter().filter(|(t, _)| *t == RecordType::EndRequest).count(), 1);
        assert!(
            stream_is(filled, out, records, RecordType::Stdout, &stdout),
            "STDOUT bytes differ"
        );
        assert!(
            stream_is(filled, out, records, RecordType::Stderr, &stderr),
            "STDERR bytes differ"
        );
    });
});
