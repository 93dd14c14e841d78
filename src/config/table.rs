//! The table of every setting pyfcgi reads: one row per setting, and everything else derived from it. A row says
//! the setting's environment/web.config name, its command-line flag, whether web.config may set it, how its text
//! is parsed, its default, its help text and when it takes effect (at start-up, or once the application's
//! web.config is read, which under IIS is the first request). Resolution ([`super::Settings`]), `pyfcgi check`'s
//! report, the `--help` text ([`SettingArgs`]) and the README's settings table ([`readme_table`]) all walk
//! [`ALL`], so a flag cannot exist without a row and the README cannot drift from the code (a unit test compares
//! them).
//!
//! # How to add a setting
//! 1. Write a `pub static NAME: Def<T> = Def { .. }` below, next to its neighbours: `key` (the environment and
//!    web.config name), `flag` ([`Flag::Value`] or [`Flag::Switch`], or [`Flag::None`]), `web_config`, `when`,
//!    `section` ([`Section::Server`] if `launch::ServeOptions` carries it), `default`, an `example`, a parser (`parse_number`,
//!    `parse_flag`, `parse_text`, or your own `fn(&str) -> Result<Option<T>, String>`; `Ok(None)` means "use the
//!    default", `Err` is the "expected ..." text), `show` for `check`, and the help text.
//! 2. Add `&NAME` to [`ALL`] (the order is the order of `check`, `--help` and the README).
//! 3. Read it where it is used with `settings.get(&table::NAME).value`; never read the environment yourself.
//!    Server settings also get a field in `launch::ServeOptions::from_settings`.
//! 4. Regenerate the README's table: `cargo run -- settings-table` prints it; paste it between the
//!    `settings-table` markers (the `readme_matches_the_table` test says so when you forget).

use std::any::Any;
use std::path::PathBuf;
use std::sync::Arc;

use super::{pythonpath, Interface, Layers, LogLevel, RestartRegex, Setting, Source, DEFAULT_RESTART_FILE_REGEX};
use crate::transport::{BindAddress, PeerFilter};

/// When a setting takes effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// Before any request: the listener, the worker pool, the interpreter. web.config can set it only where
    /// the application root is known at start-up (not under IIS, where it arrives with the first request).
    StartUp,
    /// When the application is loaded, after its web.config is read (under IIS: the first request).
    App,
}

/// Who reads the setting: the WSGI application loader or the server (`launch::ServeOptions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    App,
    Server,
}

/// Where the setting's name comes from, for the README's "From" column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Wfastcgi,
    Pyfcgi,
    FastCgiSpec,
}

/// The setting's command-line form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flag {
    None,
    /// `--long VALUE`.
    Value {
        long: &'static str,
        value_name: &'static str,
    },
    /// `--long` alone, meaning the setting's text `sets` (e.g. `--no-access-log` sets `false`).
    Switch {
        long: &'static str,
        sets: &'static str,
    },
}

impl Flag {
    pub fn long(self) -> Option<&'static str> {
        match self {
            Flag::None => None,
            Flag::Value { long, .. } | Flag::Switch { long, .. } => Some(long),
        }
    }
}

/// Whether web.config `<appSettings>` may set it, and if not, why (shown by `check`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebConfig {
    Yes,
    No(&'static str),
}

/// Everything about a setting that does not depend on its value's type.
#[derive(Debug)]
pub struct Meta {
    /// The name `check` shows; unique. Usually `key`.
    pub name: &'static str,
    /// The environment variable and web.config appSetting name.
    pub key: &'static str,
    pub flag: Flag,
    pub web_config: WebConfig,
    pub when: When,
    pub section: Section,
    pub origin: Origin,
    /// The default, in words (Markdown), for `--help` and the README.
    pub default: &'static str,
    /// A valid value other than the default, for the tests that pass every row through every layer.
    pub example: &'static str,
    /// One or two sentences for `--help` and the README.
    pub help: &'static str,
    /// `false` for a row folded into another one's README line (the environment's PYTHONPATH).
    pub in_readme: bool,
}

/// How a row turns its inputs into a value.
pub enum Resolve<T> {
    /// The first layer with the key wins (command line, web.config, environment); its text is parsed, `Ok(None)`
    /// meaning the default (still credited to that layer, so `value=""` in web.config can switch off the
    /// environment's value). `Err` says what was expected.
    Parse(fn(&str) -> Result<Option<T>, String>),
    /// A rule of its own (PYTHONPATH's list processing, a presence-only flag).
    Custom(fn(&Meta, &Layers<'_>, Option<&str>) -> Setting<T>),
}

/// A typed row of the table.
pub struct Def<T> {
    pub meta: Meta,
    pub default: fn() -> T,
    pub resolve: Resolve<T>,
    /// The value as `check` shows it; `None` is "(not set)".
    pub show: fn(&T) -> Option<String>,
}

/// A resolved row, typed behind `Any` (the `Setting<T>` of its [`Def<T>`]).
#[derive(Clone)]
pub struct Resolved {
    pub(crate) name: &'static str,
    pub(crate) source: Source,
    pub(crate) shown: Option<String>,
    pub(crate) value: Arc<dyn Any + Send + Sync>,
}

/// One parse failure, reported with the row's key.
pub struct Invalid {
    pub(crate) raw: String,
    pub(crate) source: Source,
    pub(crate) expected: String,
}

/// A row of any type, as [`ALL`] holds it.
pub trait Row: Sync {
    fn meta(&self) -> &Meta;
    /// Checks command-line text (clap's value parser), so a bad flag is a usage error.
    ///
    /// # Errors
    /// The "expected ..." text.
    fn validate(&self, raw: &str) -> Result<(), String>;
    #[doc(hidden)]
    fn resolve_row(&self, layers: &Layers<'_>, cli: Option<&str>) -> (Resolved, Option<Invalid>);
}

impl<T: Any + Send + Sync> Row for Def<T> {
    fn meta(&self) -> &Meta {
        &self.meta
    }

    fn validate(&self, raw: &str) -> Result<(), String> {
        match &self.resolve {
            Resolve::Parse(parse) => parse(raw).map(|_| ()),
            Resolve::Custom(_) => Ok(()),
        }
    }

    fn resolve_row(&self, layers: &Layers<'_>, cli: Option<&str>) -> (Resolved, Option<Invalid>) {
        let mut invalid = None;
        let setting = match &self.resolve {
            Resolve::Custom(custom) => custom(&self.meta, layers, cli),
            Resolve::Parse(parse) => {
                let found = match cli {
                    Some(raw) => Some((raw.to_owned(), Source::Cli)),
                    None => layers.get(&self.meta),
                };
                match found {
                    None => Setting::new((self.default)(), Source::Default),
                    Some((raw, source)) => match parse(&raw) {
                        Ok(Some(value)) => Setting::new(value, source),
                        Ok(None) => Setting::new((self.default)(), source),
                        Err(expected) => {
                            invalid = Some(Invalid {
                                raw,
                                source: source.clone(),
                                expected,
                            });
                            Setting::new((self.default)(), source)
                        }
                    },
                }
            }
        };
        let resolved = Resolved {
            name: self.meta.name,
            source: setting.source.clone(),
            shown: (self.show)(&setting.value),
            value: Arc::new(setting),
        };
        (resolved, invalid)
    }
}

// ---- parsers: `Ok(None)` is "blank, use the default" ----

pub(crate) const BOOL_EXPECTED: &str = "a boolean: 1/0, true/false, yes/no or on/off";

/// A string where `""` means unset, as wfastcgi's truthiness tests treat it.
pub fn parse_text(raw: &str) -> Result<Option<Option<String>>, String> {
    Ok(Some((!raw.is_empty()).then(|| raw.to_owned())))
}

pub fn parse_path(raw: &str) -> Result<Option<Option<PathBuf>>, String> {
    Ok(Some((!raw.is_empty()).then(|| PathBuf::from(raw))))
}

pub fn parse_flag(raw: &str) -> Result<Option<bool>, String> {
    if raw.trim().is_empty() {
        return Ok(None);
    }
    super::parse_bool(raw).map(Some).ok_or_else(|| BOOL_EXPECTED.to_owned())
}

pub fn parse_number<T: std::str::FromStr>(raw: &str) -> Result<Option<T>, String> {
    if raw.trim().is_empty() {
        return Ok(None);
    }
    raw.trim().parse().map(Some).map_err(|_| "a whole number".to_owned())
}

fn parse_max_requests(raw: &str) -> Result<Option<u64>, String> {
    parse_number(raw).map_err(|_| "a whole number (0 means unlimited)".to_owned())
}

fn parse_log_level(raw: &str) -> Result<Option<LogLevel>, String> {
    if raw.trim().is_empty() {
        return Ok(None);
    }
    raw.parse()
        .map(Some)
        .map_err(|_| "off, error, warn, info, debug or trace".to_owned())
}

fn parse_interface(raw: &str) -> Result<Option<Interface>, String> {
    if raw.trim().is_empty() {
        return Ok(None);
    }
    raw.parse().map(Some).map_err(|_| super::INTERFACE_EXPECTED.to_owned())
}

fn parse_log_filter(raw: &str) -> Result<Option<Option<String>>, String> {
    if raw.trim().is_empty() {
        return Ok(None);
    }
    tracing_subscriber::EnvFilter::try_new(raw)
        .map(|_| Some(Some(raw.to_owned())))
        .map_err(|e| format!("a log filter such as `info,pyfcgi::access=off` ({e})"))
}

/// `""` disables restarting; anything else must compile.
fn parse_restart_regex(raw: &str) -> Result<Option<Option<RestartRegex>>, String> {
    if raw.is_empty() {
        return Ok(Some(None));
    }
    RestartRegex::new(raw).map(|r| Some(Some(r))).map_err(|e| {
        format!(
            "a regular expression in Rust regex syntax, which has no look-around or backreferences \
             (unlike Python's): {e}"
        )
    })
}

fn parse_bind(raw: &str) -> Result<Option<Option<BindAddress>>, String> {
    if raw.trim().is_empty() {
        return Ok(None);
    }
    raw.parse().map(|b| Some(Some(b)))
}

fn parse_octal(raw: &str) -> Result<Option<u32>, String> {
    if raw.trim().is_empty() {
        return Ok(None);
    }
    u32::from_str_radix(raw.trim().trim_start_matches("0o"), 8)
        .ok()
        .filter(|mode| *mode <= 0o7777)
        .map(Some)
        .ok_or_else(|| "an octal file mode such as 660".to_owned())
}

fn parse_peers(raw: &str) -> Result<Option<Option<String>>, String> {
    if raw.trim().is_empty() {
        return Ok(None);
    }
    PeerFilter::parse(Some(raw)).map(|_| Some(Some(raw.trim().to_owned())))
}

// ---- how values are shown by `check` ----

fn show_text(v: &Option<String>) -> Option<String> {
    v.clone()
}

fn show_secret(v: &Option<String>) -> Option<String> {
    // A credential for the debugger: showing that it is set is enough.
    v.as_ref().map(|_| "(set)".to_owned())
}

fn show_path(v: &Option<PathBuf>) -> Option<String> {
    v.as_ref().map(|p| p.display().to_string())
}

fn show_optional<T: ToString>(v: &Option<T>) -> Option<String> {
    v.as_ref().map(ToString::to_string)
}

fn show<T: ToString>(v: &T) -> Option<String> {
    Some(v.to_string())
}

fn none<T>() -> Option<T> {
    None
}

// ---- custom rules ----

/// wfastcgi applies only the web.config `PYTHONPATH` itself (every key spelled so, in order); `%NAME%` sees the
/// merged environment, so any appSetting (even a later one) can be referenced. The command line replaces it.
fn resolve_pythonpath(_meta: &Meta, layers: &Layers<'_>, cli: Option<&str>) -> Setting<Vec<String>> {
    let lookup = |name: &str| layers.lookup(name).map(|(v, _)| v);
    if let Some(raw) = cli {
        return Setting::new(pythonpath::process(raw, &lookup, layers.style), Source::Cli);
    }
    let Some(web) = layers.web else {
        return Setting::default(Vec::new());
    };
    let mut entries = Vec::new();
    let mut found = false;
    for (_, raw) in web.get_all_ignore_case("PYTHONPATH") {
        found = true;
        entries.extend(pythonpath::process(raw, &lookup, layers.style));
    }
    if found {
        Setting::new(entries, Source::WebConfig(web.path.clone()))
    } else {
        Setting::default(Vec::new())
    }
}

/// wfastcgi tests only whether the key is present.
fn resolve_presence(meta: &Meta, layers: &Layers<'_>, cli: Option<&str>) -> Setting<bool> {
    if cli.is_some() {
        return Setting::new(true, Source::Cli);
    }
    match layers.get(meta) {
        Some((_, source)) => Setting::new(true, source),
        None => Setting::default(false),
    }
}

#[allow(clippy::ptr_arg)] // the row's type is `Vec<String>`: `show` takes `&T`
fn show_list(v: &Vec<String>) -> Option<String> {
    (!v.is_empty()).then(|| v.join(";"))
}

fn show_presence(v: &bool) -> Option<String> {
    v.then(|| "present".to_owned())
}

fn show_regex(v: &Option<RestartRegex>) -> Option<String> {
    Some(
        v.as_ref()
            .map_or_else(|| "(disabled)".to_owned(), |r| r.pattern().to_owned()),
    )
}

fn show_bind(v: &Option<BindAddress>) -> Option<String> {
    v.as_ref().map(|b| match b {
        BindAddress::Tcp(a) => a.clone(),
        BindAddress::Unix(p) => format!("unix:{}", p.display()),
    })
}

fn show_octal(v: &u32) -> Option<String> {
    Some(format!("{v:o}"))
}

// ---- the rows ----

/// The defaults of the fields below that most rows share.
macro_rules! meta {
    ($key:literal, $($field:ident: $value:expr),* $(,)?) => {
        Meta {
            name: $key,
            key: $key,
            in_readme: true,
            $($field: $value),*
        }
    };
}

pub static WSGI_HANDLER: Def<Option<String>> = Def {
    meta: meta!("WSGI_HANDLER",
        flag: Flag::Value { long: "app", value_name: "HANDLER" },
        web_config: WebConfig::Yes, when: When::App, section: Section::App, origin: Origin::Wfastcgi,
        default: "(required)",
        example: r"app.app",
        help: "The WSGI callable: `pkg.module.app`, attribute chains, `()` to call a factory once \
               (`django.core.wsgi.get_wsgi_application()`), or `module:app`. Resolved with wfastcgi's algorithm \
               and messages.",
    ),
    default: none,
    resolve: Resolve::Parse(parse_text),
    show: show_text,
};

pub static PYTHONPATH: Def<Vec<String>> = Def {
    meta: Meta {
        name: "PYTHONPATH (appended to sys.path)",
        key: "PYTHONPATH",
        flag: Flag::Value {
            long: "python-path",
            value_name: "PATHS",
        },
        web_config: WebConfig::Yes,
        when: When::App,
        section: Section::App,
        origin: Origin::Wfastcgi,
        default: "",
        example: r"/srv/lib",
        help: "In web.config: `;`-separated (also `:` on Unix), `%VAR%` expanded, appended to `sys.path`. In the \
               environment: honoured by CPython at start-up.",
        in_readme: true,
    },
    default: Vec::new,
    resolve: Resolve::Custom(resolve_pythonpath),
    show: show_list,
};

pub static PYTHONPATH_ENV: Def<Option<String>> = Def {
    meta: Meta {
        name: "PYTHONPATH (read by CPython at start-up)",
        key: "PYTHONPATH",
        flag: Flag::None,
        web_config: WebConfig::No("a web.config PYTHONPATH is appended to sys.path instead"),
        when: When::StartUp,
        section: Section::App,
        origin: Origin::Wfastcgi,
        default: "",
        example: r"/env/lib",
        help: "The process environment's PYTHONPATH, verbatim; CPython places it before site-packages.",
        in_readme: false,
    },
    default: none,
    resolve: Resolve::Parse(parse_text),
    show: show_text,
};

pub static WSGI_LOG: Def<Option<PathBuf>> = Def {
    meta: meta!("WSGI_LOG",
        flag: Flag::Value { long: "log-file", value_name: "PATH" },
        web_config: WebConfig::Yes, when: When::App, section: Section::App, origin: Origin::Wfastcgi,
        default: "stderr",
        example: r"/var/log/site.log",
        help: "Log file, appended to (relative to the application root). If it cannot be opened, that is \
               reported once and logging continues to stderr.",
    ),
    default: none,
    resolve: Resolve::Parse(parse_path),
    show: show_path,
};

pub static RESTART_FILE_REGEX: Def<Option<RestartRegex>> = Def {
    meta: meta!("WSGI_RESTART_FILE_REGEX",
        flag: Flag::None,
        web_config: WebConfig::Yes, when: When::App, section: Section::App, origin: Origin::Wfastcgi,
        default: r"`.*((\.py)\|(\.config))$`",
        example: r".*\.txt$",
        help: "Accepted and validated (`\"\"` disables it); restart on file change is not implemented yet.",
    ),
    default: default_restart_regex,
    resolve: Resolve::Parse(parse_restart_regex),
    show: show_regex,
};

fn default_restart_regex() -> Option<RestartRegex> {
    RestartRegex::new(DEFAULT_RESTART_FILE_REGEX).ok()
}

pub static SCRIPT_NAME: Def<Option<String>> = Def {
    meta: meta!("SCRIPT_NAME",
        flag: Flag::None,
        web_config: WebConfig::Yes, when: When::App, section: Section::App, origin: Origin::Wfastcgi,
        default: "",
        example: r"/app",
        help: "IIS only: mount prefix removed from `PATH_INFO` (case-insensitive prefix, as wfastcgi).",
    ),
    default: none,
    resolve: Resolve::Parse(parse_text),
    show: show_text,
};

pub static ALLOW_PATH_INFO_FOR_SCRIPT_MAPPINGS: Def<bool> = Def {
    meta: meta!("AllowPathInfoForScriptMappings",
        flag: Flag::None,
        web_config: WebConfig::Yes, when: When::App, section: Section::App, origin: Origin::Wfastcgi,
        default: "unset",
        example: r"1",
        help: "IIS only: when present (whatever its value), keep IIS's `SCRIPT_NAME` instead of clearing it.",
    ),
    default: || false,
    resolve: Resolve::Custom(resolve_presence),
    show: show_presence,
};

pub static PTVSD_SECRET: Def<Option<String>> = Def {
    meta: meta!("WSGI_PTVSD_SECRET",
        flag: Flag::None,
        web_config: WebConfig::Yes, when: When::App, section: Section::App, origin: Origin::Wfastcgi,
        default: "",
        example: r"s3cret",
        help: "Accepted; ptvsd is obsolete and not started, a warning says so. `check` shows only that it is set.",
    ),
    default: none,
    resolve: Resolve::Parse(parse_text),
    show: show_secret,
};

pub static PTVSD_ADDRESS: Def<Option<String>> = Def {
    meta: meta!("WSGI_PTVSD_ADDRESS",
        flag: Flag::None,
        web_config: WebConfig::Yes, when: When::App, section: Section::App, origin: Origin::Wfastcgi,
        default: "",
        example: r"0.0.0.0:5678",
        help: "Accepted with `WSGI_PTVSD_SECRET`; not used.",
    ),
    default: none,
    resolve: Resolve::Parse(parse_text),
    show: show_text,
};

pub static APPINSIGHTS_INSTRUMENTATION_KEY: Def<Option<String>> = Def {
    meta: meta!("APPINSIGHTS_INSTRUMENTATIONKEY",
        flag: Flag::None,
        web_config: WebConfig::Yes, when: When::App, section: Section::App, origin: Origin::Wfastcgi,
        default: "",
        example: r"key",
        help: "Accepted and shown by `check`; pyfcgi does not send telemetry (configure Application Insights in \
               the app).",
    ),
    default: none,
    resolve: Resolve::Parse(parse_text),
    show: show_text,
};

pub static APP_ROOT: Def<Option<PathBuf>> = Def {
    meta: meta!("PYFCGI_APP_ROOT",
        flag: Flag::Value { long: "app-root", value_name: "DIR" },
        web_config: WebConfig::No("web.config is found through it"),
        when: When::StartUp, section: Section::App, origin: Origin::Pyfcgi,
        default: "IIS: `APPL_PHYSICAL_PATH`; else the current directory",
        example: r"/srv/site",
        help: "Where web.config is read; first on `sys.path`; the working directory. Setting it under IIS lets \
               web.config's start-up settings apply.",
    ),
    default: none,
    resolve: Resolve::Parse(parse_path),
    show: show_path,
};

pub static VENV: Def<Option<PathBuf>> = Def {
    meta: meta!("PYFCGI_VENV",
        flag: Flag::Value { long: "venv", value_name: "DIR" },
        web_config: WebConfig::Yes, when: When::StartUp, section: Section::App, origin: Origin::Pyfcgi,
        default: "found automatically",
        example: r"/srv/venv",
        help: "Virtual environment to use; by default one around the executable, or `VIRTUAL_ENV`.",
    ),
    default: none,
    resolve: Resolve::Parse(parse_path),
    show: show_path,
};

pub static DEBUG: Def<bool> = Def {
    meta: meta!("PYFCGI_DEBUG",
        flag: Flag::Switch { long: "debug", sets: "true" },
        web_config: WebConfig::Yes, when: When::App, section: Section::App, origin: Origin::Pyfcgi,
        default: "`off`",
        example: r"true",
        help: "Show tracebacks in the browser. Never on a public site.",
    ),
    default: || false,
    resolve: Resolve::Parse(parse_flag),
    show,
};

pub static ERRORS_TO_STDERR: Def<bool> = Def {
    meta: meta!("PYFCGI_ERRORS_TO_STDERR",
        flag: Flag::Switch { long: "errors-to-stderr", sets: "true" },
        web_config: WebConfig::Yes, when: When::App, section: Section::App, origin: Origin::Pyfcgi,
        default: "`off`",
        example: r"true",
        help: "Also send error reports as FastCGI stderr (wfastcgi's behaviour; IIS then shows them).",
    ),
    default: || false,
    resolve: Resolve::Parse(parse_flag),
    show,
};

pub static ACCESS_LOG: Def<bool> = Def {
    meta: meta!("PYFCGI_ACCESS_LOG",
        flag: Flag::Switch { long: "no-access-log", sets: "false" },
        web_config: WebConfig::Yes, when: When::App, section: Section::App, origin: Origin::Pyfcgi,
        default: "`on`",
        example: r"false",
        help: "One log line per request: method, URI, status, bytes, duration.",
    ),
    default: || true,
    resolve: Resolve::Parse(parse_flag),
    show,
};

pub static LOG_LEVEL: Def<LogLevel> = Def {
    meta: meta!("PYFCGI_LOG_LEVEL",
        flag: Flag::Value { long: "log-level", value_name: "LEVEL" },
        web_config: WebConfig::Yes, when: When::App, section: Section::App, origin: Origin::Pyfcgi,
        default: "`info`",
        example: r"debug",
        help: "`off`, `error`, `warn`, `info`, `debug`, `trace`. From web.config it applies as soon as web.config \
               is read (under IIS: the first request).",
    ),
    default: || LogLevel::Info,
    resolve: Resolve::Parse(parse_log_level),
    show,
};

pub static LOG_FILTER: Def<Option<String>> = Def {
    meta: meta!("PYFCGI_LOG",
        flag: Flag::None,
        web_config: WebConfig::Yes, when: When::App, section: Section::App, origin: Origin::Pyfcgi,
        default: "",
        example: r"warn,pyfcgi::access=off",
        help: "A full log filter (`info,pyfcgi::access=off`), instead of `PYFCGI_LOG_LEVEL` and \
               `PYFCGI_ACCESS_LOG`.",
    ),
    default: none,
    resolve: Resolve::Parse(parse_log_filter),
    show: show_text,
};

pub static SCRIPT_NAME_FROM_APPL_MD_PATH: Def<bool> = Def {
    meta: meta!("PYFCGI_SCRIPT_NAME_FROM_APPL_MD_PATH",
        flag: Flag::None,
        web_config: WebConfig::Yes, when: When::App, section: Section::App, origin: Origin::Pyfcgi,
        default: "`off`",
        example: r"true",
        help: "IIS only: derive the mount prefix from `APPL_MD_PATH` (segment-aware).",
    ),
    default: || false,
    resolve: Resolve::Parse(parse_flag),
    show,
};

pub static PATH_INFO_FROM_REQUEST_URI: Def<bool> = Def {
    meta: meta!("PYFCGI_PATH_INFO_FROM_REQUEST_URI",
        flag: Flag::None,
        web_config: WebConfig::Yes, when: When::App, section: Section::App, origin: Origin::Pyfcgi,
        default: "`off`",
        example: r"true",
        help: "IIS only: rebuild `PATH_INFO` from `REQUEST_URI`, exact bytes (non-ASCII paths, `%3F`).",
    ),
    default: || false,
    resolve: Resolve::Parse(parse_flag),
    show,
};

pub static MAX_REQUESTS: Def<u64> = Def {
    meta: meta!("PYFCGI_MAX_REQUESTS",
        flag: Flag::None,
        web_config: WebConfig::Yes, when: When::App, section: Section::App, origin: Origin::Pyfcgi,
        default: "`0`",
        example: r"100",
        help: "Accepted; recycling after N requests is not implemented yet.",
    ),
    default: || 0,
    resolve: Resolve::Parse(parse_max_requests),
    show,
};

pub static INTERFACE: Def<Interface> = Def {
    meta: meta!("PYFCGI_INTERFACE",
        flag: Flag::Value { long: "interface", value_name: "INTERFACE" },
        web_config: WebConfig::Yes, when: When::App, section: Section::App, origin: Origin::Pyfcgi,
        default: "`auto`",
        example: r"asgi",
        help: "`auto`, `wsgi` or `asgi` (`asgi3` is accepted). `auto` decides once when the app loads: ASGI 3 for a \
               coroutine function (`async def app(scope, receive, send)`, also behind `functools.partial`), an \
               object whose `__call__` is `async def` (FastAPI, Starlette, Django's `ASGIHandler`) or a class with \
               `__await__`; anything else is WSGI. The log and `pyfcgi check` say which and why. See \"ASGI\" below.",
    ),
    default: || Interface::Auto,
    resolve: Resolve::Parse(parse_interface),
    show,
};

pub static MAX_RESPONSE_HEADER_BYTES: Def<u64> = Def {
    meta: meta!("PYFCGI_MAX_RESPONSE_HEADER_BYTES",
        flag: Flag::None,
        web_config: WebConfig::Yes, when: When::App, section: Section::App, origin: Origin::Pyfcgi,
        default: "`65536`",
        example: r"262144",
        help: "Largest response header block (status line and headers) an application may produce; past it the \
               request is answered with a logged 500 naming the header and its size. 0 means unlimited.",
    ),
    default: || crate::wsgi::head::DEFAULT_MAX_HEAD as u64,
    resolve: Resolve::Parse(parse_max_requests),
    show,
};

/// Parses `PYFCGI_LOG_ROTATE` (an empty value means no rotation).
fn parse_log_rotate(raw: &str) -> Result<Option<Option<crate::logging::RotatePolicy>>, String> {
    if raw.trim().is_empty() {
        return Ok(None);
    }
    raw.parse()
        .map(|p| Some(Some(p)))
        .map_err(|_| crate::logging::ROTATE_EXPECTED.to_owned())
}

fn show_log_rotate(v: &Option<crate::logging::RotatePolicy>) -> Option<String> {
    v.as_ref().map(ToString::to_string)
}

pub static LOG_ROTATE: Def<Option<crate::logging::RotatePolicy>> = Def {
    meta: meta!("PYFCGI_LOG_ROTATE",
        flag: Flag::None,
        web_config: WebConfig::Yes, when: When::App, section: Section::App, origin: Origin::Pyfcgi,
        default: "no rotation",
        example: r"size=50MB,daily,keep=7",
        help: "Rotate `WSGI_LOG`: comma-separated `size=N` (`KB`, `MB`, `GB`; 1 KB = 1024 bytes), `daily` (first \
               write after midnight UTC), `keep=N` (old files kept, default 7). See [Logs](#logs).",
    ),
    default: none,
    resolve: Resolve::Parse(parse_log_rotate),
    show: show_log_rotate,
};

pub static BIND: Def<Option<BindAddress>> = Def {
    meta: meta!("PYFCGI_BIND",
        flag: Flag::Value { long: "bind", value_name: "ADDRESS" },
        web_config: WebConfig::Yes, when: When::StartUp, section: Section::Server, origin: Origin::Pyfcgi,
        default: "fd 0",
        example: r"127.0.0.1:9000",
        help: "`HOST:PORT` or `unix:/path`; without it pyfcgi serves the socket the web server passed on fd 0.",
    ),
    default: none,
    resolve: Resolve::Parse(parse_bind),
    show: show_bind,
};

pub static WORKERS: Def<usize> = Def {
    meta: meta!("PYFCGI_WORKERS",
        flag: Flag::Value { long: "workers", value_name: "N" },
        web_config: WebConfig::Yes, when: When::StartUp, section: Section::Server, origin: Origin::Pyfcgi,
        default: "`1`",
        example: r"4",
        help: "Worker threads: requests served at once. Python runs one thread at a time, so raise it for apps \
               that wait on databases, upstream services or long streams; for CPU-bound apps one worker is \
               fastest (see BENCHMARKS.md), and more processes add CPU. No effect under IIS, which sends one \
               request at a time to each process (its `maxInstances` is the concurrency).",
    ),
    default: || 1,
    resolve: Resolve::Parse(parse_number::<usize>),
    show,
};

pub static MAX_CONNS: Def<usize> = Def {
    meta: meta!("PYFCGI_MAX_CONNS",
        flag: Flag::Value { long: "max-conns", value_name: "N" },
        web_config: WebConfig::Yes, when: When::StartUp, section: Section::Server, origin: Origin::Pyfcgi,
        default: "`1024`",
        example: r"16",
        help: "Connections held open at once (reported to the web server as `FCGI_MAX_CONNS`). At the limit a new connection closes the one idle longest; only when all are busy do new ones wait in the listen queue. The descriptor table is sized for them at start-up (raising the soft `RLIMIT_NOFILE` up to the hard limit if needed).",
    ),
    default: || 1024,
    resolve: Resolve::Parse(parse_number::<usize>),
    show,
};

pub static BACKLOG: Def<Option<u32>> = Def {
    meta: meta!("PYFCGI_BACKLOG",
        flag: Flag::Value { long: "backlog", value_name: "N" },
        web_config: WebConfig::Yes, when: When::StartUp, section: Section::Server, origin: Origin::Pyfcgi,
        default: "the system maximum (`net.core.somaxconn`)",
        example: r"4096",
        help: "Listen queue length of a `--bind` socket; when set, also applied to the socket inherited on fd 0 (otherwise the web server's choice stands).",
    ),
    default: || None,
    resolve: Resolve::Parse(|raw| parse_number::<u32>(raw).map(|n| n.map(Some))),
    show: show_optional,
};

pub static IDLE_TIMEOUT: Def<u64> = Def {
    meta: meta!("PYFCGI_IDLE_TIMEOUT",
        flag: Flag::Value { long: "idle-timeout", value_name: "SECONDS" },
        web_config: WebConfig::Yes, when: When::StartUp, section: Section::Server, origin: Origin::Pyfcgi,
        default: "`300`",
        example: r"60",
        help: "Seconds a kept connection may wait for its next request before pyfcgi closes it; 0 never closes. nginx, Apache and lighttpd reopen kept connections as needed. Under IIS, IIS's own `idleTimeout` applies.",
    ),
    default: || 300,
    resolve: Resolve::Parse(parse_number::<u64>),
    show,
};

pub static SOCKET_MODE: Def<u32> = Def {
    meta: meta!("PYFCGI_SOCKET_MODE",
        flag: Flag::Value { long: "socket-mode", value_name: "MODE" },
        web_config: WebConfig::Yes, when: When::StartUp, section: Section::Server, origin: Origin::Pyfcgi,
        default: "`660`",
        example: r"600",
        help: "Permissions of a `--bind unix:` socket file, in octal.",
    ),
    default: || 0o660,
    resolve: Resolve::Parse(parse_octal),
    show: show_octal,
};

pub static SHUTDOWN_TIMEOUT: Def<u64> = Def {
    meta: meta!("PYFCGI_SHUTDOWN_TIMEOUT",
        flag: Flag::Value { long: "shutdown-timeout", value_name: "SECONDS" },
        web_config: WebConfig::Yes, when: When::StartUp, section: Section::Server, origin: Origin::Pyfcgi,
        default: "`30`",
        example: r"5",
        help: "Seconds a graceful stop (SIGTERM, SIGINT, IIS shutdown event) waits for requests in flight.",
    ),
    default: || 30,
    resolve: Resolve::Parse(parse_number::<u64>),
    show,
};

pub static MAX_PARAMS_BYTES: Def<usize> = Def {
    meta: meta!("PYFCGI_MAX_PARAMS_BYTES",
        flag: Flag::Value { long: "max-params-bytes", value_name: "BYTES" },
        web_config: WebConfig::Yes, when: When::StartUp, section: Section::Server, origin: Origin::Pyfcgi,
        default: "`1048576`",
        example: r"65536",
        help: "Largest total size of a request's FastCGI parameters, in bytes.",
    ),
    default: || 1024 * 1024,
    resolve: Resolve::Parse(parse_number::<usize>),
    show,
};

pub static WEB_SERVER_ADDRS: Def<Option<String>> = Def {
    meta: meta!("FCGI_WEB_SERVER_ADDRS",
        flag: Flag::None,
        web_config: WebConfig::No("the FastCGI specification has the web server pass it in the environment"),
        when: When::StartUp, section: Section::Server, origin: Origin::FastCgiSpec,
        default: "",
        example: r"127.0.0.1",
        help: "Comma-separated IPs allowed to connect over TCP.",
    ),
    default: none,
    resolve: Resolve::Parse(parse_peers),
    show: show_text,
};

/// Every setting, in the order `check`, `--help` and the README show them.
pub static ALL: &[&dyn Row] = &[
    &WSGI_HANDLER,
    &PYTHONPATH,
    &PYTHONPATH_ENV,
    &WSGI_LOG,
    &RESTART_FILE_REGEX,
    &SCRIPT_NAME,
    &ALLOW_PATH_INFO_FOR_SCRIPT_MAPPINGS,
    &PTVSD_SECRET,
    &PTVSD_ADDRESS,
    &APPINSIGHTS_INSTRUMENTATION_KEY,
    &APP_ROOT,
    &VENV,
    &DEBUG,
    &ERRORS_TO_STDERR,
    &ACCESS_LOG,
    &LOG_LEVEL,
    &LOG_FILTER,
    &SCRIPT_NAME_FROM_APPL_MD_PATH,
    &PATH_INFO_FROM_REQUEST_URI,
    &MAX_REQUESTS,
    &INTERFACE,
    &MAX_RESPONSE_HEADER_BYTES,
    &LOG_ROTATE,
    &BIND,
    &WORKERS,
    &MAX_CONNS,
    &BACKLOG,
    &IDLE_TIMEOUT,
    &SOCKET_MODE,
    &SHUTDOWN_TIMEOUT,
    &MAX_PARAMS_BYTES,
    &WEB_SERVER_ADDRS,
];

/// The row `check` calls `name`.
pub fn find(name: &str) -> Option<&'static dyn Row> {
    ALL.iter().copied().find(|row| row.meta().name == name)
}

/// The README's settings table, generated (`pyfcgi settings-table` prints it).
pub fn readme_table() -> String {
    let mut out =
        String::from("| Setting | Flag | From | Takes effect | Default | Meaning |\n|---|---|---|---|---|---|\n");
    for row in ALL {
        let m = row.meta();
        if !m.in_readme {
            continue;
        }
        let flag = m.flag.long().map(|l| format!("`--{l}`")).unwrap_or_default();
        let origin = match m.origin {
            Origin::Wfastcgi => "wfastcgi",
            Origin::Pyfcgi => "new",
            Origin::FastCgiSpec => "FastCGI spec",
        };
        let when = match (m.when, m.web_config) {
            (_, WebConfig::No(_)) => "start-up; not from web.config",
            (When::StartUp, WebConfig::Yes) => "start-up¹",
            (When::App, WebConfig::Yes) => "app load",
        };
        out.push_str(&format!(
            "| `{}` | {flag} | {origin} | {when} | {} | {} |\n",
            m.key,
            m.default,
            m.help.split_whitespace().collect::<Vec<_>>().join(" ")
        ));
    }
    out.push_str(
        "| `DJANGO_SETTINGS_MODULE`, any other key | | passthrough | app load | | Exported to `os.environ`. |\n",
    );
    out
}

#[cfg(test)]
mod tests;
