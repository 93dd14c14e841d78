//! The PEP 3333 bridge: a [`Handler`] that runs each request through the WSGI application. It attaches each worker
//! thread to the interpreter once (releasing the GIL around every wait), builds the environ, calls the
//! application, streams the iterable (flushing each item as it is produced, unless the declared Content-Length is
//! already complete), always calls `close()`, and turns any failure into a logged traceback and a safe 500, or,
//! once headers are out, into a cut connection the front server reports as an error instead of a silently
//! truncated page. Tracebacks reach the browser only when the admin opts in.

use std::sync::Arc;
use std::time::Instant;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple, PyType};
use tracing::{debug, error, warn};

pub mod app;
pub mod environ;
pub mod head;
pub mod io;

use crate::config::table;
use crate::protocol::RequestHead;
use crate::python::stdio::{LogWriter, StreamLevel};
use crate::server::{Exchange, Handler, Suspend};
pub use app::{AppLoader, LoadFailure, LoadedApp};
use io::{FileWrapper, InputStream, RequestIo, ResponseRules, StartResponse};

/// Runs WSGI applications. See the module documentation.
pub struct WsgiHandler {
    loader: AppLoader,
    file_wrapper: Py<PyType>,
}

/// How a request ended, for the access log and the connection.
#[derive(Debug, Clone, Copy)]
struct Outcome {
    status: u16,
    /// The response could not be completed after its headers went out: end the connection without END_REQUEST.
    abandon: bool,
}

struct PySuspend<'py>(Python<'py>);

impl Suspend for PySuspend<'_> {
    fn suspend(&self, wait: &mut (dyn FnMut() + Send)) {
        self.0.detach(wait);
    }
}

impl WsgiHandler {
    /// # Errors
    /// If the interpreter is not running.
    pub fn new(loader: AppLoader) -> PyResult<Self> {
        Python::attach(|py| {
            Ok(Self {
                loader,
                file_wrapper: py.get_type::<FileWrapper>().unbind(),
            })
        })
    }

    pub fn loader(&self) -> &AppLoader {
        &self.loader
    }

    fn run(&self, py: Python<'_>, request: &RequestHead, io: &Arc<RequestIo>, failed: Option<LoadFailure>) -> Outcome {
        let loaded = match failed {
            Some(failure) => Err(failure),
            None => self.loader.get(py, Some(&request.params)),
        };
        let app = match loaded {
            Ok(app) => app,
            Err(failure) => {
                let (debug, to_stderr) = self.loader.error_options(Some(&request.params));
                return self.error_response(py, io, None, failure.context, &failure.detail, debug, to_stderr);
            }
        };
        let debug = app.settings.get(&table::DEBUG).value;
        let to_stderr = app.settings.get(&table::ERRORS_TO_STDERR).value;
        if let Err(err) = app.apply_environ(py) {
            warn!(error = %err, "could not re-apply web.config appSettings to os.environ");
        }
        let rules = ResponseRules {
            head_request: request
                .params
                .get(b"REQUEST_METHOD")
                .is_some_and(|m| m.eq_ignore_ascii_case(b"HEAD")),
            max_head: head::limit(app.settings.get(&table::MAX_RESPONSE_HEADER_BYTES).value),
        };
        let responder = match Bound::new(py, StartResponse::new(io.clone(), rules)) {
            Ok(r) => r,
            Err(err) => return self.python_error(py, io, None, "Error occurred", &err, debug, to_stderr),
        };
        // wsgi.errors is per request, so partial lines written by concurrent requests never mix in one line.
        let errors = Bound::new(py, LogWriter::new("wsgi.errors", StreamLevel::Warn));
        let input = Bound::new(py, InputStream::new(io.clone()));
        let environ = input.and_then(|input| {
            environ::build(
                py,
                &request.params,
                &app.defaults,
                input.as_any(),
                errors?.as_any(),
                self.file_wrapper.bind(py).as_any(),
            )
        });
        let environ = match environ {
            Ok(environ) => environ,
            Err(err) => return self.python_error(py, io, Some(&responder), "Error occurred", &err, debug, to_stderr),
        };
        let iterable = match app.callable.bind(py).call1((environ, &responder)) {
            Ok(iterable) => iterable,
            Err(err) => return self.python_error(py, io, Some(&responder), "Error occurred", &err, debug, to_stderr),
        };
        let sent = self.send_iterable(py, &responder, &iterable);
        // Lists and tuples have no close(); looking it up would build and discard an AttributeError.
        let closed = if iterable.is_exact_instance_of::<PyList>() || iterable.is_exact_instance_of::<PyTuple>() {
            Ok(())
        } else {
            iterable
                .getattr_opt(pyo3::intern!(py, "close"))
                .and_then(|close| close.map_or(Ok(()), |c| c.call0().map(drop)))
        };
        if let Err(err) = sent {
            return self.python_error(py, io, Some(&responder), "Error occurred", &err, debug, to_stderr);
        }
        if let Err(err) = closed {
            // Once the headers are out and the iterable is exhausted, the response is what the application meant
            // to send: cutting the connection would only make the front server report a failure (and close its
            // client's keep-alive connection) for a complete page. Before that, a 500 can still say it failed.
            let head_sent = responder.get().state().head_sent;
            if !head_sent || io.cancelled() {
                return self.python_error(py, io, Some(&responder), "Error occurred", &err, debug, to_stderr);
            }
            let traceback = crate::python::format_traceback(py, &err);
            error!("Error occurred in close() of the response iterable, after the response was sent (it is complete and was ended normally):\n\n{traceback}");
        }
        self.complete(py, io, &responder, request)
    }

    /// Writes the application's iterable. Lists and tuples are complete already, so they are written without
    /// a flush per item; other iterables are flushed after every item so streaming works.
    fn send_iterable(
        &self,
        py: Python<'_>,
        responder: &Bound<'_, StartResponse>,
        iterable: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let responder = responder.get();
        if let Ok(list) = iterable.cast::<PyList>() {
            for item in list.iter() {
                responder.send(py, body_bytes(&item)?.as_bytes(), false)?;
            }
            return Ok(());
        }
        if let Ok(tuple) = iterable.cast::<PyTuple>() {
            for item in tuple.iter() {
                responder.send(py, body_bytes(&item)?.as_bytes(), false)?;
            }
            return Ok(());
        }
        if responder.state().bodiless && iterable.cast::<FileWrapper>().is_ok() {
            // Nothing of the file would be sent; the head goes out when the request completes.
            return Ok(());
        }
        #[cfg(unix)]
        if let Ok(wrapper) = iterable.cast::<FileWrapper>() {
            if let Some(result) = send_file(py, responder, wrapper.get()) {
                return result;
            }
        }
        for item in iterable.try_iter()? {
            let item = item?;
            let bytes = body_bytes(&item)?;
            let len = bytes.as_bytes().len() as u64;
            let complete = {
                let state = responder.state();
                state
                    .head
                    .as_ref()
                    .and_then(|h| h.content_length)
                    .is_some_and(|cl| state.sent + len >= cl)
            };
            responder.send(py, bytes.as_bytes(), !complete)?;
        }
        Ok(())
    }

    /// After the application finished: sends a header block that never met a body, and checks the body against
    /// the declared Content-Length.
    fn complete(
        &self,
        py: Python<'_>,
        io: &Arc<RequestIo>,
        responder: &Bound<'_, StartResponse>,
        request: &RequestHead,
    ) -> Outcome {
        let (head, status, short) = {
            let state = responder.get().state();
            let Some(head) = &state.head else {
                drop(state);
                let err = pyo3::exceptions::PyRuntimeError::new_err(
                    "the application returned without calling start_response",
                );
                let (debug, to_stderr) = self.loader.error_options(None);
                return self.python_error(py, io, Some(responder), "Error occurred", &err, debug, to_stderr);
            };
            let method = request.params.get(b"REQUEST_METHOD").unwrap_or_default();
            let short = head
                .content_length
                .filter(|cl| state.sent < *cl && !head::bodiless(method, head.status))
                .map(|cl| (cl, state.sent));
            if state.dropped > 0 {
                warn!(
                    dropped = state.dropped,
                    "the application sent more bytes than its Content-Length; the excess was not sent"
                );
            }
            let block = (!state.head_sent).then(|| head.block.clone());
            (block, head.status, short)
        };
        let abandon = short.is_some();
        if let Some((declared, sent)) = short {
            warn!(declared, sent, "the application sent fewer bytes than its Content-Length; ending the connection so the client is not left waiting");
        }
        if head.is_none() && !abandon {
            return Outcome { status, abandon: false };
        }
        // Setting the head or abandoning only changes state; neither touches the socket.
        let result = io.with_if_quick(
            py,
            |_| true,
            move |ex| {
                if let Some(block) = head {
                    ex.set_head(block);
                }
                if abandon {
                    ex.abandon();
                }
                Ok(())
            },
        );
        Outcome {
            status,
            abandon: abandon || result.is_err(),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn python_error(
        &self,
        py: Python<'_>,
        io: &Arc<RequestIo>,
        responder: Option<&Bound<'_, StartResponse>>,
        context: &'static str,
        err: &PyErr,
        debug: bool,
        to_stderr: bool,
    ) -> Outcome {
        if io.cancelled() {
            debug!("the web server went away during the request: {err}");
            return Outcome {
                status: 499,
                abandon: true,
            };
        }
        let traceback = crate::python::format_traceback(py, err);
        error!("{context}:\n\n{traceback}");
        self.error_response(py, io, responder, context, &traceback, debug, to_stderr)
    }

    /// Answers with a safe 500, or cuts the connection if the headers are already out. The caller has logged the
    /// error (a failed load is logged by the loader, with the settings it used).
    #[allow(clippy::too_many_arguments)]
    fn error_response(
        &self,
        py: Python<'_>,
        io: &Arc<RequestIo>,
        responder: Option<&Bound<'_, StartResponse>>,
        context: &'static str,
        detail: &str,
        debug: bool,
        to_stderr: bool,
    ) -> Outcome {
        let head_sent = responder.is_some_and(|r| {
            let mut state = r.get().state();
            // Nothing more may be sent by the application after this point.
            let sent = state.head_sent;
            state.head_sent = true;
            sent
        });
        if head_sent {
            warn!("the response was already under way; ending the connection so the client sees it is incomplete");
            let _ = io.with(py, |ex| {
                ex.abandon();
                Ok(())
            });
            return Outcome {
                status: 500,
                abandon: true,
            };
        }
        let (block, body) = error_page(debug.then_some(detail));
        let stderr_text = to_stderr.then(|| format!("{context}:\n\n{detail}\n\n"));
        let result = io.with(py, move |ex| {
            ex.set_head(block);
            ex.write(&body)?;
            if let Some(text) = stderr_text {
                ex.write_stderr(text.as_bytes())?;
            }
            Ok(())
        });
        Outcome {
            status: 500,
            abandon: result.is_err(),
        }
    }
}

fn body_bytes<'py>(item: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    item.cast::<PyBytes>().cloned().map_err(|_| {
        pyo3::exceptions::PyTypeError::new_err(format!(
            "the response iterable yielded {} instead of bytes (content must be encoded before sending)",
            io::type_name(item)
        ))
    })
}

/// Sends a regular file behind `wsgi.file_wrapper` straight from its descriptor, in large blocks, with the GIL
/// released. `None` when the object is not a plain file (the caller iterates it instead).
#[cfg(unix)]
fn send_file(py: Python<'_>, responder: &StartResponse, wrapper: &FileWrapper) -> Option<PyResult<()>> {
    use std::os::fd::{BorrowedFd, FromRawFd, IntoRawFd, OwnedFd};
    use std::os::unix::fs::FileExt;

    let filelike = wrapper.filelike.bind(py);
    let fd: i32 = filelike.call_method0("fileno").ok()?.extract().ok()?;
    let offset: u64 = filelike.call_method0("tell").ok()?.extract().ok()?;
    // SAFETY: the descriptor belongs to a live Python file object; it is duplicated so the copy can be read
    // without the GIL and closed independently.
    let file = unsafe { BorrowedFd::borrow_raw(fd) }.try_clone_to_owned().ok()?;
    let file = std::fs::File::from(file);
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    const BLOCK: usize = 256 * 1024;
    let mut buf = vec![0u8; BLOCK];
    let mut position = offset;
    let result = (|| loop {
        let n = py.detach(|| file.read_at(&mut buf, position)).map_err(PyErr::from)?;
        if n == 0 {
            return Ok(());
        }
        position += n as u64;
        responder.send(py, &buf[..n], false)?;
        if responder
            .state()
            .head
            .as_ref()
            .and_then(|h| h.content_length)
            .is_some_and(|cl| position - offset >= cl)
        {
            return Ok(());
        }
    })();
    // Keep the duplicate's lifetime explicit: it is closed here, the application's file stays open.
    let _ = unsafe { OwnedFd::from_raw_fd(file.into_raw_fd()) };
    Some(result)
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The 500 page: generic unless `detail` is given (debug mode).
pub fn error_page(detail: Option<&str>) -> (Vec<u8>, Vec<u8>) {
    let extra = detail
        .map(|d| format!("<pre>{}</pre>\n", html_escape(d)))
        .unwrap_or_default();
    let body = format!(
        "<!DOCTYPE html>\n<html><head><title>500 Internal Server Error</title></head><body>\n\
         <h1>Internal Server Error</h1>\n<p>The application could not complete this request. The error has been \
         logged.</p>\n{extra}</body></html>\n"
    )
    .into_bytes();
    let head = format!(
        "Status: 500 Internal Server Error\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    (head, body)
}

impl Handler for WsgiHandler {
    fn run_worker(&self, serve: &mut dyn FnMut(&dyn Suspend)) {
        Python::attach(|py| serve(&PySuspend(py)));
    }

    fn handle(&self, request: RequestHead, exchange: Exchange) -> (Exchange, u32) {
        self.serve(request, exchange, None)
    }
}

impl WsgiHandler {
    /// Answers a request for an application that failed to load with the safe 500 (the loader logged why); for
    /// a dispatcher that loads the application before it knows which interface serves it.
    pub fn handle_failed_load(
        &self,
        request: RequestHead,
        exchange: Exchange,
        failure: LoadFailure,
    ) -> (Exchange, u32) {
        self.serve(request, exchange, Some(failure))
    }

    fn serve(&self, request: RequestHead, exchange: Exchange, failed: Option<LoadFailure>) -> (Exchange, u32) {
        let started = Instant::now();
        Python::attach(|py| {
            let io = RequestIo::new(exchange);
            let outcome = self.run(py, &request, &io, failed);
            let exchange = io
                .take(py)
                .expect("only the handler takes the exchange, once, at the end of the request");
            if self
                .loader
                .loaded()
                .is_none_or(|app| app.settings.get(&table::ACCESS_LOG).value)
                && tracing::enabled!(target: "pyfcgi::access", tracing::Level::INFO)
            {
                let params = &request.params;
                crate::logging::access::record(&crate::logging::access::AccessRecord {
                    method: params.get(b"REQUEST_METHOD").unwrap_or_default(),
                    uri: params
                        .get(b"REQUEST_URI")
                        .or_else(|| params.get(b"PATH_INFO"))
                        .unwrap_or_default(),
                    status: outcome.status,
                    bytes: exchange.body_bytes_sent(),
                    micros: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
                    complete: !outcome.abandon,
                });
            }
            (exchange, 0)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_page_hides_details_unless_debugging() {
        let (head, body) = error_page(None);
        let body = String::from_utf8(body).unwrap();
        assert!(!body.contains("Traceback"));
        assert!(String::from_utf8(head)
            .unwrap()
            .contains(&format!("Content-Length: {}", body.len())));
        let (_, body) = error_page(Some("Traceback <module>\nValueError: x & y"));
        let body = String::from_utf8(body).unwrap();
        assert!(body.contains("Traceback &lt;module&gt;"));
        assert!(body.contains("x &amp; y"));
    }
}
