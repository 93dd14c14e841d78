//! The IIS side of the FastCGI process model, as IIS's FastCGI module does it: create the pipe
//! (`\\.\pipe\IISFCGI-<guid>`, duplex, byte mode, inheritable) or a listening socket, start the application with
//! it as `hStdInput`, invalid stdout and stderr, `_FCGI_X_PIPE_` and an inheritable `_FCGI_SHUTDOWN_EVENT_`, then
//! connect to it as the client. Also a watchdog that terminates a child that outlives its scenario.

use std::io::{self, Read, Write};
use std::mem::{size_of, zeroed};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::windows::ffi::OsStrExt;
use std::os::windows::io::AsRawSocket;
use std::path::PathBuf;
use std::ptr::{null, null_mut};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use windows_sys::Win32::Foundation::{
    CloseHandle, GetLastError, SetHandleInformation, ERROR_BROKEN_PIPE, ERROR_IO_PENDING, ERROR_NO_DATA,
    ERROR_PIPE_NOT_CONNECTED, HANDLE, HANDLE_FLAG_INHERIT, INVALID_HANDLE_VALUE, WAIT_OBJECT_0,
};
use windows_sys::Win32::Security::SECURITY_ATTRIBUTES;
use windows_sys::Win32::Storage::FileSystem::{
    CreateFileW, ReadFile, WriteFile, FILE_FLAG_OVERLAPPED, OPEN_EXISTING, PIPE_ACCESS_DUPLEX,
};
use windows_sys::Win32::System::Pipes::{CreateNamedPipeW, PIPE_READMODE_BYTE, PIPE_TYPE_BYTE, PIPE_WAIT};
use windows_sys::Win32::System::Threading::{
    CreateEventW, CreateProcessW, GetExitCodeProcess, SetEvent, TerminateProcess, WaitForSingleObject,
    CREATE_UNICODE_ENVIRONMENT, PROCESS_INFORMATION, STARTF_USESTDHANDLES, STARTUPINFOW,
};
use windows_sys::Win32::System::IO::{GetOverlappedResult, OVERLAPPED};

const GENERIC_READ: u32 = 0x8000_0000;
const GENERIC_WRITE: u32 = 0x4000_0000;

/// How IIS talks to the application.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `protocol="NamedPipe"`, the pipe created with FILE_FLAG_OVERLAPPED.
    Overlapped,
    /// `protocol="NamedPipe"`, a synchronous pipe handle (whether IIS uses one is unverified: test both).
    Sync,
    /// `protocol="Tcp"`: a listening socket as stdin.
    Tcp,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Self::Overlapped => "overlapped",
            Self::Sync => "sync",
            Self::Tcp => "tcp",
        }
    }

    pub fn is_pipe(self) -> bool {
        self != Self::Tcp
    }
}

/// What to start and how.
#[derive(Debug, Clone)]
pub struct Launch {
    pub exe: String,
    pub args: Vec<String>,
    /// The `<environmentVariables>` of the FastCGI application.
    pub env: Vec<(String, String)>,
    /// Per-scenario WSGI_LOG files go here (unless `env` sets WSGI_LOG).
    pub log_dir: Option<PathBuf>,
    /// A child still running after this is terminated.
    pub watchdog: Duration,
}

fn wide(s: &str) -> Vec<u16> {
    std::ffi::OsStr::new(s).encode_wide().chain(Some(0)).collect()
}

fn last_error() -> io::Error {
    io::Error::last_os_error()
}

fn guid_ish() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        std::process::id(),
        n & 0xffff,
        (nanos >> 48) as u16,
        (nanos >> 32) as u16,
        nanos as u64 & 0xffff_ffff_ffff
    )
}

/// Quotes one command-line argument the way CommandLineToArgvW reads it back.
fn quote(arg: &str) -> String {
    if !arg.is_empty() && !arg.contains([' ', '\t', '"']) {
        return arg.to_owned();
    }
    let mut out = String::from('"');
    let mut backslashes = 0;
    for c in arg.chars() {
        match c {
            '\\' => backslashes += 1,
            '"' => {
                out.push_str(&"\\".repeat(backslashes * 2 + 1));
                out.push('"');
                backslashes = 0;
            }
            _ => {
                out.push_str(&"\\".repeat(backslashes));
                out.push(c);
                backslashes = 0;
            }
        }
    }
    out.push_str(&"\\".repeat(backslashes * 2));
    out.push('"');
    out
}

/// A started application, as IIS holds it.
pub struct Child {
    process: HANDLE,
    shutdown_event: HANDLE,
    pub mode: Mode,
    pub pipe_name: String,
    tcp: Option<(TcpListener, SocketAddr)>,
    watchdog: Option<mpsc::Sender<()>>,
    watchdog_limit: Duration,
    exit_code: Option<u32>,
}

/// The client end of a connection. The pipe is opened for overlapped I/O, as IIS does, so one thread can write
/// a request body while another reads the response (on a synchronous handle the two would serialize).
pub enum Client {
    Pipe(Arc<PipeClient>),
    Tcp(TcpStream),
}

pub struct PipeClient(HANDLE);

// SAFETY: an overlapped pipe handle may be used from several threads at once.
unsafe impl Send for PipeClient {}
// SAFETY: as above.
unsafe impl Sync for PipeClient {}

impl Drop for PipeClient {
    fn drop(&mut self) {
        // SAFETY: ours.
        unsafe { CloseHandle(self.0) };
    }
}

impl PipeClient {
    /// One overlapped read or write, waited for.
    fn io(&self, start: &mut dyn FnMut(*mut OVERLAPPED, *mut u32) -> i32) -> io::Result<usize> {
        // SAFETY: a manual-reset event for this operation.
        let event = unsafe { CreateEventW(null(), 1, 0, null()) };
        if event.is_null() {
            return Err(last_error());
        }
        // SAFETY: OVERLAPPED is plain data.
        let mut ov: OVERLAPPED = unsafe { zeroed() };
        ov.hEvent = event;
        let mut n = 0u32;
        let mut result = Ok(0);
        if start(&mut ov, &mut n) == 0 {
            // SAFETY: reads the last error.
            let code = unsafe { GetLastError() };
            // SAFETY: `ov` lives until the operation completes.
            if code != ERROR_IO_PENDING || unsafe { GetOverlappedResult(self.0, &ov, &mut n, 1) } == 0 {
                result = Err(io::Error::from_raw_os_error(
                    // SAFETY: reads the last error.
                    if code == ERROR_IO_PENDING {
                        unsafe { GetLastError() }
                    } else {
                        code
                    } as i32,
                ));
            }
        }
        // SAFETY: ours.
        unsafe { CloseHandle(event) };
        result.map(|_: usize| n as usize)
    }
}

fn is_pipe_end(e: &io::Error) -> bool {
    e.raw_os_error()
        .is_some_and(|c| [ERROR_BROKEN_PIPE, ERROR_PIPE_NOT_CONNECTED, ERROR_NO_DATA].contains(&(c as u32)))
}

impl Client {
    /// Another handle to the same connection, for a writer thread.
    pub fn try_clone(&self) -> io::Result<Self> {
        match self {
            Self::Pipe(p) => Ok(Self::Pipe(p.clone())),
            Self::Tcp(s) => s.try_clone().map(Self::Tcp),
        }
    }
}

impl Read for Client {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Pipe(p) => {
                let len = u32::try_from(buf.len()).unwrap_or(u32::MAX);
                let ptr = buf.as_mut_ptr();
                let handle = p.0;
                // SAFETY: `buf` outlives the operation, which `io` waits for.
                match p.io(&mut |ov, n| unsafe { ReadFile(handle, ptr, len, n, ov) }) {
                    // The server disconnected or closed: the end of the stream.
                    Err(e) if is_pipe_end(&e) => Ok(0),
                    other => other,
                }
            }
            Self::Tcp(s) => match s.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => Ok(0),
                other => other,
            },
        }
    }
}

impl Write for Client {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Pipe(p) => {
                let len = u32::try_from(buf.len()).unwrap_or(u32::MAX);
                let ptr = buf.as_ptr();
                let handle = p.0;
                // SAFETY: `buf` outlives the operation, which `io` waits for.
                p.io(&mut |ov, n| unsafe { WriteFile(handle, ptr, len, n, ov) })
            }
            Self::Tcp(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Child {
    /// Starts the application as IIS does. With `pre_client`, a client connects and leaves before the process
    /// starts (so the application's first ConnectNamedPipe sees ERROR_NO_DATA).
    pub fn spawn(launch: &Launch, mode: Mode, tag: &str, pre_client: bool) -> io::Result<Self> {
        let inherit = SECURITY_ATTRIBUTES {
            nLength: size_of::<SECURITY_ATTRIBUTES>() as u32,
            lpSecurityDescriptor: null_mut(),
            bInheritHandle: 1,
        };
        // SAFETY: an inheritable manual-reset event, as IIS creates for signalBeforeTerminateSeconds.
        let shutdown_event = unsafe { CreateEventW(&inherit, 1, 0, null()) };
        if shutdown_event.is_null() {
            return Err(last_error());
        }
        let pipe_name = format!(r"\\.\pipe\IISFCGI-{}", guid_ish());
        let mut tcp = None;
        let stdin: HANDLE = if mode.is_pipe() {
            let flags = PIPE_ACCESS_DUPLEX
                | if mode == Mode::Overlapped {
                    FILE_FLAG_OVERLAPPED
                } else {
                    0
                };
            // SAFETY: a new, uniquely named pipe with an inheritable handle.
            let pipe = unsafe {
                CreateNamedPipeW(
                    wide(&pipe_name).as_ptr(),
                    flags,
                    PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT,
                    1,
                    65536,
                    65536,
                    0,
                    &inherit,
                )
            };
            if pipe == INVALID_HANDLE_VALUE {
                return Err(last_error());
            }
            pipe
        } else {
            let listener = TcpListener::bind("127.0.0.1:0")?;
            let address = listener.local_addr()?;
            let socket = listener.as_raw_socket() as HANDLE;
            // SAFETY: makes our listening socket inheritable.
            if unsafe { SetHandleInformation(socket, HANDLE_FLAG_INHERIT, HANDLE_FLAG_INHERIT) } == 0 {
                return Err(last_error());
            }
            tcp = Some((listener, address));
            socket
        };
        if pre_client {
            drop(open_pipe_client(&pipe_name, Duration::from_secs(5))?);
        }

        let log = match &launch.log_dir {
            Some(dir) if !launch.env.iter().any(|(k, _)| k.eq_ignore_ascii_case("WSGI_LOG")) => {
                let path = dir.join(format!("{}-{tag}.log", mode.name()));
                let _ = std::fs::remove_file(&path);
                Some(path)
            }
            _ => None,
        };
        let mut env: Vec<(String, String)> = std::env::vars()
            .filter(|(k, _)| !k.starts_with("_FCGI_") && !k.eq_ignore_ascii_case("WSGI_LOG"))
            .collect();
        env.extend(launch.env.iter().cloned());
        if mode.is_pipe() {
            env.push(("_FCGI_X_PIPE_".into(), pipe_name.clone()));
        }
        env.push(("_FCGI_SHUTDOWN_EVENT_".into(), (shutdown_event as usize).to_string()));
        if let Some(path) = &log {
            env.push(("WSGI_LOG".into(), path.display().to_string()));
        }
        env.sort_by_key(|(k, _)| k.to_uppercase());
        let mut block: Vec<u16> = Vec::new();
        for (k, v) in &env {
            block.extend(std::ffi::OsStr::new(&format!("{k}={v}")).encode_wide());
            block.push(0);
        }
        block.push(0);

        let mut command = quote(&launch.exe);
        for arg in &launch.args {
            command.push(' ');
            command.push_str(&quote(arg));
        }
        let mut command = wide(&command);
        // SAFETY: STARTUPINFOW is plain data.
        let mut si: STARTUPINFOW = unsafe { zeroed() };
        si.cb = size_of::<STARTUPINFOW>() as u32;
        si.dwFlags = STARTF_USESTDHANDLES;
        si.hStdInput = stdin;
        si.hStdOutput = INVALID_HANDLE_VALUE;
        si.hStdError = INVALID_HANDLE_VALUE;
        // SAFETY: PROCESS_INFORMATION is plain data filled in by CreateProcessW.
        let mut pi: PROCESS_INFORMATION = unsafe { zeroed() };
        // SAFETY: all pointers are valid for the call; handles are inherited on purpose.
        let ok = unsafe {
            CreateProcessW(
                null(),
                command.as_mut_ptr(),
                null(),
                null(),
                1,
                CREATE_UNICODE_ENVIRONMENT,
                block.as_ptr().cast(),
                null(),
                &si,
                &mut pi,
            )
        };
        let spawn_error = (ok == 0).then(last_error);
        if mode.is_pipe() {
            // IIS keeps no copy of the server end.
            // SAFETY: our copy of the pipe handle.
            unsafe { CloseHandle(stdin) };
        }
        if let Some(err) = spawn_error {
            // SAFETY: ours.
            unsafe { CloseHandle(shutdown_event) };
            return Err(io::Error::new(
                err.kind(),
                format!("cannot start {}: {err}", launch.exe),
            ));
        }
        // SAFETY: the thread handle is not needed.
        unsafe { CloseHandle(pi.hThread) };

        let (stop_watchdog, watchdog_rx) = mpsc::channel::<()>();
        let process = pi.hProcess as usize;
        let limit = launch.watchdog;
        std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = watchdog_rx.recv_timeout(limit) {
                eprintln!("fake_iis: watchdog: terminating the application after {limit:?}");
                // SAFETY: the process handle stays open until the watchdog is stopped (see Drop).
                unsafe { TerminateProcess(process as HANDLE, 99) };
            }
        });
        Ok(Self {
            process: pi.hProcess,
            shutdown_event,
            mode,
            pipe_name,
            tcp,
            watchdog: Some(stop_watchdog),
            watchdog_limit: limit,
            exit_code: None,
        })
    }

    /// Connects as IIS does (retrying while the application has not called ConnectNamedPipe again).
    pub fn connect(&self) -> io::Result<Client> {
        match &self.tcp {
            None => open_pipe_client(&self.pipe_name, Duration::from_secs(10)).map(|p| Client::Pipe(Arc::new(p))),
            Some((_, address)) => {
                let stream = TcpStream::connect_timeout(address, Duration::from_secs(10))?;
                stream.set_nodelay(true)?;
                // The harness keeps its own copy of the listening socket, so a dead application would leave
                // the connection hanging rather than reset.
                stream.set_read_timeout(Some(self.watchdog_limit))?;
                Ok(Client::Tcp(stream))
            }
        }
    }

    /// Sets `_FCGI_SHUTDOWN_EVENT_`, as IIS does before terminating the process.
    pub fn signal_shutdown(&self) {
        // SAFETY: our event.
        unsafe { SetEvent(self.shutdown_event) };
    }

    /// Waits up to `timeout` for the process to exit; its exit code, or `None` if it is still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<u32> {
        if self.exit_code.is_some() {
            return self.exit_code;
        }
        let ms = u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX - 1);
        // SAFETY: our process handle.
        if unsafe { WaitForSingleObject(self.process, ms) } != WAIT_OBJECT_0 {
            return None;
        }
        let mut code = 0u32;
        // SAFETY: as above.
        unsafe { GetExitCodeProcess(self.process, &mut code) };
        self.exit_code = Some(code);
        self.exit_code
    }

    /// Whether the process is still running (without waiting).
    pub fn running(&mut self) -> bool {
        self.wait_exit(Duration::ZERO).is_none()
    }

    /// How long the process takes to exit after `action`, and its exit code.
    pub fn time_exit(&mut self, limit: Duration) -> (Duration, Option<u32>) {
        let started = Instant::now();
        let code = self.wait_exit(limit);
        (started.elapsed(), code)
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if self.running() {
            // SAFETY: our process handle.
            unsafe { TerminateProcess(self.process, 98) };
            self.wait_exit(Duration::from_secs(5));
        }
        drop(self.watchdog.take());
        // SAFETY: our handles. The watchdog thread may still hold the process handle value, but it only uses it
        // after a timeout, and it was told to stop above; give it no chance by terminating first.
        unsafe {
            CloseHandle(self.shutdown_event);
            CloseHandle(self.process);
        }
    }
}

fn open_pipe_client(name: &str, patience: Duration) -> io::Result<PipeClient> {
    let deadline = Instant::now() + patience;
    loop {
        // SAFETY: opens the client end of the pipe.
        let handle = unsafe {
            CreateFileW(
                wide(name).as_ptr(),
                GENERIC_READ | GENERIC_WRITE,
                0,
                null(),
                OPEN_EXISTING,
                FILE_FLAG_OVERLAPPED,
                null_mut(),
            )
        };
        if handle != INVALID_HANDLE_VALUE {
            return Ok(PipeClient(handle));
        }
        // SAFETY: reads the last error.
        let code = unsafe { GetLastError() };
        if Instant::now() >= deadline {
            return Err(io::Error::from_raw_os_error(code as i32));
        }
        // ERROR_PIPE_BUSY while the application has not called ConnectNamedPipe again.
        std::thread::sleep(Duration::from_millis(2));
    }
}
