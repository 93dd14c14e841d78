//! Test support shared by the integration-test crates (`mod support;`): scratch directories, free loopback ports,
//! child processes that are stopped (with their whole process group) on drop, FastCGI responders started with
//! `--bind`, real front servers (`frontends`) and a small blocking HTTP/1.1 client (`http`).
//!
//! Everything here panics with a readable message (and the tail of the relevant logs) instead of returning errors:
//! a test that cannot start its servers must fail loudly, never skip.
#![allow(dead_code)]

pub mod frontends;
pub mod http;
pub mod venv;

use std::collections::{BTreeSet, HashSet};
use std::fmt::Write as _;
use std::fs;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

/// A directory of its own for one server or test, `0755` so that servers dropping privileges (Apache's
/// `www-data` children) can reach sockets and files in it. Removed on drop, except when the test is panicking or
/// `PYFCGI_E2E_KEEP` is set: then its path is printed so the logs can be read.
pub struct Scratch {
    path: PathBuf,
}

impl Scratch {
    pub fn new(name: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("pyfcgi-e2e-{}-{n}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod scratch dir");
        Self { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Creates a sub-directory (mode `0755`) and returns its path.
    pub fn mkdir(&self, name: &str) -> PathBuf {
        let dir = self.path.join(name);
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("chmod");
        dir
    }

    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let file = self.path.join(name);
        fs::write(&file, contents).unwrap_or_else(|e| panic!("cannot write {}: {e}", file.display()));
        file
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if thread::panicking() || std::env::var_os("PYFCGI_E2E_KEEP").is_some() {
            eprintln!("[support] kept {}", self.path.display());
        } else {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// A loopback TCP port that was free a moment ago and has not been handed out before in this process. Another
/// process may still take it before we bind it: starters retry with a new port when that happens.
pub fn free_port() -> u16 {
    static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("bind 127.0.0.1:0")
            .port();
        let mut handed = HANDED_OUT.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if handed.get_or_insert_with(HashSet::new).insert(port) {
            return port;
        }
    }
}

/// Why an attempt to start a server failed.
pub enum StartError {
    /// The port was taken by someone else between [`free_port`] and the bind: try another.
    PortInUse,
    /// Anything else: the message says what, with logs.
    Failed(String),
}

/// Runs `attempt` with fresh ports until it does not fail with [`StartError::PortInUse`] (at most 5 times).
pub fn with_port_retries<T>(what: &str, mut attempt: impl FnMut(u16) -> Result<T, StartError>) -> T {
    for _ in 0..5 {
        match attempt(free_port()) {
            Ok(value) => return value,
            Err(StartError::PortInUse) => eprintln!("[support] {what}: port in use, retrying with another"),
            Err(StartError::Failed(message)) => panic!("{what} did not start: {message}"),
        }
    }
    panic!("{what} did not start: 5 ports in a row were already in use");
}

/// Finds a server program: `$env_override` if set, else `name` on `PATH` or in the sbin directories (Debian puts
/// nginx, lighttpd and apache2 in /usr/sbin, which is not on every user's `PATH`). Panics with the package to
/// install when it is missing: these tests never skip.
pub fn find_program(name: &str, env_override: &str, package: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(env_override) {
        return PathBuf::from(path);
    }
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path_var)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` was not found on PATH or in /usr/sbin: the end-to-end tests need it. Install it with \
                 `apt-get install {package}` (or point {env_override} at the binary)."
            )
        })
}

/// The test's own `target/<profile>` directory, found from the test executable (`target/<profile>/deps/NAME-HASH`).
pub fn target_profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.parent().expect("test executable has a directory");
    deps.parent().expect("deps has a parent").to_path_buf()
}

/// The echo responder example (`tests/fixtures/echo_responder.rs`), which `cargo test` builds beside the tests.
pub fn echo_responder_path() -> PathBuf {
    let path = target_profile_dir().join("examples").join("echo_responder");
    assert!(
        path.is_file(),
        "{} does not exist: build it with `cargo build --examples` (cargo test builds it too)",
        path.display()
    );
    path
}

/// A child process in a process group of its own, with its output in log files. Dropping it sends SIGTERM to the
/// whole group (a server's workers and the FastCGI programs it spawned), waits up to 5 s for the leader, then
/// SIGKILLs whatever is left of the group. When the test is panicking, the logs' tails are printed first.
pub struct ServerProcess {
    name: String,
    child: Child,
    logs: Vec<PathBuf>,
    status: Option<ExitStatus>,
}

impl ServerProcess {
    /// Spawns `command` with stdin from `/dev/null` and stdout/stderr appended to `output_log`. `other_logs` are
    /// files the program writes itself, shown with the output when a test fails.
    pub fn spawn(name: &str, mut command: Command, output_log: &Path, other_logs: &[PathBuf]) -> Self {
        let out = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(output_log)
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", output_log.display()));
        let err = out.try_clone().expect("dup log file");
        command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .env("NO_COLOR", "1")
            .process_group(0);
        // If the test process dies without running drop (killed by a timeout, say), the server gets SIGTERM and
        // stops what it spawned. The signal follows the spawning *thread*: servers must not outlive the test
        // function (thread) that started them, which owning them in that function guarantees.
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({command:?}): {e}"));
        let mut logs = vec![output_log.to_path_buf()];
        logs.extend(other_logs.iter().cloned());
        Self {
            name: name.to_owned(),
            child,
            logs,
            status: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status, if the process has ended.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    /// The last 60 lines of each log file.
    pub fn log_tail(&self) -> String {
        let mut text = String::new();
        for log in &self.logs {
            let contents = fs::read_to_string(log).unwrap_or_else(|e| format!("(unreadable: {e})"));
            let lines: Vec<&str> = contents.lines().collect();
            let start = lines.len().saturating_sub(60);
            let _ = writeln!(text, "--- {} ({}) ---", log.display(), self.name);
            for line in &lines[start..] {
                let _ = writeln!(text, "{line}");
            }
        }
        text
    }

    /// Everything in the logs.
    pub fn log_text(&self) -> String {
        self.logs
            .iter()
            .map(|log| fs::read_to_string(log).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Stops the process group: SIGTERM, up to `grace` for the leader to exit, then SIGKILL for the rest.
    pub fn stop(&mut self, grace: Duration) {
        let pgid = self.child.id() as libc::pid_t;
        if self.exited().is_none() {
            // SAFETY: plain kill(2) on the process group we created (process_group(0) made the child its leader).
            unsafe { libc::kill(-pgid, libc::SIGTERM) };
            let deadline = Instant::now() + grace;
            while self.exited().is_none() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(20));
            }
        }
        // SAFETY: as above; the group id cannot have been reused while members are left, and ESRCH is harmless.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        if self.status.is_none() {
            self.status = self.child.wait().ok();
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("{}", self.log_tail());
        }
        self.stop(Duration::from_secs(5));
    }
}

/// Where a web server reaches a FastCGI application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upstream {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl Upstream {
    /// The `--bind` value that listens here.
    pub fn bind_arg(&self) -> String {
        match self {
            Self::Tcp(addr) => addr.to_string(),
            Self::Unix(path) => format!("unix:{}", path.display()),
        }
    }
}

/// A program to spawn (by lighttpd's `bin-path` or Apache's `FcgidWrapper`): no shell quoting is possible in those
/// directives, so arguments must not contain spaces.
#[derive(Debug, Clone)]
pub struct Spawn {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
}

impl Spawn {
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
        }
    }

    /// The echo responder with no `--bind` (it serves the socket it is given on fd 0).
    pub fn echo_responder() -> Self {
        Self::new(echo_responder_path())
            .env("PYFCGI_LOG", "debug")
            .env("NO_COLOR", "1")
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    /// Program and arguments joined by spaces, as `bin-path` and `FcgidWrapper` take them.
    pub fn command_line(&self) -> String {
        let mut line = self.program.display().to_string();
        for arg in &self.args {
            assert!(
                !arg.contains(char::is_whitespace),
                "argument `{arg}` contains whitespace"
            );
            line.push(' ');
            line.push_str(arg);
        }
        assert!(!line.contains('"'), "command line `{line}` contains a double quote");
        line
    }
}

/// A FastCGI responder that listens by itself (`--bind`), such as pyfcgi or the echo responder.
pub struct Responder {
    process: ServerProcess,
    upstream: Upstream,
    dir: Scratch,
}

/// Which address a [`Responder`] binds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindKind {
    /// `127.0.0.1:<free port>`
    Tcp,
    /// `unix:<scratch dir>/fcgi.sock`, socket mode `666` so servers running as another user can connect.
    Unix,
}

impl Responder {
    /// Starts `program ARGS... --bind ADDRESS` (plus `--socket-mode 666` for Unix sockets) and waits for its
    /// `serving FastCGI` log line. `PYFCGI_LOG=debug` unless `env` sets it.
    pub fn start(name: &str, program: &Path, args: &[&str], env: &[(&str, &str)], kind: BindKind) -> Self {
        let attempt = |port: u16| {
            let dir = Scratch::new(name);
            let upstream = match kind {
                BindKind::Tcp => Upstream::Tcp(SocketAddr::from(([127, 0, 0, 1], port))),
                BindKind::Unix => Upstream::Unix(dir.join("fcgi.sock")),
            };
            let mut command = Command::new(program);
            command.args(args).arg("--bind").arg(upstream.bind_arg());
            if kind == BindKind::Unix {
                command.args(["--socket-mode", "666"]);
            }
            command.env("PYFCGI_LOG", "debug");
            for (key, value) in env {
                command.env(key, value);
            }
            let log = dir.join("responder.log");
            let mut process = ServerProcess::spawn(name, command, &log, &[]);
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                let text = process.log_text();
                if text.contains("serving FastCGI") {
                    return Ok(Self { process, upstream, dir });
                }
                if process.exited().is_some() {
                    if text.contains("Address already in use") || text.contains("os error 98") {
                        return Err(StartError::PortInUse);
                    }
                    return Err(StartError::Failed(format!("exited early:\n{}", process.log_tail())));
                }
                if Instant::now() > deadline {
                    return Err(StartError::Failed(format!(
                        "no start line in 20 s:\n{}",
                        process.log_tail()
                    )));
                }
                thread::sleep(Duration::from_millis(10));
            }
        };
        match kind {
            BindKind::Tcp => with_port_retries(name, attempt),
            BindKind::Unix => match attempt(0) {
                Ok(responder) => responder,
                Err(StartError::PortInUse) => panic!("{name}: unix socket reported in use"),
                Err(StartError::Failed(message)) => panic!("{name} did not start: {message}"),
            },
        }
    }

    /// The echo responder (`tests/fixtures/echo_responder.rs`) with `--bind`.
    pub fn echo(kind: BindKind) -> Self {
        Self::start("echo", &echo_responder_path(), &["--workers", "4"], &[], kind)
    }

    pub fn upstream(&self) -> Upstream {
        self.upstream.clone()
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn log(&self) -> String {
        self.process.log_text()
    }

    pub fn process(&mut self) -> &mut ServerProcess {
        &mut self.process
    }

    /// Inodes of the sockets the responder holds open right now (listener and signal pipes included: compare
    /// two snapshots to see connections come and go).
    pub fn open_sockets(&self) -> BTreeSet<u64> {
        socket_inodes(self.pid())
    }
}

/// Inodes of the sockets process `pid` holds, from `/proc/PID/fd`.
pub fn socket_inodes(pid: u32) -> BTreeSet<u64> {
    let Ok(entries) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return BTreeSet::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| fs::read_link(entry.path()).ok())
        .filter_map(|target| {
            let target = target.to_string_lossy().into_owned();
            target
                .strip_prefix("socket:[")
                .and_then(|rest| rest.strip_suffix(']'))
                .and_then(|inode| inode.parse().ok())
        })
        .collect()
}

/// The direct children of `pid` (Linux `/proc/PID/task/*/children`).
pub fn child_pids(pid: u32) -> Vec<u32> {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .filter_map(Result::ok)
        .filter_map(|task| fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|text| {
            text.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// All descendants of `pid`, depth first.
pub fn descendant_pids(pid: u32) -> Vec<u32> {
    let mut all = Vec::new();
    for child in child_pids(pid) {
        all.push(child);
        all.extend(descendant_pids(child));
    }
    all
}

/// The executable a process runs (`/proc/PID/exe`).
pub fn exe_of(pid: u32) -> Option<PathBuf> {
    fs::read_link(format!("/proc/{pid}/exe")).ok()
}

/// Polls `condition` every 20 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// 64-bit FNV-1a, as the echo responder's `body_fnv` (printed as 16 hex digits).
pub fn fnv1a64(hash: u64, data: &[u8]) -> u64 {
    data.iter()
        .fold(hash, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// A deterministic, incompressible body of `len` bytes that is produced as it is read (so a 20 MiB upload does not
/// need 20 MiB of memory), and its checksum.
pub struct PatternBody {
    state: u64,
    left: u64,
    word: [u8; 8],
    used: usize,
}

impl PatternBody {
    pub fn new(seed: u64, len: u64) -> Self {
        Self {
            state: seed | 1,
            left: len,
            word: [0; 8],
            used: 8,
        }
    }

    /// The whole body in memory.
    pub fn bytes(seed: u64, len: usize) -> Vec<u8> {
        let mut body = Vec::with_capacity(len);
        io::Read::read_to_end(&mut Self::new(seed, len as u64), &mut body).expect("pattern");
        body
    }

    /// `(length, FNV-1a)` of the body, computed by reading it.
    pub fn checksum(seed: u64, len: u64) -> (u64, u64) {
        let mut reader = Self::new(seed, len);
        let mut buf = vec![0u8; 64 * 1024];
        let (mut total, mut hash) = (0u64, FNV_OFFSET);
        loop {
            let n = io::Read::read(&mut reader, &mut buf).expect("pattern");
            if n == 0 {
                return (total, hash);
            }
            total += n as u64;
            hash = fnv1a64(hash, &buf[..n]);
        }
    }
}

impl io::Read for PatternBody {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(usize::try_from(self.left).unwrap_or(usize::MAX));
        for byte in &mut buf[..n] {
            if self.used == 8 {
                // xorshift64: the same bytes whatever the read sizes.
                self.state ^= self.state << 13;
                self.state ^= self.state >> 7;
                self.state ^= self.state << 17;
                self.word = self.state.to_le_bytes();
                self.used = 0;
            }
            *byte = self.word[self.used];
            self.used += 1;
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Parses the echo responder's `/info` answer into `NAME=VALUE` pairs (first `=` splits; order kept).
pub fn info_lines(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// The value of `name` in an `/info` answer, panicking with the whole answer when absent.
pub fn info_value(text: &str, name: &str) -> String {
    info_lines(text)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("`{name}` missing from the /info answer:\n{text}"))
}
