//! Where pyfcgi's log goes: `tracing` events formatted one per line to stderr until configuration says
//! otherwise, then to `WSGI_LOG` (which, as in wfastcgi, may only be known after web.config is read on the first
//! request). A log file that cannot be opened is reported once and logging carries on at the previous target: a
//! log must never take the site down. Under IIS stderr is an invalid handle; writes to it fail silently. The
//! filter is reloadable for the same reason: web.config's `PYFCGI_LOG_LEVEL` applies as soon as it is read.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Registry};

enum Target {
    Stderr,
    File { path: PathBuf, file: File },
}

static TARGET: Mutex<Target> = Mutex::new(Target::Stderr);
static INSTALLED: OnceLock<()> = OnceLock::new();

fn target() -> MutexGuard<'static, Target> {
    TARGET.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The writer tracing formats into: each event is written with one call while the target is locked, so lines
/// from different threads never interleave.
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
        if self.buffer.is_empty() {
            return;
        }
        // Failures are ignored on purpose: there is nowhere left to report them, and the site must keep serving.
        match &mut *target() {
            Target::Stderr => {
                let _ = io::stderr().write_all(&self.buffer);
            }
            Target::File { file, .. } => {
                let _ = file.write_all(&self.buffer);
            }
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
            .with(tracing_subscriber::fmt::layer().with_writer(Sink).with_ansi(ansi))
            .try_init();
        if installed.is_ok() {
            let _ = FILTER.set(handle);
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

/// Sends the log to `path` (opened for appending, created if missing). On failure the previous target is kept
/// and the error is returned for the caller to report once.
///
/// # Errors
/// When the file cannot be opened.
pub fn log_to_file(path: &Path) -> io::Result<()> {
    if let Target::File { path: current, .. } = &*target() {
        if current == path {
            return Ok(());
        }
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        let _ = std::fs::create_dir_all(parent);
    }
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    *target() = Target::File {
        path: path.to_path_buf(),
        file,
    };
    Ok(())
}

/// The file the log goes to, if any.
pub fn current_file() -> Option<PathBuf> {
    match &*target() {
        Target::File { path, .. } => Some(path.clone()),
        Target::Stderr => None,
    }
}
