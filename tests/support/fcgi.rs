//! Test support for protocol-level integration tests: starting the echo responder the ways web servers start
//! FastCGI applications (a listening socket on fd 0, `--bind HOST:PORT`, `--bind unix:PATH`), reading its log,
//! and a small blocking FastCGI client. Requests are built with pyfcgi's record encoders; responses are decoded
//! here, independently of pyfcgi's decoder, and every response is checked for correct framing (version 1, one
//! request id, no STDOUT after the empty STDOUT, exactly one empty STDOUT and one END_REQUEST).
//!
//! Every socket read has a timeout, so a server that hangs fails the test instead of blocking CI.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use pyfcgi::protocol::nv;
use pyfcgi::protocol::record::{self, BeginRequestBody, RecordType, Role, FLAG_KEEP_CONN};
use pyfcgi::transport::memory::MemoryStream;

/// How long any single read may block before the test fails.
pub const IO_TIMEOUT: Duration = Duration::from_secs(15);

// Record types and protocol statuses as numbers, decoded independently of pyfcgi.
pub const BEGIN_REQUEST: u8 = 1;
pub const ABORT_REQUEST: u8 = 2;
pub const END_REQUEST: u8 = 3;
pub const PARAMS: u8 = 4;
pub const STDIN: u8 = 5;
pub const STDOUT: u8 = 6;
pub const STDERR: u8 = 7;
pub const GET_VALUES: u8 = 9;
pub const GET_VALUES_RESULT: u8 = 10;
pub const UNKNOWN_TYPE: u8 = 11;

pub const REQUEST_COMPLETE: u8 = 0;
pub const CANT_MPX_CONN: u8 = 1;
pub const UNKNOWN_ROLE: u8 = 3;

static UNIQUE: AtomicUsize = AtomicUsize::new(0);

/// A path for a Unix socket that no other test (or test process) uses.
pub fn unique_socket_path(tag: &str) -> PathBuf {
    let n = UNIQUE.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("pyfcgi-it-{}-{n}-{tag}.sock", std::process::id()))
}

/// The echo responder example binary, built by `cargo test` (all targets) or `cargo build --examples`.
pub fn echo_responder() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/examples/echo_responder
    let profile_dir = exe.parent().and_then(Path::parent).expect("target profile dir");
    let path = profile_dir.join("examples").join("echo_responder");
    let built = path.metadata().and_then(|m| m.modified());
    let newest_lib = std::fs::read_dir(profile_dir.join("deps"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with("libpyfcgi-") && name.ends_with(".rlib")
        })
        .filter_map(|e| e.metadata().and_then(|m| m.modified()).ok())
        .max();
    match (built, newest_lib) {
        (Ok(built), Some(lib)) if built >= lib => path,
        (Ok(_), None) => path,
        _ => panic!(
            "{} is missing or older than the pyfcgi library: run `cargo build --examples` (plain `cargo test` \
             builds it; `cargo test --test NAME` does not)",
            path.display()
        ),
    }
}

/// Where the server listens.
#[derive(Debug, Clone)]
pub enum Addr {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

/// How to start the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Launch {
    /// `--bind 127.0.0.1:0`; the port is read from the start log line.
    BindTcp,
    /// `--bind unix:PATH`.
    BindUnix,
    /// A TCP listening socket made by the test, passed as fd 0 (lighttpd, spawn-fcgi, mod_fcgid).
    Fd0Tcp,
    /// A Unix listening socket made by the test, passed as fd 0.
    Fd0Unix,
}

pub const ALL_LAUNCHES: [Launch; 4] = [Launch::BindTcp, Launch::BindUnix, Launch::Fd0Tcp, Launch::Fd0Unix];

/// The server's stderr, collected line by line (ANSI colours stripped) by a reader thread.
#[derive(Default)]
struct Log {
    lines: Mutex<Vec<String>>,
    changed: Condvar,
}

/// A running echo responder. Killed (by its pid) when dropped.
pub struct Server {
    child: Option<Child>,
    addr: Addr,
    log: Arc<Log>,
    socket_file: Option<PathBuf>,
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ ... final byte in @..~
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) && c != '[' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

impl Server {
    /// Starts the echo responder with `args` (besides `--bind`) and extra environment variables.
    pub fn start(launch: Launch, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(echo_responder());
        cmd.args(args)
            .env("NO_COLOR", "1")
            .env("PYFCGI_LOG", "info")
            .env_remove("FCGI_WEB_SERVER_ADDRS")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let (addr, socket_file) = match launch {
            Launch::BindTcp => {
                cmd.args(["--bind", "127.0.0.1:0"]).stdin(Stdio::null());
                (None, None)
            }
            Launch::BindUnix => {
                let path = unique_socket_path("bind");
                cmd.arg("--bind")
                    .arg(format!("unix:{}", path.display()))
                    .stdin(Stdio::null());
                (Some(Addr::Unix(path.clone())), Some(path))
            }
            Launch::Fd0Tcp => {
                let listener = TcpListener::bind("127.0.0.1:0").expect("bind test listener");
                let addr = listener.local_addr().unwrap();
                cmd.stdin(Stdio::from(OwnedFd::from(listener)));
                (Some(Addr::Tcp(addr)), None)
            }
            Launch::Fd0Unix => {
                let path = unique_socket_path("fd0");
                let listener = UnixListener::bind(&path).expect("bind test unix listener");
                cmd.stdin(Stdio::from(OwnedFd::from(listener)));
                (Some(Addr::Unix(path.clone())), Some(path))
            }
        };
        let mut child = cmd.spawn().expect("start the echo responder");
        // The Command holds our copy of an fd-0 listener: drop it so only the server has the socket.
        drop(cmd);
        let log = Arc::new(Log::default());
        let stderr = child.stderr.take().unwrap();
        let reader_log = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let line = strip_ansi(&line);
                if std::env::var_os("PYFCGI_TEST_ECHO_LOG").is_some() {
                    eprintln!("[server] {line}");
                }
                reader_log.lines.lock().unwrap().push(line);
                reader_log.changed.notify_all();
            }
        });
        let mut server = Self {
            child: Some(child),
            addr: addr.unwrap_or(Addr::Tcp(SocketAddr::from(([127, 0, 0, 1], 0)))),
            log,
            socket_file,
        };
        let line = server
            .wait_log(|l| l.contains("serving FastCGI"), Duration::from_secs(20))
            .unwrap_or_else(|| panic!("the server did not start; its log:\n{}", server.log_text()));
        if launch == Launch::BindTcp {
            let listen = line
                .split_whitespace()
                .find_map(|w| w.strip_prefix("listen="))
                .unwrap_or_else(|| panic!("no listen= in {line:?}"));
            server.addr = Addr::Tcp(
                listen
                    .parse()
                    .unwrap_or_else(|_| panic!("bad listen address in {line:?}")),
            );
        }
        server
    }

    pub fn addr(&self) -> &Addr {
        &self.addr
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    pub fn connect(&self) -> Client {
        Client::connect(&self.addr)
    }

    /// Everything the server logged so far.
    pub fn log_text(&self) -> String {
        self.log.lines.lock().unwrap().join("\n")
    }

    /// Waits until a log line matches; returns it.
    pub fn wait_log(&self, pred: impl Fn(&str) -> bool, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let mut lines = self.log.lines.lock().unwrap();
        let mut seen = 0;
        loop {
            if let Some(line) = lines[seen..].iter().find(|l| pred(l)) {
                return Some(line.clone());
            }
            seen = lines.len();
            let left = deadline.checked_duration_since(Instant::now())?;
            lines = self.log.changed.wait_timeout(lines, left).unwrap().0;
        }
    }

    /// Sends a signal to the server process (by its pid).
    pub fn signal(&self, signal: i32) {
        let pid = i32::try_from(self.pid()).unwrap();
        // SAFETY: plain kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "kill failed");
    }

    /// Waits for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut().unwrap();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(path) = &self.socket_file {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// A connected socket of either kind.
pub enum Sock {
    Tcp(TcpStream),
    Unix(UnixStream),
    /// The web server's end of an in-memory connection (tests of the server core without processes).
    Memory(MemoryStream),
}

impl Sock {
    pub fn connect(addr: &Addr) -> io::Result<Self> {
        let sock = match addr {
            Addr::Tcp(a) => Self::Tcp(TcpStream::connect_timeout(a, IO_TIMEOUT)?),
            Addr::Unix(p) => Self::Unix(UnixStream::connect(p)?),
        };
        sock.set_read_timeout(Some(IO_TIMEOUT))?;
        match &sock {
            Sock::Tcp(s) => s.set_write_timeout(Some(IO_TIMEOUT))?,
            Sock::Unix(s) => s.set_write_timeout(Some(IO_TIMEOUT))?,
            Sock::Memory(_) => {}
        }
        Ok(sock)
    }

    /// Wraps the web server's end of an in-memory connection, with the same read timeout as a socket's.
    pub fn memory(stream: MemoryStream) -> Self {
        stream.set_read_timeout(Some(IO_TIMEOUT));
        Self::Memory(stream)
    }

    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Sock::Tcp(s) => s.set_read_timeout(timeout),
            Sock::Unix(s) => s.set_read_timeout(timeout),
            Sock::Memory(s) => {
                s.set_read_timeout(timeout);
                Ok(())
            }
        }
    }

    pub fn shutdown_write(&self) -> io::Result<()> {
        match self {
            Sock::Tcp(s) => s.shutdown(Shutdown::Write),
            Sock::Unix(s) => s.shutdown(Shutdown::Write),
            Sock::Memory(s) => {
                s.shutdown_write();
                Ok(())
            }
        }
    }
}

impl Read for Sock {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Sock::Tcp(s) => s.read(buf),
            Sock::Unix(s) => s.read(buf),
            Sock::Memory(s) => s.read(buf),
        }
    }
}

impl Write for Sock {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sock::Tcp(s) => s.write(buf),
            Sock::Unix(s) => s.write(buf),
            Sock::Memory(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// One record as read from the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rec {
    pub record_type: u8,
    pub id: u16,
    pub content: Vec<u8>,
    pub arrived: Instant,
}

/// A response as read from the wire, checked for correct framing.
#[derive(Debug, Clone)]
pub struct Response {
    pub id: u16,
    /// The STDOUT stream: the CGI header block and the body.
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub app_status: u32,
    pub protocol_status: u8,
    /// Every record of the response, in order (END_REQUEST last).
    pub records: Vec<Rec>,
}

impl Response {
    /// The body after the CGI header block.
    pub fn body(&self) -> &[u8] {
        match self.stdout.windows(4).position(|w| w == b"\r\n\r\n") {
            Some(i) => &self.stdout[i + 4..],
            None => panic!("no header block in {:?}", String::from_utf8_lossy(&self.stdout)),
        }
    }

    pub fn head(&self) -> String {
        let end = self
            .stdout
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("header block");
        String::from_utf8_lossy(&self.stdout[..end]).into_owned()
    }

    /// The `/info` body as NAME=VALUE lines (first occurrence wins, which puts the summary lines first).
    pub fn info(&self) -> HashMap<String, String> {
        let mut map = HashMap::new();
        for line in String::from_utf8_lossy(self.body()).lines() {
            if let Some((k, v)) = line.split_once('=') {
                map.entry(k.to_owned()).or_insert_with(|| v.to_owned());
            }
        }
        map
    }

    pub fn stdout_records(&self) -> impl Iterator<Item = &Rec> {
        self.records.iter().filter(|r| r.record_type == STDOUT)
    }
}

/// A blocking FastCGI client over one connection.
pub struct Client {
    pub sock: Sock,
}

impl Client {
    pub fn connect(addr: &Addr) -> Self {
        Self {
            sock: Sock::connect(addr).unwrap_or_else(|e| panic!("connect to {addr:?}: {e}")),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.sock.write_all(bytes).expect("write to the server");
    }

    pub fn try_send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.sock.write_all(bytes)
    }

    /// Reads one record; `Ok(None)` at a clean end of stream between records. A connection reset counts as
    /// the end of the stream.
    pub fn read_record(&mut self) -> io::Result<Option<Rec>> {
        let mut header = [0u8; 8];
        let mut got = 0;
        while got < 8 {
            match self.sock.read(&mut header[got..]) {
                Ok(0) if got == 0 => return Ok(None),
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "EOF inside a record header",
                    ))
                }
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset && got == 0 => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let arrived = Instant::now();
        assert_eq!(header[0], 1, "record version must be 1: {header:?}");
        assert_eq!(header[7], 0, "reserved header byte must be 0: {header:?}");
        let record_type = header[1];
        let id = u16::from_be_bytes([header[2], header[3]]);
        // A u16 cannot exceed 65535: the "records <= 65535" property holds by construction of the field, so
        // what is checked here is that the stated length and padding are really what follows.
        let content_len = usize::from(u16::from_be_bytes([header[4], header[5]]));
        let padding = usize::from(header[6]);
        let mut body = vec![0u8; content_len + padding];
        self.sock.read_exact(&mut body)?;
        body.truncate(content_len);
        Ok(Some(Rec {
            record_type,
            id,
            content: body,
            arrived,
        }))
    }

    /// Reads one record, failing the test on EOF or error.
    pub fn expect_record(&mut self) -> Rec {
        match self.read_record() {
            Ok(Some(rec)) => rec,
            Ok(None) => panic!("the server closed the connection"),
            Err(e) => panic!("reading a record: {e}"),
        }
    }

    /// Reads records up to and including END_REQUEST for `id`, checking the response's framing.
    pub fn read_response(&mut self, id: u16) -> Response {
        let mut resp = Response {
            id,
            stdout: Vec::new(),
            stderr: Vec::new(),
            app_status: 0,
            protocol_status: 255,
            records: Vec::new(),
        };
        let mut stdout_closed = false;
        loop {
            let rec = self.expect_record();
            assert_eq!(rec.id, id, "record for another request: {rec:?}");
            match rec.record_type {
                STDOUT => {
                    assert!(!stdout_closed, "STDOUT after the empty STDOUT record");
                    if rec.content.is_empty() {
                        stdout_closed = true;
                    }
                    resp.stdout.extend_from_slice(&rec.content);
                }
                STDERR => resp.stderr.extend_from_slice(&rec.content),
                END_REQUEST => {
                    assert_eq!(rec.content.len(), 8, "END_REQUEST body is 8 bytes");
                    let c = &rec.content;
                    resp.app_status = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
                    resp.protocol_status = c[4];
                    let empty_stdout = resp
                        .records
                        .iter()
                        .filter(|r| r.record_type == STDOUT && r.content.is_empty())
                        .count();
                    if resp.protocol_status == REQUEST_COMPLETE {
                        assert_eq!(empty_stdout, 1, "exactly one empty STDOUT per completed response");
                        let last = resp.records.last().expect("records before END_REQUEST");
                        assert!(
                            last.record_type == STDOUT && last.content.is_empty(),
                            "the empty STDOUT directly precedes END_REQUEST"
                        );
                    } else {
                        assert!(resp.records.is_empty(), "a refused request gets only END_REQUEST");
                    }
                    resp.records.push(rec);
                    return resp;
                }
                other => panic!("unexpected record type {other} in a response"),
            }
            resp.records.push(rec);
        }
    }

    /// Asserts that the server closes the connection (EOF or reset) without sending anything more.
    pub fn expect_eof(&mut self) {
        match self.read_record() {
            Ok(None) => {}
            Ok(Some(rec)) => panic!("expected the connection to be closed, got {rec:?}"),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut => {
                panic!("the server did not close the connection within {IO_TIMEOUT:?}")
            }
            Err(e) => panic!("expected EOF, got {e}"),
        }
    }

    /// Asserts that nothing arrives within `wait` (and the connection stays open).
    pub fn expect_silence(&mut self, wait: Duration) {
        self.sock.set_read_timeout(Some(wait)).unwrap();
        let mut byte = [0u8; 1];
        match self.sock.read(&mut byte) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut => {}
            Ok(0) => panic!("the connection was closed"),
            Ok(_) => panic!("unexpected data from the server"),
            Err(e) => panic!("unexpected error {e}"),
        }
        self.sock.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    }

    // ---- building requests (with pyfcgi's encoders) ----

    pub fn begin(&mut self, id: u16, role: u16, keep_conn: bool) {
        let body = BeginRequestBody {
            role: Role::from_u16(role),
            flags: if keep_conn { FLAG_KEEP_CONN } else { 0 },
        };
        let mut out = Vec::new();
        record::write_record(&mut out, RecordType::BeginRequest, id, &body.encode());
        self.send(&out);
    }

    pub fn params(&mut self, id: u16, pairs: &[(&str, &str)]) {
        self.send(&params_bytes(id, pairs));
    }

    /// Sends `data` as STDIN records of at most `chunk` bytes (no end record).
    pub fn stdin(&mut self, id: u16, data: &[u8], chunk: usize) {
        let mut out = Vec::new();
        for piece in data.chunks(chunk.max(1)) {
            record::write_record(&mut out, RecordType::Stdin, id, piece);
        }
        self.send(&out);
    }

    pub fn stdin_end(&mut self, id: u16) {
        self.record(STDIN, id, &[]);
    }

    pub fn abort(&mut self, id: u16) {
        self.record(ABORT_REQUEST, id, &[]);
    }

    pub fn record(&mut self, record_type: u8, id: u16, content: &[u8]) {
        let mut out = Vec::new();
        record::write_record(&mut out, RecordType::from_u8(record_type), id, content);
        self.send(&out);
    }

    /// Sends a whole request (keep-conn as given) with a body in records of `chunk` bytes.
    pub fn send_request(&mut self, id: u16, keep_conn: bool, uri: &str, body: &[u8], chunk: usize) {
        self.begin(id, 1, keep_conn);
        self.params_owned(id, &request_params("POST", uri, body.len()));
        self.stdin(id, body, chunk);
        self.stdin_end(id);
    }

    /// Sends a whole request and reads its response.
    pub fn request(&mut self, id: u16, keep_conn: bool, uri: &str, body: &[u8]) -> Response {
        self.send_request(id, keep_conn, uri, body, 65535);
        self.read_response(id)
    }

    /// GET_VALUES for `names`; returns the reply's pairs.
    pub fn get_values(&mut self, names: &[&str]) -> Vec<(String, String)> {
        let mut content = Vec::new();
        for name in names {
            nv::write_pair(&mut content, name.as_bytes(), b"");
        }
        self.record(GET_VALUES, 0, &content);
        let rec = self.expect_record();
        assert_eq!((rec.record_type, rec.id), (GET_VALUES_RESULT, 0), "{rec:?}");
        decode_pairs(&rec.content)
    }
}

/// Name-value pairs decoded independently of pyfcgi.
pub fn decode_pairs(mut buf: &[u8]) -> Vec<(String, String)> {
    fn len(buf: &mut &[u8]) -> usize {
        if buf[0] & 0x80 == 0 {
            let l = usize::from(buf[0]);
            *buf = &buf[1..];
            l
        } else {
            let l = u32::from_be_bytes([buf[0] & 0x7f, buf[1], buf[2], buf[3]]) as usize;
            *buf = &buf[4..];
            l
        }
    }
    let mut out = Vec::new();
    while !buf.is_empty() {
        let n = len(&mut buf);
        let v = len(&mut buf);
        out.push((
            String::from_utf8_lossy(&buf[..n]).into_owned(),
            String::from_utf8_lossy(&buf[n..n + v]).into_owned(),
        ));
        buf = &buf[n + v..];
    }
    out
}

/// The usual CGI parameters of a request.
pub fn request_params(method: &str, uri: &str, content_length: usize) -> Vec<(&'static str, String)> {
    let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
    vec![
        ("GATEWAY_INTERFACE", "CGI/1.1".into()),
        ("REQUEST_METHOD", method.into()),
        ("REQUEST_URI", uri.into()),
        ("SCRIPT_NAME", "".into()),
        ("PATH_INFO", path.into()),
        ("QUERY_STRING", query.into()),
        ("CONTENT_LENGTH", content_length.to_string()),
        ("SERVER_PROTOCOL", "HTTP/1.1".into()),
        ("SERVER_NAME", "localhost".into()),
        ("SERVER_PORT", "80".into()),
        ("REMOTE_ADDR", "127.0.0.1".into()),
    ]
}

/// PARAMS records (content split at 65535 bytes) and the empty PARAMS record.
pub fn params_bytes<S: AsRef<str>>(id: u16, pairs: &[(&str, S)]) -> Vec<u8> {
    let mut content = Vec::new();
    for (n, v) in pairs {
        nv::write_pair(&mut content, n.as_bytes(), v.as_ref().as_bytes());
    }
    let mut out = Vec::new();
    record::write_stream(&mut out, RecordType::Params, id, &content);
    record::write_stream_end(&mut out, RecordType::Params, id);
    out
}

impl Client {
    /// PARAMS with owned values.
    pub fn params_owned(&mut self, id: u16, pairs: &[(&str, String)]) {
        self.send(&params_bytes(id, pairs));
    }
}

/// FNV-1a 64, as the echo responder reports bodies.
pub fn fnv1a(data: &[u8]) -> String {
    let hash = data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{hash:016x}")
}

/// A blocking socket behind the `futures-io` traits, so the runtime-agnostic `fastcgi-client` crate can be
/// driven with `futures_executor::block_on` and no async runtime. Every poll completes at once (blocking).
pub struct BlockingIo(pub Sock);

impl futures_io::AsyncRead for BlockingIo {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &mut [u8],
    ) -> std::task::Poll<io::Result<usize>> {
        std::task::Poll::Ready(self.get_mut().0.read(buf))
    }
}

impl futures_io::AsyncWrite for BlockingIo {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        std::task::Poll::Ready(self.get_mut().0.write(buf))
    }

    fn poll_flush(self: std::pin::Pin<&mut Self>, _cx: &mut std::task::Context<'_>) -> std::task::Poll<io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_close(self: std::pin::Pin<&mut Self>, _cx: &mut std::task::Context<'_>) -> std::task::Poll<io::Result<()>> {
        std::task::Poll::Ready(self.get_mut().0.shutdown_write())
    }
}
