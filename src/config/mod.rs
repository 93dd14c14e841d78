//! Every setting pyfcgi reads, the value it resolved to, and where that value came from.
//!
//! This module owns the settings model and its precedence: command-line flags first, then the site's
//! web.config `<appSettings>` (which override the environment, because wfastcgi merges them into
//! `os.environ`), then the process environment, then defaults. Inputs are plain data so resolution is
//! testable without touching the real environment; the only I/O in the module tree is reading
//! web.config ([`webconfig`]). It does not start Python, open log files or watch files: it hands the
//! other modules validated values, each with its [`Source`] for `pyfcgi check`. The settings themselves are rows
//! of [`table`]; [`args`] makes their flags, [`startup`] resolves what applies before the first request and
//! [`report`] renders `check`'s view.

pub mod args;
pub mod handler;
pub mod pythonpath;
pub mod report;
pub mod startup;
pub mod table;
pub mod webconfig;

use std::fmt;
use std::path::{Path, PathBuf};
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

/// Values given as command-line flags, as text, by row name; parsed by the row like any other layer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CliOverrides {
    values: Vec<(&'static str, String)>,
}

impl CliOverrides {
    /// Sets `row` as if its flag had been given `value`.
    #[must_use]
    pub fn with<T>(mut self, row: &'static table::Def<T>, value: impl Into<String>) -> Self {
        self.set(row.meta.name, value.into());
        self
    }

    pub(crate) fn set(&mut self, name: &'static str, value: String) {
        self.values.retain(|(n, _)| *n != name);
        self.values.push((name, value));
    }

    /// The text given for the row named `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }
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

/// Which Python interface the application is served with (`PYFCGI_INTERFACE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Interface {
    /// Decided once when the application is loaded: ASGI 3 if it looks like it (see `asgi::app`), else WSGI.
    #[default]
    Auto,
    Wsgi,
    Asgi,
}

impl Interface {
    pub fn as_str(self) -> &'static str {
        match self {
            Interface::Auto => "auto",
            Interface::Wsgi => "wsgi",
            Interface::Asgi => "asgi",
        }
    }
}

impl fmt::Display for Interface {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

pub(crate) const INTERFACE_EXPECTED: &str = "auto, wsgi or asgi";

impl FromStr for Interface {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Interface::Auto),
            "wsgi" => Ok(Interface::Wsgi),
            "asgi" | "asgi3" => Ok(Interface::Asgi),
            _ => Err(format!("\"{s}\" is not an interface; expected {INTERFACE_EXPECTED}")),
        }
    }
}

/// The rejected text of a [`LogLevel`] parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("\"{0}\" is not a log level; expected {LOG_LEVEL_EXPECTED}")]
pub struct InvalidLogLevel(pub String);

const LOG_LEVEL_EXPECTED: &str = "off, error, warn, info, debug or trace";

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
        expected: String,
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

/// Every setting of [`table::ALL`], resolved, with provenance. Read one with [`Settings::get`].
#[derive(Clone)]
pub struct Settings {
    rows: Vec<table::Resolved>,
    exported: Vec<(String, String)>,
    /// The web.config these settings were resolved with.
    web_config: Option<PathBuf>,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for row in &self.rows {
            map.entry(&row.name, &(row.shown.as_deref(), &row.source));
        }
        map.finish()
    }
}

/// The web.config and environment layers, queried by name.
pub struct Layers<'a> {
    web: Option<&'a AppSettings>,
    env: &'a dyn Fn(&str) -> Option<String>,
    case: KeyCase,
    style: PathListStyle,
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
    fn lookup(&self, key: &str) -> Option<(String, Source)> {
        if let Some(v) = self.web(key) {
            let path = self.web.map(|w| w.path.clone()).unwrap_or_default();
            return Some((v.to_string(), Source::WebConfig(path)));
        }
        (self.env)(key).map(|v| (v, Source::Environment))
    }

    /// The row's text from web.config (where the row allows it) or the environment.
    fn get(&self, meta: &table::Meta) -> Option<(String, Source)> {
        match meta.web_config {
            table::WebConfig::Yes => self.lookup(meta.key),
            table::WebConfig::No(_) => (self.env)(meta.key).map(|v| (v, Source::Environment)),
        }
    }
}

/// Reads one variable of this process's environment; non-UTF-8 values are converted lossily.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var_os(name).map(|v| v.to_string_lossy().into_owned())
}

impl Settings {
    /// Resolves every setting with this platform's key matching and path-list style.
    ///
    /// # Errors
    /// Every invalid value, at once.
    pub fn resolve(
        cli: &CliOverrides,
        web_config: Option<&AppSettings>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Settings, ConfigErrors> {
        Self::resolve_with(cli, web_config, env, KeyCase::native(), PathListStyle::native())
    }

    /// [`Settings::resolve`] with the platform choices made explicit, so both can be tested anywhere.
    ///
    /// # Errors
    /// Every invalid value, at once.
    pub fn resolve_with(
        cli: &CliOverrides,
        web_config: Option<&AppSettings>,
        env: &dyn Fn(&str) -> Option<String>,
        case: KeyCase,
        style: PathListStyle,
    ) -> Result<Settings, ConfigErrors> {
        let (settings, errors) = Self::resolve_lenient(cli, web_config, env, case, style);
        if errors.is_empty() {
            Ok(settings)
        } else {
            Err(ConfigErrors(errors))
        }
    }

    /// Resolves every setting even when some are invalid: those take their default (credited to the layer
    /// that had the bad text) and are listed in the errors.
    pub fn resolve_lenient(
        cli: &CliOverrides,
        web_config: Option<&AppSettings>,
        env: &dyn Fn(&str) -> Option<String>,
        case: KeyCase,
        style: PathListStyle,
    ) -> (Settings, Vec<ConfigError>) {
        let layers = Layers {
            web: web_config,
            env,
            case,
            style,
        };
        let mut errors = Vec::new();
        let rows = table::ALL
            .iter()
            .map(|row| {
                let meta = row.meta();
                let (resolved, invalid) = row.resolve_row(&layers, cli.get(meta.name));
                if let Some(invalid) = invalid {
                    errors.push(ConfigError::InvalidValue {
                        key: meta.key,
                        value: invalid.raw,
                        from: invalid.source,
                        expected: invalid.expected,
                    });
                }
                resolved
            })
            .collect();
        let exported = exported_pairs(web_config, &mut errors);
        let settings = Settings {
            rows,
            exported,
            web_config: web_config.map(|w| w.path.clone()),
        };
        (settings, errors)
    }

    /// The resolved value of a row of the table.
    ///
    /// # Panics
    /// If `row` is not in [`table::ALL`]: a programming error that any test reading the setting shows.
    pub fn get<T: std::any::Any + Send + Sync>(&self, row: &'static table::Def<T>) -> &Setting<T> {
        self.rows
            .iter()
            .find(|r| r.name == row.meta.name)
            .and_then(|r| r.value.downcast_ref::<Setting<T>>())
            .unwrap_or_else(|| panic!("setting {} is not in config::table::ALL", row.meta.name))
    }

    /// Where the row named `name` came from.
    pub fn source_of(&self, name: &str) -> Option<&Source> {
        self.rows.iter().find(|r| r.name == name).map(|r| &r.source)
    }

    /// The handler to resolve, or wfastcgi's `WSGI_HANDLER env var must be set`.
    pub fn handler(&self) -> Result<HandlerSpec, HandlerSpecError> {
        HandlerSpec::parse(self.get(&table::WSGI_HANDLER).value.as_deref().unwrap_or(""))
    }

    /// Every web.config appSetting, to apply to `os.environ` before each request as wfastcgi does.
    pub fn exported_environ(&self) -> &[(String, String)] {
        &self.exported
    }

    /// `PYFCGI_MAX_REQUESTS` as a limit, `None` when unlimited.
    pub fn max_requests_limit(&self) -> Option<u64> {
        let n = self.get(&table::MAX_REQUESTS).value;
        (n > 0).then_some(n)
    }

    /// The log filter these settings ask for: `PYFCGI_LOG` if set, else the level with the access log on or off.
    pub fn log_filter(&self) -> String {
        if let Some(filter) = &self.get(&table::LOG_FILTER).value {
            return filter.clone();
        }
        let level = self.get(&table::LOG_LEVEL).value.as_str();
        if self.get(&table::ACCESS_LOG).value {
            level.to_owned()
        } else {
            format!("{level},pyfcgi::access=off")
        }
    }

    /// One row per setting, in the table's order, for `pyfcgi check`.
    pub fn describe(&self) -> Vec<SettingRow> {
        self.rows
            .iter()
            .map(|r| SettingRow {
                name: r.name,
                value: r.shown.clone(),
                source: r.source.clone(),
            })
            .collect()
    }

    /// Start-up settings this web.config sets that cannot take effect, because the process started before the
    /// web.config could be read (`read_at_start_up` is the web.config file read at start-up, if any); and
    /// settings web.config may never set. One entry per such appSetting, for `check` and the log.
    pub fn ignored_from_web_config(&self, read_at_start_up: Option<&Path>) -> Vec<Ignored> {
        let mut ignored = Vec::new();
        for row in table::ALL {
            let meta = row.meta();
            let Some(resolved) = self.rows.iter().find(|r| r.name == meta.name) else {
                continue;
            };
            match meta.web_config {
                table::WebConfig::Yes => {
                    let Source::WebConfig(path) = &resolved.source else {
                        continue;
                    };
                    if meta.when != table::When::StartUp || read_at_start_up == Some(path.as_path()) {
                        continue;
                    }
                    let value = self.raw_web_value(meta.key).unwrap_or_default();
                    ignored.push(Ignored {
                        name: meta.name,
                        key: meta.key,
                        value,
                        web_config: path.clone(),
                        reason: IgnoredReason::TooLate,
                    });
                }
                table::WebConfig::No(why) => {
                    // Another row may take the key from web.config (PYTHONPATH does).
                    let taken = table::ALL
                        .iter()
                        .any(|other| other.meta().key == meta.key && other.meta().web_config == table::WebConfig::Yes);
                    let Some(web) = self.web_path() else { continue };
                    if taken {
                        continue;
                    }
                    if let Some(value) = self.raw_web_value(meta.key) {
                        ignored.push(Ignored {
                            name: meta.name,
                            key: meta.key,
                            value,
                            web_config: web,
                            reason: IgnoredReason::NotFromWebConfig(why),
                        });
                    }
                }
            }
        }
        ignored
    }

    fn web_path(&self) -> Option<PathBuf> {
        self.web_config.clone()
    }

    /// The appSetting's text as written (the last spelling wins, as in resolution).
    fn raw_web_value(&self, key: &str) -> Option<String> {
        self.exported
            .iter()
            .rev()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.clone())
    }
}

/// A web.config appSetting that names a setting but cannot take effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ignored {
    /// The row's name, as `check` shows it.
    pub name: &'static str,
    pub key: &'static str,
    pub value: String,
    pub web_config: PathBuf,
    pub reason: IgnoredReason,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IgnoredReason {
    /// A start-up setting in a web.config read only after start-up (under IIS: with the first request).
    TooLate,
    /// The row never reads web.config; the text says why.
    NotFromWebConfig(&'static str),
}

impl Ignored {
    /// The log line and `check` paragraph: what is ignored, why, and how to set it instead. Under IIS (`iis`)
    /// that is the exact appcmd line and `pyfcgi enable --env`, for the FastCGI application `exe` (its
    /// `fullPath`); elsewhere the environment the web server starts pyfcgi with.
    pub fn explain(&self, exe: &Path, iis: bool) -> String {
        let head = format!(
            "{} = \"{}\" in {} is ignored: ",
            self.key,
            self.value,
            self.web_config.display()
        );
        let fix = if iis {
            format!(
                "\n    {}\n    {}",
                crate::iis::environment_variable_command(exe, self.key, &self.value),
                enable_line(self.key, &self.value),
            )
        } else {
            format!(
                " `{}={}` in the environment the web server starts pyfcgi with (lighttpd bin-environment, \
                 mod_fcgid FcgidInitialEnv, systemd Environment=), or `--{}`",
                self.key,
                self.value,
                table::find(self.name)
                    .and_then(|row| row.meta().flag.long())
                    .unwrap_or("(no flag)")
            )
        };
        match self.reason {
            IgnoredReason::NotFromWebConfig(why) => {
                format!("{head}web.config cannot set it, because {why}. Set it as a FastCGI environment variable:{fix}")
            }
            IgnoredReason::TooLate if iis => format!(
                "{head}set it as a FastCGI environment variable, because it takes effect at start-up and IIS \
                 names the site (APPL_PHYSICAL_PATH) only with the first request, so web.config is read after \
                 start-up:{fix}\n  (or set PYFCGI_APP_ROOT in the FastCGI environment, so pyfcgi reads web.config \
                 at start-up)"
            ),
            IgnoredReason::TooLate => format!(
                "{head}set it as a FastCGI environment variable, because it takes effect at start-up and this \
                 web.config (found through the first request's APPL_PHYSICAL_PATH) is read after start-up:{fix}\n  \
                 (or set PYFCGI_APP_ROOT, so pyfcgi reads this web.config at start-up)"
            ),
        }
    }
}

fn enable_line(key: &str, value: &str) -> String {
    let pair = format!("{key}={value}");
    if pair.contains([' ', '"', '&', '|', '<', '>', '^']) {
        format!("pyfcgi enable --env \"{}\"", pair.replace('"', "\\\""))
    } else {
        format!("pyfcgi enable --env {pair}")
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
