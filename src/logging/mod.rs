//! Where pyfcgi's log goes: `tracing` events formatted one per line to stderr until configuration says
//! otherwise, then to `WSGI_LOG` (which, as in wfastcgi, may only be known after web.config is read on the first
//! request). A log file that cannot be opened is reported once and logging carries on at the previous target: a
//! log must never take the site down. Under IIS stderr is an invalid handle; writes to it fail silently. The
//! filter is reloadable for the same reason: web.config's `PYFCGI_LOG_LEVEL` applies as soon as it is read.
//!
//! Every line carries the process id after its timestamp, and every event (a traceback included) is written
//! with one write, so several processes can append to one `WSGI_LOG` without interleaving ([`file`]). The file
//! is rotated by `PYFCGI_LOG_ROTATE` ([`rotate`]) and reopened on SIGUSR1 (for logrotate). The access log has
//! its own fast path ([`access`]); repeated warnings about misbehaving peers are rate-limited ([`throttle`]).

pub mod access;
mod file;
pub mod rotate;
pub mod throttle;

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};

use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Registry};

use file::LogFile;
pub use rotate::{RotatePolicy, ROTATE_EXPECTED};

enum Target {
    Stderr,
    File(LogFile),
}

static TARGET: Mutex<Target> = Mutex::new(Target::Stderr);
static INSTALLED: OnceLock<()> = OnceLock::new();

fn target() -> MutexGuard<'static, Target> {
    TARGET.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Writes whole lines to the current target in one write. Failures are ignored on purpose: there is nowhere
/// left to report them, and the site must keep serving.
fn write_raw(lines: &[u8]) {
    match &mut *target() {
        Target::Stderr => {
            let _ = io::stderr().write_all(lines);
        }
        Target::File(file) => {
            let _ = file.write_lines(lines);
        }
    }
}

/// The writer tracing formats into: each event is written with one call while the target is locked, so lines
/// from different threads (and processes) never interleave.
pub struct SinkWriter {
    buffer: Vec<u8>,
}

impl Write for SinkWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for SinkWriter {
    fn drop(&mut self) {
        if !self.buffer.is_empty() {
            write_raw(&self.buffer);
        }
    }
}

struct Sink;

impl<'a> MakeWriter<'a> for Sink {
    type Writer = SinkWriter;

    fn make_writer(&'a self) -> Self::Writer {
        SinkWriter {
            buffer: Vec::with_capacity(256),
        }
    }
}

/// tracing's timestamp followed by ` [pid]`, so the lines of several processes in one file can be told apart.
struct TimeAndPid;

impl FormatTime for TimeAndPid {
    fn format_time(&self, w: &mut Writer<'_>) -> std::fmt::Result {
        tracing_subscriber::fmt::time::SystemTime.format_time(w)?;
        write!(w, " [{}]", std::process::id())
    }
}

/// Changes the filter at run time, once web.config has said which level it wants.
static FILTER: OnceLock<reload::Handle<EnvFilter, Registry>> = OnceLock::new();

/// Installs the subscriber with `filter` (`RUST_LOG` syntax, e.g. `info` or `info,pyfcgi::access=off`, as
/// `Settings::log_filter` gives it). Calling it again does nothing; [`set_filter`] changes the filter.
pub fn init(filter: &str) {
    INSTALLED.get_or_init(|| {
        let (filter, handle) = reload::Layer::new(EnvFilter::new(filter));
        let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
        let installed = tracing_subscriber::registry()
            .with(filter)
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(Sink)
                    .with_timer(TimeAndPid)
                    .with_ansi(ansi),
            )
            .try_init();
        if installed.is_ok() {
            let _ = FILTER.set(handle);
        }
        #[cfg(unix)]
        if let Err(err) = reopen_on_sigusr1() {
            tracing::warn!(%err, "cannot handle SIGUSR1; the log cannot be reopened by signal");
        }
    });
}

/// Replaces the filter installed by [`init`] (a no-op before it, or when the text is unchanged).
pub fn set_filter(filter: &str) {
    let Some(handle) = FILTER.get() else { return };
    if handle.with_current(|f| f.to_string() == filter).unwrap_or(false) {
        return;
    }
    if let Err(err) = handle.reload(EnvFilter::new(filter)) {
        tracing::warn!(%err, filter, "cannot change the log filter");
    }
}

/// SIGUSR1 (what logrotate's `postrotate` sends) reopens `WSGI_LOG` instead of killing the process.
#[cfg(unix)]
fn reopen_on_sigusr1() -> io::Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGUSR1])?;
    std::thread::Builder::new()
        .name("pyfcgi-sigusr1".into())
        .spawn(move || {
            for _ in signals.forever() {
                access::request_reopen();
            }
        })?;
    Ok(())
}

/// Reopens the log file at its path (called by the log's writer thread after SIGUSR1).
fn reopen_now() {
    let result = match &mut *target() {
        Target::File(file) => file.reopen().map(|()| Some(file.path().to_path_buf())),
        Target::Stderr => Ok(None),
    };
    match result {
        Ok(Some(path)) => tracing::info!(path = %path.display(), "log file reopened (SIGUSR1)"),
        Ok(None) => {}
        Err(err) => tracing::warn!(%err, "cannot reopen the log file; logging goes on to the file already open"),
    }
}

/// Sends the log to `path` (opened for appending, created if missing), rotated by `policy`. On failure the
/// previous target is kept and the error is returned for the caller to report once.
///
/// # Errors
/// When the file cannot be opened.
pub fn log_to_file(path: &Path, policy: Option<RotatePolicy>) -> io::Result<()> {
    if let Target::File(current) = &mut *target() {
        if current.path() == path {
            current.set_policy(policy);
            return Ok(());
        }
    }
    let file = LogFile::open(path, policy)?;
    *target() = Target::File(file);
    Ok(())
}

/// The file the log goes to, if any.
pub fn current_file() -> Option<PathBuf> {
    match &*target() {
        Target::File(file) => Some(file.path().to_path_buf()),
        Target::Stderr => None,
    }
}

/// Writes the access lines still waiting and the rate limiter's pending summaries (call before the process
/// exits).
pub fn flush() {
    throttle::report_pending();
    access::flush();
}
