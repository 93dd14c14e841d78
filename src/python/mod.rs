//! The embedded CPython: starting it through `PyConfig` (so a virtual environment is picked up by CPython's own
//! path discovery, signal handling stays with pyfcgi, and nothing depends on the environment of an IIS worker),
//! replacing `sys.stdout`/`sys.stderr` with log writers, loading pyfcgi's Python helpers, and resolving
//! `WSGI_HANDLER` with wfastcgi's algorithm. Owns no requests: that is `wsgi`.

use std::ffi::CString;
use std::path::{Path, PathBuf};

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyModule;

pub mod stdio;
pub mod venv;

pub use venv::Venv;

/// The Python helpers, compiled into the binary so no file can be missing at run time.
const RUNTIME_SOURCE: &str = include_str!("../../python/_pyfcgi_runtime.py");
const RUNTIME_MODULE: &str = "_pyfcgi_runtime";

/// The Python this binary was built against (`PYO3_PYTHON` at build time).
pub const BUILD_PYTHON: &str = env!("PYFCGI_BUILD_PYTHON");
pub const BUILD_PYTHON_VERSION: &str = env!("PYFCGI_BUILD_PYTHON_VERSION");

/// Why the interpreter could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "the virtual environment {venv} is for Python {venv_version}, but this pyfcgi was built for Python \
         {BUILD_PYTHON_VERSION}; install pyfcgi built for that version, or point PYFCGI_VENV at a {BUILD_PYTHON_VERSION} venv"
    )]
    VersionMismatch { venv: String, venv_version: String },
    #[error("Python failed to start ({function}): {message}")]
    Init { function: String, message: String },
    #[error("Python started but could not be prepared: {0}")]
    Setup(String),
    #[error("path contains a NUL byte: {0}")]
    NulInPath(String),
}

/// What start-up chose, for the log and `pyfcgi check`.
#[derive(Debug, Clone)]
pub struct PythonInfo {
    pub version: String,
    pub executable: String,
    pub prefix: String,
    pub venv: Option<Venv>,
    pub sys_path: Vec<String>,
}

/// How to start the interpreter.
#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    /// `--venv` / `PYFCGI_VENV`.
    pub venv: Option<PathBuf>,
    /// The base interpreter the launcher found: the program name without a venv, instead of the build
    /// machine's interpreter (which a wheel's core cannot rely on).
    pub program: Option<PathBuf>,
}

fn cstring(path: &Path) -> Result<CString, StartError> {
    CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| StartError::NulInPath(path.display().to_string()))
}

/// Starts CPython once for the process and releases the GIL, so worker threads can attach.
///
/// # Errors
/// See [`StartError`].
pub fn start(options: &StartOptions) -> Result<PythonInfo, StartError> {
    let exe = std::env::current_exe().ok();
    let virtual_env = std::env::var_os("VIRTUAL_ENV").map(PathBuf::from);
    let venv = venv::find(options.venv.as_deref(), exe.as_deref(), virtual_env.as_deref());
    if let Some(venv) = &venv {
        if let Some(minor) = venv.minor_version() {
            if minor != BUILD_PYTHON_VERSION {
                return Err(StartError::VersionMismatch {
                    venv: venv.root.display().to_string(),
                    venv_version: minor,
                });
            }
        }
    }
    // CPython derives sys.prefix from the program name: the venv's python finds pyvenv.cfg; otherwise the
    // interpreter the launcher found, or the build interpreter, finds its own standard library wherever this
    // binary lives.
    let program = match &venv {
        Some(venv) => Some(venv.python_executable()),
        None => options
            .program
            .clone()
            .or_else(|| Some(PathBuf::from(BUILD_PYTHON)))
            .filter(|p| p.is_file()),
    };
    let program = program.map(|p| cstring(&p)).transpose()?;
    let argv0 = match (&program, &exe) {
        (Some(p), _) => p.clone(),
        (None, Some(exe)) => cstring(exe)?,
        (None, None) => c"pyfcgi".to_owned(),
    };

    // SAFETY: the PyConfig API is used as documented (init, set, initialize, clear), once per process, before
    // any other Python call; every string passed outlives the calls that read it.
    unsafe {
        if ffi::Py_IsInitialized() != 0 {
            return Err(StartError::Setup("the interpreter was already started".into()));
        }
        let mut config: ffi::PyConfig = std::mem::zeroed();
        ffi::PyConfig_InitPythonConfig(&mut config);
        // pyfcgi handles SIGTERM/SIGINT itself to stop gracefully; CPython's handlers would never run anyway
        // because worker threads are not the main thread.
        config.install_signal_handlers = 0;
        config.parse_argv = 0;
        let mut status = ffi::PyStatus_Ok();
        if let Some(program) = &program {
            status = ffi::PyConfig_SetBytesString(&mut config, &mut config.program_name, program.as_ptr());
        }
        if ffi::PyStatus_Exception(status) == 0 {
            let mut argv = [argv0.as_ptr()];
            status = ffi::PyConfig_SetBytesArgv(&mut config, 1, argv.as_mut_ptr());
        }
        if ffi::PyStatus_Exception(status) == 0 {
            status = ffi::Py_InitializeFromConfig(&config);
        }
        ffi::PyConfig_Clear(&mut config);
        if ffi::PyStatus_Exception(status) != 0 {
            return Err(status_error(&status));
        }
    }
    let info = Python::attach(|py| prepare(py, venv)).map_err(|e| StartError::Setup(e.to_string()))?;
    // SAFETY: this thread holds the GIL after initialisation; releasing it lets worker threads attach. The
    // returned thread state is never restored: this thread does not run Python again.
    unsafe {
        ffi::PyEval_SaveThread();
    }
    Ok(info)
}

fn status_error(status: &ffi::PyStatus) -> StartError {
    let text = |ptr: *const std::os::raw::c_char| {
        if ptr.is_null() {
            String::new()
        } else {
            // SAFETY: CPython fills these with static NUL-terminated strings.
            unsafe { std::ffi::CStr::from_ptr(ptr) }.to_string_lossy().into_owned()
        }
    };
    StartError::Init {
        function: text(status.func),
        message: text(status.err_msg),
    }
}

fn prepare(py: Python<'_>, venv: Option<Venv>) -> PyResult<PythonInfo> {
    stdio::install(py)?;
    let code = CString::new(RUNTIME_SOURCE)?;
    let module = PyModule::from_code(
        py,
        &code,
        &CString::new(format!("{RUNTIME_MODULE}.py"))?,
        &CString::new(RUNTIME_MODULE)?,
    )?;
    py.import("sys")?.getattr("modules")?.set_item(RUNTIME_MODULE, module)?;
    let sys = py.import("sys")?;
    Ok(PythonInfo {
        version: sys.getattr("version")?.extract()?,
        executable: sys.getattr("executable")?.extract()?,
        prefix: sys.getattr("prefix")?.extract()?,
        venv,
        sys_path: sys.getattr("path")?.extract()?,
    })
}

/// pyfcgi's Python helper module.
///
/// # Errors
/// Only if it was not loaded, which [`start`] guarantees.
pub fn runtime(py: Python<'_>) -> PyResult<Bound<'_, PyModule>> {
    py.import(RUNTIME_MODULE)
}

/// The full traceback of `err`, as Python prints it.
pub fn format_traceback(py: Python<'_>, err: &PyErr) -> String {
    runtime(py)
        .and_then(|rt| rt.call_method1("format_exception", (err.value(py), err.traceback(py))))
        .and_then(|text| text.extract::<String>())
        .unwrap_or_else(|_| err.to_string())
}
