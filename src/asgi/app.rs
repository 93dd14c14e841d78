//! The ASGI application's process-wide side: deciding whether a loaded application is ASGI 3
//! (`PYFCGI_INTERFACE`, and for `auto` the check in `python/_pyfcgi_asgi.py`, uvicorn's rule), and the
//! [`Runtime`]: one event loop on its own thread (uvloop when installed), the lifespan protocol run once before
//! the first request is served and again on a graceful stop, and the loop's side of the [`Bridge`] — the drain
//! callback that starts each request's task and resolves what its `receive()`/`send()` wait for. The application
//! itself is loaded by the WSGI loader ([`crate::wsgi::AppLoader`]): one `WSGI_HANDLER` resolution for both.

use std::ffi::CString;
use std::sync::Arc;
use std::time::Duration;

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyModule, PySet};
use tracing::{debug, error, info, warn};

use super::bridge::{Bridge, Waker};
use super::io::{AsgiRequest, RequestOptions};
use super::request::Shared;
use super::scope::{self, ScopeDefaults};
use crate::config::{table, Interface};
use crate::wsgi::LoadedApp;

const GLUE_SOURCE: &str = include_str!("../../python/_pyfcgi_asgi.py");
const GLUE_MODULE: &str = "_pyfcgi_asgi";

static GLUE: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

/// pyfcgi's ASGI helper module, compiled from the source built into the binary on first use.
///
/// # Errors
/// If the module does not compile (a build defect) or the interpreter is out of memory.
pub fn glue(py: Python<'_>) -> PyResult<Bound<'_, PyModule>> {
    GLUE.get_or_try_init(py, || {
        let module = PyModule::from_code(
            py,
            &CString::new(GLUE_SOURCE)?,
            &CString::new(format!("{GLUE_MODULE}.py"))?,
            &CString::new(GLUE_MODULE)?,
        )?;
        py.import("sys")?.getattr("modules")?.set_item(GLUE_MODULE, &module)?;
        Ok(module.unbind())
    })
    .map(|m| m.bind(py).clone())
}

/// Whether `callable` is served as ASGI 3, and why (for the log and `pyfcgi check`).
///
/// # Errors
/// If the check itself fails in Python.
pub fn detect(py: Python<'_>, callable: &Bound<'_, PyAny>, setting: Interface) -> PyResult<(bool, String)> {
    match setting {
        Interface::Wsgi => Ok((false, "PYFCGI_INTERFACE is wsgi".into())),
        Interface::Asgi => Ok((true, "PYFCGI_INTERFACE is asgi".into())),
        Interface::Auto => {
            let (asgi, reason): (bool, String) = glue(py)?.call_method1("detect", (callable,))?.extract()?;
            Ok((asgi, format!("PYFCGI_INTERFACE is auto and {reason}")))
        }
    }
}

/// The running event loop, its lifespan and the bridge to it. See the module documentation.
pub struct Runtime {
    pub bridge: Arc<Bridge>,
    event_loop: Py<PyAny>,
    lifespan: Py<PyAny>,
    tasks: Py<PySet>,
    /// Set when `lifespan.startup.failed`: every request is answered with a safe 500.
    pub startup_failure: Option<String>,
    pub options: RequestOptions,
    pub access_log: bool,
}

impl Runtime {
    /// Starts the event loop thread and runs lifespan startup (blocking until the application answered).
    ///
    /// # Errors
    /// If the loop cannot be set up; a failing application startup is not an error here (see
    /// [`Runtime::startup_failure`]).
    pub fn start(py: Python<'_>, app: &LoadedApp) -> PyResult<Arc<Self>> {
        let glue = glue(py)?;
        let (event_loop, kind): (Bound<'_, PyAny>, String) = glue.call_method0("new_loop")?.extract()?;
        let bridge = Arc::new(Bridge::new()?);
        let options = RequestOptions {
            debug: app.settings.get(&table::DEBUG).value,
            errors_to_stderr: app.settings.get(&table::ERRORS_TO_STDERR).value,
            max_head: crate::wsgi::head::limit(app.settings.get(&table::MAX_RESPONSE_HEADER_BYTES).value),
        };
        let lifespan = glue.getattr("Lifespan")?.call1((app.callable.bind(py), &event_loop))?;
        let tasks = PySet::empty(py)?;
        let drain = Drain {
            bridge: bridge.clone(),
            app: app.callable.clone_ref(py),
            event_loop: event_loop.clone().unbind(),
            create_task: event_loop.getattr("create_task")?.unbind(),
            state: lifespan.getattr("state")?.cast_into::<PyDict>()?.unbind(),
            defaults: ScopeDefaults::new(py, app.defaults.rules.clone())?,
            options,
            tasks: tasks.clone().unbind(),
            discard: tasks.getattr("discard")?.unbind(),
        };
        let drain = Bound::new(py, drain)?;
        bridge.set_waker(waker(&event_loop, &drain, &bridge)?);
        glue.call_method1("start_loop_thread", (&event_loop,))?;
        info!(event_loop = %kind.trim(), "ASGI event loop running");
        let (status, text): (String, Option<String>) = lifespan.call_method0("startup")?.extract()?;
        let startup_failure = match status.as_str() {
            "complete" => {
                info!("ASGI lifespan startup complete");
                None
            }
            "unsupported" => {
                info!("the ASGI application does not support the lifespan protocol; serving it without startup and shutdown events");
                debug!("lifespan error:\n{}", text.unwrap_or_default());
                None
            }
            _ => {
                let text = text.unwrap_or_default();
                error!("ASGI lifespan startup failed; every request is answered with a 500 until the process is restarted:\n\n{text}");
                Some(text)
            }
        };
        Ok(Arc::new(Self {
            bridge,
            event_loop: event_loop.unbind(),
            lifespan: lifespan.unbind(),
            tasks: tasks.unbind(),
            startup_failure,
            options,
            access_log: app.settings.get(&table::ACCESS_LOG).value,
        }))
    }

    /// Runs lifespan shutdown (at most `timeout`), then cancels the request tasks still running and stops the loop.
    pub fn shutdown(&self, py: Python<'_>, timeout: Duration) {
        info!("ASGI lifespan shutdown");
        match self
            .lifespan
            .bind(py)
            .call_method1("shutdown", (timeout.as_secs_f64(),))
            .and_then(|r| r.extract::<Option<String>>())
        {
            Ok(None) => info!("ASGI lifespan shutdown done"),
            Ok(Some(problem)) => error!("ASGI lifespan shutdown: {problem}"),
            Err(err) => error!(
                "ASGI lifespan shutdown failed: {}",
                crate::python::format_traceback(py, &err)
            ),
        }
        if let Err(err) =
            glue(py).and_then(|g| g.call_method1("stop_loop", (self.event_loop.bind(py), self.tasks.bind(py), 1.0)))
        {
            warn!(%err, "stopping the ASGI event loop failed");
        }
    }
}

/// The loop's wake-up: `add_reader` on the bridge's socket where the loop supports it, else
/// `call_soon_threadsafe`.
fn waker(event_loop: &Bound<'_, PyAny>, drain: &Bound<'_, Drain>, bridge: &Bridge) -> PyResult<Waker> {
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        match event_loop.call_method1("add_reader", (bridge.reader.as_raw_fd(), drain)) {
            Ok(_) => return Ok(bridge.socket_waker()?),
            Err(err) => debug!(%err, "the event loop has no add_reader; waking it with call_soon_threadsafe"),
        }
    }
    #[cfg(not(unix))]
    let _ = bridge;
    Ok(Waker::Threadsafe {
        event_loop: event_loop.clone().unbind(),
        drain: drain.clone().into_any().unbind(),
    })
}

/// The drain callback: run by the event loop whenever workers posted requests.
#[pyclass(frozen, module = "pyfcgi", name = "AsgiDrain")]
struct Drain {
    bridge: Arc<Bridge>,
    app: Py<PyAny>,
    event_loop: Py<PyAny>,
    create_task: Py<PyAny>,
    state: Py<PyDict>,
    defaults: ScopeDefaults,
    options: RequestOptions,
    tasks: Py<PySet>,
    discard: Py<PyAny>,
}

#[pymethods]
impl Drain {
    fn __call__(&self, py: Python<'_>) {
        for shared in self.bridge.take() {
            let start = {
                let mut st = shared.lock();
                !std::mem::replace(&mut st.task_started, true)
            };
            let result = if start {
                self.start(py, &shared)
            } else {
                super::io::wake(py, &shared)
            };
            if let Err(err) = result {
                // A defect of pyfcgi's bridge, not of the application; the request still gets an answer.
                error!("ASGI bridge error: {}", crate::python::format_traceback(py, &err));
                super::io::fail_request(py, &shared, self.options, "Error occurred", &err);
            }
        }
    }
}

impl Drain {
    fn start(&self, py: Python<'_>, shared: &Arc<Shared>) -> PyResult<()> {
        let state = self.state.bind(py);
        let scope = scope::build(py, &shared.head.params, &self.defaults, Some(state))?;
        let request = Bound::new(
            py,
            AsgiRequest::new(shared.clone(), self.event_loop.clone_ref(py), self.options),
        )?;
        let receive = request.getattr(intern!(py, "receive"))?;
        let send = request.getattr(intern!(py, "send"))?;
        let awaitable = match self.app.bind(py).call1((scope, receive, send)) {
            Ok(awaitable) => awaitable,
            Err(err) => {
                request.get().fail(py, "Exception in ASGI application", &err);
                return Ok(());
            }
        };
        let task = match self.create_task.bind(py).call1((&awaitable,)) {
            Ok(task) => task,
            // Not a coroutine: any awaitable will do (ensure_future wraps it).
            Err(_) => match py
                .import("asyncio")?
                .call_method1("ensure_future", (&awaitable, self.event_loop.bind(py)))
            {
                Ok(task) => task,
                Err(_) => {
                    let err = pyo3::exceptions::PyTypeError::new_err(format!(
                        "the ASGI application returned {}, which is not awaitable (is it an ASGI 3 application? \
                         set PYFCGI_INTERFACE=wsgi for WSGI)",
                        awaitable.repr().map(|r| r.to_string()).unwrap_or_default()
                    ));
                    request.get().fail(py, "Exception in ASGI application", &err);
                    return Ok(());
                }
            },
        };
        task.call_method1(
            intern!(py, "add_done_callback"),
            (request.getattr(intern!(py, "done"))?,),
        )?;
        // The loop keeps only weak references to tasks; this set keeps them until they are done.
        self.tasks.bind(py).add(&task)?;
        task.call_method1(intern!(py, "add_done_callback"), (self.discard.bind(py),))?;
        Ok(())
    }
}
