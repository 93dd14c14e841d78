//! One ASGI request as both threads see it: the state the event loop (the application's `receive`/`send`) and the
//! server's worker thread (the FastCGI exchange) share, and the worker's side of the hand-off. The worker thread
//! owns the [`Exchange`] and is the request's only I/O agent: it reads the body one FastCGI record at a time,
//! only when the application wants it (one record ahead until the response starts), writes what the application
//! sent as soon as it is queued, flushes each streamed chunk, watches for an abort or a vanished peer while the
//! application waits for `http.disconnect`, and returns as soon as the last body message is written, so
//! END_REQUEST goes out then and background tasks do not hold the client. It never touches Python.

use std::collections::VecDeque;
use std::io::Read;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use pyo3::prelude::*;

use super::bridge::Bridge;
use crate::protocol::RequestHead;
use crate::server::Exchange;

/// Queued response bytes past which `send()` waits until the worker has written them.
pub const HIGH_WATER: usize = 256 * 1024;
/// How often the worker looks for an abort while the application waits in `receive()` for `http.disconnect`.
const WATCH_POLL: Duration = Duration::from_millis(50);
/// How often it looks when nothing is asked of it (a hung or sleeping application still learns the client left).
const IDLE_POLL: Duration = Duration::from_secs(1);
/// Block size for `http.response.pathsend`.
const FILE_BLOCK: usize = 256 * 1024;

/// What the application asked the worker to do with the response.
#[derive(Debug)]
pub enum Out {
    Head(Vec<u8>),
    Body {
        data: Vec<u8>,
        flush: bool,
    },
    Stderr(Vec<u8>),
    /// `http.response.pathsend`: the file's bytes, read by the worker; `expect` is the declared Content-Length.
    File {
        path: PathBuf,
        expect: Option<u64>,
    },
    /// The response is complete: END_REQUEST.
    End,
    /// The response cannot be completed: close the connection without END_REQUEST.
    Abandon,
}

/// How the worker's part ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    Complete,
    Abandoned,
    Gone,
}

/// The state both threads share. Python objects in it are only touched by the event loop's thread, with the GIL.
#[derive(Default)]
pub struct State {
    // ---- the loop thread writes, the worker reads ----
    pub out: VecDeque<Out>,
    /// Body bytes queued in `out` and not yet written.
    pub out_bytes: usize,
    /// `http.response.start` was received (from then on the body is read only on demand).
    pub started: bool,
    /// The last response message was queued (`End` or `Abandon`); nothing more is accepted.
    pub complete: bool,
    /// The application waits in `receive()` for body.
    pub body_wanted: bool,
    /// The application waits in `receive()` with the body all delivered: only a disconnect can answer it.
    pub watch: bool,
    /// The application waits in `send()` for the queue to drain.
    pub send_blocked: bool,
    pub status: u16,
    /// The application's task was created (the loop starts each request once).
    pub task_started: bool,
    // ---- the worker writes, the loop thread reads ----
    /// The next body message, read ahead by the worker: (bytes, more_body).
    pub chunk: Option<(Vec<u8>, bool)>,
    /// The worker has read the end of the body.
    pub body_eof: bool,
    /// The application has received the last `http.request` message.
    pub body_delivered: bool,
    /// The web server aborted the request or went away.
    pub gone: bool,
    /// The worker has ended the request (END_REQUEST sent, or the connection closed).
    pub finished: bool,
    // ---- loop thread only ----
    pub receive_waiters: Vec<Py<PyAny>>,
    pub send_waiter: Option<Py<PyAny>>,
}

impl State {
    /// Whether the worker should read the next piece of the body now.
    fn wants_read(&self) -> bool {
        self.chunk.is_none() && !self.body_eof && !self.gone && (self.body_wanted || !self.started)
    }
}

/// One request. See the module documentation.
pub struct Shared {
    pub head: RequestHead,
    pub started_at: Instant,
    state: Mutex<State>,
    worker: Condvar,
}

impl Shared {
    pub fn new(head: RequestHead) -> Arc<Self> {
        Arc::new(Self {
            head,
            started_at: Instant::now(),
            state: Mutex::new(State {
                status: 200,
                ..State::default()
            }),
            worker: Condvar::new(),
        })
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        // Never held across a Python call or a blocking operation; poisoning leaves plain data.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Wakes the worker after the state changed.
    pub fn notify_worker(&self) {
        self.worker.notify_one();
    }
}

enum Job {
    Write(Vec<Out>),
    Read,
    Poll,
}

/// The worker's side of a request: hands it to the event loop, then serves its I/O until the response is
/// complete, abandoned, or the web server went away.
pub fn drive(shared: &Arc<Shared>, bridge: &Bridge, ex: &mut Exchange) -> Ending {
    // The first piece of the body is read before the application starts: for a request without a body (nginx
    // sends the empty STDIN with the params) the application's first receive() is answered at once.
    if let Err(ending) = read_chunk(shared, bridge, ex, false) {
        finish(shared, bridge);
        return ending;
    }
    bridge.post(shared.clone());
    let ending = serve(shared, bridge, ex);
    finish(shared, bridge);
    ending
}

fn finish(shared: &Arc<Shared>, bridge: &Bridge) {
    shared.lock().finished = true;
    // Pending receive() calls get http.disconnect now.
    bridge.post(shared.clone());
}

fn gone(shared: &Arc<Shared>, bridge: &Bridge) -> Ending {
    shared.lock().gone = true;
    bridge.post(shared.clone());
    Ending::Gone
}

/// Reads the next piece of the body into the shared slot; tells the loop if the application waits for it.
fn read_chunk(shared: &Arc<Shared>, bridge: &Bridge, ex: &mut Exchange, post: bool) -> Result<(), Ending> {
    let chunk = match ex.fill_body() {
        Ok(chunk) => chunk.to_vec(),
        Err(_) => return Err(gone(shared, bridge)),
    };
    ex.consume_body(chunk.len());
    let eof = chunk.is_empty();
    let waiting = {
        let mut st = shared.lock();
        st.chunk = Some((chunk, !eof));
        st.body_eof = eof;
        st.body_wanted
    };
    if post && waiting {
        bridge.post(shared.clone());
    }
    Ok(())
}

fn serve(shared: &Arc<Shared>, bridge: &Bridge, ex: &mut Exchange) -> Ending {
    loop {
        let job = {
            let mut st = shared.lock();
            loop {
                if !st.out.is_empty() {
                    break Job::Write(st.out.drain(..).collect());
                }
                if st.wants_read() {
                    break Job::Read;
                }
                let timeout = if st.watch { WATCH_POLL } else { IDLE_POLL };
                let (guard, result) = shared
                    .worker
                    .wait_timeout(st, timeout)
                    .unwrap_or_else(PoisonError::into_inner);
                st = guard;
                if result.timed_out() && st.out.is_empty() && !st.wants_read() {
                    break Job::Poll;
                }
            }
        };
        match job {
            Job::Write(items) => {
                let mut written = 0;
                for item in items {
                    match item {
                        Out::Head(block) => ex.set_head(block),
                        Out::Body { data, flush } => {
                            written += data.len();
                            let result = ex.write(&data).and_then(|()| if flush { ex.flush() } else { Ok(()) });
                            if result.is_err() {
                                return gone(shared, bridge);
                            }
                        }
                        Out::Stderr(text) => {
                            if ex.write_stderr(&text).is_err() {
                                return gone(shared, bridge);
                            }
                        }
                        Out::File { path, expect } => match send_file(ex, &path, expect) {
                            FileSent::Complete => {}
                            FileSent::Gone => return gone(shared, bridge),
                            FileSent::Failed => {
                                ex.abandon();
                                return Ending::Abandoned;
                            }
                        },
                        Out::End => return Ending::Complete,
                        Out::Abandon => {
                            ex.abandon();
                            return Ending::Abandoned;
                        }
                    }
                }
                let release = {
                    let mut st = shared.lock();
                    st.out_bytes = st.out_bytes.saturating_sub(written);
                    let release = st.send_blocked && st.out_bytes < HIGH_WATER;
                    if release {
                        st.send_blocked = false;
                    }
                    release
                };
                if release {
                    bridge.post(shared.clone());
                }
            }
            Job::Read => {
                if let Err(ending) = read_chunk(shared, bridge, ex, true) {
                    return ending;
                }
            }
            Job::Poll => {
                if ex.is_cancelled() {
                    return gone(shared, bridge);
                }
            }
        }
    }
}

enum FileSent {
    Complete,
    Gone,
    Failed,
}

fn send_file(ex: &mut Exchange, path: &std::path::Path, expect: Option<u64>) -> FileSent {
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(err) => {
            tracing::error!(path = %path.display(), %err, "http.response.pathsend: cannot open the file; ending the connection");
            return FileSent::Failed;
        }
    };
    let mut buf = vec![0u8; FILE_BLOCK];
    let mut sent = 0u64;
    loop {
        let want = expect.map_or(buf.len(), |e| {
            usize::try_from(e.saturating_sub(sent)).map_or(buf.len(), |left| left.min(buf.len()))
        });
        if want == 0 {
            return FileSent::Complete;
        }
        let n = match file.read(&mut buf[..want]) {
            Ok(n) => n,
            Err(err) => {
                tracing::error!(path = %path.display(), %err, "http.response.pathsend: reading the file failed; ending the connection");
                return FileSent::Failed;
            }
        };
        if n == 0 {
            if expect.is_some_and(|e| sent < e) {
                tracing::error!(path = %path.display(), sent, expected = expect, "http.response.pathsend: the file is shorter than its Content-Length; ending the connection");
                return FileSent::Failed;
            }
            return FileSent::Complete;
        }
        sent += n as u64;
        if ex.write(&buf[..n]).is_err() {
            return FileSent::Gone;
        }
    }
}
