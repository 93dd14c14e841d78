//! One request's I/O as a handler sees it: a streaming body reader (blocking, pulling STDIN records only as the
//! application asks, so nothing is read ahead beyond one record), and a response writer that holds the header
//! block, buffers small writes, flushes on demand, notices aborts and vanished peers, and ends the request with
//! exactly one END_REQUEST after draining any body the application left unread. No response byte goes out
//! before the whole body has arrived: when the application answers first, the rest of the body is read into a
//! [`Spool`] and read from there (front servers do not take an answer while they are sending; see spool.rs).

use std::io;
use std::time::{Duration, Instant};

use tracing::{debug, warn};

use super::conn::{Conn, ConnError, ConnEvent};
use super::spool::Spool;
use crate::protocol::{record, ProtocolError, ResponseEncoder};

/// Buffered response bytes are written out once they reach this size, even without a flush.
const WRITE_BUFFER: usize = 64 * 1024;

/// Why a request's I/O failed. After any of these the application should stop producing the response.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("the web server aborted the request")]
    Aborted,
    #[error("the web server closed the connection")]
    Disconnected,
    #[error("I/O error on the FastCGI connection: {0}")]
    Io(#[source] io::Error),
    #[error("FastCGI protocol violation: {0}")]
    Protocol(#[from] ProtocolError),
    #[error("cannot hold the rest of the request body in a temporary file: {0}")]
    Spool(#[source] io::Error),
}

impl From<ConnError> for RequestError {
    fn from(err: ConnError) -> Self {
        match err {
            ConnError::Protocol(e) => Self::Protocol(e),
            ConnError::Io(e) => Self::from_io(e),
        }
    }
}

impl RequestError {
    fn from_io(err: io::Error) -> Self {
        match err.kind() {
            io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::NotConnected
            | io::ErrorKind::UnexpectedEof => Self::Disconnected,
            _ => Self::Io(err),
        }
    }

    /// Whether the peer went away or asked to stop (as opposed to a real failure worth a warning).
    pub fn is_disconnect(&self) -> bool {
        matches!(self, Self::Aborted | Self::Disconnected)
    }
}

/// How a request ended, for the server's bookkeeping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Finish {
    /// The connection can carry another request.
    KeepOpen,
    /// The connection must be closed.
    Close,
}

/// See the module documentation.
pub struct Exchange {
    conn: Conn,
    encoder: ResponseEncoder,
    keep_conn: bool,
    out: Vec<u8>,
    body_done: bool,
    body_read: u64,
    body_sent: u64,
    failed: Option<FailState>,
    abandoned: bool,
    /// When [`Exchange::flush`] last looked for an abort (see [`ABORT_POLL_INTERVAL`]).
    abort_polled: Option<Instant>,
    /// The body that arrived after the application began its answer (see the module documentation).
    spool: Spool,
}

/// How often, at most, a flush looks for ABORT_REQUEST or a vanished peer. A streamed response flushes every
/// chunk (16 per MiB in 64 KiB chunks); looking each time cost one failed non-blocking `recv` per chunk. Write
/// errors still show a vanished peer at once, and a stop a few milliseconds later changes nothing for a client
/// that has gone.
const ABORT_POLL_INTERVAL: Duration = Duration::from_millis(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FailState {
    Aborted,
    Gone,
    Broken,
}

impl Exchange {
    pub(crate) fn new(conn: Conn, request_id: u16, keep_conn: bool) -> Self {
        Self {
            conn,
            encoder: ResponseEncoder::new(request_id),
            keep_conn,
            out: Vec::with_capacity(8 * 1024),
            body_done: false,
            body_read: 0,
            body_sent: 0,
            failed: None,
            abandoned: false,
            abort_polled: None,
            spool: Spool::default(),
        }
    }

    pub fn request_id(&self) -> u16 {
        self.encoder.request_id()
    }

    pub fn keep_conn(&self) -> bool {
        self.keep_conn
    }

    pub fn peer(&self) -> &str {
        self.conn.peer()
    }

    fn check(&self) -> Result<(), RequestError> {
        match self.failed {
            None => Ok(()),
            Some(FailState::Aborted) => Err(RequestError::Aborted),
            Some(FailState::Gone | FailState::Broken) => Err(RequestError::Disconnected),
        }
    }

    fn fail<E: Into<RequestError>>(&mut self, err: E) -> RequestError {
        let err = err.into();
        if let RequestError::Protocol(violation) = &err {
            // The handler only sees a failed read or write; the server is where the reason gets logged.
            if crate::logging::throttle::allow(self.conn.peer(), "protocol") {
                warn!(peer = self.conn.peer(), %violation, "closing FastCGI connection: protocol violation during a request");
            }
        } else if let RequestError::Io(io_err) = &err {
            if crate::logging::throttle::allow(self.conn.peer(), "io") {
                warn!(peer = self.conn.peer(), error = %io_err, "closing FastCGI connection: I/O error during a request");
            }
        } else if let RequestError::Spool(io_err) = &err {
            tracing::error!(
                peer = self.conn.peer(),
                error = %io_err,
                dir = %std::env::temp_dir().display(),
                "the application answered before reading its whole request body, and the rest of the body could \
                 not be written to a temporary file (is the temp directory full or not writable?); closing the \
                 connection"
            );
        }
        self.failed = Some(match err {
            RequestError::Aborted => FailState::Aborted,
            RequestError::Disconnected => FailState::Gone,
            RequestError::Io(_) | RequestError::Protocol(_) | RequestError::Spool(_) => FailState::Broken,
        });
        err
    }

    // ---- request body ----

    /// The next piece of the body, blocking until one arrives; empty at the end of the body. The bytes stay
    /// available until [`Exchange::consume_body`] marks them read.
    ///
    /// # Errors
    /// [`RequestError::Aborted`] or [`RequestError::Disconnected`] when the web server gave up on the request.
    pub fn fill_body(&mut self) -> Result<&[u8], RequestError> {
        self.check()?;
        if !self.spool.is_empty() {
            if let Err(e) = self.spool.fill() {
                return Err(self.fail(RequestError::Spool(e)));
            }
            return Ok(self.spool.chunk());
        }
        while !self.body_done && self.conn.stdin_chunk().is_empty() {
            self.next_body_event()?;
        }
        Ok(self.conn.stdin_chunk())
    }

    fn next_body_event(&mut self) -> Result<(), RequestError> {
        match self.conn.poll_event() {
            Ok(Some(ConnEvent::Stdin)) => Ok(()),
            Ok(Some(ConnEvent::StdinEnd)) => {
                self.body_done = true;
                Ok(())
            }
            Ok(Some(ConnEvent::Abort)) => Err(self.fail(RequestError::Aborted)),
            Ok(Some(ConnEvent::Request(_))) => {
                // The parser answers a second BEGIN_REQUEST itself; a request head here would be a bug.
                Err(self.fail(RequestError::Protocol(ProtocolError::UnexpectedRecord {
                    record_type: 1,
                    request_id: 0,
                })))
            }
            // What the application already wrote stays buffered: it goes out once the body is complete.
            Ok(None) => self.read_more(),
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Reads the rest of the body into the spool, so the response can go out (see the module documentation).
    fn spool_rest_of_body(&mut self) -> Result<(), RequestError> {
        let started = Instant::now();
        let mut spooled = 0u64;
        while !self.body_done {
            let chunk = self.conn.stdin_chunk();
            if !chunk.is_empty() {
                spooled += chunk.len() as u64;
                if let Err(e) = self.spool.push(chunk) {
                    return Err(self.fail(RequestError::Spool(e)));
                }
                self.conn.skip_stdin();
                continue;
            }
            self.next_body_event()?;
        }
        if spooled > 0 {
            debug!(
                peer = self.conn.peer(),
                bytes = spooled,
                on_disk = self.spool.on_disk(),
                ms = started.elapsed().as_millis() as u64,
                "the application answered before reading its whole body; the rest was spooled first"
            );
        }
        Ok(())
    }

    fn read_more(&mut self) -> Result<(), RequestError> {
        match self.conn.fill(true) {
            Ok(Some(0)) => Err(self.fail(RequestError::Disconnected)),
            Ok(_) => Ok(()),
            Err(e) => Err(self.fail(RequestError::from_io(e))),
        }
    }

    /// Marks `n` bytes returned by [`Exchange::fill_body`] as read.
    pub fn consume_body(&mut self, n: usize) {
        if !self.spool.is_empty() {
            self.body_read += n as u64;
            self.spool.consume(n);
            return;
        }
        let n = n.min(self.conn.stdin_chunk().len());
        self.body_read += n as u64;
        self.conn.consume_stdin(n);
    }

    /// Reads body bytes into `buf`; `Ok(0)` at the end of the body.
    ///
    /// # Errors
    /// As [`Exchange::fill_body`].
    pub fn read_body(&mut self, buf: &mut [u8]) -> Result<usize, RequestError> {
        let chunk = self.fill_body()?;
        let n = chunk.len().min(buf.len());
        buf[..n].copy_from_slice(&chunk[..n]);
        self.consume_body(n);
        Ok(n)
    }

    /// Whether the whole body has been read.
    pub fn body_complete(&self) -> bool {
        self.body_done && self.conn.stdin_chunk().is_empty() && self.spool.is_empty()
    }

    pub fn body_bytes_read(&self) -> u64 {
        self.body_read
    }

    // ---- response ----

    /// Sets the CGI header block (`Status: ...\r\n` + headers + `\r\n`); held until body bytes or the end.
    pub fn set_head(&mut self, head: Vec<u8>) {
        self.encoder.set_head(head);
    }

    /// Whether the header block went out (after which status and headers can no longer change).
    pub fn head_sent(&self) -> bool {
        self.encoder.head_sent()
    }

    /// Appends body bytes (with the held headers before the first ones); writes out once enough is buffered.
    ///
    /// # Errors
    /// When the web server went away or aborted the request.
    pub fn write(&mut self, data: &[u8]) -> Result<(), RequestError> {
        self.check()?;
        self.encoder.body(&mut self.out, data);
        self.body_sent += data.len() as u64;
        if self.out.len() >= WRITE_BUFFER {
            self.write_out()?;
        }
        Ok(())
    }

    /// Whether [`Exchange::write`] of `len` bytes would only buffer, never touch the socket, so the caller may
    /// skip releasing its locks (the GIL) around it.
    pub fn write_is_buffered(&self, len: usize) -> bool {
        self.out.len() + len + 2 * record::HEADER_LEN < WRITE_BUFFER
    }

    /// Bytes of response body (not headers) accepted so far.
    pub fn body_bytes_sent(&self) -> u64 {
        self.body_sent
    }

    /// Sends FCGI_STDERR data (the web server logs it; IIS may turn the response into a 500).
    ///
    /// # Errors
    /// As [`Exchange::write`].
    pub fn write_stderr(&mut self, data: &[u8]) -> Result<(), RequestError> {
        self.check()?;
        self.encoder.stderr(&mut self.out, data);
        Ok(())
    }

    /// Writes everything buffered, then looks (without blocking, at most every [`ABORT_POLL_INTERVAL`]) for an
    /// abort or a vanished peer.
    ///
    /// # Errors
    /// When the web server went away or aborted the request.
    pub fn flush(&mut self) -> Result<(), RequestError> {
        self.check()?;
        self.write_out()?;
        let now = Instant::now();
        if self
            .abort_polled
            .is_some_and(|at| now.duration_since(at) < ABORT_POLL_INTERVAL)
        {
            return Ok(());
        }
        self.abort_polled = Some(now);
        self.poll_abort()
    }

    fn write_out(&mut self) -> Result<(), RequestError> {
        if self.out.is_empty() {
            return Ok(());
        }
        if !self.body_done && self.failed.is_none() {
            self.spool_rest_of_body()?;
        }
        let result = self.conn.stream_mut().write_all(&self.out);
        self.out.clear();
        result.map_err(|e| self.fail(RequestError::from_io(e)))
    }

    /// Checks for ABORT_REQUEST or a closed connection without blocking. Looks past the end of the body even
    /// when the application never read it (a GET handler never asks for its empty body), but stops at a body
    /// chunk the application has not read: that chunk stays for [`Exchange::fill_body`], and what follows it
    /// is out of sight until then.
    fn poll_abort(&mut self) -> Result<(), RequestError> {
        loop {
            if !self.conn.stdin_chunk().is_empty() {
                return Ok(());
            }
            match self.conn.poll_event() {
                Ok(Some(ConnEvent::Abort)) => return Err(self.fail(RequestError::Aborted)),
                // Held in the connection's buffer until the application reads it.
                Ok(Some(ConnEvent::Stdin)) => return Ok(()),
                Ok(Some(ConnEvent::StdinEnd)) => {
                    self.body_done = true;
                    continue;
                }
                // The parser answers a second BEGIN_REQUEST itself; a request head here would be a bug.
                Ok(Some(ConnEvent::Request(_))) => {
                    return Err(self.fail(RequestError::Protocol(ProtocolError::UnexpectedRecord {
                        record_type: 1,
                        request_id: self.request_id(),
                    })))
                }
                Ok(None) => {}
                Err(e) => return Err(self.fail(e)),
            }
            match self.conn.fill(false) {
                Ok(None) => return Ok(()),
                Ok(Some(0)) => return Err(self.fail(RequestError::Disconnected)),
                Ok(Some(_)) => continue,
                Err(e) => return Err(self.fail(RequestError::from_io(e))),
            }
        }
    }

    /// Checks, without blocking, whether the web server aborted the request or went away.
    pub fn is_cancelled(&mut self) -> bool {
        self.failed.is_some() || self.poll_abort().is_err()
    }

    /// Gives up on the response: what was written so far is sent, then the connection is closed without
    /// END_REQUEST, so the web server treats the response as failed (and tells its client) instead of as complete.
    /// Used when the application fails after its headers went out, or sends fewer bytes than its Content-Length.
    pub fn abandon(&mut self) {
        self.abandoned = true;
    }

    /// Ends the request: drains the unread body, writes the held headers, the empty STDOUT and END_REQUEST, and
    /// says whether the connection can be reused.
    pub(crate) fn finish(mut self, app_status: u32) -> (Conn, Finish) {
        if self.abandoned {
            let _ = self.write_out();
            let _ = self.conn.parser_mut().finish_request();
            let _ = self.conn.stream_mut().close();
            return (self.conn, Finish::Close);
        }
        let mut clean = match self.failed {
            None => true,
            // An aborted request still gets its END_REQUEST; the connection stays usable.
            Some(FailState::Aborted) => true,
            Some(FailState::Gone | FailState::Broken) => false,
        };
        if clean && self.failed.is_none() {
            if let Err(err) = self.drain_body() {
                debug!(peer = self.conn.peer(), %err, "request body could not be drained");
                clean = matches!(err, RequestError::Aborted);
            }
        }
        if clean {
            self.encoder.finish(&mut self.out, app_status);
            if let Err(err) = self.write_out() {
                debug!(peer = self.conn.peer(), %err, "could not end the request");
                clean = false;
            }
        }
        let keep = self.conn.parser_mut().finish_request();
        let finish = if clean && keep { Finish::KeepOpen } else { Finish::Close };
        if finish == Finish::Close {
            let _ = self.conn.stream_mut().close();
        }
        (self.conn, finish)
    }

    /// Reads and discards whatever body the application did not read, so the next record on a kept connection
    /// is parsed from a record boundary.
    fn drain_body(&mut self) -> Result<(), RequestError> {
        loop {
            let chunk = self.fill_body()?;
            if chunk.is_empty() {
                return Ok(());
            }
            let n = chunk.len();
            self.consume_body(n);
        }
    }
}
