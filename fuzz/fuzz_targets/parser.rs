//! The FastCGI connection state machine fed arbitrary bytes. The first two input bytes choose how the rest is
//! cut into reads (0 means "all at once"); the rest is the byte stream from the web server. Checked: no panic,
//! `consumed` never exceeds the input and is 0 or a whole record, body events are never empty, the protocol
//! output is whole version-1 records of at most 65535 bytes of the types the parser may write, and the result
//! (events, output, error, leftover) is the same whole, in the chosen pieces and byte by byte.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pyfcgi::protocol::record::{EndRequestBody, Header, RecordType, HEADER_LEN, MAX_CONTENT_LEN};
use pyfcgi::protocol::{Event, Limits, ManagementValues, Parser, ProtocolError};

#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Request(u16, bool, Vec<(Vec<u8>, Vec<u8>)>),
    Stdin(Vec<u8>),
    StdinEnd,
    Abort,
    Rejected(u16),
}

#[derive(Debug, PartialEq, Eq)]
struct Trace {
    events: Vec<Seen>,
    output: Vec<u8>,
    error: Option<ProtocolError>,
    closed: bool,
    unconsumed: usize,
}

fn check_output(output: &[u8]) {
    let mut rest = output;
    while !rest.is_empty() {
        assert!(rest.len() >= HEADER_LEN, "partial header in the output");
        let header = Header::decode(rest[..HEADER_LEN].try_into().unwrap()).expect("output header");
        assert!(usize::from(header.content_length) <= MAX_CONTENT_LEN);
        assert!(
            rest.len() >= HEADER_LEN + header.body_len(),
            "partial record in the output"
        );
        let content = &rest[HEADER_LEN..HEADER_LEN + usize::from(header.content_length)];
        match header.record_type {
            RecordType::GetValuesResult | RecordType::UnknownType => assert_eq!(header.request_id, 0),
            RecordType::EndRequest => {
                assert_ne!(header.request_id, 0);
                EndRequestBody::decode(content).expect("END_REQUEST body");
            }
            // The parser's own 431 answer to oversized parameters.
            RecordType::Stdout => assert_ne!(header.request_id, 0),
            other => panic!("the parser wrote a {other:?} record"),
        }
        rest = &rest[HEADER_LEN + header.body_len()..];
    }
}

fn drive(input: &[u8], pieces: &[usize]) -> Trace {
    let mut parser = Parser::new(
        Limits {
            max_params_bytes: 4096,
            max_name_len: 64,
        },
        ManagementValues {
            max_conns: 10,
            max_reqs: 3,
            mpxs_conns: false,
        },
    );
    let mut trace = Trace {
        events: Vec::new(),
        output: Vec::new(),
        error: None,
        closed: false,
        unconsumed: 0,
    };
    let mut buffer = Vec::new();
    let mut fed = 0;
    let mut sizes = pieces.iter().cycle();
    'feed: loop {
        let n = (*sizes.next().unwrap()).max(1).min(input.len() - fed);
        buffer.extend_from_slice(&input[fed..fed + n]);
        fed += n;
        loop {
            let parsed = match parser.parse(&buffer) {
                Ok(parsed) => parsed,
                Err(err) => {
                    trace.error = Some(err);
                    break 'feed;
                }
            };
            assert!(parsed.consumed <= buffer.len(), "consumed more than the input");
            if parsed.consumed == 0 {
                assert!(parsed.event.is_none());
                break;
            }
            assert_eq!(
                Parser::next_record_len(&buffer),
                Some(parsed.consumed),
                "consumed a partial record"
            );
            let mut finish = false;
            match parsed.event {
                None => {}
                Some(Event::Request(head)) => trace.events.push(Seen::Request(
                    head.id,
                    head.keep_conn,
                    head.params.iter().map(|(n, v)| (n.to_vec(), v.to_vec())).collect(),
                )),
                Some(Event::Stdin(data)) => {
                    assert!(!data.is_empty(), "empty body event");
                    match trace.events.last_mut() {
                        Some(Seen::Stdin(acc)) => acc.extend_from_slice(data),
                        _ => trace.events.push(Seen::Stdin(data.to_vec())),
                    }
                }
                Some(Event::StdinEnd) => {
                    trace.events.push(Seen::StdinEnd);
                    finish = true;
                }
                Some(Event::Abort) => {
                    trace.events.push(Seen::Abort);
                    finish = true;
                }
                // Oversized parameters: the parser answers 431 and ends the request itself.
                Some(Event::Rejected { id, .. }) => trace.events.push(Seen::Rejected(id)),
            }
            buffer.drain(..parsed.consumed);
            trace.output.extend_from_slice(parser.output());
            parser.clear_output();
            if (finish && !parser.finish_request()) || parser.close_requested() {
                trace.closed = true;
                break 'feed;
            }
        }
        if fed == input.len() {
            break;
        }
    }
    trace.output.extend_from_slice(parser.output());
    trace.unconsumed = buffer.len() + (input.len() - fed);
    check_output(&trace.output);
    trace
}

fuzz_target!(|data: &[u8]| {
    let (a, b, stream) = match data {
        [a, b, rest @ ..] => (usize::from(*a), usize::from(*b), rest),
        _ => return,
    };
    let whole = drive(stream, &[usize::MAX]);
    let pieces = [if a == 0 { usize::MAX } else { a }, if b == 0 { usize::MAX } else { b }];
    assert_eq!(drive(stream, &pieces), whole, "fragmentation changed the result");
    if stream.len() <= 4096 {
        assert_eq!(drive(stream, &[1]), whole, "byte-by-byte input changed the result");
    }
});
