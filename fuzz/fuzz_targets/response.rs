//! The response encoder driven by an arbitrary sequence of calls. Each 4-byte step of the input is an
//! operation (set_head, body, stderr, finish) and a size. Checked: no panic, and the output is whole records of
//! at most 65535 bytes ending with exactly one empty STDOUT and one END_REQUEST, with the STDOUT bytes being
//! the held header block followed by the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pyfcgi::protocol::record::{EndRequestBody, Header, ProtocolStatus, RecordType, HEADER_LEN, MAX_CONTENT_LEN};
use pyfcgi::protocol::ResponseEncoder;

/// Each operation's bytes are its own tag, so a reordering or a lost or repeated piece shows.
fn fill(len: usize, tag: u8) -> Vec<u8> {
    vec![tag; len]
}

fuzz_target!(|data: &[u8]| {
    let mut enc = ResponseEncoder::new(7);
    let mut out = Vec::new();
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let mut held: Option<Vec<u8>> = None;
    let mut done = false;
    // At most this many bytes per input, so the fuzzer keeps a useful speed.
    let mut budget = 200_000usize;
    for (n, step) in data.chunks_exact(4).take(16).enumerate() {
        // Sizes up to 3 * 65535 + a little, so every record-boundary case is reachable.
        let len = usize::from(u16::from_be_bytes([step[1], step[2]])) + 65_535 * usize::from(step[3] % 3);
        let len = len.min(budget);
        budget -= len;
        let tag = n as u8;
        match step[0] % 4 {
            0 => {
                if !enc.head_sent() {
                    held = Some(fill(len, tag));
                }
                enc.set_head(fill(len, tag));
            }
            1 => {
                let data = fill(len, tag);
                if !done && !data.is_empty() {
                    stdout.extend(held.take().unwrap_or_default());
                    stdout.extend_from_slice(&data);
                }
                enc.body(&mut out, &data);
            }
            2 => {
                let data = fill(len, tag);
                if !done {
                    stderr.extend_from_slice(&data);
                }
                enc.stderr(&mut out, &data);
            }
            _ => {
                if !done {
                    stdout.extend(held.take().unwrap_or_default());
                    done = true;
                }
                enc.finish(&mut out, u32::from(step[1]));
            }
        }
    }
    if !done {
        stdout.extend(held.take().unwrap_or_default());
    }
    enc.finish(&mut out, 0);

    let mut rest = &out[..];
    let mut records = Vec::new();
    while !rest.is_empty() {
        assert!(rest.len() >= HEADER_LEN);
        let header = Header::decode(rest[..HEADER_LEN].try_into().unwrap()).unwrap();
        assert!(usize::from(header.content_length) <= MAX_CONTENT_LEN);
        assert_eq!(header.request_id, 7);
        assert!(rest.len() >= HEADER_LEN + header.body_len());
        records.push((
            header.record_type,
            rest[HEADER_LEN..HEADER_LEN + usize::from(header.content_length)].to_vec(),
        ));
        rest = &rest[HEADER_LEN + header.body_len()..];
    }
    let n = records.len();
    assert!(n >= 2);
    assert_eq!(records[n - 2], (RecordType::Stdout, Vec::new()));
    assert_eq!(records[n - 1].0, RecordType::EndRequest);
    assert_eq!(
        EndRequestBody::decode(&records[n - 1].1).unwrap().protocol_status,
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
    let got: Vec<u8> = records
        .iter()
        .filter(|(t, _)| *t == RecordType::Stdout)
        .flat_map(|(_, c)| c.clone())
        .collect();
    assert!(got == stdout, "STDOUT bytes differ");
    let got: Vec<u8> = records
        .iter()
        .filter(|(t, _)| *t == RecordType::Stderr)
        .flat_map(|(_, c)| c.clone())
        .collect();
    assert!(got == stderr, "STDERR bytes differ");
});
