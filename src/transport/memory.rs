//! An in-memory connection, for tests and benchmarks of everything above the transport: two byte pipes with a
//! bounded capacity each, so a peer that stops reading blocks the writer exactly as a full socket buffer does
//! (back-pressure), and closing or dropping one end is seen by the other as end of stream or a broken pipe.
//! One end is the [`super::Stream`] the server reads; the other is the web server's side, driven by a test through
//! `std::io::Read`/`Write` (with an optional read timeout, so a hang fails the test instead of blocking it). For
//! benchmarks, [`MemoryStream::replay`] builds a server end whose input is produced on demand and whose output is
//! only counted, so no second thread or unbounded buffer is involved.

use std::cell::Cell;
use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::{Readiness, Stream};

/// Produces more input for a [`MemoryStream::replay`] end when a blocking read finds none: appends to the buffer
/// and returns `true`, or returns `false` for the end of the stream.
pub type Refill = Box<dyn FnMut(&mut Vec<u8>) -> bool + Send>;

/// Bytes travelling towards one end.
struct Half {
    data: VecDeque<u8>,
    capacity: usize,
    /// The writing end closed its write side (or went away): the reader sees end of stream once `data` is read.
    write_closed: bool,
    /// The reading end went away: writes fail with a broken pipe.
    reader_gone: bool,
    /// Bytes ever written towards this end.
    delivered: u64,
    /// Count written bytes but do not keep them (a benchmark's output nobody reads).
    discard: bool,
    refill: Option<Refill>,
    staging: Vec<u8>,
}

impl Half {
    fn new(capacity: usize) -> Self {
        Self {
            data: VecDeque::new(),
            capacity: capacity.max(1),
            write_closed: false,
            reader_gone: false,
            delivered: 0,
            discard: false,
            refill: None,
            staging: Vec::new(),
        }
    }

    fn room(&self) -> usize {
        self.capacity.saturating_sub(self.data.len())
    }

    /// Asks the refill hook for more input; whether any arrived.
    fn refill(&mut self) -> bool {
        let Some(refill) = &mut self.refill else { return false };
        self.staging.clear();
        if refill(&mut self.staging) {
            self.data.extend(self.staging.iter());
            true
        } else {
            self.refill = None;
            self.write_closed = true;
            false
        }
    }

    fn take(&mut self, buf: &mut [u8]) -> usize {
        let n = buf.len().min(self.data.len());
        for (slot, byte) in buf.iter_mut().zip(self.data.drain(..n)) {
            *slot = byte;
        }
        n
    }

    fn put(&mut self, buf: &[u8]) -> usize {
        let n = if self.discard {
            buf.len()
        } else {
            buf.len().min(self.room())
        };
        if !self.discard {
            self.data.extend(&buf[..n]);
        }
        self.delivered += n as u64;
        n
    }
}

struct Shared {
    /// `halves[i]` holds the bytes travelling towards end `i`.
    halves: Mutex<[Half; 2]>,
    changed: Condvar,
}

/// One end of an in-memory connection. See the module documentation.
pub struct MemoryStream {
    shared: Arc<Shared>,
    side: usize,
    peer: String,
    read_timeout: Cell<Option<Duration>>,
}

impl MemoryStream {
    /// A connected pair: (the server's end, the web server's end). Each direction holds at most `capacity`
    /// bytes that the other end has not read.
    pub fn pair(capacity: usize) -> (Self, Self) {
        Self::from_halves(Half::new(capacity), Half::new(capacity))
    }

    /// A server end whose input comes from `refill` (called whenever a blocking read finds nothing buffered;
    /// non-blocking reads find nothing until then, like a web server waiting for the response before it sends
    /// the next request), and whose output is counted (see [`MemoryStream::bytes_received`] on the other end)
    /// and kept only if `keep_output`.
    pub fn replay(refill: Refill, keep_output: bool) -> (Self, Self) {
        let mut to_server = Half::new(usize::MAX);
        to_server.refill = Some(refill);
        let mut to_client = Half::new(usize::MAX);
        to_client.discard = !keep_output;
        Self::from_halves(to_server, to_client)
    }

    fn from_halves(to_server: Half, to_client: Half) -> (Self, Self) {
        let shared = Arc::new(Shared {
            halves: Mutex::new([to_server, to_client]),
            changed: Condvar::new(),
        });
        let end = |side, peer: &str| Self {
            shared: shared.clone(),
            side,
            peer: peer.into(),
            read_timeout: Cell::new(None),
        };
        (end(0, "memory:web-server"), end(1, "memory:application"))
    }

    /// Makes blocking reads fail with `TimedOut` after `timeout` without data.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) {
        self.read_timeout.set(timeout);
    }

    /// Bytes the other end has written towards this one so far (read or not).
    pub fn bytes_received(&self) -> u64 {
        self.lock()[self.side].delivered
    }

    /// Whether the other end has written nothing that this end has not read yet.
    pub fn nothing_pending(&self) -> bool {
        self.lock()[self.side].data.is_empty()
    }

    /// Closes this end's writing direction: the other end reads to the end of what was sent, then sees end of
    /// stream.
    pub fn shutdown_write(&self) {
        self.lock()[1 - self.side].write_closed = true;
        self.shared.changed.notify_all();
    }

    fn lock(&self) -> MutexGuard<'_, [Half; 2]> {
        // Plain data: still consistent after a panic elsewhere.
        self.shared.halves.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wait<'a>(
        &self,
        guard: MutexGuard<'a, [Half; 2]>,
        deadline: Option<Instant>,
    ) -> io::Result<MutexGuard<'a, [Half; 2]>> {
        match deadline {
            None => Ok(self.shared.changed.wait(guard).unwrap_or_else(PoisonError::into_inner)),
            Some(deadline) => {
                let left = deadline
                    .checked_duration_since(Instant::now())
                    .ok_or_else(|| io::Error::new(io::ErrorKind::TimedOut, "in-memory read timed out"))?;
                Ok(self
                    .shared
                    .changed
                    .wait_timeout(guard, left)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0)
            }
        }
    }

    fn write_some(&self, buf: &[u8], block: bool) -> io::Result<Option<usize>> {
        let mut halves = self.lock();
        loop {
            let out = &mut halves[1 - self.side];
            if out.reader_gone {
                return Err(io::Error::new(io::ErrorKind::BrokenPipe, "the other end is gone"));
            }
            if out.write_closed {
                return Err(io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    "this end was shut down for writing",
                ));
            }
            if buf.is_empty() {
                return Ok(Some(0));
            }
            if out.discard || out.room() > 0 {
                let n = out.put(buf);
                drop(halves);
                self.shared.changed.notify_all();
                return Ok(Some(n));
            }
            if !block {
                return Ok(None);
            }
            halves = self.wait(halves, None)?;
        }
    }
}

impl Drop for MemoryStream {
    fn drop(&mut self) {
        let mut halves = self.lock();
        halves[self.side].reader_gone = true;
        halves[self.side].data.clear();
        halves[1 - self.side].write_closed = true;
        drop(halves);
        self.shared.changed.notify_all();
    }
}

impl Stream for MemoryStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let deadline = self.read_timeout.get().map(|t| Instant::now() + t);
        let mut halves = self.lock();
        loop {
            let incoming = &mut halves[self.side];
            if buf.is_empty() {
                return Ok(0);
            }
            if !incoming.data.is_empty() || incoming.refill() {
                let n = incoming.take(buf);
                drop(halves);
                self.shared.changed.notify_all();
                return Ok(n);
            }
            if incoming.write_closed {
                return Ok(0);
            }
            halves = self.wait(halves, deadline)?;
        }
    }

    fn try_read(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        let mut halves = self.lock();
        let incoming = &mut halves[self.side];
        if incoming.data.is_empty() {
            return Ok(if incoming.write_closed { Some(0) } else { None });
        }
        let n = incoming.take(buf);
        drop(halves);
        self.shared.changed.notify_all();
        Ok(Some(n))
    }

    fn write_all(&mut self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            let n = self.write_some(buf, true)?.unwrap_or(0);
            buf = &buf[n..];
        }
        Ok(())
    }

    fn try_write(&mut self, buf: &[u8]) -> io::Result<Option<usize>> {
        self.write_some(buf, false)
    }

    fn wait_ready(&mut self, want_read: bool) -> io::Result<Readiness> {
        let mut halves = self.lock();
        loop {
            let readable = want_read && {
                let incoming = &halves[self.side];
                !incoming.data.is_empty() || incoming.write_closed
            };
            let outgoing = &halves[1 - self.side];
            let writable = outgoing.discard || outgoing.room() > 0 || outgoing.reader_gone || outgoing.write_closed;
            if readable || writable {
                return Ok(Readiness { readable, writable });
            }
            halves = self.wait(halves, None)?;
        }
    }

    fn close(&mut self) -> io::Result<()> {
        self.shutdown_write();
        Ok(())
    }

    fn peer(&self) -> &str {
        &self.peer
    }
}

impl io::Read for MemoryStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Stream::read(self, buf)
    }
}

impl io::Write for MemoryStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(self.write_some(buf, true)?.unwrap_or(0))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn bytes_cross_in_both_directions_and_close_is_end_of_stream() {
        let (mut server, mut client) = MemoryStream::pair(1024);
        Write::write_all(&mut client, b"request").unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(Stream::read(&mut server, &mut buf).unwrap(), 7);
        assert_eq!(&buf[..7], b"request");
        assert_eq!(server.try_read(&mut buf).unwrap(), None);
        Stream::write_all(&mut server, b"answer").unwrap();
        server.close().unwrap();
        let mut got = Vec::new();
        client.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"answer");
        drop(client);
        assert_eq!(server.try_read(&mut buf).unwrap(), Some(0));
        assert_eq!(
            Stream::write_all(&mut server, b"x").unwrap_err().kind(),
            io::ErrorKind::BrokenPipe
        );
    }

    #[test]
    fn a_full_pipe_blocks_the_writer_until_the_reader_reads() {
        let (mut server, mut client) = MemoryStream::pair(4);
        assert_eq!(server.try_write(b"abcdef").unwrap(), Some(4));
        assert_eq!(server.try_write(b"ef").unwrap(), None);
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            client.read_to_end(&mut got).unwrap();
            got
        });
        Stream::write_all(&mut server, b"efghij").unwrap();
        server.close().unwrap();
        assert_eq!(reader.join().unwrap(), b"abcdefghij");
    }

    #[test]
    fn read_timeout_fails_a_read_that_gets_nothing() {
        let (_server, mut client) = MemoryStream::pair(16);
        client.set_read_timeout(Some(Duration::from_millis(10)));
        let err = Stream::read(&mut client, &mut [0u8; 4]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }

    #[test]
    fn replay_refills_on_blocking_reads_and_counts_output() {
        let mut left = 2;
        let (mut server, client) = MemoryStream::replay(
            Box::new(move |buf| {
                if left == 0 {
                    return false;
                }
                left -= 1;
                buf.extend_from_slice(b"req");
                true
            }),
            false,
        );
        let mut buf = [0u8; 8];
        assert_eq!(
            server.try_read(&mut buf).unwrap(),
            None,
            "nothing before a blocking read"
        );
        assert_eq!(Stream::read(&mut server, &mut buf).unwrap(), 3);
        assert_eq!(Stream::read(&mut server, &mut buf).unwrap(), 3);
        assert_eq!(Stream::read(&mut server, &mut buf).unwrap(), 0);
        Stream::write_all(&mut server, &[7u8; 100_000]).unwrap();
        assert_eq!(client.bytes_received(), 100_000);
        assert!(client.nothing_pending(), "discarded output is not kept");
    }
}
