//! The Python side of one ASGI request, run on the event loop's thread: `receive()` (the body as `http.request`
//! messages as the worker reads it, then `http.disconnect` once the response is done or the client left),
//! `send()` (validating each message and queueing it for the worker, with back-pressure past
//! [`HIGH_WATER`] queued bytes), and the task's done-callback, which turns a failure into a logged traceback and
//! a safe 500, or a cut connection once the response is under way. Status and headers are validated by
//! [`crate::wsgi::head`], the same rules as WSGI's `start_response`.

use std::sync::Arc;

use pyo3::exceptions::{PyRuntimeError, PyStopIteration, PyTypeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyMemoryView, PyString};
use tracing::{debug, error, warn};

use super::request::{Out, Shared, State, HIGH_WATER};
use crate::wsgi::head::{self, HeadBuilder};
use crate::wsgi::io::{type_name, ClientDisconnected};

/// An awaitable that is already done: `await` returns its value without a trip through the event loop (most
/// `receive()` and `send()` calls complete at once; creating an asyncio future for each would cost more).
#[pyclass(module = "pyfcgi", name = "Ready")]
pub struct Ready {
    value: Option<Py<PyAny>>,
}

#[pymethods]
impl Ready {
    fn __await__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&mut self, py: Python<'_>) -> PyResult<()> {
        let value = self.value.take().unwrap_or_else(|| py.None());
        Err(PyStopIteration::new_err((value,)))
    }

    fn send(&mut self, py: Python<'_>, _value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.__next__(py)
    }

    #[pyo3(signature = (exc, *_args))]
    fn throw(&mut self, exc: &Bound<'_, PyAny>, _args: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<()> {
        Err(PyErr::from_value(exc.clone()))
    }

    fn close(&mut self) {
        self.value = None;
    }
}

fn ready<'py>(py: Python<'py>, value: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    Ok(Bound::new(
        py,
        Ready {
            value: Some(value.unbind()),
        },
    )?
    .into_any())
}

/// What a request needs from its application's settings.
#[derive(Debug, Clone, Copy)]
pub struct RequestOptions {
    pub debug: bool,
    pub errors_to_stderr: bool,
    /// Largest response header block (`PYFCGI_MAX_RESPONSE_HEADER_BYTES`).
    pub max_head: usize,
}

/// `receive`, `send` and the done-callback of one request (bound methods of this object).
#[pyclass(frozen, module = "pyfcgi", name = "AsgiRequest")]
pub struct AsgiRequest {
    shared: Arc<Shared>,
    event_loop: Py<PyAny>,
    options: RequestOptions,
    /// HEAD: the body is not sent (nginx would drop it anyway) and Content-Length is not checked.
    head_request: bool,
    /// The response's declared Content-Length and the body bytes sent, checked as uvicorn does.
    lengths: std::sync::Mutex<(Option<u64>, u64)>,
}

fn request_message<'py>(py: Python<'py>, body: &[u8], more: bool) -> PyResult<Bound<'py, PyAny>> {
    let message = PyDict::new(py);
    message.set_item(intern!(py, "type"), intern!(py, "http.request"))?;
    message.set_item(intern!(py, "body"), PyBytes::new(py, body))?;
    message.set_item(intern!(py, "more_body"), more)?;
    Ok(message.into_any())
}

fn disconnect_message(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    let message = PyDict::new(py);
    message.set_item(intern!(py, "type"), intern!(py, "http.disconnect"))?;
    Ok(message.into_any())
}

/// A body value as bytes: `bytes`, `bytearray` or `memoryview`.
fn body_bytes(value: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    if let Ok(bytes) = value.cast::<PyBytes>() {
        return Ok(bytes.as_bytes().to_vec());
    }
    if let Ok(array) = value.cast::<PyByteArray>() {
        return Ok(array.to_vec());
    }
    if value.is_instance_of::<PyMemoryView>() {
        return value.call_method0("tobytes")?.extract();
    }
    Err(PyTypeError::new_err(format!(
        "http.response.body 'body' must be bytes, not {}",
        type_name(value)
    )))
}

fn header_bytes(value: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<u8>> {
    if let Ok(bytes) = value.cast::<PyBytes>() {
        return Ok(bytes.as_bytes().to_vec());
    }
    if let Ok(array) = value.cast::<PyByteArray>() {
        return Ok(array.to_vec());
    }
    Err(PyTypeError::new_err(format!(
        "http.response.start header {what} must be bytes, not {}",
        type_name(value)
    )))
}

/// The reason phrase for the CGI `Status:` line (nginx and IIS pass it on to the client).
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        207 => "Multi-Status",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        418 => "I'm a Teapot",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        423 => "Locked",
        424 => "Failed Dependency",
        425 => "Too Early",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        451 => "Unavailable For Legal Reasons",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        507 => "Insufficient Storage",
        511 => "Network Authentication Required",
        _ => "",
    }
}

/// Validates `http.response.start`'s status and headers into the CGI header block.
fn response_head(message: &Bound<'_, PyAny>, max_head: usize) -> PyResult<head::Head> {
    let py = message.py();
    let status = message
        .get_item(intern!(py, "status"))
        .map_err(|_| PyValueError::new_err("http.response.start has no 'status'"))?;
    if status.is_instance_of::<pyo3::types::PyBool>() {
        return Err(PyTypeError::new_err(
            "http.response.start 'status' must be an int, not bool",
        ));
    }
    let code: u16 = status
        .extract::<i64>()
        .ok()
        .and_then(|c| u16::try_from(c).ok())
        .filter(|c| (100..=999).contains(c))
        .ok_or_else(|| {
            PyValueError::new_err(format!(
                "http.response.start 'status' must be an int from 100 to 999, not {}",
                status.repr().map(|r| r.to_string()).unwrap_or_default()
            ))
        })?;
    let phrase = reason(code);
    let line = if phrase.is_empty() {
        code.to_string()
    } else {
        format!("{code} {phrase}")
    };
    let bad = |e: head::HeadError| PyValueError::new_err(format!("http.response.start: {e}"));
    let mut builder = HeadBuilder::new(line.as_bytes(), 8, max_head).map_err(bad)?;
    let headers = match message.get_item(intern!(py, "headers")) {
        Ok(headers) if !headers.is_none() => Some(headers),
        _ => None,
    };
    if let Some(headers) = headers {
        let shape = || PyTypeError::new_err("http.response.start 'headers' must be an iterable of [name, value] pairs");
        for pair in headers.try_iter().map_err(|_| shape())? {
            let pair = pair?;
            let mut items = pair.try_iter().map_err(|_| shape())?;
            let (Some(name), Some(value), None) = (items.next(), items.next(), items.next()) else {
                return Err(shape());
            };
            let (name, value) = (header_bytes(&name?, "name")?, header_bytes(&value?, "value")?);
            // Servers handle the framing: ASGI lets applications send Transfer-Encoding and says to ignore it.
            if name.eq_ignore_ascii_case(b"transfer-encoding") {
                continue;
            }
            builder.header(&name, &value).map_err(bad)?;
        }
    }
    Ok(builder.finish())
}

impl AsgiRequest {
    pub fn new(shared: Arc<Shared>, event_loop: Py<PyAny>, options: RequestOptions) -> Self {
        let head_request = shared
            .head
            .params
            .get(b"REQUEST_METHOD")
            .is_some_and(|m| m.eq_ignore_ascii_case(b"HEAD"));
        Self {
            shared,
            event_loop,
            options,
            head_request,
            lengths: std::sync::Mutex::new((None, 0)),
        }
    }

    fn future<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.event_loop.bind(py).call_method0(intern!(py, "create_future"))
    }

    /// Queues an error answer for a failure before `http.response.start`, or a cut connection after it.
    pub fn fail(&self, py: Python<'_>, context: &str, err: &PyErr) {
        fail_request(py, &self.shared, self.options, context, err);
    }

    fn send_message<'py>(&self, py: Python<'py>, message: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let kind = message
            .get_item(intern!(py, "type"))
            .map_err(|_| PyValueError::new_err("ASGI message has no 'type'"))?;
        let kind = kind
            .cast::<PyString>()
            .map_err(|_| PyTypeError::new_err("ASGI message 'type' must be a str"))?
            .to_cow()?
            .into_owned();
        let optional = |key: &Bound<'py, PyString>| -> Option<Bound<'py, PyAny>> {
            message.get_item(key).ok().filter(|v| !v.is_none())
        };
        let mut st = self.shared.lock();
        if st.complete {
            return Err(PyRuntimeError::new_err(format!(
                "Unexpected ASGI message '{kind}' sent, after response already completed."
            )));
        }
        if st.gone || st.finished {
            return Err(ClientDisconnected::new_err(
                "the client went away; the response cannot be sent",
            ));
        }
        match kind.as_str() {
            "http.response.start" => {
                if st.started {
                    return Err(PyRuntimeError::new_err(
                        "Expected ASGI message 'http.response.body', but got 'http.response.start'.",
                    ));
                }
                if optional(intern!(py, "trailers")).is_some_and(|t| t.is_truthy().unwrap_or(false)) {
                    return Err(PyValueError::new_err(
                        "http.response.start asks for trailers, which FastCGI cannot carry (the server does not \
                         advertise the http.response.trailers extension)",
                    ));
                }
                drop(st);
                let head = response_head(message, self.options.max_head)?;
                let mut st = self.shared.lock();
                st.started = true;
                st.status = head.status;
                *self.lengths.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = (head.content_length, 0);
                st.out.push_back(Out::Head(head.block));
                // Not written yet: the worker sends it with the first body bytes (or at the end).
                ready(py, py.None().into_bound(py))
            }
            "http.response.body" => {
                if !st.started {
                    return Err(PyRuntimeError::new_err(
                        "Expected ASGI message 'http.response.start', but got 'http.response.body'.",
                    ));
                }
                let body = match optional(intern!(py, "body")) {
                    Some(body) => body_bytes(&body)?,
                    None => Vec::new(),
                };
                let more = match optional(intern!(py, "more_body")) {
                    Some(more) => more.is_truthy()?,
                    None => false,
                };
                // HEAD, 1xx, 204 and 304 carry no body (RFC 9110), whatever the application sends.
                let bodiless = self.head_request || head::bodiless(b"GET", st.status);
                if !bodiless {
                    let mut lengths = self.lengths.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    let (declared, sent) = &mut *lengths;
                    let total = *sent + body.len() as u64;
                    if declared.is_some_and(|cl| total > cl) {
                        return Err(PyRuntimeError::new_err("Response content longer than Content-Length"));
                    }
                    if !more && declared.is_some_and(|cl| total < cl) {
                        return Err(PyRuntimeError::new_err("Response content shorter than Content-Length"));
                    }
                    *sent = total;
                }
                if !body.is_empty() && !bodiless {
                    st.out_bytes += body.len();
                    st.out.push_back(Out::Body {
                        data: body,
                        flush: more,
                    });
                }
                if !more {
                    queue_last(&mut st, Out::End);
                }
                let wait = more && st.out_bytes >= HIGH_WATER;
                drop(st);
                self.shared.notify_worker();
                if wait {
                    let future = self.future(py)?;
                    let mut st = self.shared.lock();
                    if st.gone || st.finished || st.out_bytes < HIGH_WATER {
                        drop(st);
                        return ready(py, py.None().into_bound(py));
                    }
                    st.send_blocked = true;
                    st.send_waiter = Some(future.clone().unbind());
                    return Ok(future);
                }
                ready(py, py.None().into_bound(py))
            }
            "http.response.pathsend" => {
                if !st.started {
                    return Err(PyRuntimeError::new_err(
                        "Expected ASGI message 'http.response.start', but got 'http.response.pathsend'.",
                    ));
                }
                let path = optional(intern!(py, "path"))
                    .ok_or_else(|| PyValueError::new_err("http.response.pathsend has no 'path'"))?;
                let path: std::path::PathBuf = path.extract()?;
                if !path.is_absolute() {
                    return Err(PyValueError::new_err(format!(
                        "http.response.pathsend 'path' must be absolute, not {}",
                        path.display()
                    )));
                }
                let expect = self.lengths.lock().unwrap_or_else(std::sync::PoisonError::into_inner).0;
                if !self.head_request {
                    st.out.push_back(Out::File { path, expect });
                }
                queue_last(&mut st, Out::End);
                drop(st);
                self.shared.notify_worker();
                ready(py, py.None().into_bound(py))
            }
            "http.response.trailers" => Err(PyValueError::new_err(
                "http.response.trailers is not supported: FastCGI has no trailers",
            )),
            other if other.starts_with("websocket.") => Err(PyValueError::new_err(format!(
                "'{other}' sent in an HTTP scope (pyfcgi never opens WebSockets: FastCGI cannot carry them)"
            ))),
            other => Err(PyValueError::new_err(format!("unknown ASGI message type '{other}'"))),
        }
    }
}

/// Resolves what the application waits for after the worker changed the state (called by the loop's drain).
pub fn wake(py: Python<'_>, shared: &Shared) -> PyResult<()> {
    let (messages, send_waiter) = {
        let mut st = shared.lock();
        let mut messages: Vec<(Py<PyAny>, Option<Chunk>)> = Vec::new();
        if st.gone || st.finished {
            messages.extend(st.receive_waiters.drain(..).map(|w| (w, None)));
        } else if !st.receive_waiters.is_empty() {
            if let Some(chunk) = st.chunk.take() {
                let waiter = st.receive_waiters.remove(0);
                st.body_delivered |= !chunk.1;
                messages.push((waiter, Some(chunk)));
            }
        }
        st.body_wanted = !st.receive_waiters.is_empty() && !st.body_delivered;
        st.watch = !st.receive_waiters.is_empty() && st.body_delivered;
        let release = st.gone || st.finished || !st.send_blocked;
        let send_waiter = if release { st.send_waiter.take() } else { None };
        if messages.iter().any(|(_, m)| m.is_some()) {
            // A chunk was taken: the worker may read ahead again.
            shared.notify_worker();
        }
        (messages, send_waiter)
    };
    for (waiter, message) in messages {
        let waiter = waiter.bind(py);
        if waiter.call_method0(intern!(py, "done"))?.is_truthy()? {
            // Cancelled by the application (e.g. a task group ended); a body chunk it took is put back.
            if let Some(chunk) = message {
                let mut st = shared.lock();
                st.body_delivered &= chunk.1;
                st.chunk = Some(chunk);
            }
            continue;
        }
        let message = match message {
            Some((body, more)) => request_message(py, &body, more)?,
            None => disconnect_message(py)?,
        };
        waiter.call_method1(intern!(py, "set_result"), (message,))?;
    }
    if let Some(waiter) = send_waiter {
        let waiter = waiter.bind(py);
        if !waiter.call_method0(intern!(py, "done"))?.is_truthy()? {
            waiter.call_method1(intern!(py, "set_result"), (py.None(),))?;
        }
    }
    Ok(())
}

/// Queues an error answer (for a request whose task may not exist) for a failure before `http.response.start`, or a cut connection after it.
pub fn fail_request(py: Python<'_>, shared: &Shared, options: RequestOptions, context: &str, err: &PyErr) {
    let mut st = shared.lock();
    if st.gone || (st.finished && !st.complete) {
        debug!("the web server went away during the request: {err}");
        return;
    }
    let traceback = crate::python::format_traceback(py, err);
    if st.complete {
        // The response went out already: a failing background task (Starlette's BackgroundTasks).
        error!("{context} after the response was complete:\n\n{traceback}");
        return;
    }
    error!("{context}:\n\n{traceback}");
    if st.started {
        warn!("the response was already under way; ending the connection so the client sees it is incomplete");
        queue_last(&mut st, Out::Abandon);
    } else {
        queue_error_page(&mut st, options, context, &traceback);
    }
    drop(st);
    shared.notify_worker();
}

fn queue_error_page(st: &mut State, options: RequestOptions, context: &str, detail: &str) {
    let (block, body) = crate::wsgi::error_page(options.debug.then_some(detail));
    st.started = true;
    st.status = 500;
    st.out.push_back(Out::Head(block));
    st.out.push_back(Out::Body {
        data: body,
        flush: false,
    });
    if options.errors_to_stderr {
        st.out
            .push_back(Out::Stderr(format!("{context}:\n\n{detail}\n\n").into_bytes()));
    }
    queue_last(st, Out::End);
}

/// A body message: the bytes and `more_body`.
type Chunk = (Vec<u8>, bool);

/// Queues the last response message and marks the response complete.
fn queue_last(st: &mut State, last: Out) {
    st.out.push_back(last);
    st.complete = true;
}

#[pymethods]
impl AsgiRequest {
    fn receive<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let mut st = self.shared.lock();
        if st.gone || st.finished {
            drop(st);
            return ready(py, disconnect_message(py)?);
        }
        if st.receive_waiters.is_empty() {
            if let Some((body, more)) = st.chunk.take() {
                st.body_delivered |= !more;
                drop(st);
                self.shared.notify_worker();
                return ready(py, request_message(py, &body, more)?);
            }
        }
        drop(st);
        let future = self.future(py)?;
        let mut st = self.shared.lock();
        st.receive_waiters.push(future.clone().unbind());
        if st.body_delivered {
            st.watch = true;
        } else {
            st.body_wanted = true;
        }
        drop(st);
        self.shared.notify_worker();
        // The worker may have posted a change between the checks above and registering the waiter.
        wake(py, &self.shared)?;
        Ok(future)
    }

    fn send<'py>(&self, py: Python<'py>, message: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        self.send_message(py, message)
    }

    /// The task's done-callback.
    fn done(&self, py: Python<'_>, task: &Bound<'_, PyAny>) -> PyResult<()> {
        let exception = if task.call_method0(intern!(py, "cancelled"))?.is_truthy()? {
            Some(pyo3::exceptions::asyncio::CancelledError::new_err(
                "the request task was cancelled",
            ))
        } else {
            let exc = task.call_method0(intern!(py, "exception"))?;
            (!exc.is_none()).then(|| PyErr::from_value(exc))
        };
        match exception {
            Some(err) => self.fail(py, "Exception in ASGI application", &err),
            None => {
                let result = task.call_method0(intern!(py, "result"))?;
                if !result.is_none() {
                    warn!(
                        "the ASGI callable returned {} instead of None; ignored",
                        result.repr().map(|r| r.to_string()).unwrap_or_default()
                    );
                }
                let mut st = self.shared.lock();
                if !(st.gone || st.finished || st.complete) {
                    if st.started {
                        error!("the ASGI callable returned without completing the response; ending the connection so the client sees it is incomplete");
                        queue_last(&mut st, Out::Abandon);
                    } else {
                        error!("the ASGI callable returned without starting a response");
                        queue_error_page(
                            &mut st,
                            self.options,
                            "Error occurred",
                            "the ASGI callable returned without starting a response",
                        );
                    }
                    drop(st);
                    self.shared.notify_worker();
                }
            }
        }
        // Whatever still waits belongs to a finished task.
        let mut st = self.shared.lock();
        st.receive_waiters.clear();
        st.send_waiter = None;
        Ok(())
    }
}
