//! The ASGI 3 bridge (HTTP and lifespan; never WebSockets, which FastCGI cannot carry): the worker-thread side of
//! a request. The application runs as one task per request on a single event loop per process ([`app::Runtime`],
//! on its own thread); the server's worker thread that received the request hands it to the loop through the
//! [`bridge::Bridge`] and then serves its I/O ([`request::drive`]) without ever taking the GIL, until the
//! application's last body message is written. So behind nginx one process holds as many slow requests as it
//! has worker threads (in ASGI mode, `--max-conns`), and under IIS, which sends one request at a time per
//! process, the application keeps its async code and its lifespan.
//!
//! File roles, as in granian's interface folders: [`scope`] builds the scope, [`request`] reads the body and
//! writes the response on the worker's side, [`io`] is `receive`/`send` on the loop's side, [`app`] decides the
//! interface and runs the loop and the lifespan.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use pyo3::prelude::*;
use tracing::info;

pub mod app;
pub mod bridge;
pub mod io;
pub mod request;
pub mod scope;

use crate::protocol::RequestHead;
use crate::server::Exchange;
use crate::wsgi::LoadedApp;
use request::{Ending, Shared};

/// Runs ASGI applications. See the module documentation.
#[derive(Default)]
pub struct AsgiHandler {
    runtime: OnceLock<Arc<app::Runtime>>,
}

impl AsgiHandler {
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts the event loop and runs lifespan startup, once.
    ///
    /// # Errors
    /// If the loop cannot be set up.
    pub fn start(&self, py: Python<'_>, app: &LoadedApp) -> PyResult<()> {
        if self.runtime.get().is_none() {
            let runtime = app::Runtime::start(py, app)?;
            let _ = self.runtime.set(runtime);
        }
        Ok(())
    }

    /// Runs lifespan shutdown and stops the loop (nothing if the loop never started).
    pub fn shutdown(&self, timeout: Duration) {
        if let Some(runtime) = self.runtime.get() {
            Python::attach(|py| runtime.shutdown(py, timeout));
        }
    }

    /// Serves one request. Called on a server worker thread, with or without the GIL (under IIS the thread
    /// is attached to Python before the application's interface is known); the GIL is released throughout.
    pub fn handle(&self, request: RequestHead, mut exchange: Exchange) -> (Exchange, u32) {
        let started = Instant::now();
        let Some(runtime) = self.runtime.get().cloned() else {
            // The dispatcher starts the runtime before it sends requests here.
            tracing::error!("ASGI request before the event loop was started; answering 500");
            answer_500(&mut exchange, None);
            return (exchange, 0);
        };
        if let Some(failure) = &runtime.startup_failure {
            let status = answer_500(&mut exchange, runtime.options.debug.then_some(failure.as_str()));
            access_log(&runtime, &request, status, &exchange, started, Ending::Complete);
            return (exchange, 0);
        }
        let serve = move || {
            let shared = Shared::new(request);
            let ending = request::drive(&shared, &runtime.bridge, &mut exchange);
            let status = shared.lock().status;
            access_log(&runtime, &shared.head, status, &exchange, started, ending);
            (exchange, 0)
        };
        // SAFETY: PyGILState_Check only reads the calling thread's state; the interpreter is running.
        if unsafe { pyo3::ffi::PyGILState_Check() } != 0 {
            Python::attach(|py| py.detach(serve))
        } else {
            serve()
        }
    }
}

/// The safe 500 for a request that cannot reach the application.
fn answer_500(exchange: &mut Exchange, detail: Option<&str>) -> u16 {
    let (block, body) = crate::wsgi::error_page(detail);
    exchange.set_head(block);
    let _ = exchange.write(&body);
    500
}

fn access_log(
    runtime: &app::Runtime,
    request: &RequestHead,
    status: u16,
    exchange: &Exchange,
    started: Instant,
    ending: Ending,
) {
    if !runtime.access_log {
        return;
    }
    let params = &request.params;
    info!(
        target: "pyfcgi::access",
        method = %params.get_str("REQUEST_METHOD").unwrap_or_default(),
        uri = %params.get_str("REQUEST_URI").or_else(|| params.get_str("PATH_INFO")).unwrap_or_default(),
        status = if ending == Ending::Gone { 499 } else { status },
        bytes = exchange.body_bytes_sent(),
        ms = format_args!("{:.3}", started.elapsed().as_secs_f64() * 1000.0),
        "{}",
        if ending == Ending::Complete { "done" } else { "incomplete" }
    );
}
