//! Windows transport: the IIS FastCGI process model. IIS starts the process with the server end of a duplex named
//! pipe as its stdin handle (`protocol="NamedPipe"`, the default; `_FCGI_X_PIPE_` holds its name) or with a
//! listening socket there (`protocol="Tcp"`), with invalid stdout and stderr, and, when
//! `signalBeforeTerminateSeconds` is set, an inheritable event whose handle value is in `_FCGI_SHUTDOWN_EVENT_`.
//! This module owns telling which, accepting connections on it (`ConnectNamedPipe` / `accept`), the
//! [`super::Stream`] for them (`FlushFileBuffers` + `DisconnectNamedPipe` on close), and turning the shutdown event
//! into a [`Shutdown`] trigger that also cuts short the waits between requests. It knows nothing of records.
//!
//! Raw Win32 through windows-sys, blocking, one connection at a time (IIS sends one request at a time per
//! process). Every pipe operation passes an OVERLAPPED with its own event, which works whether or not IIS opened
//! the pipe with `FILE_FLAG_OVERLAPPED`: on an overlapped handle a wait between requests also watches the stop
//! event and cancels with `CancelIoEx`; on a synchronous handle a watcher thread cancels it with
//! `CancelSynchronousIo`. tokio's named pipes are not used: they need an overlapped handle and cannot reuse an
//! instance across DisconnectNamedPipe/ConnectNamedPipe (mio#1983).

use std::io::{self, Read, Write};
use std::mem::{size_of, zeroed};
use std::net::{TcpListener, TcpStream};
use std::os::windows::io::{AsRawSocket, FromRawSocket, RawSocket};
use std::ptr::{null, null_mut};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use tracing::{debug, info, warn};
use windows_sys::Win32::Foundation::{
    CloseHandle, GetLastError, ERROR_BROKEN_PIPE, ERROR_IO_PENDING, ERROR_NO_DATA, ERROR_OPERATION_ABORTED,
    ERROR_PIPE_CONNECTED, ERROR_PIPE_NOT_CONNECTED, HANDLE, INVALID_HANDLE_VALUE, WAIT_FAILED, WAIT_OBJECT_0,
};
use windows_sys::Win32::Networking::WinSock::{
    getsockopt, WSAPoll, WSAStartup, POLLRDNORM, SOCKET, SOL_SOCKET, SO_ACCEPTCONN, WSADATA, WSAPOLLFD,
};
use windows_sys::Win32::Storage::FileSystem::{FlushFileBuffers, GetFileType, ReadFile, WriteFile, FILE_TYPE_PIPE};
use windows_sys::Win32::System::Console::{GetStdHandle, STD_INPUT_HANDLE};
use windows_sys::Win32::System::Pipes::{
    ConnectNamedPipe, DisconnectNamedPipe, GetNamedPipeInfo, PeekNamedPipe, SetNamedPipeHandleState,
    PIPE_READMODE_BYTE, PIPE_SERVER_END, PIPE_WAIT,
};
use windows_sys::Win32::System::Threading::{
    CreateEventW, GetCurrentThreadId, OpenThread, SetEvent, WaitForMultipleObjects, WaitForSingleObject, INFINITE,
    THREAD_TERMINATE,
};
use windows_sys::Win32::System::IO::{CancelIoEx, CancelSynchronousIo, GetOverlappedResult, OVERLAPPED};

use super::{PeerFilter, Shutdown, Stream};

/// The environment variable in which IIS passes the pipe's name.
pub const PIPE_NAME_VAR: &str = "_FCGI_X_PIPE_";
/// The environment variable in which IIS passes the shutdown event's handle value (decimal).
pub const SHUTDOWN_EVENT_VAR: &str = "_FCGI_SHUTDOWN_EVENT_";

/// How long the last response may take to be read by IIS before the process exits anyway.
const EXIT_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);
/// Granularity of the stop check while a TCP-mode wait polls its socket.
const SOCKET_POLL_MS: i32 = 50;

/// Why the stdin handle cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum IisError {
    #[error("{0}")]
    NotIis(String),
    #[error("cannot set up the IIS connection: {0}")]
    Setup(io::Error),
}

fn win_error(code: u32) -> io::Error {
    match code {
        ERROR_BROKEN_PIPE | ERROR_PIPE_NOT_CONNECTED | ERROR_NO_DATA => {
            io::Error::new(io::ErrorKind::BrokenPipe, io::Error::from_raw_os_error(code as i32))
        }
        _ => io::Error::from_raw_os_error(code as i32),
    }
}

fn last_error() -> u32 {
    // SAFETY: reads the calling thread's last-error value.
    unsafe { GetLastError() }
}

fn is_disconnect(code: u32) -> bool {
    matches!(code, ERROR_BROKEN_PIPE | ERROR_PIPE_NOT_CONNECTED | ERROR_NO_DATA)
}

/// A Win32 event, closed on drop.
struct Event(HANDLE);

// SAFETY: an event handle may be used and closed from any thread.
unsafe impl Send for Event {}
// SAFETY: as above; SetEvent and waits are thread-safe.
unsafe impl Sync for Event {}

impl Event {
    /// A manual-reset, non-signalled, non-inheritable event.
    fn new() -> io::Result<Self> {
        // SAFETY: plain creation with null attributes and no name.
        let handle = unsafe { CreateEventW(null(), 1, 0, null()) };
        if handle.is_null() {
            return Err(io::Error::last_os_error());
        }
        Ok(Self(handle))
    }

    fn set(&self) {
        // SAFETY: the handle is a valid event for our lifetime.
        unsafe { SetEvent(self.0) };
    }

    fn is_set(&self) -> bool {
        // SAFETY: as above; a zero timeout only polls.
        unsafe { WaitForSingleObject(self.0, 0) == WAIT_OBJECT_0 }
    }
}

impl Drop for Event {
    fn drop(&mut self) {
        // SAFETY: we own the handle.
        unsafe { CloseHandle(self.0) };
    }
}

thread_local! {
    /// A handle to the current thread with the access `CancelSynchronousIo` needs. Opened once per thread that
    /// waits, and kept for the thread's life (a few threads at most).
    static THIS_THREAD: usize = {
        // SAFETY: opens a handle to the calling thread.
        unsafe { OpenThread(THREAD_TERMINATE, 0, GetCurrentThreadId()) as usize }
    };
}

/// The stop signal as Win32 waits see it: an event set when [`Shutdown`] triggers, and the thread (if any) that
/// is blocked right now in a synchronous wait that a stop may cancel.
pub struct StopSignal {
    event: Event,
    /// The thread in a cancellable wait, as a raw handle value. The watcher holds this lock while it calls
    /// `CancelSynchronousIo`, and the waiting thread takes it to disarm, so a cancel can only ever hit the wait
    /// it was meant for.
    armed: Mutex<Option<usize>>,
}

struct Armed<'a>(&'a StopSignal);

impl Drop for Armed<'_> {
    fn drop(&mut self) {
        if let Ok(mut armed) = self.0.armed.lock() {
            *armed = None;
        }
    }
}

impl StopSignal {
    /// A stop signal tied to `shutdown`, with its watcher thread. `iis_event` is IIS's shutdown event, whose
    /// signal triggers `shutdown`.
    ///
    /// # Errors
    /// When the event or the thread cannot be created.
    pub fn new(shutdown: &Shutdown, iis_event: Option<HANDLE>) -> io::Result<Arc<Self>> {
        let stop = Arc::new(Self {
            event: Event::new()?,
            armed: Mutex::new(None),
        });
        let waker = stop.clone();
        shutdown.on_trigger(move || waker.event.set());
        let watcher = stop.clone();
        let shutdown = shutdown.clone();
        let iis_event = iis_event.map(|h| h as usize);
        std::thread::Builder::new()
            .name("pyfcgi-stop".into())
            .spawn(move || watcher.watch(&shutdown, iis_event))?;
        Ok(stop)
    }

    pub fn is_set(&self) -> bool {
        self.event.is_set()
    }

    fn watch(&self, shutdown: &Shutdown, iis_event: Option<usize>) {
        let mut handles = vec![self.event.0];
        handles.extend(iis_event.map(|h| h as HANDLE));
        // SAFETY: both handles stay valid for the process's life (ours is never dropped while this thread runs,
        // since the thread holds an Arc; IIS's is inherited and never closed).
        let woken = unsafe { WaitForMultipleObjects(handles.len() as u32, handles.as_ptr(), 0, INFINITE) };
        if woken == WAIT_OBJECT_0 + 1 {
            info!("IIS signalled {SHUTDOWN_EVENT_VAR}: finishing the request in flight, then exiting");
            shutdown.trigger();
        } else if woken == WAIT_FAILED {
            warn!(
                error = %io::Error::last_os_error(),
                "cannot wait for the shutdown event; IIS will have to terminate the process"
            );
            return;
        }
        // Cancel the synchronous wait in progress, if any. A thread that arms after this sees the event set and
        // does not wait. ERROR_NOT_FOUND means the thread armed but has not entered the call yet: try again.
        loop {
            let Ok(armed) = self.armed.lock() else { return };
            let Some(thread) = *armed else { return };
            // SAFETY: the thread handle was opened with THREAD_TERMINATE and is never closed.
            if unsafe { CancelSynchronousIo(thread as HANDLE) } != 0 {
                return;
            }
            drop(armed);
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Marks the calling thread as about to wait in a way a stop may cancel. `None` when the stop was already
    /// asked for (then do not wait).
    fn arm(&self) -> Option<Armed<'_>> {
        let thread = THIS_THREAD.with(|t| *t);
        if let Ok(mut armed) = self.armed.lock() {
            *armed = (thread != 0).then_some(thread);
        }
        let guard = Armed(self);
        if self.is_set() {
            return None;
        }
        Some(guard)
    }
}

/// What an overlapped-capable operation came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Io {
    Done(u32),
    Failed(u32),
    /// Cut short (or not started) because a stop was asked for.
    Stopped,
}

/// The server end of the IIS pipe. Not owned: the handle is the process's stdin, valid for its whole life.
pub struct Pipe {
    handle: HANDLE,
    stop: Arc<StopSignal>,
    name: String,
}

// SAFETY: the pipe handle may be used from any thread; the server uses it from one thread at a time.
unsafe impl Send for Pipe {}
// SAFETY: as above.
unsafe impl Sync for Pipe {}

impl Pipe {
    /// Wraps the server end of a named pipe.
    ///
    /// # Safety
    /// `handle` must be a named-pipe server handle that stays open for the life of the returned value.
    pub unsafe fn new(handle: HANDLE, stop: Arc<StopSignal>, name: String) -> Self {
        Self { handle, stop, name }
    }

    /// Runs one operation with an OVERLAPPED and its own event, and waits for it. With `cancellable`, a stop
    /// cuts the wait short (`Io::Stopped`); an operation that completed anyway still reports its result.
    fn overlapped(&self, cancellable: bool, start: &mut dyn FnMut(*mut OVERLAPPED, *mut u32) -> i32) -> io::Result<Io> {
        let event = Event::new()?;
        // SAFETY: OVERLAPPED is plain data; all-zero is its documented initial state.
        let mut ov: OVERLAPPED = unsafe { zeroed() };
        ov.hEvent = event.0;
        let _armed = if cancellable {
            match self.stop.arm() {
                Some(armed) => Some(armed),
                None => return Ok(Io::Stopped),
            }
        } else {
            None
        };
        let mut n = 0u32;
        if start(&mut ov, &mut n) != 0 {
            return Ok(Io::Done(n));
        }
        let err = last_error();
        if err == ERROR_OPERATION_ABORTED && cancellable && self.stop.is_set() {
            return Ok(Io::Stopped);
        }
        if err != ERROR_IO_PENDING {
            return Ok(Io::Failed(err));
        }
        // From here on the operation refers to `ov` and the caller's buffer: wait for it to complete, whatever
        // happens, before returning.
        if cancellable {
            let handles = [event.0, self.stop.event.0];
            // SAFETY: both events are valid for the duration of the wait.
            let woken = unsafe { WaitForMultipleObjects(2, handles.as_ptr(), 0, INFINITE) };
            if woken == WAIT_OBJECT_0 + 1 {
                // SAFETY: cancels only this operation; `ov` is still alive.
                unsafe { CancelIoEx(self.handle, &ov) };
            }
        }
        // SAFETY: `ov` is the operation's OVERLAPPED; TRUE waits for completion (or for the cancel to land).
        if unsafe { GetOverlappedResult(self.handle, &ov, &mut n, 1) } != 0 {
            return Ok(Io::Done(n));
        }
        match last_error() {
            ERROR_OPERATION_ABORTED if cancellable => Ok(Io::Stopped),
            err => Ok(Io::Failed(err)),
        }
    }

    /// Waits for IIS to connect. `Ok(false)`: a stop was asked for first. A client that connected and left
    /// before we looked (`ERROR_NO_DATA`) is disconnected and waited for again.
    pub fn connect(&self) -> io::Result<bool> {
        loop {
            // SAFETY: the handle is valid; `ov` outlives the operation (see `overlapped`).
            match self.overlapped(true, &mut |ov, _| unsafe { ConnectNamedPipe(self.handle, ov) })? {
                Io::Done(_) | Io::Failed(ERROR_PIPE_CONNECTED) => return Ok(true),
                Io::Stopped => return Ok(false),
                Io::Failed(ERROR_NO_DATA) => {
                    debug!(pipe = %self.name, "a client connected and left before it was served; waiting again");
                    self.disconnect();
                }
                Io::Failed(err) => return Err(win_error(err)),
            }
        }
    }

    /// Reads what is there (blocking until something is). `Ok(None)` at the end of the connection;
    /// `Err(Interrupted)` when `cancellable` and a stop cut the wait short.
    fn read(&self, buf: &mut [u8], cancellable: bool) -> io::Result<Option<usize>> {
        let len = u32::try_from(buf.len()).unwrap_or(u32::MAX);
        loop {
            let ptr = buf.as_mut_ptr();
            // SAFETY: `buf` is valid for `len` bytes until the operation completes (`overlapped` waits for it).
            match self.overlapped(cancellable, &mut |ov, n| unsafe {
                ReadFile(self.handle, ptr, len, n, ov)
            })? {
                Io::Done(0) if len > 0 => {
                    // A zero-length write by the client, not the end: the end is an error on a pipe. Make sure.
                    if self.available()?.is_none() {
                        return Ok(None);
                    }
                }
                Io::Done(n) => return Ok(Some(n as usize)),
                Io::Stopped => return Err(io::ErrorKind::Interrupted.into()),
                Io::Failed(err) if is_disconnect(err) => return Ok(None),
                Io::Failed(err) => return Err(win_error(err)),
            }
        }
    }

    /// Bytes waiting to be read, without blocking; `None` when the client has gone.
    fn available(&self) -> io::Result<Option<u32>> {
        let mut avail = 0u32;
        // SAFETY: only the count is asked for.
        if unsafe { PeekNamedPipe(self.handle, null_mut(), 0, null_mut(), &mut avail, null_mut()) } != 0 {
            return Ok(Some(avail));
        }
        match last_error() {
            err if is_disconnect(err) => Ok(None),
            err => Err(win_error(err)),
        }
    }

    fn write_all(&self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            let len = u32::try_from(buf.len()).unwrap_or(u32::MAX);
            let ptr = buf.as_ptr();
            // SAFETY: `buf` is valid for `len` bytes until the operation completes.
            match self.overlapped(false, &mut |ov, n| unsafe { WriteFile(self.handle, ptr, len, n, ov) })? {
                Io::Done(0) => return Err(io::ErrorKind::WriteZero.into()),
                Io::Done(n) => buf = &buf[(n as usize).min(buf.len())..],
                Io::Failed(err) => return Err(win_error(err)),
                Io::Stopped => return Err(io::ErrorKind::Interrupted.into()),
            }
        }
        Ok(())
    }

    /// Waits until the client has read everything written (a disconnect would discard it).
    fn flush(&self) -> io::Result<()> {
        // SAFETY: the handle is valid.
        if unsafe { FlushFileBuffers(self.handle) } != 0 {
            return Ok(());
        }
        Err(win_error(last_error()))
    }

    fn disconnect(&self) {
        // SAFETY: the handle is valid; disconnecting an unconnected instance only fails.
        if unsafe { DisconnectNamedPipe(self.handle) } == 0 {
            debug!(pipe = %self.name, error = %io::Error::last_os_error(), "DisconnectNamedPipe failed");
        }
    }

    /// Flushes before the process exits, giving up after `timeout` (a client that stopped reading must not keep
    /// the process alive).
    fn flush_before_exit(&self, timeout: Duration) {
        let handle = self.handle as usize;
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("pyfcgi-flush".into())
            // SAFETY: the pipe handle stays valid for the process's life.
            .spawn(move || {
                let _ = done_tx.send(unsafe { FlushFileBuffers(handle as HANDLE) });
            });
        if spawned.is_ok() && done_rx.recv_timeout(timeout).is_err() {
            warn!(pipe = %self.name, "IIS did not read the last response within {timeout:?}; exiting anyway");
        }
    }
}

/// How a connection ended, filled in by its stream and read by the accept loop once it is served.
#[derive(Debug, Default)]
pub struct ConnState {
    /// The peer closed its end (read or write saw the pipe broken).
    eof: AtomicBool,
    /// We ended the connection ([`Stream::close`]).
    closed: AtomicBool,
}

impl ConnState {
    pub fn peer_closed(&self) -> bool {
        self.eof.load(Ordering::Acquire)
    }

    pub fn closed_by_us(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

/// One connection on the IIS pipe.
pub struct PipeStream {
    pipe: Arc<Pipe>,
    state: Arc<ConnState>,
    idle: bool,
    peer: String,
}

impl PipeStream {
    fn gone(&self) {
        self.state.eof.store(true, Ordering::Release);
    }
}

impl Stream for PipeStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.pipe.read(buf, self.idle) {
            Ok(Some(n)) => Ok(n),
            Ok(None) => {
                self.gone();
                Ok(0)
            }
            // A stop cut the wait for the next request short: end the connection as if it had closed.
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                debug!("stop requested while idle");
                Ok(0)
            }
            Err(e) => {
                if e.kind() == io::ErrorKind::BrokenPipe {
                    self.gone();
                }
                Err(e)
            }
        }
    }

    fn try_read(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        match self.pipe.available()? {
            None => {
                self.gone();
                Ok(Some(0))
            }
            Some(0) => Ok(None),
            Some(avail) => {
                let len = buf.len().min(avail as usize);
                match self.pipe.read(&mut buf[..len], false)? {
                    Some(n) => Ok(Some(n)),
                    None => {
                        self.gone();
                        Ok(Some(0))
                    }
                }
            }
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        let result = self.pipe.write_all(buf);
        if matches!(&result, Err(e) if e.kind() == io::ErrorKind::BrokenPipe) {
            self.gone();
        }
        result
    }

    fn close(&mut self) -> io::Result<()> {
        self.state.closed.store(true, Ordering::Release);
        // Disconnecting discards what the client has not read yet, so wait for it to read everything first.
        if let Err(err) = self.pipe.flush() {
            debug!(%err, "FlushFileBuffers before disconnecting failed");
        }
        self.pipe.disconnect();
        Ok(())
    }

    fn peer(&self) -> &str {
        &self.peer
    }

    fn set_idle(&mut self, idle: bool) {
        self.idle = idle;
    }
}

/// One connection accepted in TCP mode.
pub struct TcpConn {
    stream: TcpStream,
    stop: Arc<StopSignal>,
    idle: bool,
    peer: String,
}

/// Waits until `socket` is readable (or has an error to report). `Ok(false)`: a stop was asked for first.
fn wait_readable(socket: RawSocket, stop: &StopSignal) -> io::Result<bool> {
    loop {
        if stop.is_set() {
            return Ok(false);
        }
        let mut fd = WSAPOLLFD {
            fd: socket as SOCKET,
            events: POLLRDNORM,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        match unsafe { WSAPoll(&mut fd, 1, SOCKET_POLL_MS) } {
            0 => {}
            n if n > 0 => return Ok(true),
            _ => return Err(io::Error::last_os_error()),
        }
    }
}

impl Stream for TcpConn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.idle && !wait_readable(self.stream.as_raw_socket(), &self.stop)? {
            return Ok(0);
        }
        loop {
            match self.stream.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Ok(0),
                other => return other,
            }
        }
    }

    fn try_read(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        let mut fd = WSAPOLLFD {
            fd: self.stream.as_raw_socket() as SOCKET,
            events: POLLRDNORM,
            revents: 0,
        };
        // SAFETY: one valid pollfd; zero timeout.
        match unsafe { WSAPoll(&mut fd, 1, 0) } {
            0 => Ok(None),
            n if n > 0 => match self.stream.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => Ok(Some(0)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
                other => other.map(Some),
            },
            _ => Err(io::Error::last_os_error()),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.stream.write_all(buf)
    }

    fn close(&mut self) -> io::Result<()> {
        match self.stream.shutdown(std::net::Shutdown::Write) {
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
            other => other,
        }
    }

    fn peer(&self) -> &str {
        &self.peer
    }

    fn set_idle(&mut self, idle: bool) {
        self.idle = idle;
    }
}

/// A connection from [`IisListener::accept`].
pub enum IisStream {
    Pipe(PipeStream),
    Tcp(TcpConn),
}

impl Stream for IisStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Pipe(s) => s.read(buf),
            Self::Tcp(s) => s.read(buf),
        }
    }

    fn try_read(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        match self {
            Self::Pipe(s) => s.try_read(buf),
            Self::Tcp(s) => s.try_read(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Self::Pipe(s) => s.write_all(buf),
            Self::Tcp(s) => s.write_all(buf),
        }
    }

    fn close(&mut self) -> io::Result<()> {
        match self {
            Self::Pipe(s) => s.close(),
            Self::Tcp(s) => s.close(),
        }
    }

    fn peer(&self) -> &str {
        match self {
            Self::Pipe(s) => s.peer(),
            Self::Tcp(s) => s.peer(),
        }
    }

    fn set_idle(&mut self, idle: bool) {
        match self {
            Self::Pipe(s) => s.set_idle(idle),
            Self::Tcp(s) => s.set_idle(idle),
        }
    }
}

type Incoming = io::Result<(TcpStream, std::net::SocketAddr)>;

enum Kind {
    Pipe(Arc<Pipe>),
    /// Connections accepted by a thread blocked in `accept`, handed over one at a time. Waiting on the
    /// listening socket itself (WSAPoll, select) would be the direct way, but Wine 8 answers WSAENOTSOCK for
    /// those on an inherited socket, while `accept` works.
    Tcp {
        incoming: Mutex<mpsc::Receiver<Incoming>>,
        address: String,
        filter: PeerFilter,
    },
}

/// Where IIS's connections come from: the stdin handle, as a named pipe or a listening socket.
pub struct IisListener {
    kind: Kind,
    stop: Arc<StopSignal>,
}

/// Whether this process runs under IIS's FastCGI module (or something that starts it the same way): stdin is
/// the server end of a named pipe or a listening socket.
pub fn stdin_is_iis() -> bool {
    matches!(classify_stdin(), Ok(StdinKind::Pipe(_) | StdinKind::Socket(_)))
}

enum StdinKind {
    Pipe(HANDLE),
    Socket(SOCKET),
}

fn classify_stdin() -> Result<StdinKind, String> {
    // SAFETY: queries the process's standard input handle.
    let handle = unsafe { GetStdHandle(STD_INPUT_HANDLE) };
    if handle.is_null() || handle == INVALID_HANDLE_VALUE {
        return Err("the process has no stdin handle".into());
    }
    // SAFETY: the handle is valid; GetFileType only inspects it.
    let file_type = unsafe { GetFileType(handle) };
    if file_type == FILE_TYPE_PIPE {
        let mut flags = 0u32;
        // SAFETY: only the flags are asked for.
        if unsafe { GetNamedPipeInfo(handle, &mut flags, null_mut(), null_mut(), null_mut()) } != 0 {
            if flags & PIPE_SERVER_END != 0 {
                return Ok(StdinKind::Pipe(handle));
            }
            return Err("stdin is the client end of a pipe".into());
        }
    }
    // Sockets are pipes to GetFileType, but GetNamedPipeInfo fails on them. Winsock must be started before a
    // socket can be inspected.
    // SAFETY: WSADATA is plain data filled in by WSAStartup.
    let mut data: WSADATA = unsafe { zeroed() };
    // SAFETY: version 2.2, as std uses; the matching WSACleanup is process exit.
    if unsafe { WSAStartup(0x0202, &mut data) } != 0 {
        return Err(format!("WSAStartup failed: {}", io::Error::last_os_error()));
    }
    let socket = handle as SOCKET;
    let mut listening = 0i32;
    let mut len = size_of::<i32>() as i32;
    // SAFETY: a 4-byte option into a 4-byte buffer.
    let ok = unsafe {
        getsockopt(
            socket,
            SOL_SOCKET,
            SO_ACCEPTCONN,
            (&mut listening as *mut i32).cast(),
            &mut len,
        )
    } == 0;
    if ok && listening != 0 {
        return Ok(StdinKind::Socket(socket));
    }
    if ok {
        return Err("stdin is a socket that is not listening".into());
    }
    // Wine 8 does not implement SO_ACCEPTCONN (it answers WSAENOTSOCK for a real listening socket): accept any
    // bound socket; accept() reports the rest.
    // SAFETY: borrowed only for the query; ManuallyDrop keeps it open.
    let bound = std::mem::ManuallyDrop::new(unsafe { TcpListener::from_raw_socket(socket as RawSocket) });
    if bound.local_addr().is_ok() {
        debug!("SO_ACCEPTCONN unavailable; stdin is a bound socket");
        return Ok(StdinKind::Socket(socket));
    }
    Err(format!(
        "stdin is neither a named pipe server end nor a listening socket (file type {file_type})"
    ))
}

impl IisListener {
    /// Takes over the stdin handle IIS passed, and ties IIS's shutdown event (if any) to `shutdown`.
    ///
    /// # Errors
    /// [`IisError::NotIis`] when stdin is not an IIS pipe or listening socket.
    pub fn from_stdin(shutdown: &Shutdown, filter: PeerFilter) -> Result<Self, IisError> {
        let kind = classify_stdin().map_err(IisError::NotIis)?;
        let iis_event = match std::env::var(SHUTDOWN_EVENT_VAR) {
            Ok(value) => match value.trim().parse::<usize>() {
                Ok(h) if h != 0 => Some(h as HANDLE),
                _ => {
                    warn!("{SHUTDOWN_EVENT_VAR}={value:?} is not a handle value; ignoring it");
                    None
                }
            },
            Err(_) => None,
        };
        let stop = StopSignal::new(shutdown, iis_event).map_err(IisError::Setup)?;
        let kind = match kind {
            StdinKind::Pipe(handle) => {
                let name = std::env::var(PIPE_NAME_VAR).unwrap_or_else(|_| "stdin pipe".into());
                let mode = PIPE_READMODE_BYTE | PIPE_WAIT;
                // SAFETY: sets byte/blocking mode on our pipe handle, as php-cgi does; failure is harmless.
                unsafe { SetNamedPipeHandleState(handle, &mode, null(), null()) };
                info!(pipe = %name, shutdown_event = iis_event.is_some(), "serving IIS FastCGI on a named pipe");
                // SAFETY: stdin stays open for the process's life.
                Kind::Pipe(Arc::new(unsafe { Pipe::new(handle, stop.clone(), name) }))
            }
            StdinKind::Socket(socket) => {
                // SAFETY: the listening socket IIS passed is ours from now on.
                let listener = unsafe { TcpListener::from_raw_socket(socket as RawSocket) };
                let address = listener.local_addr().map_or_else(|_| "?".into(), |a| a.to_string());
                let (handover, incoming) = mpsc::sync_channel::<Incoming>(0);
                std::thread::Builder::new()
                    .name("pyfcgi-accept".into())
                    .spawn(move || loop {
                        let accepted = listener.accept();
                        let failed = accepted.is_err();
                        if handover.send(accepted).is_err() {
                            return;
                        }
                        if failed {
                            std::thread::sleep(Duration::from_millis(SOCKET_POLL_MS as u64));
                        }
                    })
                    .map_err(IisError::Setup)?;
                info!(%address, shutdown_event = iis_event.is_some(), "serving IIS FastCGI on a listening socket");
                Kind::Tcp {
                    incoming: Mutex::new(incoming),
                    address,
                    filter,
                }
            }
        };
        Ok(Self { kind, stop })
    }

    /// "named pipe" or "tcp", for log lines.
    pub fn mode(&self) -> &'static str {
        match self.kind {
            Kind::Pipe(_) => "named pipe",
            Kind::Tcp { .. } => "tcp",
        }
    }

    /// Waits for the next connection. `Ok(None)` when a stop was asked for first.
    ///
    /// # Errors
    /// When the pipe or socket fails (the process should exit).
    pub fn accept(&self) -> io::Result<Option<(IisStream, Arc<ConnState>)>> {
        let state = Arc::new(ConnState::default());
        match &self.kind {
            Kind::Pipe(pipe) => {
                if !pipe.connect()? {
                    return Ok(None);
                }
                debug!(pipe = %pipe.name, "IIS connected");
                let stream = PipeStream {
                    pipe: pipe.clone(),
                    state: state.clone(),
                    idle: false,
                    peer: pipe.name.clone(),
                };
                Ok(Some((IisStream::Pipe(stream), state)))
            }
            Kind::Tcp {
                incoming,
                address: listening,
                filter,
            } => {
                let incoming = incoming
                    .lock()
                    .map_err(|_| io::Error::other("the accept thread's channel is poisoned"))?;
                loop {
                    if self.stop.is_set() {
                        return Ok(None);
                    }
                    let (stream, address) = match incoming.recv_timeout(Duration::from_millis(SOCKET_POLL_MS as u64)) {
                        Ok(Ok(accepted)) => accepted,
                        Ok(Err(e))
                            if matches!(e.kind(), io::ErrorKind::ConnectionReset | io::ErrorKind::Interrupted) =>
                        {
                            continue
                        }
                        Ok(Err(e)) => {
                            return Err(io::Error::new(e.kind(), format!("accept on {listening}: {e}")));
                        }
                        Err(mpsc::RecvTimeoutError::Timeout) => continue,
                        Err(mpsc::RecvTimeoutError::Disconnected) => {
                            return Err(io::Error::other("the accept thread ended"));
                        }
                    };
                    if !filter.allows(address.ip()) {
                        warn!(peer = %address, "connection refused: not in FCGI_WEB_SERVER_ADDRS");
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    let conn = TcpConn {
                        stream,
                        stop: self.stop.clone(),
                        idle: false,
                        peer: address.to_string(),
                    };
                    return Ok(Some((IisStream::Tcp(conn), state)));
                }
            }
        }
    }

    /// Called once a connection has been served: whether to wait for another one. The process ends when a stop
    /// was asked for, and, on the pipe, when IIS closed it (IIS keeps one connection per process for its whole
    /// life, so a closed pipe means it is done with us; wfastcgi exits there too).
    pub fn after_connection(&self, state: &ConnState, shutdown: &Shutdown) -> bool {
        match &self.kind {
            Kind::Pipe(pipe) => {
                if state.peer_closed() {
                    info!("IIS closed the pipe; exiting");
                    return false;
                }
                if shutdown.is_triggered() {
                    if !state.closed_by_us() {
                        pipe.flush_before_exit(EXIT_FLUSH_TIMEOUT);
                    }
                    return false;
                }
                if !state.closed_by_us() {
                    // Ended without a close (a failed request): make sure the client sees the end.
                    pipe.disconnect();
                }
                true
            }
            Kind::Tcp { .. } => !shutdown.is_triggered(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::windows::ffi::OsStrExt;
    use std::time::Instant;
    use windows_sys::Win32::Security::SECURITY_ATTRIBUTES;
    use windows_sys::Win32::Storage::FileSystem::{
        CreateFileW, FILE_FLAG_OVERLAPPED, OPEN_EXISTING, PIPE_ACCESS_DUPLEX,
    };
    use windows_sys::Win32::System::Pipes::{CreateNamedPipeW, PIPE_TYPE_BYTE};

    const GENERIC_READ: u32 = 0x8000_0000;
    const GENERIC_WRITE: u32 = 0x4000_0000;

    fn wide(s: &str) -> Vec<u16> {
        std::ffi::OsStr::new(s).encode_wide().chain(Some(0)).collect()
    }

    struct Server {
        handle: HANDLE,
        name: String,
    }
    // SAFETY: test handle used from the threads of one test.
    unsafe impl Send for Server {}

    impl Drop for Server {
        fn drop(&mut self) {
            // SAFETY: owned by the test.
            unsafe { CloseHandle(self.handle) };
        }
    }

    fn server(tag: &str, overlapped: bool) -> Server {
        let name = format!(r"\\.\pipe\pyfcgi-test-{}-{tag}", std::process::id());
        let sa = SECURITY_ATTRIBUTES {
            nLength: size_of::<SECURITY_ATTRIBUTES>() as u32,
            lpSecurityDescriptor: null_mut(),
            bInheritHandle: 0,
        };
        let flags = PIPE_ACCESS_DUPLEX | if overlapped { FILE_FLAG_OVERLAPPED } else { 0 };
        // SAFETY: a fresh pipe with a unique name.
        let handle = unsafe {
            CreateNamedPipeW(
                wide(&name).as_ptr(),
                flags,
                PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT,
                1,
                65536,
                65536,
                0,
                &sa,
            )
        };
        assert_ne!(handle, INVALID_HANDLE_VALUE, "CreateNamedPipeW");
        Server { handle, name }
    }

    fn client(name: &str) -> std::fs::File {
        use std::os::windows::io::FromRawHandle;
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            // SAFETY: opens the client end of a test pipe.
            let h = unsafe {
                CreateFileW(
                    wide(name).as_ptr(),
                    GENERIC_READ | GENERIC_WRITE,
                    0,
                    null(),
                    OPEN_EXISTING,
                    0,
                    null_mut(),
                )
            };
            if h != INVALID_HANDLE_VALUE {
                // SAFETY: we own the new handle.
                return unsafe { std::fs::File::from_raw_handle(h) };
            }
            assert!(
                Instant::now() < deadline,
                "cannot connect: {}",
                io::Error::last_os_error()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Reads until the server disconnects (ERROR_PIPE_NOT_CONNECTED) or closes (ERROR_BROKEN_PIPE).
    fn read_to_end(c: &mut std::fs::File) -> Vec<u8> {
        let mut got = Vec::new();
        let mut buf = [0u8; 65536];
        loop {
            match c.read(&mut buf) {
                Ok(0) => return got,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.raw_os_error().is_some_and(|c| is_disconnect(c as u32)) => return got,
                Err(e) => panic!("client read: {e}"),
            }
        }
    }

    fn pipe_for(server: &Server, shutdown: &Shutdown) -> Arc<Pipe> {
        let stop = StopSignal::new(shutdown, None).unwrap();
        // SAFETY: the server handle outlives the pipe in each test.
        Arc::new(unsafe { Pipe::new(server.handle, stop, server.name.clone()) })
    }

    fn stream(pipe: &Arc<Pipe>) -> (PipeStream, Arc<ConnState>) {
        let state = Arc::new(ConnState::default());
        let stream = PipeStream {
            pipe: pipe.clone(),
            state: state.clone(),
            idle: false,
            peer: "test".into(),
        };
        (stream, state)
    }

    fn round_trip(overlapped: bool) {
        let srv = server(if overlapped { "rt-ov" } else { "rt-sync" }, overlapped);
        let shutdown = Shutdown::new();
        let pipe = pipe_for(&srv, &shutdown);
        let name = srv.name.clone();
        let peer = std::thread::spawn(move || {
            let mut c = client(&name);
            c.write_all(b"ping").unwrap();
            read_to_end(&mut c)
        });
        assert!(pipe.connect().unwrap());
        let (mut s, state) = stream(&pipe);
        let mut buf = [0u8; 16];
        let mut n = 0;
        while n < 4 {
            n += s.read(&mut buf[n..]).unwrap();
        }
        assert_eq!(&buf[..4], b"ping");
        assert_eq!(s.try_read(&mut buf).unwrap(), None);
        s.write_all(&vec![b'x'; 200_000]).unwrap();
        s.close().unwrap();
        assert!(state.closed_by_us() && !state.peer_closed());
        assert_eq!(
            peer.join().unwrap().len(),
            200_000,
            "everything written arrives before the disconnect"
        );

        // The same instance serves the next client, whose close is the end of the stream.
        let name = srv.name.clone();
        let peer = std::thread::spawn(move || {
            let mut c = client(&name);
            c.write_all(b"bye").unwrap();
        });
        assert!(pipe.connect().unwrap());
        let (mut s, state) = stream(&pipe);
        peer.join().unwrap();
        let mut got = Vec::new();
        loop {
            match s.read(&mut buf).unwrap() {
                0 => break,
                n => got.extend_from_slice(&buf[..n]),
            }
        }
        assert_eq!(got, b"bye");
        assert!(state.peer_closed());
        assert_eq!(s.try_read(&mut buf).unwrap(), Some(0));
    }

    #[test]
    fn round_trip_and_reconnect_overlapped() {
        round_trip(true);
    }

    #[test]
    fn round_trip_and_reconnect_synchronous() {
        round_trip(false);
    }

    #[test]
    fn client_gone_before_connect_is_waited_for_again() {
        let srv = server("nodata", true);
        drop(client(&srv.name)); // connects and leaves before ConnectNamedPipe: ERROR_NO_DATA
        let shutdown = Shutdown::new();
        let pipe = pipe_for(&srv, &shutdown);
        let name = srv.name.clone();
        let peer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            let mut c = client(&name);
            c.write_all(b"hi").unwrap();
            c
        });
        assert!(pipe.connect().unwrap());
        let (mut s, _) = stream(&pipe);
        let mut buf = [0u8; 2];
        let mut n = 0;
        while n < 2 {
            n += s.read(&mut buf[n..]).unwrap();
        }
        assert_eq!(&buf, b"hi");
        drop(peer.join().unwrap());
    }

    fn stop_cancels_waits(overlapped: bool) {
        let srv = server(if overlapped { "stop-ov" } else { "stop-sync" }, overlapped);
        let shutdown = Shutdown::new();
        let pipe = pipe_for(&srv, &shutdown);

        // A pending ConnectNamedPipe.
        let trigger = shutdown.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            trigger.trigger();
        });
        let started = Instant::now();
        assert!(!pipe.connect().unwrap(), "a stop ends the wait for a connection");
        assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
        t.join().unwrap();
        // Once stopped, cancellable waits do not start.
        assert!(!pipe.connect().unwrap());
    }

    #[test]
    fn stop_cancels_connect_overlapped() {
        stop_cancels_waits(true);
    }

    #[test]
    fn stop_cancels_connect_synchronous() {
        stop_cancels_waits(false);
    }

    fn stop_ends_idle_read_only(overlapped: bool) {
        let srv = server(if overlapped { "idle-ov" } else { "idle-sync" }, overlapped);
        let shutdown = Shutdown::new();
        let pipe = pipe_for(&srv, &shutdown);
        let name = srv.name.clone();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let peer = std::thread::spawn(move || {
            let mut c = client(&name);
            rx.recv().unwrap();
            std::thread::sleep(Duration::from_millis(300));
            c.write_all(b"late").unwrap();
            std::thread::sleep(Duration::from_millis(200));
        });
        assert!(pipe.connect().unwrap());
        let (mut s, _) = stream(&pipe);
        // A read inside a request is not cut short by a stop: it gets the data that arrives later.
        shutdown.trigger();
        tx.send(()).unwrap();
        let mut buf = [0u8; 8];
        let started = Instant::now();
        let n = s.read(&mut buf).unwrap();
        assert_eq!(&buf[..n], &b"late"[..n]);
        assert!(started.elapsed() >= Duration::from_millis(250));
        // A read between requests ends at once.
        s.set_idle(true);
        let started = Instant::now();
        loop {
            if s.read(&mut buf).unwrap() == 0 {
                break;
            }
        }
        assert!(started.elapsed() < Duration::from_secs(1));
        peer.join().unwrap();
    }

    #[test]
    fn stop_ends_idle_read_only_overlapped() {
        stop_ends_idle_read_only(true);
    }

    #[test]
    fn stop_ends_idle_read_only_synchronous() {
        stop_ends_idle_read_only(false);
    }
}
