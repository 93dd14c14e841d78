//! The [`Handler`] the `pyfcgi` binary serves with: loads the application once through the WSGI loader
//! (`WSGI_HANDLER`, web.config, `sys.path`), decides once which interface serves it (`PYFCGI_INTERFACE`; `auto`
//! looks at the object, [`asgi::app::detect`]), logs the choice and why, and sends every request to the WSGI
//! bridge or the ASGI bridge. Worker threads stay attached to Python for WSGI; for ASGI they never touch Python.

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use pyo3::prelude::*;
use tracing::{error, info};

use crate::asgi::{self, AsgiHandler};
use crate::protocol::{Params, RequestHead};
use crate::server::{Exchange, Handler, NoSuspend, Suspend};
use crate::wsgi::{AppLoader, LoadFailure, LoadedApp, WsgiHandler};

/// See the module documentation.
pub struct AppHandler {
    wsgi: WsgiHandler,
    asgi: AsgiHandler,
    /// `true` for ASGI; set once the application has loaded.
    interface: OnceLock<bool>,
    /// Held while deciding, so concurrent first requests start one event loop.
    deciding: Mutex<()>,
}

impl AppHandler {
    /// # Errors
    /// If the interpreter is not running.
    pub fn new(loader: AppLoader) -> PyResult<Self> {
        Ok(Self {
            wsgi: WsgiHandler::new(loader)?,
            asgi: AsgiHandler::new(),
            interface: OnceLock::new(),
            deciding: Mutex::new(()),
        })
    }

    pub fn loader(&self) -> &AppLoader {
        self.wsgi.loader()
    }

    /// Whether the application is served as ASGI (false until it has loaded).
    pub fn is_asgi(&self) -> bool {
        self.interface.get().copied().unwrap_or(false)
    }

    /// Loads the application if needed, decides its interface once and, for ASGI, starts the event loop and
    /// runs lifespan startup. Returns whether it is ASGI.
    ///
    /// # Errors
    /// When the application cannot be loaded (logged by the loader; the next call tries again).
    pub fn prepare(&self, py: Python<'_>, params: Option<&Params>) -> Result<bool, LoadFailure> {
        if let Some(asgi) = self.interface.get() {
            return Ok(*asgi);
        }
        // Waits detached from Python: the holder may be importing the application, which releases the GIL.
        let _deciding = pyo3::sync::MutexExt::lock_py_attached(&self.deciding, py)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(asgi) = self.interface.get() {
            return Ok(*asgi);
        }
        let app = self.loader().get(py, params)?;
        let asgi = match asgi::app::detect(
            py,
            app.callable.bind(py),
            app.settings.get(&crate::config::table::INTERFACE).value,
        ) {
            Ok((asgi, reason)) => {
                info!(
                    interface = if asgi { "ASGI 3" } else { "WSGI" },
                    "serving the application as {} because {reason}",
                    if asgi { "ASGI 3" } else { "WSGI" }
                );
                asgi
            }
            Err(err) => {
                error!(
                    "cannot tell whether the application is ASGI; serving it as WSGI:\n\n{}",
                    crate::python::format_traceback(py, &err)
                );
                false
            }
        };
        if asgi {
            self.start_asgi(py, app)?;
        }
        Ok(*self.interface.get_or_init(|| asgi))
    }

    fn start_asgi(&self, py: Python<'_>, app: &LoadedApp) -> Result<(), LoadFailure> {
        self.asgi.start(py, app).map_err(|err| {
            let detail = crate::python::format_traceback(py, &err);
            error!("cannot start the ASGI event loop:\n\n{detail}");
            LoadFailure {
                context: "Error occurred while starting the ASGI event loop",
                detail,
            }
        })
    }

    /// After the server stopped: ASGI lifespan shutdown, at most `timeout`.
    pub fn shutdown(&self, timeout: Duration) {
        if self.is_asgi() {
            self.asgi.shutdown(timeout);
        }
    }
}

impl Handler for AppHandler {
    fn run_worker(&self, serve: &mut dyn FnMut(&dyn Suspend)) {
        if self.is_asgi() {
            serve(&NoSuspend);
        } else {
            self.wsgi.run_worker(serve);
        }
    }

    fn handle(&self, request: RequestHead, exchange: Exchange) -> (Exchange, u32) {
        let decided = match self.interface.get() {
            Some(asgi) => Ok(*asgi),
            // Under IIS the first request names the application root; a failed load is retried per request.
            None => Python::attach(|py| self.prepare(py, Some(&request.params))),
        };
        match decided {
            Ok(true) => self.asgi.handle(request, exchange),
            Ok(false) => self.wsgi.handle(request, exchange),
            Err(failure) => self.wsgi.handle_failed_load(request, exchange, failure),
        }
    }
}
