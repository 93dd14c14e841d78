//! Loading the WSGI application the way wfastcgi does: settings from the command line, the environment and the
//! `<appSettings>` of `web.config` in the application root (`APPL_PHYSICAL_PATH` of the first request under IIS),
//! every appSetting exported to `os.environ`, the application root first on `sys.path` and as the working
//! directory, `PYTHONPATH` from web.config appended, `WSGI_LOG` opened, and `WSGI_HANDLER` resolved. A failure
//! is reported with the traceback and the resolved settings and retried on the next request; it never stops the
//! process.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use pyo3::prelude::*;
use pyo3::sync::MutexExt;
use pyo3::types::{PyDict, PyList};
use tracing::{error, info, warn};

use super::environ::{EnvironDefaults, PathRules};
use crate::config::table;
use crate::config::{process_env, AppSettings, CliOverrides, KeyCase, PathListStyle, Settings};
use crate::protocol::Params;
use crate::python;

/// A loaded application and the settings it was loaded with.
pub struct LoadedApp {
    pub callable: Py<PyAny>,
    pub settings: Settings,
    pub defaults: EnvironDefaults,
    pub app_root: PathBuf,
    /// web.config's appSettings, re-applied to `os.environ` before every request (wfastcgi does).
    exported: Option<ExportedEnviron>,
}

impl LoadedApp {
    /// Re-applies the web.config appSettings to `os.environ`, undoing any change the application made.
    ///
    /// # Errors
    /// If `os.environ` refuses a value.
    pub fn apply_environ(&self, py: Python<'_>) -> PyResult<()> {
        if let Some((environ, exported)) = &self.exported {
            environ.bind(py).call_method1("update", (exported.bind(py),))?;
        }
        Ok(())
    }
}

/// `os.environ` and the appSettings to merge into it.
type ExportedEnviron = (Py<PyAny>, Py<PyDict>);

/// Why the application could not be loaded.
#[derive(Debug, Clone)]
pub struct LoadFailure {
    /// wfastcgi's context line, which users search for.
    pub context: &'static str,
    /// The error text and, for Python errors, the traceback.
    pub detail: String,
}

impl LoadFailure {
    fn new(context: &'static str, detail: impl Into<String>) -> Self {
        Self {
            context,
            detail: detail.into(),
        }
    }
}

/// Loads the application once, lazily, retrying after failures.
pub struct AppLoader {
    cli: CliOverrides,
    multithread: bool,
    ready: OnceLock<LoadedApp>,
    loading: Mutex<()>,
    log_file_reported: Mutex<Option<PathBuf>>,
    /// The web.config read at start-up, whose start-up settings are in effect; any other web.config's are
    /// reported as ignored when the application loads.
    start_up_web_config: Option<PathBuf>,
    serving: bool,
}

impl AppLoader {
    pub fn new(cli: CliOverrides, multithread: bool) -> Self {
        Self {
            cli,
            multithread,
            ready: OnceLock::new(),
            loading: Mutex::new(()),
            log_file_reported: Mutex::new(None),
            start_up_web_config: None,
            serving: false,
        }
    }

    /// For the serving process: loading the application then applies web.config's log filter and logs each
    /// web.config setting that cannot take effect. `start_up_web_config` is the web.config the start-up
    /// settings were resolved with (`None`: none was read at start-up).
    #[must_use]
    pub fn serving(mut self, start_up_web_config: Option<PathBuf>) -> Self {
        self.start_up_web_config = start_up_web_config;
        self.serving = true;
        self
    }

    /// The application, loading it if needed with the first request's params (for `APPL_PHYSICAL_PATH`).
    ///
    /// # Errors
    /// See [`LoadFailure`]; the next call tries again.
    pub fn get(&self, py: Python<'_>, params: Option<&Params>) -> Result<&LoadedApp, LoadFailure> {
        if let Some(app) = self.ready.get() {
            return Ok(app);
        }
        // Detaches while waiting, so a request loading the app (imports release the GIL) cannot deadlock with it.
        let _guard = self
            .loading
            .lock_py_attached(py)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(app) = self.ready.get() {
            return Ok(app);
        }
        let app = self.load(py, params)?;
        Ok(self.ready.get_or_init(|| app))
    }

    /// The application if it is already loaded.
    pub fn loaded(&self) -> Option<&LoadedApp> {
        self.ready.get()
    }

    /// Resolves the settings the way a request would (for `pyfcgi check` and the error log).
    ///
    /// # Errors
    /// A readable description of every invalid setting or an unreadable web.config.
    pub fn resolve_settings(&self, params: Option<&Params>) -> Result<(Settings, PathBuf), LoadFailure> {
        let context = "Error occurred while reading WSGI handler";
        let first =
            Settings::resolve(&self.cli, None, &process_env).map_err(|e| LoadFailure::new(context, e.to_string()))?;
        let app_root = app_root(&first, params);
        let web_config = AppSettings::load_from_dir(&app_root).map_err(|e| LoadFailure::new(context, e.to_string()))?;
        let settings = Settings::resolve(&self.cli, web_config.as_ref(), &process_env)
            .map_err(|e| LoadFailure::new(context, e.to_string()))?;
        Ok((settings, app_root))
    }

    fn load(&self, py: Python<'_>, params: Option<&Params>) -> Result<LoadedApp, LoadFailure> {
        let (settings, app_root) = self.resolve_settings(params).inspect_err(|f| {
            error!(context = f.context, "cannot load the application: {}", f.detail);
        })?;
        if self.serving {
            // web.config is read now: its log level applies from here on, and what it cannot change is said.
            crate::logging::set_filter(&settings.log_filter());
            let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("pyfcgi.exe"));
            for ignored in settings.ignored_from_web_config(self.start_up_web_config.as_deref()) {
                warn!("{}", ignored.explain(&exe, cfg!(windows)));
            }
        }
        self.open_log(&settings, &app_root);
        info!(app_root = %app_root.display(), "initializing the application");
        let result = prepare_python(py, &settings, &app_root).and_then(|exported| {
            let callable = resolve_handler(py, &settings)?;
            Ok((callable, exported))
        });
        match result {
            Ok((callable, exported)) => {
                info!(
                    handler = settings.get(&table::WSGI_HANDLER).value.as_deref().unwrap_or(""),
                    "application loaded"
                );
                let defaults = EnvironDefaults {
                    multithread: self.multithread,
                    multiprocess: true,
                    rules: PathRules {
                        script_name: settings.get(&table::SCRIPT_NAME).value.clone(),
                        allow_path_info_for_script_mappings: settings
                            .get(&table::ALLOW_PATH_INFO_FOR_SCRIPT_MAPPINGS)
                            .value,
                        script_name_from_appl_md_path: settings.get(&table::SCRIPT_NAME_FROM_APPL_MD_PATH).value,
                        path_info_from_request_uri: settings.get(&table::PATH_INFO_FROM_REQUEST_URI).value,
                    },
                };
                Ok(LoadedApp {
                    callable,
                    settings,
                    defaults,
                    app_root,
                    exported,
                })
            }
            Err(failure) => {
                error!(
                    context = failure.context,
                    "{}:\n\n{}\n\nSettings:\n{}\nsys.path: {}",
                    failure.context,
                    failure.detail,
                    describe(&settings),
                    sys_path(py)
                );
                Err(failure)
            }
        }
    }

    /// Whether an error page shows the traceback (`PYFCGI_DEBUG`) and the report also goes to FCGI_STDERR
    /// (`PYFCGI_ERRORS_TO_STDERR`). Works when loading failed: from the loaded settings, else from settings
    /// resolved now, where an invalid value takes its default and an unreadable web.config is left out.
    pub fn error_options(&self, params: Option<&Params>) -> (bool, bool) {
        let options = |s: &Settings| (s.get(&table::DEBUG).value, s.get(&table::ERRORS_TO_STDERR).value);
        if let Some(app) = self.loaded() {
            return options(&app.settings);
        }
        let lenient = |web: Option<&AppSettings>| {
            Settings::resolve_lenient(&self.cli, web, &process_env, KeyCase::native(), PathListStyle::native()).0
        };
        let first = lenient(None);
        let web = AppSettings::load_from_dir(&app_root(&first, params)).ok().flatten();
        options(&lenient(web.as_ref()))
    }

    /// Sends the log to `WSGI_LOG` if it is set; a file that cannot be opened is reported once per path.
    pub fn open_log(&self, settings: &Settings, app_root: &Path) {
        let Some(path) = settings.get(&table::WSGI_LOG).value.as_deref() else {
            return;
        };
        // A relative WSGI_LOG means relative to the site, not to wherever the process happened to start.
        let path = &app_root.join(path);
        if let Err(err) = crate::logging::log_to_file(path, settings.get(&table::LOG_ROTATE).value) {
            let mut reported = self
                .log_file_reported
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if reported.as_deref() != Some(path) {
                // Reported once per path; the site keeps running and logging goes on where it went before.
                warn!(path = %path.display(), %err, "WSGI_LOG cannot be opened; logging continues to the previous target");
                *reported = Some(path.to_path_buf());
            }
        }
    }
}

/// The application root: `PYFCGI_APP_ROOT` / `--app-root`, else IIS's `APPL_PHYSICAL_PATH`, else the current
/// directory.
fn app_root(settings: &Settings, params: Option<&Params>) -> PathBuf {
    let root = app_root_as_given(settings, params);
    // Made absolute before the working directory changes to it, or a relative root would point into itself.
    std::path::absolute(&root).unwrap_or(root)
}

fn app_root_as_given(settings: &Settings, params: Option<&Params>) -> PathBuf {
    if let Some(root) = &settings.get(&table::APP_ROOT).value {
        return root.clone();
    }
    if let Some(physical) = params.and_then(|p| p.get_str("APPL_PHYSICAL_PATH")) {
        if !physical.is_empty() {
            return PathBuf::from(physical.as_ref());
        }
    }
    std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."))
}

/// One line per setting, for logs and `pyfcgi check`.
pub fn describe(settings: &Settings) -> String {
    settings
        .describe()
        .iter()
        .map(|row| {
            format!(
                "  {} = {} ({})\n",
                row.name,
                row.value.as_deref().unwrap_or("(not set)"),
                row.source
            )
        })
        .collect()
}

fn sys_path(py: Python<'_>) -> String {
    py.import("sys")
        .and_then(|sys| sys.getattr("path"))
        .map(|p| p.to_string())
        .unwrap_or_default()
}

fn python_failure(py: Python<'_>, context: &'static str, err: &PyErr) -> LoadFailure {
    LoadFailure::new(context, python::format_traceback(py, err))
}

/// Applies the settings to the interpreter: environment, working directory, `sys.path`.
fn prepare_python(
    py: Python<'_>,
    settings: &Settings,
    app_root: &Path,
) -> Result<Option<ExportedEnviron>, LoadFailure> {
    let context = "Error occurred while reading WSGI handler";
    let fail = |err: PyErr| python_failure(py, context, &err);
    let os = py.import("os").map_err(fail)?;
    let environ = os.getattr("environ").map_err(fail)?;
    let exported = if settings.exported_environ().is_empty() {
        None
    } else {
        let dict = PyDict::new(py);
        for (key, value) in settings.exported_environ() {
            dict.set_item(key, value).map_err(fail)?;
        }
        environ.call_method1("update", (&dict,)).map_err(fail)?;
        Some((environ.unbind(), dict.unbind()))
    };
    // wfastcgi makes the site root the working directory; a failure (an app pool identity without rights, PTVS
    // #4260) is logged and does not stop the site, since most apps never depend on it.
    if let Err(err) = std::env::set_current_dir(app_root) {
        warn!(path = %app_root.display(), %err, "cannot change the working directory to the application root");
    }
    let sys_path = py.import("sys").and_then(|sys| sys.getattr("path")).map_err(fail)?;
    let sys_path = sys_path.cast_into::<PyList>().map_err(|e| fail(e.into()))?;
    let root = app_root.to_string_lossy().into_owned();
    if !sys_path.contains(&root).map_err(fail)? {
        sys_path.insert(0, &root).map_err(fail)?;
    }
    for entry in &settings.get(&table::PYTHONPATH).value {
        if !sys_path.contains(entry).map_err(fail)? {
            sys_path.append(entry).map_err(fail)?;
        }
    }
    if settings.get(&table::PTVSD_SECRET).value.is_some() {
        warn!(
            "WSGI_PTVSD_SECRET is set, but ptvsd is obsolete and pyfcgi does not start it; use debugpy from your app"
        );
    }
    Ok(exported)
}

fn resolve_handler(py: Python<'_>, settings: &Settings) -> Result<Py<PyAny>, LoadFailure> {
    let context = "Error occurred while reading WSGI handler";
    let name = settings.get(&table::WSGI_HANDLER).value.as_deref().unwrap_or("");
    let runtime = python::runtime(py).map_err(|e| python_failure(py, context, &e))?;
    match runtime.call_method1("get_wsgi_handler", (name,)) {
        Ok(handler) if handler.is_callable() => Ok(handler.unbind()),
        Ok(handler) => Err(LoadFailure::new(
            context,
            format!(
                "WSGI_HANDLER \"{name}\" resolved to {}, which is not callable",
                handler.repr().map(|r| r.to_string()).unwrap_or_default()
            ),
        )),
        Err(err) => {
            let mut failure = python_failure(py, context, &err);
            let hint = runtime
                .call_method1("call_hint", (name, err.value(py)))
                .ok()
                .and_then(|h| h.extract::<Option<String>>().ok().flatten());
            if let Some(hint) = hint {
                failure.detail.push_str("\nHint: ");
                failure.detail.push_str(&hint);
            }
            Err(failure)
        }
    }
}
