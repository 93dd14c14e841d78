//! The hand-off from the server's worker threads to the event loop's thread. A worker posts a request whose state
//! changed (a new request, a body chunk, written output, a disconnect) to one queue, and wakes the loop only if no
//! wake-up is already pending, so a burst of requests costs the loop one wake-up. On Unix the wake-up is one byte
//! on a socket pair the loop watches with `add_reader`: the worker never takes the GIL, so a busy loop never
//! delays it (a thread waiting for the GIL waits up to the 5 ms switch interval). Where `add_reader` is not
//! available (Windows' proactor loop) it is `loop.call_soon_threadsafe`, which takes the GIL briefly; under IIS
//! a process serves one request at a time, so nothing contends for it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use pyo3::prelude::*;

use super::request::Shared;

/// How the loop is woken.
pub enum Waker {
    /// The write end of a socket pair whose read end the loop watches.
    #[cfg(unix)]
    Socket(std::os::unix::net::UnixStream),
    /// `loop.call_soon_threadsafe(drain)`.
    Threadsafe { event_loop: Py<PyAny>, drain: Py<PyAny> },
}

/// See the module documentation.
pub struct Bridge {
    queue: Mutex<Vec<Arc<Shared>>>,
    pending: AtomicBool,
    waker: std::sync::OnceLock<Waker>,
    /// The read end of the socket pair (Unix), drained by the loop.
    #[cfg(unix)]
    pub(crate) reader: std::os::unix::net::UnixStream,
    #[cfg(unix)]
    writer: std::os::unix::net::UnixStream,
}

impl Bridge {
    /// # Errors
    /// If the socket pair cannot be made.
    pub fn new() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            let (reader, writer) = std::os::unix::net::UnixStream::pair()?;
            reader.set_nonblocking(true)?;
            writer.set_nonblocking(true)?;
            Ok(Self {
                queue: Mutex::new(Vec::new()),
                pending: AtomicBool::new(false),
                waker: std::sync::OnceLock::new(),
                reader,
                writer,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {
            queue: Mutex::new(Vec::new()),
            pending: AtomicBool::new(false),
            waker: std::sync::OnceLock::new(),
        })
    }

    /// Sets how the loop is woken (once, when the loop is set up).
    pub fn set_waker(&self, waker: Waker) {
        let _ = self.waker.set(waker);
    }

    /// A duplicate of the socket pair's write end, for the Unix waker.
    #[cfg(unix)]
    pub fn socket_waker(&self) -> std::io::Result<Waker> {
        Ok(Waker::Socket(self.writer.try_clone()?))
    }

    /// Tells the loop to look at `request`. Never blocks on the loop (on Unix, never takes the GIL).
    pub fn post(&self, request: Arc<Shared>) {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner).push(request);
        if self.pending.swap(true, Ordering::AcqRel) {
            return;
        }
        match self.waker.get() {
            #[cfg(unix)]
            Some(Waker::Socket(socket)) => {
                use std::io::Write;
                // WouldBlock means the socket is full of wake-ups already: the loop will run.
                let _ = (&*socket).write(&[1]);
            }
            Some(Waker::Threadsafe { event_loop, drain }) => Python::attach(|py| {
                if let Err(err) = event_loop
                    .bind(py)
                    .call_method1(pyo3::intern!(py, "call_soon_threadsafe"), (drain.bind(py),))
                {
                    tracing::error!(%err, "cannot wake the ASGI event loop");
                }
            }),
            None => tracing::error!("the ASGI event loop is not set up; a request is stuck"),
        }
    }

    /// The loop's side: takes every posted request. Clears the pending flag after emptying the socket and before
    /// taking the queue, so a request posted at any moment is either taken now or wakes the loop again.
    pub fn take(&self) -> Vec<Arc<Shared>> {
        #[cfg(unix)]
        {
            use std::io::Read;
            let mut buf = [0u8; 256];
            while matches!((&self.reader).read(&mut buf), Ok(n) if n > 0) {}
        }
        self.pending.store(false, Ordering::Release);
        std::mem::take(&mut *self.queue.lock().unwrap_or_else(PoisonError::into_inner))
    }
}
