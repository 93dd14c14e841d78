//! Every row of the table through every layer (environment, web.config, command line) and into `check`'s
//! report; start-up rows in web.config applied or reported as ignored; the README table generated from the rows.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::*;
use crate::config::{args, report, startup, AppSettings, CliOverrides, KeyCase, PathListStyle, Settings};

const WEB: &str = r"C:\site\web.config";

fn web(pairs: &[(&str, &str)]) -> AppSettings {
    AppSettings {
        path: PathBuf::from(WEB),
        entries: pairs.iter().map(|&(k, v)| (k.to_string(), v.to_string())).collect(),
    }
}

fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs.iter().map(|&(k, v)| (k.to_string(), v.to_string())).collect();
    move |name: &str| map.get(name).cloned()
}

fn resolve(cli: &CliOverrides, web: Option<&AppSettings>, env: &[(&str, &str)]) -> Settings {
    let (settings, errors) =
        Settings::resolve_lenient(cli, web, &env_of(env), KeyCase::Sensitive, PathListStyle::Windows);
    assert!(errors.is_empty(), "{errors:?}");
    settings
}

fn row_of(settings: &Settings, name: &str) -> (Option<String>, Source) {
    let row = settings
        .describe()
        .into_iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("no row {name}"));
    (row.value, row.source)
}

/// The command line `pyfcgi` would parse, for the rows' own flags.
fn parse_cli(argv: &[&str]) -> Result<CliOverrides, clap::Error> {
    let cmd = args::augment(clap::Command::new("pyfcgi"), |_| true);
    let matches = cmd.try_get_matches_from(std::iter::once("pyfcgi").chain(argv.iter().copied()))?;
    Ok(args::overrides(&matches, |_| true))
}

fn cli_args(meta: &Meta) -> Option<Vec<String>> {
    match meta.flag {
        Flag::None => None,
        Flag::Value { long, .. } => Some(vec![format!("--{long}"), meta.example.to_owned()]),
        Flag::Switch { long, sets } => {
            assert_eq!(sets, meta.example, "{}: a switch's example is what it sets", meta.name);
            Some(vec![format!("--{long}")])
        }
    }
}

/// PYTHONPATH is two rows: the environment's goes to CPython, web.config's and the flag's to sys.path.
fn reads_env(meta: &Meta) -> bool {
    meta.name != PYTHONPATH.meta.name
}

#[test]
fn every_row_round_trips_through_env_web_config_cli_and_check() {
    let defaults = resolve(&CliOverrides::default(), None, &[]);
    for row in ALL {
        let m = row.meta();
        let (default_shown, _) = row_of(&defaults, m.name);
        let mut seen = Vec::new();

        let s = resolve(&CliOverrides::default(), None, &[(m.key, m.example)]);
        let (shown, source) = row_of(&s, m.name);
        if reads_env(m) {
            assert_eq!(source, Source::Environment, "{}", m.name);
            seen.push(shown.clone());
        } else {
            assert_eq!(source, Source::Default, "{}", m.name);
        }

        let wc = web(&[(m.key, m.example)]);
        let s = resolve(&CliOverrides::default(), Some(&wc), &[]);
        let (shown, source) = row_of(&s, m.name);
        match m.web_config {
            WebConfig::Yes => {
                assert_eq!(source, Source::WebConfig(PathBuf::from(WEB)), "{}", m.name);
                seen.push(shown.clone());
            }
            WebConfig::No(_) => assert_eq!(source, Source::Default, "{}: web.config must not set it", m.name),
        }

        if let Some(argv) = cli_args(m) {
            let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
            let cli = parse_cli(&argv).unwrap_or_else(|e| panic!("{}: {e}", m.name));
            let s = resolve(&cli, None, &[]);
            let (shown, source) = row_of(&s, m.name);
            assert_eq!(source, Source::Cli, "{}", m.name);
            seen.push(shown.clone());
            // `check` prints the value and its source.
            let report = report::setting_lines(&s, &[]);
            let line = format!(
                "  {} = {} (command line)",
                m.name,
                shown.as_deref().unwrap_or("(not set)")
            );
            assert!(
                report.lines().any(|l| l == line),
                "{}: {line:?} not in\n{report}",
                m.name
            );
        }

        assert!(!seen.is_empty(), "{} is read from no layer", m.name);
        assert!(
            seen.iter().all(|v| *v == seen[0]),
            "{}: layers disagree: {seen:?}",
            m.name
        );
        assert_ne!(
            seen[0], default_shown,
            "{}: the example must differ from the default",
            m.name
        );
    }
}

#[test]
fn every_row_takes_the_command_line_over_web_config_over_the_environment() {
    for row in ALL {
        let m = row.meta();
        let s = resolve(
            &CliOverrides::default(),
            Some(&web(&[(m.key, m.example)])),
            &[(m.key, m.example)],
        );
        let expected = match (m.web_config, reads_env(m)) {
            (WebConfig::Yes, _) => Source::WebConfig(PathBuf::from(WEB)),
            (WebConfig::No(_), true) => Source::Environment,
            (WebConfig::No(_), false) => Source::Default,
        };
        assert_eq!(row_of(&s, m.name).1, expected, "{}", m.name);
        if let Some(argv) = cli_args(m) {
            let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
            let cli = parse_cli(&argv).expect("parses");
            let s = resolve(&cli, Some(&web(&[(m.key, m.example)])), &[(m.key, m.example)]);
            assert_eq!(row_of(&s, m.name).1, Source::Cli, "{}", m.name);
        }
    }
}

#[test]
fn names_and_flags_are_unique_and_help_mentions_each_variable() {
    let mut names: Vec<&str> = ALL.iter().map(|r| r.meta().name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), ALL.len(), "two rows share a name");
    let mut flags: Vec<&str> = ALL.iter().filter_map(|r| r.meta().flag.long()).collect();
    let count = flags.len();
    flags.sort_unstable();
    flags.dedup();
    assert_eq!(flags.len(), count, "two rows share a flag");
    let mut cmd = args::augment(clap::Command::new("pyfcgi"), |_| true);
    cmd.build();
    let help = cmd.render_long_help().to_string();
    for row in ALL {
        let m = row.meta();
        if let Some(long) = m.flag.long() {
            assert!(help.contains(&format!("--{long}")), "{long} missing from --help");
            assert!(
                help.contains(&format!("[env: {}", m.key)),
                "{} missing from --help",
                m.key
            );
        }
    }
}

#[test]
fn a_bad_flag_value_is_a_usage_error_naming_what_was_expected() {
    let err = parse_cli(&["--workers", "many"]).expect_err("not a number");
    assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
    assert!(err.to_string().contains("a whole number"), "{err}");
    let err = parse_cli(&["--log-level", "loud"]).expect_err("not a level");
    assert!(err.to_string().contains("off, error, warn"), "{err}");
}

#[test]
fn octal_modes_parse() {
    assert_eq!(parse_octal("660"), Ok(Some(0o660)));
    assert_eq!(parse_octal("0o666"), Ok(Some(0o666)));
    assert!(parse_octal("999").is_err());
    assert!(parse_octal("77777").is_err());
}

fn start_up_rows_from_web_config() -> impl Iterator<Item = &'static Meta> {
    ALL.iter()
        .map(|r| r.meta())
        .filter(|m| m.when == When::StartUp && m.web_config == WebConfig::Yes)
}

#[test]
fn start_up_settings_in_a_web_config_read_at_start_up_are_not_reported() {
    let pairs: Vec<(&str, &str)> = start_up_rows_from_web_config().map(|m| (m.key, m.example)).collect();
    assert!(pairs.len() >= 7, "workers, bind, venv, ...: {pairs:?}");
    let s = resolve(&CliOverrides::default(), Some(&web(&pairs)), &[]);
    assert_eq!(s.ignored_from_web_config(Some(Path::new(WEB))), Vec::new());
}

#[test]
fn start_up_settings_in_a_web_config_read_later_are_each_reported_with_the_fix() {
    let pairs: Vec<(&str, &str)> = start_up_rows_from_web_config().map(|m| (m.key, m.example)).collect();
    let s = resolve(&CliOverrides::default(), Some(&web(&pairs)), &[]);
    let ignored = s.ignored_from_web_config(None);
    let keys: Vec<&str> = ignored.iter().map(|i| i.key).collect();
    let expected: Vec<&str> = pairs.iter().map(|(k, _)| *k).collect();
    assert_eq!(keys, expected);
    let exe = Path::new(r"C:\site\.venv\Scripts\pyfcgi.exe");
    for i in &ignored {
        let text = i.explain(exe, true);
        assert!(
            text.contains("is ignored: set it as a FastCGI environment variable, because"),
            "{text}"
        );
        let appcmd = format!(
            "appcmd.exe set config -section:system.webServer/fastCgi \
             /+\"[fullPath='C:\\site\\.venv\\Scripts\\pyfcgi.exe',arguments=''].environmentVariables.\
             [name='{}',value='{}']\" /commit:apphost",
            i.key, i.value
        );
        assert!(text.contains(&appcmd), "{text}\nwanted {appcmd}");
        assert!(
            text.contains(&format!("pyfcgi enable --env {}={}", i.key, i.value)),
            "{text}"
        );
    }
    // App-load settings from the same web.config apply: nothing to report.
    let s = resolve(
        &CliOverrides::default(),
        Some(&web(&[("PYFCGI_LOG_LEVEL", "debug"), ("WSGI_HANDLER", "a.b")])),
        &[],
    );
    assert!(s.ignored_from_web_config(None).is_empty());
}

#[test]
fn off_iis_the_fix_is_the_web_servers_environment_or_the_flag() {
    let s = resolve(&CliOverrides::default(), Some(&web(&[("PYFCGI_WORKERS", "4")])), &[]);
    let ignored = s.ignored_from_web_config(None);
    assert_eq!(ignored.len(), 1);
    let text = ignored[0].explain(Path::new("/usr/bin/pyfcgi"), false);
    assert!(
        text.contains("`PYFCGI_WORKERS=4` in the environment the web server starts pyfcgi with"),
        "{text}"
    );
    assert!(text.contains("`--workers`") && !text.contains("appcmd"), "{text}");
}

#[test]
fn settings_web_config_can_never_set_are_reported() {
    let s = resolve(
        &CliOverrides::default(),
        Some(&web(&[
            ("FCGI_WEB_SERVER_ADDRS", "10.0.0.1"),
            ("PYFCGI_APP_ROOT", "/elsewhere"),
            ("PYTHONPATH", "x"),
        ])),
        &[],
    );
    let ignored = s.ignored_from_web_config(Some(Path::new(WEB)));
    let keys: Vec<&str> = ignored.iter().map(|i| i.key).collect();
    assert_eq!(
        keys,
        vec!["PYFCGI_APP_ROOT", "FCGI_WEB_SERVER_ADDRS"],
        "PYTHONPATH is another row's"
    );
    let text = ignored[1].explain(Path::new(r"C:\p\pyfcgi.exe"), true);
    assert!(
        text.contains("web.config cannot set it, because the FastCGI specification"),
        "{text}"
    );
}

fn temp_site(tag: &str, app_settings: &[(&str, &str)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pyfcgi-table-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let adds: String = app_settings
        .iter()
        .map(|(k, v)| format!("<add key=\"{k}\" value=\"{v}\"/>"))
        .collect();
    std::fs::write(
        dir.join("web.config"),
        format!("<configuration><appSettings>{adds}</appSettings></configuration>"),
    )
    .expect("write web.config");
    dir
}

#[test]
fn start_up_resolution_applies_web_config_when_the_root_is_known_and_not_under_iis() {
    let pairs: Vec<(&str, &str)> = start_up_rows_from_web_config().map(|m| (m.key, m.example)).collect();
    let site = temp_site("startup", &pairs);
    let web_path = site.join("web.config");
    let resolve_in = |iis: bool, env: &[(&str, &str)]| {
        startup::resolve(
            &CliOverrides::default(),
            &env_of(env),
            KeyCase::Sensitive,
            PathListStyle::Unix,
            iis,
            &site,
        )
    };

    // Linux (the root is the current directory): every start-up setting comes from web.config.
    let start = resolve_in(false, &[]);
    assert!(start.app_root_known && start.fatal.is_empty(), "{:?}", start.fatal);
    // Windows finds `Web.config` first on a case-insensitive file system: the same file under another case.
    let found = start.web_config.as_deref().map(|p| p.to_string_lossy().to_lowercase());
    assert_eq!(found, Some(web_path.to_string_lossy().to_lowercase()));
    let found_path = start.web_config.clone().expect("web.config found");
    for (key, _) in &pairs {
        let m = ALL.iter().map(|r| r.meta()).find(|m| m.key == *key).expect("row");
        assert_eq!(
            row_of(&start.settings, m.name).1,
            Source::WebConfig(found_path.clone()),
            "{key}"
        );
    }
    assert_eq!(start.settings.get(&WORKERS).value, 4);

    // IIS without PYFCGI_APP_ROOT: nothing from web.config at start-up; each is reported when it is read.
    let start = resolve_in(true, &[]);
    assert!(!start.app_root_known);
    assert_eq!(start.web_config, None);
    assert_eq!(*start.settings.get(&WORKERS), Setting::default(1));
    let later = resolve(
        &CliOverrides::default(),
        Some(&AppSettings::load_from_dir(&site).unwrap().unwrap()),
        &[],
    );
    assert_eq!(
        later.ignored_from_web_config(start.web_config.as_deref()).len(),
        pairs.len()
    );

    // IIS with PYFCGI_APP_ROOT in the FastCGI environment: web.config is read at start-up.
    let root = site.display().to_string();
    let start = resolve_in(true, &[("PYFCGI_APP_ROOT", &root)]);
    assert!(start.app_root_known);
    assert_eq!(start.settings.get(&WORKERS).value, 4);
    let _ = std::fs::remove_dir_all(&site);
}

#[test]
fn an_invalid_start_up_setting_is_fatal_and_an_app_setting_is_not() {
    let site = temp_site("fatal", &[("PYFCGI_WORKERS", "lots"), ("PYFCGI_DEBUG", "maybe")]);
    let start = startup::resolve(
        &CliOverrides::default(),
        &env_of(&[]),
        KeyCase::Sensitive,
        PathListStyle::Unix,
        false,
        &site,
    );
    let keys: Vec<String> = start.fatal.iter().map(ToString::to_string).collect();
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(keys[0].starts_with("PYFCGI_WORKERS = \"lots\""), "{keys:?}");
    let _ = std::fs::remove_dir_all(&site);
}

#[test]
fn log_level_and_filter_from_web_config_make_the_log_filter() {
    let s = resolve(
        &CliOverrides::default(),
        Some(&web(&[("PYFCGI_LOG_LEVEL", "debug")])),
        &[("PYFCGI_LOG_LEVEL", "error")],
    );
    assert_eq!(s.log_filter(), "debug");
    let s = resolve(
        &CliOverrides::default(),
        Some(&web(&[("PYFCGI_ACCESS_LOG", "off")])),
        &[],
    );
    assert_eq!(s.log_filter(), "info,pyfcgi::access=off");
    let s = resolve(
        &CliOverrides::default(),
        Some(&web(&[("PYFCGI_LOG", "warn,pyfcgi=trace")])),
        &[],
    );
    assert_eq!(s.log_filter(), "warn,pyfcgi=trace");
}

#[test]
fn check_explains_iis_process_model_and_marks_ignored_rows() {
    let s = resolve(&CliOverrides::default(), Some(&web(&[("PYFCGI_WORKERS", "8")])), &[]);
    let exe = Path::new(r"C:\site\.venv\Scripts\pyfcgi.exe");
    let iis = report::check_report(&s, None, exe, true, true);
    assert!(
        iis.contains("  PYFCGI_WORKERS = 8 (C:\\site\\web.config)  <- IGNORED, see below"),
        "{iis}"
    );
    assert!(iis.contains("one request at a time to each pyfcgi process"), "{iis}");
    assert!(iis.contains("maxInstances"), "{iis}");
    assert!(
        iis.contains("PYFCGI_WORKERS = 8 (C:\\site\\web.config) has no effect under IIS"),
        "{iis}"
    );
    assert!(
        iis.contains("/[fullPath='C:\\site\\.venv\\Scripts\\pyfcgi.exe',arguments=''].maxInstances:N"),
        "{iis}"
    );

    let linux = report::check_report(&s, Some(Path::new(WEB)), exe, false, false);
    assert!(
        linux.contains("  PYFCGI_WORKERS = 8 (C:\\site\\web.config)\n"),
        "{linux}"
    );
    assert!(!linux.contains("IGNORED") && !linux.contains("maxInstances"), "{linux}");
}

const README: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"));
const START: &str = "<!-- settings-table: generated by `cargo run -- settings-table`; do not edit -->\n";
const END: &str = "<!-- /settings-table -->";

#[test]
fn readme_matches_the_table() {
    let start = README.find(START).expect("README has the settings-table start marker") + START.len();
    let end = README[start..].find(END).expect("README has the end marker") + start;
    let expected = readme_table();
    assert!(
        README[start..end] == expected,
        "README.md's settings table differs from src/config/table.rs: run `cargo run -- settings-table` and \
         paste its output between the markers. Expected:\n{expected}"
    );
}
