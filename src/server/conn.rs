//! One FastCGI connection: its stream, its read buffer and its protocol state machine. Owns turning bytes into
//! owned events (a request head, a body chunk's position in the buffer, the end of the body, an abort), writing
//! the protocol's own replies (GET_VALUES_RESULT, UNKNOWN_TYPE, refusals) as soon as they are due, and the
//! buffer discipline that keeps at most one record (plus what one read brought) in memory.

use std::io;
use std::ops::Range;

use crate::protocol::record::MAX_RECORD_LEN;
use crate::protocol::{Event, Limits, ManagementValues, Parser, ProtocolError, RequestHead};
use crate::transport::Stream;
use tracing::warn;

const INITIAL_BUFFER: usize = 16 * 1024;
/// Room for two whole records, so one read can bring a record and the start of the next during uploads.
const MAX_BUFFER: usize = 2 * MAX_RECORD_LEN;

/// An event with no borrow of the read buffer.
#[derive(Debug)]
pub(crate) enum ConnEvent {
    Request(RequestHead),
    /// A body chunk is available through [`Conn::stdin_chunk`].
    Stdin,
    StdinEnd,
    Abort,
}

/// Where the body chunk being read lies in the buffer, and where its record ends.
#[derive(Debug, Clone)]
struct StdinCursor {
    data: Range<usize>,
    record_end: usize,
}

/// Why a connection failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    #[error("protocol violation: {0}")]
    Protocol(#[from] ProtocolError),
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
}

/// See the module documentation.
pub struct Conn {
    stream: Box<dyn Stream>,
    parser: Parser,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    stdin: Option<StdinCursor>,
}

impl Conn {
    pub fn new(stream: Box<dyn Stream>, limits: Limits, values: ManagementValues) -> Self {
        Self {
            stream,
            parser: Parser::new(limits, values),
            buf: vec![0; INITIAL_BUFFER],
            start: 0,
            end: 0,
            stdin: None,
        }
    }

    pub fn peer(&self) -> &str {
        self.stream.peer()
    }

    pub(crate) fn stream_mut(&mut self) -> &mut dyn Stream {
        self.stream.as_mut()
    }

    pub(crate) fn parser(&self) -> &Parser {
        &self.parser
    }

    pub(crate) fn parser_mut(&mut self) -> &mut Parser {
        &mut self.parser
    }

    /// Whether undecoded bytes are waiting in the buffer.
    pub(crate) fn has_buffered_input(&self) -> bool {
        self.end > self.start
    }

    /// Reads more input. `Ok(None)`: nothing available (non-blocking only). `Ok(Some(0))`: end of stream.
    pub(crate) fn fill(&mut self, blocking: bool) -> io::Result<Option<usize>> {
        debug_assert!(
            self.stdin.is_none(),
            "a body chunk must be consumed before reading more"
        );
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        let needed = Parser::next_record_len(&self.buf[self.start..self.end]).unwrap_or(0);
        let free = self.buf.len() - self.end;
        if free == 0 || self.start + needed > self.buf.len() {
            // Move the partial record to the front; grow only if a single record does not fit.
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            let want = needed.max(self.end + 1);
            if want > self.buf.len() {
                self.buf
                    .resize(want.next_power_of_two().clamp(INITIAL_BUFFER, MAX_BUFFER), 0);
            }
        }
        let target = &mut self.buf[self.end..];
        let n = if blocking {
            Some(self.stream.read(target)?)
        } else {
            self.stream.try_read(target)?
        };
        if let Some(n) = n {
            self.end += n;
        }
        Ok(n)
    }

    /// Decodes the next record that means something to the application. Protocol replies are written out
    /// here. `Ok(None)`: no whole record is buffered.
    pub(crate) fn poll_event(&mut self) -> Result<Option<ConnEvent>, ConnError> {
        debug_assert!(
            self.stdin.is_none(),
            "a body chunk must be consumed before decoding further"
        );
        loop {
            let parsed = self.parser.parse(&self.buf[self.start..self.end])?;
            if parsed.consumed == 0 {
                self.flush_protocol_output()?;
                return Ok(None);
            }
            let record_start = self.start;
            let record_end = self.start + parsed.consumed;
            let event = match parsed.event {
                None => None,
                Some(Event::Request(head)) => Some(ConnEvent::Request(head)),
                Some(Event::Stdin(data)) => {
                    // The chunk stays in the buffer until it is consumed; `start` moves past it then.
                    let offset = data.as_ptr() as usize - self.buf.as_ptr() as usize;
                    self.stdin = Some(StdinCursor {
                        data: offset..offset + data.len(),
                        record_end,
                    });
                    Some(ConnEvent::Stdin)
                }
                Some(Event::StdinEnd) => Some(ConnEvent::StdinEnd),
                Some(Event::Abort) => Some(ConnEvent::Abort),
                Some(Event::Rejected { id, reason }) => {
                    // Answered 431 by the parser once the request's body has ended; the connection goes on.
                    warn!(peer = self.stream.peer(), request_id = id, %reason, "request refused with 431");
                    None
                }
            };
            if self.stdin.is_none() {
                self.start = record_end;
            } else {
                debug_assert_eq!(self.start, record_start);
            }
            if let Some(event) = event {
                self.flush_protocol_output()?;
                return Ok(Some(event));
            }
        }
    }

    fn flush_protocol_output(&mut self) -> io::Result<()> {
        if !self.parser.output().is_empty() {
            self.stream.write_all(self.parser.output())?;
            self.parser.clear_output();
        }
        Ok(())
    }

    /// The unread part of the current body chunk (empty if there is none).
    pub(crate) fn stdin_chunk(&self) -> &[u8] {
        self.stdin.as_ref().map_or(&[], |c| &self.buf[c.data.clone()])
    }

    /// Marks `n` bytes of the current body chunk as read.
    pub(crate) fn consume_stdin(&mut self, n: usize) {
        if let Some(cursor) = &mut self.stdin {
            cursor.data.start = (cursor.data.start + n).min(cursor.data.end);
            if cursor.data.is_empty() {
                self.start = cursor.record_end;
                self.stdin = None;
            }
        }
    }

    /// Discards the rest of the current body chunk.
    pub(crate) fn skip_stdin(&mut self) {
        let n = self.stdin_chunk().len();
        self.consume_stdin(n);
    }
}
