//! The `pyfcgi` launcher: an executable that links no Python, finds the Python installation its venv was made
//! with, loads that interpreter's shared library, then loads the server core from its own folder
//! (`pyfcgi_core.dll` / `libpyfcgi_core.so`, which is `pyfcgi::cli` built as a library) and runs it in this
//! process.
//!
//! Why: pip puts the executable into a venv's `Scripts\` or `bin/`, which has no Python library (the base
//! installation named by `home` in `pyvenv.cfg` has it). An executable that links the library is killed by the
//! loader before `main` whenever the library is not on the loader's path (0xC0000135 on Windows; "error while
//! loading shared libraries" for venvs over pyenv or uv Pythons on Linux), and nothing is logged: IIS, lighttpd or
//! mod_fcgid show only a generic error. The launcher instead says what is missing and how to fix it, to `WSGI_LOG`
//! (the command line's `--log-file`, web.config's appSettings in the application folder, the environment) or, on
//! Windows, `%TEMP%\pyfcgi-launcher.log` and the event log; on other platforms stderr. It exits with
//! [`EXIT_NO_PYTHON`]. It stays in one process because the web server tracks the process it started (IIS passed
//! it the FastCGI pipe, lighttpd the socket on fd 0).
//!
//! The search order is [`locate`] (one implementation for every platform); loading is [`windows`] or [`unix`].
//! This folder builds both the wheel's launcher (the `pyfcgi-launcher` package) and, on Windows, the `pyfcgi`
//! binary of the main package (`src/main.rs`).

pub mod locate;
#[cfg(unix)]
mod unix;
#[cfg(windows)]
mod windows;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

// Unused where the module is compiled only for its tests (src/main.rs on Unix).
#[cfg(unix)]
#[allow(unused_imports)]
pub use self::unix::main;
#[cfg(windows)]
pub use self::windows::main;

/// The core's entry point. The name carries the interface version, so a launcher and a core from different
/// releases are told apart by a missing export rather than by a crash (see `core/lib.rs`).
pub const CORE_ENTRY: &[u8] = b"pyfcgi_core_main_v1\0";

/// Exit status when Python or the core cannot be loaded.
pub const EXIT_NO_PYTHON: i32 = 3;

/// `pyfcgi 0.2.0 (for Python 3.11)`, as the core's `--version` says; answered without loading Python, so it
/// works where Python cannot be found.
pub fn version_text() -> String {
    format!(
        "pyfcgi {} (for Python {})",
        env!("CARGO_PKG_VERSION"),
        locate::PYTHON_VERSION
    )
}

/// The command asks only for the version (`pyfcgi --version` / `-V`).
pub fn wants_version(args: &[OsString]) -> bool {
    args.len() == 2 && (args[1] == "--version" || args[1] == "-V")
}

/// The value of `--NAME DIR` / `--NAME=DIR` on the command line, before any `--`.
pub fn argument(args: &[OsString], name: &str) -> Option<PathBuf> {
    let mut iter = args.iter().skip(1);
    let flag = format!("--{name}");
    let prefix = format!("--{name}=");
    while let Some(arg) = iter.next() {
        let text = arg.to_string_lossy();
        if text == "--" {
            break;
        }
        if text == flag {
            return iter.next().map(PathBuf::from);
        }
        if let Some(value) = text.strip_prefix(&prefix) {
            return Some(PathBuf::from(value));
        }
    }
    None
}

/// `WSGI_LOG` from the `<appSettings>` of `folder\web.config` (the last `add` wins, as in the core).
fn web_config_log(text: &str) -> Option<String> {
    let doc = roxmltree::Document::parse(text).ok()?;
    doc.descendants()
        .filter(|n| n.has_tag_name("appSettings"))
        .flat_map(|s| s.children().filter(|n| n.has_tag_name("add")))
        .filter(|n| n.attribute("key") == Some("WSGI_LOG"))
        .filter_map(|n| n.attribute("value").map(str::to_owned))
        .next_back()
}

/// Where the launcher writes why it cannot start: `--log-file`, else `WSGI_LOG` in the appSettings of the
/// application folder's web.config (the folder from `--app-root`, `PYFCGI_APP_ROOT`, `APPL_PHYSICAL_PATH`, else
/// the current directory: IIS sends `APPL_PHYSICAL_PATH` only with requests, so under IIS it is the working
/// directory or an explicit root), else `WSGI_LOG` in the environment. The same precedence as the core.
pub fn log_path(
    args: &[OsString],
    env: &dyn Fn(&str) -> Option<OsString>,
    cwd: Option<&Path>,
    read: &dyn Fn(&Path) -> Option<String>,
) -> Option<PathBuf> {
    if let Some(path) = argument(args, "log-file") {
        return Some(path);
    }
    let folder = argument(args, "app-root")
        .or_else(|| {
            ["PYFCGI_APP_ROOT", "APPL_PHYSICAL_PATH"]
                .iter()
                .find_map(|name| env(name).filter(|v| !v.is_empty()).map(PathBuf::from))
        })
        .or_else(|| cwd.map(Path::to_path_buf));
    if let Some(folder) = folder {
        if let Some(value) = read(&folder.join("web.config"))
            .as_deref()
            .and_then(web_config_log)
            .filter(|v| !v.trim().is_empty())
        {
            return Some(folder.join(value.trim()));
        }
    }
    env("WSGI_LOG").filter(|v| !v.is_empty()).map(PathBuf::from)
}

/// `2026-11-05T10:11:12Z` for a time in seconds since 1970 (UTC, as pyfcgi's own log lines).
fn utc_timestamp(secs: u64) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The log text: one `ERROR` line, then the details indented.
pub fn report_text(pid: u32, now_secs: u64, summary: &str, details: &[String]) -> String {
    let mut text = format!(
        "{} ERROR pyfcgi launcher (pid {pid}): cannot start: {summary}\n",
        utc_timestamp(now_secs)
    );
    for line in details {
        text.push_str("    ");
        text.push_str(line);
        text.push('\n');
    }
    text
}

/// The report for this process now.
pub fn report_now(failure: &locate::NotFound) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    report_text(std::process::id(), now, &failure.summary, &failure.details)
}

/// Appends `text` to the log file `path`.
pub fn append(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
}

/// The real inputs of this process for [`log_path`].
pub fn process_log_path(args: &[OsString]) -> Option<PathBuf> {
    let env = |name: &str| std::env::var_os(name);
    let read = |path: &Path| std::fs::read_to_string(path).ok();
    let cwd = std::env::current_dir().ok();
    log_path(args, &env, cwd.as_deref(), &read)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn report_is_one_error_line_then_details() {
        let text = report_text(7, 1_700_000_000, "it broke", &["fix it".into()]);
        assert_eq!(
            text,
            "2023-11-14T22:13:20Z ERROR pyfcgi launcher (pid 7): cannot start: it broke\n    fix it\n"
        );
        assert_eq!(utc_timestamp(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc_timestamp(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn version_is_answered_for_the_bare_flag_only() {
        let args = |a: &[&str]| a.iter().map(OsString::from).collect::<Vec<_>>();
        assert!(wants_version(&args(&["pyfcgi", "--version"])));
        assert!(wants_version(&args(&["pyfcgi", "-V"])));
        assert!(!wants_version(&args(&["pyfcgi", "check", "--version"])));
        assert!(version_text().ends_with(&format!("(for Python {})", locate::PYTHON_VERSION)));
    }

    fn log_for(args: &[&str], env: &[(&str, &str)], cwd: &str, files: &[(&str, &str)]) -> Option<PathBuf> {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        let env: HashMap<String, String> = env.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
        let files: HashMap<PathBuf, String> = files.iter().map(|(k, v)| (PathBuf::from(k), (*v).into())).collect();
        log_path(
            &args,
            &|name| env.get(name).map(OsString::from),
            Some(Path::new(cwd)),
            &|path| files.get(path).cloned(),
        )
    }

    const WEB_CONFIG: &str = r#"<?xml version="1.0"?>
<configuration><appSettings>
  <add key="WSGI_HANDLER" value="app.app"/>
  <add key="WSGI_LOG" value="logs\first.log"/>
  <add key="WSGI_LOG" value="logs/pyfcgi.log"/>
</appSettings></configuration>"#;

    #[test]
    fn wsgi_log_comes_from_web_config_in_the_app_folder_before_the_environment() {
        let files = [("/site/web.config", WEB_CONFIG)];
        assert_eq!(
            log_for(&["pyfcgi"], &[("WSGI_LOG", "/env.log")], "/site", &files),
            Some(PathBuf::from("/site/logs/pyfcgi.log"))
        );
        assert_eq!(
            log_for(
                &["pyfcgi"],
                &[("APPL_PHYSICAL_PATH", "/site"), ("WSGI_LOG", "/env.log")],
                "/",
                &files
            ),
            Some(PathBuf::from("/site/logs/pyfcgi.log"))
        );
        assert_eq!(
            log_for(&["pyfcgi", "--app-root", "/site"], &[], "/", &files),
            Some(PathBuf::from("/site/logs/pyfcgi.log"))
        );
        assert_eq!(
            log_for(&["pyfcgi", "--log-file=/cli.log"], &[], "/site", &files),
            Some(PathBuf::from("/cli.log"))
        );
        assert_eq!(
            log_for(&["pyfcgi"], &[("WSGI_LOG", "/env.log")], "/elsewhere", &files),
            Some(PathBuf::from("/env.log"))
        );
        assert_eq!(log_for(&["pyfcgi"], &[], "/elsewhere", &files), None);
        // A broken web.config does not hide the environment's log.
        let broken = [("/site/web.config", "<configuration><appSettings>")];
        assert_eq!(
            log_for(&["pyfcgi"], &[("WSGI_LOG", "/env.log")], "/site", &broken),
            Some(PathBuf::from("/env.log"))
        );
    }
}
