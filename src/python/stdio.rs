//! File-like objects that send Python text to pyfcgi's log: `sys.stdout` and `sys.stderr` (under IIS the real
//! handles are invalid, and anywhere else a stray `print()` must not corrupt a FastCGI stream on fd 1) and
//! `wsgi.errors`. Text is split into lines; each complete line becomes one log event.

use std::sync::Mutex;

use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use tracing::{info, warn};

/// How loud a stream's lines are in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamLevel {
    Info,
    Warn,
}

/// See the module documentation.
#[pyclass(frozen, module = "pyfcgi")]
pub struct LogWriter {
    name: &'static str,
    level: StreamLevel,
    pending: Mutex<String>,
}

impl LogWriter {
    pub fn new(name: &'static str, level: StreamLevel) -> Self {
        Self {
            name,
            level,
            pending: Mutex::new(String::new()),
        }
    }

    fn emit(&self, line: &str) {
        let line = line.strip_suffix('\r').unwrap_or(line);
        match self.level {
            StreamLevel::Info => info!(target: "pyfcgi::python", stream = self.name, "{line}"),
            StreamLevel::Warn => warn!(target: "pyfcgi::python", stream = self.name, "{line}"),
        }
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, String> {
        // Only plain string edits happen under this lock (no Python calls), so it is never held while the GIL
        // is released, and a poisoned lock still holds a usable string.
        self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        // A last line written without a newline is still logged (wsgi.errors lives for one request).
        let rest = std::mem::take(
            self.pending
                .get_mut()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        if !rest.is_empty() {
            self.emit(&rest);
        }
    }
}

#[pymethods]
impl LogWriter {
    fn write(&self, text: &str) -> usize {
        let mut pending = self.pending();
        pending.push_str(text);
        if let Some(last_newline) = pending.rfind('\n') {
            let complete: String = pending.drain(..=last_newline).collect();
            drop(pending);
            for line in complete[..complete.len() - 1].split('\n') {
                self.emit(line);
            }
        }
        text.chars().count()
    }

    fn writelines(&self, lines: Vec<String>) {
        for line in lines {
            self.write(&line);
        }
    }

    fn flush(&self) {
        let rest = std::mem::take(&mut *self.pending());
        if !rest.is_empty() {
            self.emit(&rest);
        }
    }

    fn isatty(&self) -> bool {
        false
    }

    fn writable(&self) -> bool {
        true
    }

    fn readable(&self) -> bool {
        false
    }

    fn seekable(&self) -> bool {
        false
    }

    fn fileno(&self) -> PyResult<i32> {
        Err(PyOSError::new_err(format!(
            "{} is pyfcgi's log, not a file descriptor",
            self.name
        )))
    }

    #[getter]
    fn encoding(&self) -> &'static str {
        "utf-8"
    }

    #[getter]
    fn errors(&self) -> &'static str {
        "backslashreplace"
    }

    #[getter]
    fn closed(&self) -> bool {
        false
    }

    #[getter]
    fn name(&self) -> String {
        format!("<pyfcgi {}>", self.name)
    }
}

/// Replaces `sys.stdout`, `sys.stderr` and their `__stdout__`/`__stderr__` twins with log writers. On Windows
/// also `sys.stdin`/`sys.__stdin__`: under IIS the stdin handle (fd 0, in CPython's C runtime too) is the FastCGI
/// pipe itself, so an application reading `sys.stdin` (`input()`, a debugger) would steal request bytes or block
/// the connection. It gets an empty stream instead: reads return `''` (`b''` from `.buffer`) and `fileno()`
/// raises `io.UnsupportedOperation`. (On Unix fd 0 is already detached from the listening socket.)
///
/// # Errors
/// When `sys` cannot be modified.
pub fn install(py: Python<'_>) -> PyResult<()> {
    let sys = py.import("sys")?;
    if cfg!(windows) {
        let stdin = py.eval(
            c"__import__('io').TextIOWrapper(__import__('io').BytesIO(b''), encoding='utf-8')",
            None,
            None,
        )?;
        sys.setattr("stdin", &stdin)?;
        sys.setattr("__stdin__", &stdin)?;
    }
    let stdout = Bound::new(py, LogWriter::new("stdout", StreamLevel::Info))?;
    let stderr = Bound::new(py, LogWriter::new("stderr", StreamLevel::Warn))?;
    sys.setattr("stdout", &stdout)?;
    sys.setattr("__stdout__", &stdout)?;
    sys.setattr("stderr", &stderr)?;
    sys.setattr("__stderr__", &stderr)?;
    Ok(())
}
