//! The settings part of `pyfcgi check` and of the error log, as text: one line per setting with its value and
//! where it came from, each web.config appSetting that cannot take effect with the command that sets it
//! instead, and, for IIS sites, what IIS's process model means for `--workers` and `maxInstances`. Pure, so
//! both the IIS and the non-IIS view are tested on every platform.

use std::fmt::Write as _;
use std::path::Path;

use super::{table, Settings};

/// One line per setting: `  NAME = VALUE (SOURCE)`, with `ignored` names marked.
pub fn setting_lines(settings: &Settings, ignored: &[&str]) -> String {
    let mut out = String::new();
    for row in settings.describe() {
        let mark = if ignored.contains(&row.name) {
            "  <- IGNORED, see below"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "  {} = {} ({}){mark}",
            row.name,
            row.value.as_deref().unwrap_or("(not set)"),
            row.source
        );
    }
    out
}

/// `check`'s settings report. `read_at_start_up`: the web.config a serving process would read at start-up
/// (`None` under IIS without `PYFCGI_APP_ROOT`); `exe`: the registered pyfcgi.exe, for the appcmd lines;
/// `iis`: the site is served by IIS (fixes are appcmd lines); `iis_site`: add what IIS's process model means.
pub fn check_report(
    settings: &Settings,
    read_at_start_up: Option<&Path>,
    exe: &Path,
    iis: bool,
    iis_site: bool,
) -> String {
    let ignored = settings.ignored_from_web_config(read_at_start_up);
    let names: Vec<&str> = ignored.iter().map(|i| i.name).collect();
    let mut out = format!(
        "\nSettings (value and where it came from):\n{}",
        setting_lines(settings, &names)
    );
    if !ignored.is_empty() {
        out.push_str("\nIgnored:\n");
        for i in &ignored {
            let _ = writeln!(out, "  {}", i.explain(exe, iis));
        }
    }
    if iis || iis_site {
        out.push_str(&iis_process_model(settings, exe));
    }
    out
}

/// IIS sends one request at a time to each FastCGI process; its `maxInstances` processes are the concurrency.
pub fn iis_process_model(settings: &Settings, exe: &Path) -> String {
    let workers = settings.get(&table::WORKERS);
    let mut out = String::from(
        "\nUnder IIS: IIS's FastCGI module sends one request at a time to each pyfcgi process, so --workers \
         (PYFCGI_WORKERS) adds nothing there. The concurrency is the FastCGI application's maxInstances: that \
         many processes, each loading the application (0 = IIS decides). Set it with `pyfcgi enable \
         --max-instances N`, or:\n",
    );
    let _ = writeln!(
        out,
        "    %windir%\\system32\\inetsrv\\appcmd.exe set config -section:system.webServer/fastCgi \
         /[fullPath='{}',arguments=''].maxInstances:N /commit:apphost",
        crate::iis::quoted(exe).replace('\'', "''")
    );
    if workers.value > 1 {
        let _ = writeln!(
            out,
            "  PYFCGI_WORKERS = {} ({}) has no effect under IIS: raise maxInstances instead.",
            workers.value, workers.source
        );
    }
    out
}
