//! The settings in effect when the process starts, before any request: the listener, the worker pool, the
//! interpreter's venv and the first log filter. web.config is part of them only where the application root is
//! known at start-up (everywhere but under IIS, or under IIS with `PYFCGI_APP_ROOT`/`--app-root`): IIS names the
//! root only with the first request (`APPL_PHYSICAL_PATH`), after those settings took effect, so a start-up
//! setting found there is reported as ignored ([`super::Settings::ignored_from_web_config`]) instead.

use std::path::{Path, PathBuf};

use super::table::{self, When};
use super::{AppSettings, CliOverrides, ConfigError, KeyCase, PathListStyle, Settings, Source, WebConfigError};

/// What start-up resolved.
#[derive(Debug)]
pub struct StartUp {
    pub settings: Settings,
    /// The application root, when known at start-up (else the current directory, for a relative `WSGI_LOG`).
    pub app_root: PathBuf,
    pub app_root_known: bool,
    /// The web.config included in `settings`, if one was read at start-up.
    pub web_config: Option<PathBuf>,
    /// Invalid start-up settings: serving must not start with a value other than the one asked for.
    pub fatal: Vec<ConfigError>,
    /// web.config could not be read: start-up settings then come from the command line and the environment.
    pub web_config_error: Option<WebConfigError>,
}

/// Whether web.config can be read before the first request. `iis`: the process serves IIS (Windows), where the
/// root arrives with the first request unless the FastCGI environment (or arguments) name it.
pub fn app_root_known(without_web_config: &Settings, iis: bool) -> bool {
    !iis || without_web_config.get(&table::APP_ROOT).value.is_some()
}

/// For `check`, which runs from a shell: under IIS `--app-root` given to `check` stands for the
/// `APPL_PHYSICAL_PATH` of the first request, so only a root from the environment counts.
pub fn app_root_known_for_check(without_web_config: &Settings, iis: bool) -> bool {
    !iis || without_web_config.get(&table::APP_ROOT).source == Source::Environment
}

/// Resolves the start-up settings. `cwd` is the directory a missing root means.
pub fn resolve(
    cli: &CliOverrides,
    env: &dyn Fn(&str) -> Option<String>,
    case: KeyCase,
    style: PathListStyle,
    iis: bool,
    cwd: &Path,
) -> StartUp {
    let (first, first_errors) = Settings::resolve_lenient(cli, None, env, case, style);
    let known = app_root_known(&first, iis);
    let root = first
        .get(&table::APP_ROOT)
        .value
        .clone()
        .unwrap_or_else(|| cwd.to_path_buf());
    let root = std::path::absolute(&root).unwrap_or(root);
    let mut start = StartUp {
        settings: first,
        app_root: root,
        app_root_known: known,
        web_config: None,
        fatal: Vec::new(),
        web_config_error: None,
    };
    let mut errors = first_errors;
    if known {
        match AppSettings::load_from_dir(&start.app_root) {
            Ok(Some(web)) => {
                let (settings, with_web) = Settings::resolve_lenient(cli, Some(&web), env, case, style);
                start.settings = settings;
                start.web_config = Some(web.path.clone());
                errors = with_web;
            }
            Ok(None) => {}
            Err(err) => start.web_config_error = Some(err),
        }
    }
    start.fatal = errors.into_iter().filter(is_start_up_error).collect();
    start
}

/// An invalid value of a start-up setting; other errors are reported by every request until fixed.
fn is_start_up_error(error: &ConfigError) -> bool {
    match error {
        ConfigError::InvalidValue { key, .. } => table::ALL
            .iter()
            .any(|row| row.meta().key == *key && row.meta().when == When::StartUp),
        ConfigError::InvalidEnvironmentName { .. } => false,
    }
}
