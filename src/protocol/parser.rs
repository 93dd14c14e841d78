//! The per-connection FastCGI state machine, sans-IO: the caller hands it the bytes it has read, it consumes at most
//! one record per call and returns what happened (a request's head, a piece of its body, the end of the body, an
//! abort). Replies the protocol itself requires (GET_VALUES_RESULT, UNKNOWN_TYPE, END_REQUEST with CANT_MPX_CONN or
//! UNKNOWN_ROLE) are queued in an output buffer the caller writes out, and so is the whole answer to a request whose
//! parameters exceed the limits: records are framed, so such a request is skipped to its end and answered 431
//! (Request Header Fields Too Large) without losing the connection ([`Event::Rejected`] says so once). Every other
//! malformed input is a [`ProtocolError`]; after an error the connection must be closed.

use super::nv::{self, Params};
use super::record::{
    self, BeginRequestBody, Header, ProtocolStatus, RecordType, Role, HEADER_LEN, MANAGEMENT_REQUEST_ID,
};
use super::ProtocolError;

/// Input limits of one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest total size of a request's PARAMS stream.
    pub max_params_bytes: usize,
    /// Largest single parameter name.
    pub max_name_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_params_bytes: 1024 * 1024,
            max_name_len: 8 * 1024,
        }
    }
}

/// What GET_VALUES is answered with. These must be the server's real limits: web servers size pools from them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ManagementValues {
    pub max_conns: u32,
    pub max_reqs: u32,
    /// Always false: a connection carries one request at a time.
    pub mpxs_conns: bool,
}

impl Default for ManagementValues {
    fn default() -> Self {
        Self {
            max_conns: 1,
            max_reqs: 1,
            mpxs_conns: false,
        }
    }
}

/// A request whose BEGIN_REQUEST and complete PARAMS stream have arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    pub id: u16,
    pub keep_conn: bool,
    pub params: Params,
}

/// What a record meant for the application.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A request is ready to run; its body follows as [`Event::Stdin`] events.
    Request(RequestHead),
    /// The next piece of the active request's body (never empty).
    Stdin(&'a [u8]),
    /// The active request's body is complete.
    StdinEnd,
    /// The web server aborted the active request.
    Abort,
    /// The active request's parameters exceed the limits (`reason` says which). The parser skips the rest of
    /// the request and answers it 431 itself once its body has ended; the application never sees it.
    Rejected { id: u16, reason: ProtocolError },
}

/// The answer to a request whose parameters exceed the limits. Sent only after its body has ended (nginx keeps
/// sending a body until the answer begins), so the connection stays in step and can be kept.
const TOO_LARGE_BODY: &[u8] = b"Request header fields too large\n";

/// Result of one [`Parser::parse`] call.
#[derive(Debug, PartialEq, Eq)]
pub struct Parsed<'a> {
    /// Bytes of the input that were used. Zero means a whole record is not there yet.
    pub consumed: usize,
    pub event: Option<Event<'a>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// No request on the connection.
    Idle,
    /// BEGIN_REQUEST seen, collecting PARAMS.
    Params { id: u16, keep_conn: bool, raw: Vec<u8> },
    /// The request was handed out; its body is arriving.
    Stdin { id: u16, keep_conn: bool },
    /// The body is complete; the application is producing the response.
    Responding { id: u16, keep_conn: bool },
    /// The parameters exceeded the limits: the rest of the request (PARAMS until `params_done`, then STDIN) is
    /// skipped and answered 431 at the end of its body.
    Rejected {
        id: u16,
        keep_conn: bool,
        params_done: bool,
    },
}

/// The connection state machine. See the module documentation.
#[derive(Debug)]
pub struct Parser {
    limits: Limits,
    values: ManagementValues,
    state: State,
    output: Vec<u8>,
    close_requested: bool,
}

impl Parser {
    pub fn new(limits: Limits, values: ManagementValues) -> Self {
        Self {
            limits,
            values,
            state: State::Idle,
            output: Vec::new(),
            close_requested: false,
        }
    }

    /// How many bytes the next record needs in total, if `input` holds at least its header; used to size buffers.
    pub fn next_record_len(input: &[u8]) -> Option<usize> {
        let header: &[u8; HEADER_LEN] = input.get(..HEADER_LEN)?.try_into().ok()?;
        Header::decode(header).ok().map(|h| HEADER_LEN + h.body_len())
    }

    /// Consumes at most one whole record from the front of `input`.
    ///
    /// # Errors
    /// Any [`ProtocolError`]: the connection is unusable afterwards and must be closed.
    pub fn parse<'a>(&mut self, input: &'a [u8]) -> Result<Parsed<'a>, ProtocolError> {
        let Some(header_bytes) = input.get(..HEADER_LEN) else {
            return Ok(Parsed {
                consumed: 0,
                event: None,
            });
        };
        let header = Header::decode(header_bytes.try_into().map_err(|_| ProtocolError::Truncated)?)?;
        let total = HEADER_LEN + header.body_len();
        if input.len() < total {
            return Ok(Parsed {
                consumed: 0,
                event: None,
            });
        }
        let content = &input[HEADER_LEN..HEADER_LEN + usize::from(header.content_length)];
        let event = self.on_record(&header, content)?;
        Ok(Parsed { consumed: total, event })
    }

    fn on_record<'a>(&mut self, header: &Header, content: &'a [u8]) -> Result<Option<Event<'a>>, ProtocolError> {
        let id = header.request_id;
        if id == MANAGEMENT_REQUEST_ID {
            self.on_management(header.record_type, content)?;
            return Ok(None);
        }
        match header.record_type {
            RecordType::BeginRequest => self.on_begin(id, content),
            RecordType::Params => self.on_params(id, content),
            RecordType::Stdin => self.on_stdin(id, content),
            RecordType::AbortRequest => Ok(self.on_abort(id)),
            // FCGI_DATA belongs to the Filter role, which is refused at BEGIN_REQUEST; any that still arrive are
            // skipped, like records for request ids that are not active.
            RecordType::Data => Ok(None),
            other => Err(ProtocolError::UnexpectedRecord {
                record_type: other.as_u8(),
                request_id: id,
            }),
        }
    }

    fn on_management(&mut self, record_type: RecordType, content: &[u8]) -> Result<(), ProtocolError> {
        if record_type != RecordType::GetValues {
            record::write_unknown_type(&mut self.output, record_type.as_u8());
            return Ok(());
        }
        let mut reply = Vec::new();
        for pair in nv::pairs(content) {
            let (name, _) = pair?;
            let value = match name {
                b"FCGI_MAX_CONNS" => self.values.max_conns.to_string(),
                b"FCGI_MAX_REQS" => self.values.max_reqs.to_string(),
                b"FCGI_MPXS_CONNS" => u8::from(self.values.mpxs_conns).to_string(),
                // The spec says to leave out names the application does not know.
                _ => continue,
            };
            nv::write_pair(&mut reply, name, value.as_bytes());
        }
        if reply.len() > record::MAX_CONTENT_LEN {
            return Err(ProtocolError::MalformedNameValue(
                "GET_VALUES asks for more than one record can answer",
            ));
        }
        record::write_record(
            &mut self.output,
            RecordType::GetValuesResult,
            MANAGEMENT_REQUEST_ID,
            &reply,
        );
        Ok(())
    }

    fn active_id(&self) -> Option<u16> {
        match &self.state {
            State::Idle => None,
            State::Params { id, .. }
            | State::Stdin { id, .. }
            | State::Responding { id, .. }
            | State::Rejected { id, .. } => Some(*id),
        }
    }

    fn on_begin<'a>(&mut self, id: u16, content: &[u8]) -> Result<Option<Event<'a>>, ProtocolError> {
        let body = BeginRequestBody::decode(content)?;
        if let Some(active) = self.active_id() {
            if active == id {
                return Err(ProtocolError::DuplicateRequestId(id));
            }
            record::write_end_request(&mut self.output, id, 0, ProtocolStatus::CantMpxConn);
            return Ok(None);
        }
        if body.role != Role::Responder {
            record::write_end_request(&mut self.output, id, 0, ProtocolStatus::UnknownRole);
            self.close_requested |= !body.keep_conn();
            return Ok(None);
        }
        self.state = State::Params {
            id,
            keep_conn: body.keep_conn(),
            raw: Vec::new(),
        };
        Ok(None)
    }

    fn on_params<'a>(&mut self, id: u16, content: &[u8]) -> Result<Option<Event<'a>>, ProtocolError> {
        if let State::Rejected {
            id: active,
            params_done,
            ..
        } = &mut self.state
        {
            if *active == id && !*params_done && content.is_empty() {
                *params_done = true;
            }
            return Ok(None);
        }
        let State::Params {
            id: active,
            keep_conn,
            raw,
        } = &mut self.state
        else {
            return self.stray(RecordType::Params, id);
        };
        if *active != id {
            return Ok(None);
        }
        if !content.is_empty() {
            if raw.len() + content.len() > self.limits.max_params_bytes {
                let keep_conn = *keep_conn;
                return Ok(Some(self.reject(
                    id,
                    keep_conn,
                    false,
                    ProtocolError::ParamsTooLarge {
                        limit: self.limits.max_params_bytes,
                    },
                )));
            }
            raw.extend_from_slice(content);
            return Ok(None);
        }
        let (keep_conn, raw) = (*keep_conn, std::mem::take(raw));
        let params = match Params::parse(raw, self.limits.max_name_len) {
            Ok(params) => params,
            Err(reason @ ProtocolError::NameTooLong { .. }) => {
                return Ok(Some(self.reject(id, keep_conn, true, reason)))
            }
            Err(other) => return Err(other),
        };
        self.state = State::Stdin { id, keep_conn };
        Ok(Some(Event::Request(RequestHead { id, keep_conn, params })))
    }

    fn reject<'a>(&mut self, id: u16, keep_conn: bool, params_done: bool, reason: ProtocolError) -> Event<'a> {
        self.state = State::Rejected {
            id,
            keep_conn,
            params_done,
        };
        Event::Rejected { id, reason }
    }

    /// Ends a rejected request: the 431 answer, the end of STDOUT and END_REQUEST.
    fn answer_rejected(&mut self, id: u16, keep_conn: bool) {
        let head = format!(
            "Status: 431 Request Header Fields Too Large\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
            TOO_LARGE_BODY.len()
        );
        let mut stdout = head.into_bytes();
        stdout.extend_from_slice(TOO_LARGE_BODY);
        record::write_record(&mut self.output, RecordType::Stdout, id, &stdout);
        record::write_record(&mut self.output, RecordType::Stdout, id, &[]);
        record::write_end_request(&mut self.output, id, 0, ProtocolStatus::RequestComplete);
        self.close_requested |= !keep_conn;
        self.state = State::Idle;
    }

    fn on_stdin<'a>(&mut self, id: u16, content: &'a [u8]) -> Result<Option<Event<'a>>, ProtocolError> {
        match self.state {
            State::Stdin { id: active, keep_conn } if active == id => {
                if content.is_empty() {
                    self.state = State::Responding { id, keep_conn };
                    Ok(Some(Event::StdinEnd))
                } else {
                    Ok(Some(Event::Stdin(content)))
                }
            }
            // A repeated end of the body carries nothing; some clients (fastcgi-client 0.12 for an empty body)
            // send it twice. Body data after the end is still refused.
            State::Responding { id: active, .. } if active == id && content.is_empty() => Ok(None),
            State::Responding { id: active, .. } if active == id => Err(ProtocolError::UnexpectedRecord {
                record_type: RecordType::Stdin.as_u8(),
                request_id: id,
            }),
            State::Params { id: active, .. }
            | State::Rejected {
                id: active,
                params_done: false,
                ..
            } if active == id => Err(ProtocolError::UnexpectedRecord {
                record_type: RecordType::Stdin.as_u8(),
                request_id: id,
            }),
            State::Rejected {
                id: active, keep_conn, ..
            } if active == id => {
                if content.is_empty() {
                    self.answer_rejected(id, keep_conn);
                }
                Ok(None)
            }
            _ => self.stray(RecordType::Stdin, id),
        }
    }

    /// A record for a request id that is not active: the spec says to ignore it (it may belong to a request we
    /// refused with CANT_MPX_CONN or UNKNOWN_ROLE).
    fn stray<'a>(&self, _record_type: RecordType, _id: u16) -> Result<Option<Event<'a>>, ProtocolError> {
        Ok(None)
    }

    fn on_abort<'a>(&mut self, id: u16) -> Option<Event<'a>> {
        match &self.state {
            State::Params {
                id: active, keep_conn, ..
            }
            | State::Rejected {
                id: active, keep_conn, ..
            } if *active == id => {
                // Nothing was handed to the application yet, so the parser finishes the request itself.
                let keep_conn = *keep_conn;
                record::write_end_request(&mut self.output, id, 0, ProtocolStatus::RequestComplete);
                self.close_requested |= !keep_conn;
                self.state = State::Idle;
                None
            }
            State::Stdin { id: active, .. } | State::Responding { id: active, .. } if *active == id => {
                Some(Event::Abort)
            }
            _ => None,
        }
    }

    /// Bytes the protocol requires to be written to the peer, in order.
    pub fn output(&self) -> &[u8] {
        &self.output
    }

    /// Marks [`Parser::output`] as written.
    pub fn clear_output(&mut self) {
        self.output.clear();
    }

    /// Moves the pending protocol output to the end of `out` (to send it together with response data).
    pub fn drain_output_into(&mut self, out: &mut Vec<u8>) {
        out.append(&mut self.output);
    }

    /// True once the connection should be closed after the output is written (a refused request without
    /// FCGI_KEEP_CONN, or one aborted before it started).
    pub fn close_requested(&self) -> bool {
        self.close_requested && self.active_id().is_none()
    }

    /// Whether the active request's body is still arriving (its STDIN stream has not ended).
    pub fn body_pending(&self) -> bool {
        matches!(self.state, State::Stdin { .. })
    }

    /// Whether a request is between BEGIN_REQUEST and [`Parser::finish_request`].
    pub fn request_active(&self) -> bool {
        self.active_id().is_some()
    }

    /// Ends the active request after the caller wrote its END_REQUEST. Returns whether the connection stays open.
    /// Any unread body must have been drained first, or the next record would be misread.
    pub fn finish_request(&mut self) -> bool {
        let keep = match self.state {
            State::Idle => !self.close_requested,
            State::Params { keep_conn, .. }
            | State::Stdin { keep_conn, .. }
            | State::Responding { keep_conn, .. }
            | State::Rejected { keep_conn, .. } => keep_conn,
        };
        self.state = State::Idle;
        keep && !self.close_requested
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::record::{write_record, EndRequestBody, FLAG_KEEP_CONN};

    fn begin(out: &mut Vec<u8>, id: u16, role: Role, keep: bool) {
        let body = BeginRequestBody {
            role,
            flags: if keep { FLAG_KEEP_CONN } else { 0 },
        };
        write_record(out, RecordType::BeginRequest, id, &body.encode());
    }

    fn params(out: &mut Vec<u8>, id: u16, pairs: &[(&str, &str)]) {
        let mut content = Vec::new();
        for (n, v) in pairs {
            nv::write_pair(&mut content, n.as_bytes(), v.as_bytes());
        }
        record::write_stream(out, RecordType::Params, id, &content);
        record::write_stream_end(out, RecordType::Params, id);
    }

    fn stdin(out: &mut Vec<u8>, id: u16, data: &[u8]) {
        record::write_stream(out, RecordType::Stdin, id, data);
        record::write_stream_end(out, RecordType::Stdin, id);
    }

    fn full_request(id: u16, keep: bool, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        begin(&mut out, id, Role::Responder, keep);
        params(&mut out, id, &[("REQUEST_METHOD", "POST"), ("SCRIPT_NAME", "/x")]);
        stdin(&mut out, id, body);
        out
    }

    /// An owned copy of an event, so tests can collect them across buffer changes.
    #[derive(Debug, PartialEq, Eq)]
    enum Owned {
        Request(u16, bool, Vec<(Vec<u8>, Vec<u8>)>),
        Stdin(Vec<u8>),
        StdinEnd,
        Abort,
        Rejected(u16, ProtocolError),
    }

    fn own(event: Event<'_>) -> Owned {
        match event {
            Event::Request(head) => Owned::Request(
                head.id,
                head.keep_conn,
                head.params.iter().map(|(n, v)| (n.to_vec(), v.to_vec())).collect(),
            ),
            Event::Stdin(data) => Owned::Stdin(data.to_vec()),
            Event::StdinEnd => Owned::StdinEnd,
            Event::Abort => Owned::Abort,
            Event::Rejected { id, reason } => Owned::Rejected(id, reason),
        }
    }

    /// Feeds `input` in pieces of the given sizes, as a socket would deliver it, and collects every event.
    fn run(parser: &mut Parser, input: &[u8], piece: usize) -> Result<Vec<Owned>, ProtocolError> {
        let mut buffer = Vec::new();
        let mut events = Vec::new();
        for chunk in input.chunks(piece.max(1)) {
            buffer.extend_from_slice(chunk);
            loop {
                let parsed = parser.parse(&buffer)?;
                if parsed.consumed == 0 {
                    break;
                }
                if let Some(event) = parsed.event {
                    events.push(own(event));
                }
                buffer.drain(..parsed.consumed);
            }
        }
        Ok(events)
    }

    fn merged_stdin(events: &[Owned]) -> Vec<u8> {
        events
            .iter()
            .filter_map(|e| match e {
                Owned::Stdin(d) => Some(d.clone()),
                _ => None,
            })
            .flatten()
            .collect()
    }

    fn parser() -> Parser {
        Parser::new(
            Limits::default(),
            ManagementValues {
                max_conns: 8,
                max_reqs: 4,
                mpxs_conns: false,
            },
        )
    }

    #[test]
    fn a_request_yields_head_body_and_end() {
        let mut p = parser();
        let events = run(&mut p, &full_request(1, true, b"hello"), usize::MAX).unwrap();
        assert_eq!(
            events,
            vec![
                Owned::Request(
                    1,
                    true,
                    vec![
                        (b"REQUEST_METHOD".to_vec(), b"POST".to_vec()),
                        (b"SCRIPT_NAME".to_vec(), b"/x".to_vec())
                    ]
                ),
                Owned::Stdin(b"hello".to_vec()),
                Owned::StdinEnd,
            ]
        );
        assert!(p.request_active());
        assert!(!p.body_pending());
        assert!(p.finish_request());
        assert!(!p.request_active());
        assert!(p.output().is_empty());
    }

    #[test]
    fn a_record_split_at_every_byte_position_parses_the_same() {
        let input = full_request(3, false, &[7u8; 300]);
        let whole = run(&mut parser(), &input, usize::MAX).unwrap();
        for split in 1..input.len() {
            let mut p = parser();
            let mut buffer = input[..split].to_vec();
            let mut events = Vec::new();
            for rest in [&input[split..], &[][..]] {
                loop {
                    let parsed = p.parse(&buffer).unwrap();
                    if parsed.consumed == 0 {
                        break;
                    }
                    if let Some(e) = parsed.event {
                        events.push(own(e));
                    }
                    buffer.drain(..parsed.consumed);
                }
                buffer.extend_from_slice(rest);
            }
            assert_eq!(events, whole, "split at {split}");
        }
        for piece in [1, 2, 3, 7, 8, 9, 64] {
            assert_eq!(run(&mut parser(), &input, piece).unwrap(), whole, "pieces of {piece}");
        }
    }

    #[test]
    fn body_is_streamed_record_by_record() {
        let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let events = run(&mut parser(), &full_request(1, true, &body), 4096).unwrap();
        let stdin_events = events.iter().filter(|e| matches!(e, Owned::Stdin(_))).count();
        assert_eq!(stdin_events, 4, "200000 bytes need four records of at most 65535");
        assert_eq!(merged_stdin(&events), body);
    }

    #[test]
    fn sixty_five_k_boundaries() {
        for len in [65535usize, 65536] {
            let body = vec![1u8; len];
            let events = run(&mut parser(), &full_request(1, true, &body), usize::MAX).unwrap();
            assert_eq!(merged_stdin(&events).len(), len);
        }
        // A PARAMS value of 65536 bytes spans two PARAMS records.
        let value = "v".repeat(65536);
        let mut input = Vec::new();
        begin(&mut input, 1, Role::Responder, true);
        params(&mut input, 1, &[("BIG", &value)]);
        let events = run(&mut parser(), &input, 1000).unwrap();
        match &events[0] {
            Owned::Request(_, _, pairs) => assert_eq!(pairs[0].1.len(), 65536),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn padding_is_skipped() {
        let mut input = Vec::new();
        begin(&mut input, 1, Role::Responder, true);
        params(&mut input, 1, &[]);
        // Hand-built STDIN with content 3 and padding 5 (and one with padding 255).
        input.extend_from_slice(&Header::new(RecordType::Stdin, 1, 3, 5).encode());
        input.extend_from_slice(b"abc\0\0\0\0\0");
        input.extend_from_slice(&Header::new(RecordType::Stdin, 1, 1, 255).encode());
        input.push(b'd');
        input.extend_from_slice(&[0xEE; 255]);
        record::write_stream_end(&mut input, RecordType::Stdin, 1);
        let events = run(&mut parser(), &input, 5).unwrap();
        assert_eq!(merged_stdin(&events), b"abcd");
        assert_eq!(events.last(), Some(&Owned::StdinEnd));
    }

    #[test]
    fn get_values_is_answered_truthfully_between_and_inside_requests() {
        let mut query = Vec::new();
        for name in [
            "FCGI_MAX_CONNS",
            "FCGI_MAX_REQS",
            "FCGI_MPXS_CONNS",
            "FCGI_UNKNOWN_NAME",
        ] {
            nv::write_pair(&mut query, name.as_bytes(), b"");
        }
        let mut input = Vec::new();
        write_record(&mut input, RecordType::GetValues, 0, &query);
        begin(&mut input, 1, Role::Responder, true);
        write_record(&mut input, RecordType::GetValues, 0, &query);
        params(&mut input, 1, &[("A", "b")]);
        write_record(&mut input, RecordType::GetValues, 0, &query);
        stdin(&mut input, 1, b"xyz");
        let mut p = parser();
        let events = run(&mut p, &input, 3).unwrap();
        assert_eq!(merged_stdin(&events), b"xyz");

        let mut expected_reply = Vec::new();
        nv::write_pair(&mut expected_reply, b"FCGI_MAX_CONNS", b"8");
        nv::write_pair(&mut expected_reply, b"FCGI_MAX_REQS", b"4");
        nv::write_pair(&mut expected_reply, b"FCGI_MPXS_CONNS", b"0");
        let mut expected = Vec::new();
        for _ in 0..3 {
            write_record(&mut expected, RecordType::GetValuesResult, 0, &expected_reply);
        }
        assert_eq!(p.output(), &expected[..]);
        p.clear_output();
        assert!(p.output().is_empty());
    }

    #[test]
    fn unknown_management_record_gets_unknown_type() {
        let mut input = Vec::new();
        write_record(&mut input, RecordType::Other(42), 0, b"whatever");
        write_record(&mut input, RecordType::Stdin, 0, b"");
        let mut p = parser();
        run(&mut p, &input, usize::MAX).unwrap();
        let mut expected = Vec::new();
        record::write_unknown_type(&mut expected, 42);
        record::write_unknown_type(&mut expected, 5);
        assert_eq!(p.output(), &expected[..]);
    }

    #[test]
    fn other_roles_get_unknown_role_and_no_event() {
        for role in [Role::Authorizer, Role::Filter, Role::Other(77)] {
            for keep in [true, false] {
                let mut input = Vec::new();
                begin(&mut input, 9, role, keep);
                // The server may still send the refused request's records; they are ignored.
                params(&mut input, 9, &[("A", "b")]);
                stdin(&mut input, 9, b"ignored");
                let mut p = parser();
                let events = run(&mut p, &input, usize::MAX).unwrap();
                assert!(events.is_empty());
                let end = EndRequestBody::decode(&p.output()[8..16]).unwrap();
                assert_eq!(end.protocol_status, ProtocolStatus::UnknownRole);
                assert_eq!(p.output()[3], 9);
                assert_eq!(p.close_requested(), !keep);
            }
        }
    }

    #[test]
    fn second_begin_while_active_gets_cant_mpx_conn() {
        let mut input = Vec::new();
        begin(&mut input, 1, Role::Responder, true);
        params(&mut input, 1, &[("A", "1")]);
        begin(&mut input, 2, Role::Responder, true);
        params(&mut input, 2, &[("B", "2")]);
        stdin(&mut input, 2, b"other request body");
        stdin(&mut input, 1, b"mine");
        let mut p = parser();
        let events = run(&mut p, &input, 11).unwrap();
        assert_eq!(events.len(), 3, "{events:?}");
        assert_eq!(merged_stdin(&events), b"mine");
        let header = Header::decode(p.output()[..8].try_into().unwrap()).unwrap();
        assert_eq!((header.record_type, header.request_id), (RecordType::EndRequest, 2));
        assert_eq!(
            EndRequestBody::decode(&p.output()[8..16]).unwrap().protocol_status,
            ProtocolStatus::CantMpxConn
        );
    }

    #[test]
    fn begin_with_the_active_id_is_a_protocol_error() {
        let mut input = Vec::new();
        begin(&mut input, 1, Role::Responder, true);
        begin(&mut input, 1, Role::Responder, true);
        assert!(matches!(
            run(&mut parser(), &input, usize::MAX),
            Err(ProtocolError::DuplicateRequestId(1))
        ));
    }

    #[test]
    fn abort_during_params_is_answered_by_the_parser() {
        let mut input = Vec::new();
        begin(&mut input, 4, Role::Responder, false);
        write_record(&mut input, RecordType::AbortRequest, 4, &[]);
        let mut p = parser();
        assert!(run(&mut p, &input, usize::MAX).unwrap().is_empty());
        let end = EndRequestBody::decode(&p.output()[8..16]).unwrap();
        assert_eq!(end.protocol_status, ProtocolStatus::RequestComplete);
        assert!(p.close_requested());
        assert!(!p.request_active());
    }

    #[test]
    fn abort_of_a_running_request_is_an_event() {
        let mut input = Vec::new();
        begin(&mut input, 4, Role::Responder, true);
        params(&mut input, 4, &[]);
        write_record(&mut input, RecordType::Stdin, 4, b"part");
        write_record(&mut input, RecordType::AbortRequest, 4, &[]);
        write_record(&mut input, RecordType::AbortRequest, 5, &[]);
        let events = run(&mut parser(), &input, usize::MAX).unwrap();
        assert_eq!(events[1..], [Owned::Stdin(b"part".to_vec()), Owned::Abort]);
    }

    #[test]
    fn keep_conn_is_reported_by_finish_request() {
        let mut p = parser();
        run(&mut p, &full_request(1, false, b""), usize::MAX).unwrap();
        assert!(!p.finish_request());
        let mut p = parser();
        let mut input = full_request(1, true, b"a");
        input.extend(full_request(2, true, b"b"));
        let events = run(&mut p, &input[..input.len() / 2], usize::MAX).unwrap();
        assert!(events.contains(&Owned::StdinEnd));
        assert!(p.finish_request());
    }

    #[test]
    fn many_requests_on_one_connection() {
        let mut input = Vec::new();
        for id in 1..=50u16 {
            input.extend(full_request(id, true, format!("body {id}").as_bytes()));
        }
        let mut p = parser();
        let mut buffer = &input[..];
        let mut finished = 0;
        loop {
            let parsed = p.parse(buffer).unwrap();
            if parsed.consumed == 0 {
                break;
            }
            if parsed.event == Some(Event::StdinEnd) {
                assert!(p.finish_request());
                finished += 1;
            }
            buffer = &buffer[parsed.consumed..];
        }
        assert_eq!(finished, 50);
    }

    /// The records of a 431 answer and END_REQUEST for `id`, as the parser writes them.
    pub(super) fn too_large_answer(id: u16) -> Vec<u8> {
        let mut p = Parser::new(Limits::default(), ManagementValues::default());
        p.answer_rejected(id, true);
        p.output().to_vec()
    }

    #[test]
    fn params_over_the_limit_are_answered_431_after_the_body_and_the_connection_goes_on() {
        let limits = Limits {
            max_params_bytes: 100,
            max_name_len: 50,
        };
        let oversized: [(String, &str); 2] = [("NAME".into(), &"x".repeat(200)), ("N".repeat(60), "v")];
        for (name, value) in &oversized {
            let mut input = Vec::new();
            begin(&mut input, 1, Role::Responder, true);
            params(&mut input, 1, &[(name.as_str(), value)]);
            let mut p = Parser::new(limits, ManagementValues::default());
            let events = run(&mut p, &input, usize::MAX).unwrap();
            let reason = if value.len() > 100 {
                ProtocolError::ParamsTooLarge { limit: 100 }
            } else {
                ProtocolError::NameTooLong { len: 60, limit: 50 }
            };
            assert_eq!(events, vec![Owned::Rejected(1, reason)]);
            assert!(p.output().is_empty(), "nothing is answered before the body has ended");
            assert!(p.request_active());
            // The body is skipped; its end brings the answer.
            let mut body = Vec::new();
            stdin(&mut body, 1, &[7u8; 3000]);
            assert_eq!(run(&mut p, &body, 1000).unwrap(), vec![]);
            assert_eq!(p.output(), too_large_answer(1));
            p.clear_output();
            assert!(!p.request_active() && !p.close_requested());
            // The next request on the connection is parsed normally.
            let events = run(&mut p, &full_request(2, true, b"ok"), 7).unwrap();
            assert!(matches!(&events[0], Owned::Request(2, true, _)), "{events:?}");
        }
    }

    #[test]
    fn a_rejected_request_without_keep_conn_closes_after_its_answer_and_an_abort_ends_it_at_once() {
        let limits = Limits {
            max_params_bytes: 10,
            max_name_len: 50,
        };
        let mut input = Vec::new();
        begin(&mut input, 1, Role::Responder, false);
        params(&mut input, 1, &[("NAME", "a value over ten bytes")]);
        stdin(&mut input, 1, b"");
        let mut p = Parser::new(limits, ManagementValues::default());
        run(&mut p, &input, 3).unwrap();
        assert!(p.close_requested());
        assert!(p
            .output()
            .ends_with(&too_large_answer(1)[too_large_answer(1).len() - 16..]));

        let mut input = Vec::new();
        begin(&mut input, 1, Role::Responder, true);
        params(&mut input, 1, &[("NAME", "a value over ten bytes")]);
        write_record(&mut input, RecordType::AbortRequest, 1, &[]);
        let mut p = Parser::new(limits, ManagementValues::default());
        run(&mut p, &input, usize::MAX).unwrap();
        let mut ended = Vec::new();
        record::write_end_request(&mut ended, 1, 0, ProtocolStatus::RequestComplete);
        assert_eq!(p.output(), ended);
        assert!(!p.request_active() && !p.close_requested());
    }

    #[test]
    fn malformed_params_are_refused() {
        let mut input = Vec::new();
        begin(&mut input, 1, Role::Responder, true);
        write_record(&mut input, RecordType::Params, 1, &[10, 10, b'a']);
        write_record(&mut input, RecordType::Params, 1, &[]);
        assert!(matches!(
            run(&mut parser(), &input, usize::MAX),
            Err(ProtocolError::MalformedNameValue(_))
        ));
    }

    #[test]
    fn garbage_and_bad_versions_are_refused() {
        let garbage = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        assert!(matches!(
            run(&mut parser(), garbage, usize::MAX),
            Err(ProtocolError::UnsupportedVersion(b'G'))
        ));
        let mut input = full_request(1, true, b"");
        input[0] = 2;
        assert!(matches!(
            run(&mut parser(), &input, usize::MAX),
            Err(ProtocolError::UnsupportedVersion(2))
        ));
    }

    #[test]
    fn records_only_an_application_sends_are_refused() {
        for t in [
            RecordType::Stdout,
            RecordType::Stderr,
            RecordType::EndRequest,
            RecordType::GetValuesResult,
        ] {
            let mut input = Vec::new();
            write_record(&mut input, t, 1, b"12345678");
            let err = run(&mut parser(), &input, usize::MAX).unwrap_err();
            assert!(
                matches!(err, ProtocolError::UnexpectedRecord { request_id: 1, .. }),
                "{t:?}: {err:?}"
            );
        }
        let mut input = Vec::new();
        write_record(&mut input, RecordType::Other(200), 1, b"");
        assert!(run(&mut parser(), &input, usize::MAX).is_err());
    }

    #[test]
    fn bad_begin_request_length_is_refused() {
        let mut input = Vec::new();
        write_record(&mut input, RecordType::BeginRequest, 1, &[0, 1, 1]);
        assert!(matches!(
            run(&mut parser(), &input, usize::MAX),
            Err(ProtocolError::BadRecordLength { .. })
        ));
    }

    #[test]
    fn stdin_before_params_end_or_after_body_end_is_refused() {
        let mut input = Vec::new();
        begin(&mut input, 1, Role::Responder, true);
        write_record(&mut input, RecordType::Stdin, 1, b"early");
        assert!(run(&mut parser(), &input, usize::MAX).is_err());

        let mut input = full_request(1, true, b"x");
        write_record(&mut input, RecordType::Stdin, 1, b"late");
        assert!(run(&mut parser(), &input, usize::MAX).is_err());
    }

    #[test]
    fn a_repeated_end_of_body_is_ignored() {
        let mut input = full_request(1, true, b"x");
        record::write_stream_end(&mut input, RecordType::Stdin, 1);
        let mut p = parser();
        let events = run(&mut p, &input, usize::MAX).unwrap();
        assert_eq!(events.last(), Some(&Owned::StdinEnd));
        assert!(p.output().is_empty());
        assert!(p.finish_request());
    }

    #[test]
    fn data_and_stray_records_are_ignored() {
        let mut input = Vec::new();
        write_record(&mut input, RecordType::Stdin, 7, b"nobody's");
        write_record(&mut input, RecordType::Params, 7, b"");
        write_record(&mut input, RecordType::AbortRequest, 7, b"");
        begin(&mut input, 1, Role::Responder, true);
        params(&mut input, 1, &[]);
        write_record(&mut input, RecordType::Data, 1, b"filter data");
        stdin(&mut input, 1, b"ok");
        let mut p = parser();
        let events = run(&mut p, &input, usize::MAX).unwrap();
        assert_eq!(merged_stdin(&events), b"ok");
        assert!(p.output().is_empty());
    }

    #[test]
    fn next_record_len_reads_the_header() {
        let mut input = Vec::new();
        write_record(&mut input, RecordType::Stdin, 1, b"abc");
        assert_eq!(Parser::next_record_len(&input), Some(16));
        assert_eq!(Parser::next_record_len(&input[..7]), None);
    }
}

#[cfg(test)]
mod proptests {
    use super::tests::too_large_answer;
    use super::*;
    use crate::protocol::record::{EndRequestBody, MAX_CONTENT_LEN};
    use proptest::collection::vec;
    use proptest::prelude::*;

    /// One record as a test writes it: any type, id, content and padding (the padding bytes are not zero, which
    /// the parser must not care about).
    #[derive(Debug, Clone)]
    struct Rec {
        record_type: u8,
        id: u16,
        content: Vec<u8>,
        padding: u8,
    }

    fn id() -> impl Strategy<Value = u16> {
        prop_oneof![4 => 1u16..3, 1 => Just(0u16), 1 => any::<u16>()]
    }

    fn padding() -> impl Strategy<Value = u8> {
        prop_oneof![4 => Just(0u8), 2 => 0u8..8, 1 => any::<u8>()]
    }

    fn pairs_content() -> impl Strategy<Value = Vec<u8>> {
        vec((vec(any::<u8>(), 0..20), vec(any::<u8>(), 0..150)), 0..4).prop_map(|pairs| {
            let mut out = Vec::new();
            for (n, v) in pairs {
                nv::write_pair(&mut out, &n, &v);
            }
            out
        })
    }

    /// Mostly well-formed records of every kind a web server sends, in any order, plus some arbitrary ones.
    fn rec() -> impl Strategy<Value = Rec> {
        let begin = (
            id(),
            prop_oneof![6 => Just(1u16), 1 => any::<u16>()],
            any::<u8>(),
            prop_oneof![9 => Just(8usize), 1 => 0usize..12],
        )
            .prop_map(|(id, role, flags, len)| {
                let mut content = BeginRequestBody {
                    role: Role::from_u16(role),
                    flags,
                }
                .encode()
                .to_vec();
                content.resize(len, 0);
                (1u8, id, content)
            });
        let params = (
            id(),
            prop_oneof![Just(Vec::new()), pairs_content(), vec(any::<u8>(), 0..40)],
        )
            .prop_map(|(id, content)| (4u8, id, content));
        let stdin = (id(), prop_oneof![Just(Vec::new()), vec(any::<u8>(), 1..300)]).prop_map(|(id, c)| (5u8, id, c));
        let abort = id().prop_map(|id| (2u8, id, Vec::new()));
        let get_values = prop_oneof![
            Just(b"FCGI_MAX_CONNS".to_vec()),
            Just(b"FCGI_MAX_REQS".to_vec()),
            Just(b"FCGI_MPXS_CONNS".to_vec()),
            vec(any::<u8>(), 0..20)
        ];
        let get_values = vec(get_values, 0..5).prop_map(|names| {
            let mut content = Vec::new();
            for name in names {
                nv::write_pair(&mut content, &name, b"");
            }
            (9u8, 0u16, content)
        });
        let other = (any::<u8>(), id(), vec(any::<u8>(), 0..64));
        (
            prop_oneof![3 => begin, 4 => params, 4 => stdin, 1 => abort, 1 => get_values, 1 => other],
            padding(),
        )
            .prop_map(|((record_type, id, content), padding)| Rec {
                record_type,
                id,
                content,
                padding,
            })
    }

    /// A whole request as a web server sends it (possibly refused, aborted or cut short), with noise records
    /// mixed in: this is what reaches the deep states of the machine.
    fn request_script() -> impl Strategy<Value = Vec<Rec>> {
        (
            id(),
            prop_oneof![8 => Just(1u16), 1 => 2u16..4],
            any::<bool>(),
            vec(pairs_content(), 0..3),
            vec(vec(any::<u8>(), 1..400), 0..4),
            prop_oneof![6 => Just(None), 1 => (0usize..12).prop_map(Some)],
            prop_oneof![6 => Just(None), 1 => (0usize..12).prop_map(Some)],
            vec((0usize..12, rec()), 0..3),
        )
            .prop_map(|(id, role, keep, params, body, abort_at, cut_at, noise)| {
                let begin = BeginRequestBody {
                    role: Role::from_u16(role),
                    flags: if keep { record::FLAG_KEEP_CONN } else { 0 },
                };
                let rec = |record_type: u8, content: Vec<u8>| Rec {
                    record_type,
                    id,
                    padding: record::padding_for(content.len()),
                    content,
                };
                let mut recs = vec![rec(1, begin.encode().to_vec())];
                recs.extend(params.into_iter().map(|c| rec(4, c)));
                recs.push(rec(4, Vec::new()));
                recs.extend(body.into_iter().map(|c| rec(5, c)));
                recs.push(rec(5, Vec::new()));
                if let Some(at) = cut_at {
                    recs.truncate(at.max(1));
                }
                if let Some(at) = abort_at {
                    recs.insert(at.min(recs.len()), rec(2, Vec::new()));
                }
                for (at, noise) in noise {
                    recs.insert(at.min(recs.len()), noise);
                }
                recs
            })
    }

    fn stream() -> impl Strategy<Value = Vec<Rec>> {
        vec(
            prop_oneof![3 => request_script(), 1 => rec().prop_map(|r| vec![r])],
            0..6,
        )
        .prop_map(|scripts| scripts.into_iter().flatten().collect())
    }

    fn encode(recs: &[Rec]) -> Vec<u8> {
        let mut out = Vec::new();
        for r in recs {
            let len = u16::try_from(r.content.len()).unwrap();
            out.extend_from_slice(&Header::new(RecordType::from_u8(r.record_type), r.id, len, r.padding).encode());
            out.extend_from_slice(&r.content);
            out.extend(std::iter::repeat_n(0xA5, usize::from(r.padding)));
        }
        out
    }

    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Seen {
        Request(u16, bool, Vec<(Vec<u8>, Vec<u8>)>),
        Stdin(Vec<u8>),
        StdinEnd,
        Abort,
        Rejected(u16),
    }

    /// Everything observable from outside: events (body pieces merged, as their record boundaries are the
    /// input's), the protocol output, how it ended and how much input was left.
    #[derive(Debug, PartialEq, Eq)]
    struct Trace {
        events: Vec<Seen>,
        output: Vec<u8>,
        error: Option<ProtocolError>,
        closed: bool,
        unconsumed: usize,
    }

    fn limits() -> Limits {
        Limits {
            max_params_bytes: 600,
            max_name_len: 16,
        }
    }

    /// Checks that protocol output is whole records of version 1, each at most 65535 bytes of content.
    fn check_output(output: &[u8]) -> Result<(), TestCaseError> {
        let mut rest = output;
        while !rest.is_empty() {
            prop_assert!(rest.len() >= HEADER_LEN);
            let header = Header::decode(rest[..HEADER_LEN].try_into().unwrap()).unwrap();
            prop_assert!(usize::from(header.content_length) <= MAX_CONTENT_LEN);
            prop_assert!(rest.len() >= HEADER_LEN + header.body_len());
            let content = &rest[HEADER_LEN..HEADER_LEN + usize::from(header.content_length)];
            match header.record_type {
                RecordType::GetValuesResult | RecordType::UnknownType => {
                    prop_assert_eq!(header.request_id, 0);
                }
                RecordType::EndRequest => {
                    prop_assert_ne!(header.request_id, 0);
                    EndRequestBody::decode(content).unwrap();
                }
                // A 431 answer to a request whose parameters were over the limits.
                RecordType::Stdout => prop_assert_ne!(header.request_id, 0),
                other => prop_assert!(false, "the parser wrote a {other:?} record"),
            }
            rest = &rest[HEADER_LEN + header.body_len()..];
        }
        Ok(())
    }

    /// Feeds `input` in pieces whose sizes cycle through `pieces`, like a server reading a socket, ending each
    /// request when its body is complete or it was aborted (as the server does) and stopping at an error or
    /// when the parser asks for the connection to be closed.
    fn drive(input: &[u8], pieces: &[usize]) -> Result<Trace, TestCaseError> {
        let mut parser = Parser::new(
            limits(),
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
                prop_assert!(parsed.consumed <= buffer.len());
                prop_assert!(parsed.consumed == 0 || parsed.consumed >= HEADER_LEN);
                if parsed.consumed == 0 {
                    prop_assert!(parsed.event.is_none());
                    break;
                }
                let mut finish = false;
                match parsed.event {
                    None => {}
                    Some(Event::Request(head)) => trace.events.push(Seen::Request(
                        head.id,
                        head.keep_conn,
                        head.params.iter().map(|(n, v)| (n.to_vec(), v.to_vec())).collect(),
                    )),
                    Some(Event::Stdin(data)) => {
                        prop_assert!(!data.is_empty());
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
                    // The parser ends a rejected request itself.
                    Some(Event::Rejected { id, .. }) => trace.events.push(Seen::Rejected(id)),
                }
                buffer.drain(..parsed.consumed);
                trace.output.extend_from_slice(parser.output());
                parser.clear_output();
                if finish && !parser.finish_request() {
                    trace.closed = true;
                    break 'feed;
                }
                if parser.close_requested() {
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
        check_output(&trace.output)?;
        Ok(trace)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// The same records give the same events, replies and errors however the input is fragmented.
        #[test]
        fn fragmentation_does_not_change_the_result(
            recs in stream(),
            pieces in vec(prop_oneof![1usize..9, 1usize..80, 1usize..1000], 1..8),
        ) {
            let input = encode(&recs);
            let whole = drive(&input, &[usize::MAX])?;
            let pieces = drive(&input, &pieces)?;
            prop_assert_eq!(&pieces, &whole);
            let bytewise = drive(&input, &[1])?;
            prop_assert_eq!(&bytewise, &whole);
        }

        /// Well-formed requests, one after another on a kept connection, come out exactly as they went in.
        #[test]
        fn well_formed_requests_round_trip(
            requests in vec((1u16.., vec((vec(b'A'..=b'Z', 1..16), vec(any::<u8>(), 0..200)), 0..5), vec(any::<u8>(), 0..3000)), 1..5),
            pieces in vec(1usize..700, 1..5),
        ) {
            let mut recs = Vec::new();
            let mut expected = Vec::new();
            for (id, pairs, body) in &requests {
                let begin = BeginRequestBody { role: Role::Responder, flags: record::FLAG_KEEP_CONN };
                recs.push(Rec { record_type: 1, id: *id, content: begin.encode().to_vec(), padding: 0 });
                let mut content = Vec::new();
                for (n, v) in pairs {
                    nv::write_pair(&mut content, n, v);
                }
                for chunk in content.chunks(100) {
                    recs.push(Rec { record_type: 4, id: *id, content: chunk.to_vec(), padding: 3 });
                }
                recs.push(Rec { record_type: 4, id: *id, content: Vec::new(), padding: 0 });
                for chunk in body.chunks(777) {
                    recs.push(Rec { record_type: 5, id: *id, content: chunk.to_vec(), padding: record::padding_for(chunk.len()) });
                }
                recs.push(Rec { record_type: 5, id: *id, content: Vec::new(), padding: 0 });
                expected.push(Seen::Request(*id, true, pairs.clone()));
                if !body.is_empty() {
                    expected.push(Seen::Stdin(body.clone()));
                }
                expected.push(Seen::StdinEnd);
            }
            let input = encode(&recs);
            // Large params may exceed the test limits; those requests are answered 431 by the parser and skipped,
            // the rest served, and the connection goes on either way.
            let trace = drive(&input, &pieces)?;
            prop_assert!(trace.error.is_none(), "unexpected error {:?}", trace.error);
            prop_assert!(!trace.closed);
            prop_assert_eq!(trace.unconsumed, 0);
            let rejected: Vec<u16> = trace.events.iter().filter_map(|e| match e { Seen::Rejected(id) => Some(*id), _ => None }).collect();
            let mut answered = Vec::new();
            for id in &rejected {
                answered.extend(too_large_answer(*id));
            }
            prop_assert_eq!(&trace.output, &answered);
            let mut served = expected.clone();
            for id in &rejected {
                // The rejected request's events (its head, body and end) are replaced by the one rejection.
                let at = served.iter().position(|e| matches!(e, Seen::Request(rid, _, _) if rid == id)).unwrap();
                let end = at + served[at..].iter().position(|e| *e == Seen::StdinEnd).unwrap();
                served.splice(at..=end, [Seen::Rejected(*id)]);
            }
            prop_assert_eq!(&trace.events, &served);
        }

        /// Arbitrary bytes never panic the parser; it consumes whole records only and writes whole records.
        #[test]
        fn arbitrary_bytes_never_panic(
            prefix in stream(),
            raw in vec(any::<u8>(), 0..600),
            pieces in vec(1usize..64, 1..4),
        ) {
            let mut input = encode(&prefix);
            input.extend_from_slice(&raw);
            drive(&input, &pieces)?;
            drive(&raw, &[usize::MAX])?;
            let _ = Parser::next_record_len(&raw);
        }
    }
}
