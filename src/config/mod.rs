//! Every setting pyfcgi reads, the value it resolved to, and where that value came from.
//!
//! This module owns the settings model and its precedence: command-line flags first, then the site's
//! web.config `<appSettings>` (which override the environment, because wfastcgi merges them into
//! `os.environ`), then the process environment, then defaults. Inputs are plain data so resolution is
//! testable without touching the real environment; the only I/O in the module tree is reading
//! web.config ([`webconfig`]). It does not start Python, open log files or watch files: it hands the
//! other modules validated values, each with its [`Source`] for `pyfcgi check`.

pub mod handler;
pub mod pythonpath;
pub mod webconfig;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

pub use handler::{HandlerForm, HandlerSpec, HandlerSpecError, ImportAttempt, Segment};
pub use pythonpath::PathListStyle;
pub use webconfig::{find_web_config, AppSettings, WebConfigError};

/// wfastcgi's restart pattern when `WSGI_RESTART_FILE_REGEX` is not set.
pub const DEFAULT_RESTART_FILE_REGEX: &str = r".*((\.py)|(\.config))$";

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Cli,
    WebConfig(PathBuf),
    Environment,
    Default,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Cli => f.write_str("command line"),
            Source::WebConfig(path) => write!(f, "{}", path.display()),
            Source::Environment => f.write_str("environment"),
            Source::Default => f.write_str("default"),
        }
    }
}

/// A resolved value and its provenance.
#[derive(Debug, Clone, PartialEq)]
pub struct Setting<T> {
    pub value: T,
    pub source: Source,
}

impl<T> Setting<T> {
    fn new(value: T, source: Source) -> Self {
        Setting { value, source }
    }

    fn default(value: T) -> Self {
        Setting::new(value, Source::Default)
    }
}

/// Values given as command-line flags; `None` means the flag was not given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CliOverrides {
    pub wsgi_handler: Option<String>,
    /// Raw list, processed exactly like a web.config `PYTHONPATH`.
    pub pythonpath: Option<String>,
    pub wsgi_log: Option<PathBuf>,
    pub restart_file_regex: Option<String>,
    pub script_name: Option<String>,
    pub allow_path_info_for_script_mappings: Option<bool>,
    pub debug: Option<bool>,
    pub errors_to_stderr: Option<bool>,
    pub venv: Option<PathBuf>,
    pub app_root: Option<PathBuf>,
    pub access_log: Option<bool>,
    pub log_level: Option<LogLevel>,
    pub script_name_from_appl_md_path: Option<bool>,
    pub path_info_from_request_uri: Option<bool>,
    pub max_requests: Option<u64>,
}

/// Whether setting names match case-sensitively, as `os.environ` does on each platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyCase {
    Sensitive,
    /// Windows: `os.environ` upper-cases keys, so a web.config `wsgi_handler` sets `WSGI_HANDLER`.
    Insensitive,
}

impl KeyCase {
    pub fn native() -> Self {
        if cfg!(windows) {
            KeyCase::Insensitive
        } else {
            KeyCase::Sensitive
        }
    }
}

/// pyfcgi's log verbosity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Off,
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Off => "off",
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The rejected text of a [`LogLevel`] parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("\"{0}\" is not a log level; expected {LOG_LEVEL_EXPECTED}")]
pub struct InvalidLogLevel(pub String);

const LOG_LEVEL_EXPECTED: &str = "off, error, warn, info, debug or trace";
const BOOL_EXPECTED: &str = "a boolean: 1/0, true/false, yes/no or on/off";
const NUMBER_EXPECTED: &str = "a whole number (0 means unlimited)";

impl FromStr for LogLevel {
    type Err = InvalidLogLevel;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "off" | "none" => Ok(LogLevel::Off),
            "error" => Ok(LogLevel::Error),
            "warn" | "warning" => Ok(LogLevel::Warn),
            "info" => Ok(LogLevel::Info),
            "debug" => Ok(LogLevel::Debug),
            "trace" => Ok(LogLevel::Trace),
            _ => Err(InvalidLogLevel(s.to_string())),
        }
    }
}

/// Parses pyfcgi's boolean spellings, case-insensitively and ignoring surrounding whitespace.
pub fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// A compiled `WSGI_RESTART_FILE_REGEX`, matched like Python's `re.match`: anchored at the start only.
#[derive(Debug, Clone)]
pub struct RestartRegex {
    pattern: String,
    regex: regex::Regex,
}

impl RestartRegex {
    pub fn new(pattern: &str) -> Result<Self, regex::Error> {
        // Compiling the pattern alone first makes error positions point into what the user wrote,
        // not into the anchoring wrapper.
        regex::Regex::new(pattern)?;
        let regex = regex::Regex::new(&format!("^(?:{pattern})"))?;
        Ok(RestartRegex {
            pattern: pattern.to_string(),
            regex,
        })
    }

    /// The pattern as configured, for log lines such as wfastcgi's "will restart when ...".
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// Tests a changed file's path relative to the watched root (`myapp\views.py` under IIS).
    pub fn is_match(&self, relative_path: &str) -> bool {
        self.regex.is_match(relative_path)
    }
}

impl PartialEq for RestartRegex {
    fn eq(&self, other: &Self) -> bool {
        self.pattern == other.pattern
    }
}

/// One problem found while resolving settings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{key} = \"{value}\" (from {from}) is not valid: expected {expected}")]
    InvalidValue {
        key: &'static str,
        value: String,
        from: Source,
        expected: &'static str,
    },
    #[error(
        "WSGI_RESTART_FILE_REGEX = \"{value}\" (from {from}) is not a valid regular expression \
         (pyfcgi uses Rust regex syntax, which has no look-around or backreferences): {reason}"
    )]
    InvalidRegex {
        value: String,
        from: Source,
        reason: String,
    },
    #[error(
        "appSetting key \"{key}\" in {} cannot be an environment variable name (it contains '=' or NUL)",
        path.display()
    )]
    InvalidEnvironmentName { key: String, path: PathBuf },
}

/// Every problem found, so `pyfcgi check` can report them all at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// One line of `pyfcgi check` output; `value` is `None` when the setting is not set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingRow {
    pub name: &'static str,
    pub value: Option<String>,
    pub source: Source,
}

/// Every setting, resolved, with provenance.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// `None` when unset or empty; [`Settings::handler`] turns that into wfastcgi's error.
    pub wsgi_handler: Setting<Option<String>>,
    /// Entries to append to `sys.path`: the web.config `PYTHONPATH` (every key spelled so, in order)
    /// after `%VAR%` expansion and splitting, or the command-line list instead.
    pub pythonpath: Setting<Vec<String>>,
    /// The process environment's `PYTHONPATH`, verbatim; CPython places it before site-packages at start-up.
    pub pythonpath_env: Setting<Option<String>>,
    pub wsgi_log: Setting<Option<PathBuf>>,
    /// `None` when set to `""`, which disables restarting on change.
    pub restart_file_regex: Setting<Option<RestartRegex>>,
    pub script_name: Setting<Option<String>>,
    /// Presence of `AllowPathInfoForScriptMappings`, whatever its value.
    pub allow_path_info_for_script_mappings: Setting<bool>,
    pub ptvsd_secret: Setting<Option<String>>,
    pub ptvsd_address: Setting<Option<String>>,
    pub appinsights_instrumentation_key: Setting<Option<String>>,
    pub debug: Setting<bool>,
    pub errors_to_stderr: Setting<bool>,
    pub venv: Setting<Option<PathBuf>>,
    /// `None`: the first request's `APPL_PHYSICAL_PATH`, else the current directory.
    pub app_root: Setting<Option<PathBuf>>,
    pub access_log: Setting<bool>,
    pub log_level: Setting<LogLevel>,
    pub script_name_from_appl_md_path: Setting<bool>,
    pub path_info_from_request_uri: Setting<bool>,
    /// 0 means unlimited.
    pub max_requests: Setting<u64>,
    /// Largest response header block an application may produce; 0 means unlimited.
    pub max_response_header_bytes: Setting<u64>,
    /// `PYFCGI_LOG_ROTATE`: when `WSGI_LOG` is rotated and how many old files are kept.
    pub log_rotate: Setting<Option<crate::logging::RotatePolicy>>,
    exported: Vec<(String, String)>,
}

/// The web.config and environment layers, queried by name.
struct Layers<'a> {
    web: Option<&'a AppSettings>,
    env: &'a dyn Fn(&str) -> Option<String>,
    case: KeyCase,
}

impl Layers<'_> {
    fn web(&self, key: &str) -> Option<&str> {
        let web = self.web?;
        match self.case {
            KeyCase::Sensitive => web.get(key),
            // The last spelling wins, as successive os.environ assignments to one Windows variable do.
            KeyCase::Insensitive => {
                let wanted = key.to_uppercase();
                web.entries
                    .iter()
                    .rev()
                    .find(|(k, _)| k.to_uppercase() == wanted)
                    .map(|(_, v)| v.as_str())
            }
        }
    }

    /// What `os.getenv(key)` returns after wfastcgi's merge.
    fn get(&self, key: &str) -> Option<(String, Source)> {
        if let Some(v) = self.web(key) {
            let path = self.web.map(|w| w.path.clone()).unwrap_or_default();
            return Some((v.to_string(), Source::WebConfig(path)));
        }
        (self.env)(key).map(|v| (v, Source::Environment))
    }

    /// A string setting where `""` means unset, as wfastcgi's truthiness tests treat it.
    fn text(&self, key: &str, cli: Option<String>) -> Setting<Option<String>> {
        let (value, source) = match cli {
            Some(v) => (v, Source::Cli),
            None => match self.get(key) {
                Some(found) => found,
                None => return Setting::default(None),
            },
        };
        Setting::new((!value.is_empty()).then_some(value), source)
    }

    fn path(&self, key: &str, cli: Option<PathBuf>) -> Setting<Option<PathBuf>> {
        match cli {
            Some(p) => Setting::new((!p.as_os_str().is_empty()).then_some(p), Source::Cli),
            None => {
                let s = self.text(key, None);
                Setting::new(s.value.map(PathBuf::from), s.source)
            }
        }
    }

    /// A typed setting; an empty value at the winning layer means the default, so a web.config
    /// `value=""` can switch off an environment setting.
    fn typed<T>(
        &self,
        key: &'static str,
        cli: Option<T>,
        default: T,
        parse: impl Fn(&str) -> Option<T>,
        expected: &'static str,
        errors: &mut Vec<ConfigError>,
    ) -> Setting<T> {
        if let Some(v) = cli {
            return Setting::new(v, Source::Cli);
        }
        let Some((raw, source)) = self.get(key) else {
            return Setting::default(default);
        };
        if raw.trim().is_empty() {
            return Setting::new(default, source);
        }
        match parse(&raw) {
            Some(v) => Setting::new(v, source),
            None => {
                errors.push(ConfigError::InvalidValue {
                    key,
                    value: raw,
                    from: source.clone(),
                    expected,
                });
                Setting::new(default, source)
            }
        }
    }

    fn flag(
        &self,
        key: &'static str,
        cli: Option<bool>,
        default: bool,
        errors: &mut Vec<ConfigError>,
    ) -> Setting<bool> {
        self.typed(key, cli, default, parse_bool, BOOL_EXPECTED, errors)
    }
}

/// Reads one variable of this process's environment; non-UTF-8 values are converted lossily.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var_os(name).map(|v| v.to_string_lossy().into_owned())
}

impl Settings {
    /// Resolves every setting with this platform's key matching and path-list style.
    pub fn resolve(
        cli: &CliOverrides,
        web_config: Option<&AppSettings>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Settings, ConfigErrors> {
        Self::resolve_with(cli, web_config, env, KeyCase::native(), PathListStyle::native())
    }

    /// [`Settings::resolve`] with the platform choices made explicit, so both can be tested anywhere.
    pub fn resolve_with(
        cli: &CliOverrides,
        web_config: Option<&AppSettings>,
        env: &dyn Fn(&str) -> Option<String>,
        case: KeyCase,
        style: PathListStyle,
    ) -> Result<Settings, ConfigErrors> {
        let layers = Layers {
            web: web_config,
            env,
            case,
        };
        let mut errors = Vec::new();
        let cli = cli.clone();

        let pythonpath = resolve_pythonpath(&layers, cli.pythonpath, style);
        let restart_file_regex = resolve_restart_regex(&layers, cli.restart_file_regex, &mut errors);
        let allow_path_info_for_script_mappings = match cli.allow_path_info_for_script_mappings {
            Some(v) => Setting::new(v, Source::Cli),
            None => match layers.get("AllowPathInfoForScriptMappings") {
                Some((_, source)) => Setting::new(true, source),
                None => Setting::default(false),
            },
        };

        let settings = Settings {
            wsgi_handler: layers.text("WSGI_HANDLER", cli.wsgi_handler),
            pythonpath,
            pythonpath_env: match env("PYTHONPATH") {
                Some(v) => Setting::new(Some(v), Source::Environment),
                None => Setting::default(None),
            },
            wsgi_log: layers.path("WSGI_LOG", cli.wsgi_log),
            restart_file_regex,
            script_name: layers.text("SCRIPT_NAME", cli.script_name),
            allow_path_info_for_script_mappings,
            ptvsd_secret: layers.text("WSGI_PTVSD_SECRET", None),
            ptvsd_address: layers.text("WSGI_PTVSD_ADDRESS", None),
            appinsights_instrumentation_key: layers.text("APPINSIGHTS_INSTRUMENTATIONKEY", None),
            debug: layers.flag("PYFCGI_DEBUG", cli.debug, false, &mut errors),
            errors_to_stderr: layers.flag("PYFCGI_ERRORS_TO_STDERR", cli.errors_to_stderr, false, &mut errors),
            venv: layers.path("PYFCGI_VENV", cli.venv),
            app_root: layers.path("PYFCGI_APP_ROOT", cli.app_root),
            access_log: layers.flag("PYFCGI_ACCESS_LOG", cli.access_log, true, &mut errors),
            log_level: layers.typed(
                "PYFCGI_LOG_LEVEL",
                cli.log_level,
                LogLevel::Info,
                |s| s.parse().ok(),
                LOG_LEVEL_EXPECTED,
                &mut errors,
            ),
            script_name_from_appl_md_path: layers.flag(
                "PYFCGI_SCRIPT_NAME_FROM_APPL_MD_PATH",
                cli.script_name_from_appl_md_path,
                false,
                &mut errors,
            ),
            path_info_from_request_uri: layers.flag(
                "PYFCGI_PATH_INFO_FROM_REQUEST_URI",
                cli.path_info_from_request_uri,
                false,
                &mut errors,
            ),
            max_requests: layers.typed(
                "PYFCGI_MAX_REQUESTS",
                cli.max_requests,
                0,
                |s| s.trim().parse().ok(),
                NUMBER_EXPECTED,
                &mut errors,
            ),
            max_response_header_bytes: layers.typed(
                "PYFCGI_MAX_RESPONSE_HEADER_BYTES",
                None,
                crate::wsgi::head::DEFAULT_MAX_HEAD as u64,
                |s| s.trim().parse().ok(),
                NUMBER_EXPECTED,
                &mut errors,
            ),
            log_rotate: layers.typed(
                "PYFCGI_LOG_ROTATE",
                None,
                None,
                |s| s.parse().ok().map(Some),
                crate::logging::ROTATE_EXPECTED,
                &mut errors,
            ),
            exported: exported_pairs(web_config, &mut errors),
        };
        if errors.is_empty() {
            Ok(settings)
        } else {
            Err(ConfigErrors(errors))
        }
    }

    /// The handler to resolve, or wfastcgi's `WSGI_HANDLER env var must be set`.
    pub fn handler(&self) -> Result<HandlerSpec, HandlerSpecError> {
        HandlerSpec::parse(self.wsgi_handler.value.as_deref().unwrap_or(""))
    }

    /// Every web.config appSetting, to apply to `os.environ` before each request as wfastcgi does.
    pub fn exported_environ(&self) -> &[(String, String)] {
        &self.exported
    }

    /// `PYFCGI_MAX_REQUESTS` as a limit, `None` when unlimited.
    pub fn max_requests_limit(&self) -> Option<u64> {
        (self.max_requests.value > 0).then_some(self.max_requests.value)
    }

    /// `PYFCGI_MAX_RESPONSE_HEADER_BYTES` as a byte count (`usize::MAX` when unlimited).
    pub fn max_response_header_bytes_limit(&self) -> usize {
        match self.max_response_header_bytes.value {
            0 => usize::MAX,
            n => usize::try_from(n).unwrap_or(usize::MAX),
        }
    }

    /// One row per setting, in the order a reader meets them, for `pyfcgi check`.
    pub fn describe(&self) -> Vec<SettingRow> {
        fn row(name: &'static str, value: Option<String>, source: &Source) -> SettingRow {
            SettingRow {
                name,
                value,
                source: source.clone(),
            }
        }
        fn text(name: &'static str, s: &Setting<Option<String>>) -> SettingRow {
            row(name, s.value.clone(), &s.source)
        }
        fn path(name: &'static str, s: &Setting<Option<PathBuf>>) -> SettingRow {
            row(name, s.value.as_ref().map(|p| p.display().to_string()), &s.source)
        }
        fn shown<T: fmt::Display>(name: &'static str, s: &Setting<T>) -> SettingRow {
            row(name, Some(s.value.to_string()), &s.source)
        }
        let joined = (!self.pythonpath.value.is_empty()).then(|| self.pythonpath.value.join(";"));
        vec![
            text("WSGI_HANDLER", &self.wsgi_handler),
            row("PYTHONPATH (appended to sys.path)", joined, &self.pythonpath.source),
            text("PYTHONPATH (read by CPython at start-up)", &self.pythonpath_env),
            path("WSGI_LOG", &self.wsgi_log),
            row(
                "WSGI_RESTART_FILE_REGEX",
                Some(
                    self.restart_file_regex
                        .value
                        .as_ref()
                        .map_or_else(|| "(disabled)".to_string(), |r| r.pattern().to_string()),
                ),
                &self.restart_file_regex.source,
            ),
            text("SCRIPT_NAME", &self.script_name),
            row(
                "AllowPathInfoForScriptMappings",
                self.allow_path_info_for_script_mappings
                    .value
                    .then(|| "present".to_string()),
                &self.allow_path_info_for_script_mappings.source,
            ),
            // The secret is a credential for the debugger; showing that it is set is enough.
            row(
                "WSGI_PTVSD_SECRET",
                self.ptvsd_secret.value.as_ref().map(|_| "(set)".to_string()),
                &self.ptvsd_secret.source,
            ),
            text("WSGI_PTVSD_ADDRESS", &self.ptvsd_address),
            text("APPINSIGHTS_INSTRUMENTATIONKEY", &self.appinsights_instrumentation_key),
            shown("PYFCGI_DEBUG", &self.debug),
            shown("PYFCGI_ERRORS_TO_STDERR", &self.errors_to_stderr),
            path("PYFCGI_VENV", &self.venv),
            path("PYFCGI_APP_ROOT", &self.app_root),
            shown("PYFCGI_ACCESS_LOG", &self.access_log),
            shown("PYFCGI_LOG_LEVEL", &self.log_level),
            shown(
                "PYFCGI_SCRIPT_NAME_FROM_APPL_MD_PATH",
                &self.script_name_from_appl_md_path,
            ),
            shown("PYFCGI_PATH_INFO_FROM_REQUEST_URI", &self.path_info_from_request_uri),
            shown("PYFCGI_MAX_REQUESTS", &self.max_requests),
            shown("PYFCGI_MAX_RESPONSE_HEADER_BYTES", &self.max_response_header_bytes),
            row(
                "PYFCGI_LOG_ROTATE",
                self.log_rotate.value.as_ref().map(ToString::to_string),
                &self.log_rotate.source,
            ),
        ]
    }
}

/// wfastcgi applies only the web.config `PYTHONPATH` itself; `%NAME%` sees the merged environment,
/// so any appSetting (even a later one) can be referenced.
fn resolve_pythonpath(layers: &Layers<'_>, cli: Option<String>, style: PathListStyle) -> Setting<Vec<String>> {
    let lookup = |name: &str| layers.get(name).map(|(v, _)| v);
    if let Some(raw) = cli {
        return Setting::new(pythonpath::process(&raw, &lookup, style), Source::Cli);
    }
    let Some(web) = layers.web else {
        return Setting::default(Vec::new());
    };
    let mut entries = Vec::new();
    let mut found = false;
    for (_, raw) in web.get_all_ignore_case("PYTHONPATH") {
        found = true;
        entries.extend(pythonpath::process(raw, &lookup, style));
    }
    if found {
        Setting::new(entries, Source::WebConfig(web.path.clone()))
    } else {
        Setting::default(Vec::new())
    }
}

/// wfastcgi reads this key from web.config only; accepting the environment too is the safe superset
/// wfastcgi.md §10 allows, and lets non-IIS deployments configure it.
fn resolve_restart_regex(
    layers: &Layers<'_>,
    cli: Option<String>,
    errors: &mut Vec<ConfigError>,
) -> Setting<Option<RestartRegex>> {
    let (pattern, source) = match cli {
        Some(p) => (p, Source::Cli),
        None => layers
            .get("WSGI_RESTART_FILE_REGEX")
            .unwrap_or_else(|| (DEFAULT_RESTART_FILE_REGEX.to_string(), Source::Default)),
    };
    if pattern.is_empty() {
        return Setting::new(None, source);
    }
    match RestartRegex::new(&pattern) {
        Ok(r) => Setting::new(Some(r), source),
        Err(e) => {
            errors.push(ConfigError::InvalidRegex {
                value: pattern,
                from: source.clone(),
                reason: e.to_string(),
            });
            Setting::new(None, source)
        }
    }
}

/// `os.environ.update` raises on such keys, which under wfastcgi kills every process at init; pyfcgi
/// reports them as configuration errors instead.
fn exported_pairs(web: Option<&AppSettings>, errors: &mut Vec<ConfigError>) -> Vec<(String, String)> {
    let Some(web) = web else {
        return Vec::new();
    };
    for (key, _) in &web.entries {
        if key.contains(['=', '\0']) {
            errors.push(ConfigError::InvalidEnvironmentName {
                key: key.clone(),
                path: web.path.clone(),
            });
        }
    }
    web.entries.clone()
}

#[cfg(test)]
mod tests;
