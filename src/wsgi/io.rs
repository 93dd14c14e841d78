//! The Python objects of one request: `wsgi.input` ([`InputStream`], streaming the body as it arrives with the GIL
//! released while waiting), the `start_response` callable and its `write()` ([`StartResponse`], holding the
//! header block until the first non-empty body bytes and enforcing PEP 3333's `exc_info` rules and the declared
//! Content-Length), and `wsgi.file_wrapper` ([`FileWrapper`]). All of them reach the connection through one
//! shared [`RequestIo`], which hands the exchange back to the server when the request ends.

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use pyo3::exceptions::{PyOSError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString, PyTuple};

use super::head::{self, Head};
use crate::server::{Exchange, RequestError};

pyo3::create_exception!(
    pyfcgi,
    ClientDisconnected,
    PyOSError,
    "The web server closed the connection or aborted the request."
);

/// The request's exchange, shared by the Python objects of the request.
pub struct RequestIo {
    exchange: Mutex<Option<Exchange>>,
    cancelled: AtomicBool,
}

impl RequestIo {
    pub fn new(exchange: Exchange) -> Arc<Self> {
        Arc::new(Self {
            exchange: Mutex::new(Some(exchange)),
            cancelled: AtomicBool::new(false),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Option<Exchange>> {
        self.exchange.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on the exchange with the GIL released (every exchange call may block on the socket).
    pub fn with<R: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut Exchange) -> Result<R, RequestError> + Send,
    ) -> PyResult<R> {
        let result = py.detach(|| match self.lock().as_mut() {
            Some(exchange) => f(exchange).map_err(Some),
            None => Err(None),
        });
        result.map_err(|err| self.to_py_err(err))
    }

    /// Like [`RequestIo::with`], but keeps the GIL when `can_stay` says the call cannot block (a write that only
    /// buffers) and no other thread holds the exchange. Under load every GIL release is a hand-off to another
    /// worker and back, so the common small response avoids it.
    pub fn with_if_quick<R: Send>(
        &self,
        py: Python<'_>,
        can_stay: impl FnOnce(&Exchange) -> bool,
        f: impl FnOnce(&mut Exchange) -> Result<R, RequestError> + Send,
    ) -> PyResult<R> {
        if let Ok(mut guard) = self.exchange.try_lock() {
            if let Some(exchange) = guard.as_mut() {
                if can_stay(exchange) {
                    return f(exchange).map_err(|e| self.to_py_err(Some(e)));
                }
            }
        }
        self.with(py, f)
    }

    fn to_py_err(&self, err: Option<RequestError>) -> PyErr {
        match err {
            Some(err) => {
                // Whatever failed on the connection, the web server is gone for this request.
                self.cancelled.store(true, Ordering::Release);
                ClientDisconnected::new_err(err.to_string())
            }
            None => PyRuntimeError::new_err("this request has already finished"),
        }
    }

    /// Whether the web server went away or aborted (so errors that follow are not the application's fault).
    pub fn cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }

    /// Takes the exchange back at the end of the request. Waits (GIL released) for any application thread
    /// still using it.
    pub fn take(&self, py: Python<'_>) -> Option<Exchange> {
        if let Ok(mut guard) = self.exchange.try_lock() {
            return guard.take();
        }
        py.detach(|| self.lock().take())
    }
}

/// `wsgi.input`. See the module documentation.
#[pyclass(frozen, module = "pyfcgi")]
pub struct InputStream {
    io: Arc<RequestIo>,
}

impl InputStream {
    pub fn new(io: Arc<RequestIo>) -> Self {
        Self { io }
    }

    /// Reads up to `limit` bytes (all of the body when `None`), stopping after a newline if `line`.
    fn read_into(&self, py: Python<'_>, limit: Option<usize>, line: bool) -> PyResult<Vec<u8>> {
        self.io.with(py, |ex| {
            let mut out = Vec::with_capacity(limit.unwrap_or(8192).min(64 * 1024));
            loop {
                let want = limit.map_or(usize::MAX, |l| l - out.len());
                if want == 0 {
                    break;
                }
                let chunk = ex.fill_body()?;
                if chunk.is_empty() {
                    break;
                }
                let mut take = chunk.len().min(want);
                let mut done = false;
                if line {
                    if let Some(nl) = chunk[..take].iter().position(|b| *b == b'\n') {
                        take = nl + 1;
                        done = true;
                    }
                }
                out.extend_from_slice(&chunk[..take]);
                ex.consume_body(take);
                if done {
                    break;
                }
            }
            Ok(out)
        })
    }
}

/// `None` or a negative size means "no limit", as in file objects.
fn size_limit(size: Option<isize>) -> Option<usize> {
    size.and_then(|s| usize::try_from(s).ok())
}

#[pymethods]
impl InputStream {
    #[pyo3(signature = (size=None))]
    fn read<'py>(&self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        let data = self.read_into(py, size_limit(size), false)?;
        Ok(PyBytes::new(py, &data))
    }

    #[pyo3(signature = (size=None))]
    fn readline<'py>(&self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        let data = self.read_into(py, size_limit(size), true)?;
        Ok(PyBytes::new(py, &data))
    }

    #[pyo3(signature = (hint=None))]
    fn readlines<'py>(&self, py: Python<'py>, hint: Option<isize>) -> PyResult<Vec<Bound<'py, PyBytes>>> {
        let hint = size_limit(hint).filter(|h| *h > 0);
        let mut lines = Vec::new();
        let mut total = 0;
        loop {
            let line = self.read_into(py, None, true)?;
            if line.is_empty() {
                break;
            }
            total += line.len();
            lines.push(PyBytes::new(py, &line));
            if hint.is_some_and(|h| total >= h) {
                break;
            }
        }
        Ok(lines)
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let line = self.read_into(py, None, true)?;
        Ok((!line.is_empty()).then(|| PyBytes::new(py, &line)))
    }

    fn readable(&self) -> bool {
        true
    }

    fn close(&self) {}
}

/// What the server decided about a request's response before the application runs.
#[derive(Debug, Clone, Copy)]
pub struct ResponseRules {
    /// A HEAD request: the head is sent, the body never is.
    pub head_request: bool,
    /// Largest header block the application may produce (`PYFCGI_MAX_RESPONSE_HEADER_BYTES`).
    pub max_head: usize,
}

/// What has been decided about the response so far.
#[derive(Debug, Default)]
pub struct ResponseState {
    /// `start_response` was called (and not superseded by an error).
    pub head: Option<Head>,
    /// The header block went to the exchange.
    pub head_sent: bool,
    /// Body bytes accepted so far.
    pub sent: u64,
    /// Body bytes dropped because they exceeded the declared Content-Length.
    pub dropped: u64,
    /// The response may carry no body (HEAD, 1xx, 204, 304): body bytes are counted here and not sent.
    pub bodiless: bool,
    /// Body bytes of a bodiless response that were not sent.
    pub suppressed: u64,
}

/// The `start_response` callable. See the module documentation.
#[pyclass(frozen, module = "pyfcgi")]
pub struct StartResponse {
    io: Arc<RequestIo>,
    rules: ResponseRules,
    state: Mutex<ResponseState>,
}

/// Converts a status or header item (str, or bytes for wfastcgi compatibility) to latin-1 bytes.
fn latin1_bytes<'a>(obj: &'a Bound<'_, PyAny>, what: &str) -> PyResult<Cow<'a, [u8]>> {
    if let Ok(s) = obj.cast::<PyString>() {
        // ASCII text, nearly every header, is its own latin-1 and UTF-8 encoding: borrowed without a copy.
        if let Ok(text) = s.to_str() {
            if text.is_ascii() {
                return Ok(Cow::Borrowed(text.as_bytes()));
            }
        }
        let text = s.to_cow()?;
        return text
            .chars()
            .map(|c| u8::try_from(u32::from(c)).map_err(|_| ()))
            .collect::<Result<Vec<u8>, ()>>()
            .map(Cow::Owned)
            .map_err(|()| PyValueError::new_err(head::HeadError::NotLatin1(format!("{what} {text:?}")).to_string()));
    }
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(Cow::Borrowed(b.as_bytes()));
    }
    Err(PyTypeError::new_err(format!(
        "{what} must be a str, not {}",
        obj.get_type().name()?
    )))
}

impl StartResponse {
    pub fn new(io: Arc<RequestIo>, rules: ResponseRules) -> Self {
        Self {
            io,
            rules,
            state: Mutex::new(ResponseState::default()),
        }
    }

    pub fn state(&self) -> MutexGuard<'_, ResponseState> {
        // Never held across a GIL release or a Python call, so it cannot deadlock; poisoning leaves plain data.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends body bytes (the first non-empty ones carry the header block), dropping any beyond the declared
    /// Content-Length and all of them when the response has no body, and flushes if asked.
    pub fn send(&self, py: Python<'_>, data: &[u8], flush: bool) -> PyResult<()> {
        let (head_block, allowed) = {
            let mut guard = self.state();
            let ResponseState {
                head,
                head_sent,
                sent,
                dropped,
                bodiless,
                suppressed,
            } = &mut *guard;
            let Some(head) = head else {
                return Err(PyRuntimeError::new_err("start_response has not yet been called"));
            };
            let allowed = if *bodiless {
                *suppressed += data.len() as u64;
                0
            } else {
                let remaining = head.content_length.map_or(u64::MAX, |cl| cl.saturating_sub(*sent));
                let allowed = usize::try_from(remaining).map_or(data.len(), |r| r.min(data.len()));
                *dropped += (data.len() - allowed) as u64;
                allowed
            };
            // The block goes to the exchange once, with the first body bytes the application produced (a
            // bodiless response's head goes then too, so a HEAD of a stream is answered at once).
            let block = (!*head_sent && (allowed > 0 || (*bodiless && !data.is_empty())))
                .then(|| std::mem::take(&mut head.block));
            *head_sent |= block.is_some();
            *sent += allowed as u64;
            // With nothing new to write, only a flush of a response that has a body still means something.
            if allowed == 0 && block.is_none() && (!flush || *bodiless) {
                return Ok(());
            }
            (block, allowed)
        };
        let data = &data[..allowed];
        let pending = data.len() + head_block.as_ref().map_or(0, Vec::len);
        let quick = move |ex: &Exchange| !flush && ex.write_is_buffered(pending);
        self.io.with_if_quick(py, quick, move |ex| {
            if let Some(block) = head_block {
                ex.set_head(block);
            }
            ex.write(data)?;
            if flush {
                ex.flush()?;
            }
            Ok(())
        })
    }
}

#[pymethods]
impl StartResponse {
    #[pyo3(signature = (status, headers, exc_info=None))]
    fn __call__<'py>(
        slf: &Bound<'py, Self>,
        status: &Bound<'py, PyAny>,
        headers: &Bound<'py, PyAny>,
        exc_info: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let this = slf.get();
        let exc_info = exc_info.filter(|e| !e.is_none());
        if let Some(exc_info) = exc_info {
            if this.state().head_sent {
                // PEP 3333: too late to change the response; re-raise the application's exception.
                let value = exc_info.cast::<PyTuple>()?.get_item(1)?;
                return Err(PyErr::from_value(value));
            }
        } else if this.state().head.is_some() {
            return Err(PyRuntimeError::new_err("start_response has already been called"));
        }
        let bad = |e: head::HeadError| PyValueError::new_err(e.to_string());
        let mut builder =
            head::HeadBuilder::new(&latin1_bytes(status, "status")?, 8, this.rules.max_head).map_err(bad)?;
        let shape = || PyTypeError::new_err("response headers must be a list of (name, value) tuples");
        for item in headers.try_iter()? {
            let item = item?;
            let tuple = item.cast::<PyTuple>().map_err(|_| shape())?;
            if tuple.len() != 2 {
                return Err(shape());
            }
            let (name, value) = (tuple.get_borrowed_item(0)?, tuple.get_borrowed_item(1)?);
            builder
                .header(
                    &latin1_bytes(&name, "header name")?,
                    &latin1_bytes(&value, "header value")?,
                )
                .map_err(bad)?;
        }
        let head = builder.finish();
        let bodiless = this.rules.head_request || head::bodiless(b"", head.status);
        let mut state = this.state();
        state.bodiless = bodiless;
        state.head = Some(head);
        drop(state);
        slf.getattr(pyo3::intern!(slf.py(), "write"))
    }

    /// PEP 3333's imperative `write()`: sends the bytes at once.
    fn write(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let bytes = data
            .cast::<PyBytes>()
            .map_err(|_| PyTypeError::new_err(format!("write() argument must be bytes, not {}", type_name(data))))?;
        self.send(py, bytes.as_bytes(), true)
    }
}

pub fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

/// `wsgi.file_wrapper`: iterates a file-like object in blocks; the server sends regular files itself, reading
/// them without the GIL.
#[pyclass(frozen, module = "pyfcgi")]
pub struct FileWrapper {
    pub filelike: Py<PyAny>,
    pub blksize: usize,
}

#[pymethods]
impl FileWrapper {
    #[new]
    #[pyo3(signature = (filelike, blksize=8192))]
    fn py_new(filelike: Py<PyAny>, blksize: usize) -> Self {
        Self {
            filelike,
            blksize: blksize.max(1),
        }
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let data = self.filelike.bind(py).call_method1("read", (self.blksize,))?;
        Ok((!data.is_empty()?).then_some(data))
    }

    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let filelike = self.filelike.bind(py);
        if filelike.hasattr("close")? {
            filelike.call_method0("close")?;
        }
        Ok(())
    }
}
