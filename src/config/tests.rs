//! Resolution tests for [`super::Settings`]: precedence, provenance, typed values and their errors.

use super::*;
use std::collections::HashMap;
use std::path::Path;

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
    try_resolve(cli, web, env).unwrap_or_else(|e| panic!("resolve failed: {e}"))
}

fn try_resolve(cli: &CliOverrides, web: Option<&AppSettings>, env: &[(&str, &str)]) -> Result<Settings, ConfigErrors> {
    Settings::resolve_with(cli, web, &env_of(env), KeyCase::Sensitive, PathListStyle::Windows)
}

fn from_web() -> Source {
    Source::WebConfig(PathBuf::from(WEB))
}

#[test]
fn defaults_with_no_input() {
    let s = resolve(&CliOverrides::default(), None, &[]);
    assert_eq!(*s.get(&table::WSGI_HANDLER), Setting::default(None));
    assert_eq!(*s.get(&table::PYTHONPATH), Setting::default(Vec::new()));
    assert_eq!(s.get(&table::WSGI_LOG).value, None);
    let regex = s.get(&table::RESTART_FILE_REGEX).value.as_ref().expect("default regex");
    assert_eq!(regex.pattern(), DEFAULT_RESTART_FILE_REGEX);
    assert_eq!(s.get(&table::RESTART_FILE_REGEX).source, Source::Default);
    assert_eq!(
        *s.get(&table::ALLOW_PATH_INFO_FOR_SCRIPT_MAPPINGS),
        Setting::default(false)
    );
    assert_eq!(*s.get(&table::DEBUG), Setting::default(false));
    assert_eq!(*s.get(&table::ACCESS_LOG), Setting::default(true));
    assert_eq!(*s.get(&table::LOG_LEVEL), Setting::default(LogLevel::Info));
    assert_eq!(*s.get(&table::MAX_REQUESTS), Setting::default(0));
    assert_eq!(s.max_requests_limit(), None);
    assert_eq!(*s.get(&table::APP_ROOT), Setting::default(None));
    assert!(s.exported_environ().is_empty());
}

#[test]
fn precedence_cli_over_web_config_over_environment() {
    let wc = web(&[("WSGI_HANDLER", "web.app"), ("PYFCGI_DEBUG", "yes")]);
    let env = [
        ("WSGI_HANDLER", "env.app"),
        ("PYFCGI_DEBUG", "no"),
        ("WSGI_LOG", "/var/log/w.log"),
    ];

    let s = resolve(&CliOverrides::default(), None, &env);
    assert_eq!(
        *s.get(&table::WSGI_HANDLER),
        Setting::new(Some("env.app".into()), Source::Environment)
    );

    let s = resolve(&CliOverrides::default(), Some(&wc), &env);
    assert_eq!(
        *s.get(&table::WSGI_HANDLER),
        Setting::new(Some("web.app".into()), from_web())
    );
    assert_eq!(*s.get(&table::DEBUG), Setting::new(true, from_web()));
    assert_eq!(
        *s.get(&table::WSGI_LOG),
        Setting::new(Some(PathBuf::from("/var/log/w.log")), Source::Environment)
    );

    let cli = CliOverrides::default()
        .with(&table::WSGI_HANDLER, "cli.app")
        .with(&table::DEBUG, "false");
    let s = resolve(&cli, Some(&wc), &env);
    assert_eq!(
        *s.get(&table::WSGI_HANDLER),
        Setting::new(Some("cli.app".into()), Source::Cli)
    );
    assert_eq!(*s.get(&table::DEBUG), Setting::new(false, Source::Cli));
}

#[test]
fn empty_web_config_value_overrides_environment() {
    let wc = web(&[("WSGI_HANDLER", ""), ("WSGI_LOG", ""), ("PYFCGI_ACCESS_LOG", "")]);
    let env = [
        ("WSGI_HANDLER", "env.app"),
        ("WSGI_LOG", "x.log"),
        ("PYFCGI_ACCESS_LOG", "off"),
    ];
    let s = resolve(&CliOverrides::default(), Some(&wc), &env);
    assert_eq!(*s.get(&table::WSGI_HANDLER), Setting::new(None, from_web()));
    assert_eq!(*s.get(&table::WSGI_LOG), Setting::new(None, from_web()));
    assert_eq!(*s.get(&table::ACCESS_LOG), Setting::new(true, from_web()));
    let err = s.handler().expect_err("missing handler");
    assert_eq!(err.to_string(), "WSGI_HANDLER env var must be set");
}

#[test]
fn handler_parses_from_resolved_value() {
    let wc = web(&[("WSGI_HANDLER", "django.core.wsgi.get_wsgi_application()")]);
    let s = resolve(&CliOverrides::default(), Some(&wc), &[]);
    let spec = s.handler().expect("handler");
    assert_eq!(spec.attempts()[0].module, "django.core.wsgi");
}

#[test]
fn pythonpath_from_web_config_expands_other_app_settings_and_environment() {
    let wc = web(&[
        ("PYTHONPATH", r"%SITE%\lib;;%HOME_DIR%\x;%NOPE%"),
        ("SITE", r"C:\inetpub\site"),
    ]);
    let env = [("HOME_DIR", r"D:\h"), ("PYTHONPATH", r"C:\envpath")];
    let s = resolve(&CliOverrides::default(), Some(&wc), &env);
    assert_eq!(
        *s.get(&table::PYTHONPATH),
        Setting::new(vec![r"C:\inetpub\site\lib".into(), r"D:\h\x".into()], from_web())
    );
    assert_eq!(
        *s.get(&table::PYTHONPATH_ENV),
        Setting::new(Some(r"C:\envpath".into()), Source::Environment)
    );
}

#[test]
fn pythonpath_key_matches_case_insensitively_in_web_config_only() {
    let wc = web(&[("PythonPath", "a"), ("pythonpath", "b;c")]);
    let s = resolve(&CliOverrides::default(), Some(&wc), &[]);
    assert_eq!(s.get(&table::PYTHONPATH).value, vec!["a", "b", "c"]);

    let s = resolve(&CliOverrides::default(), None, &[("PYTHONPATH", "e")]);
    assert_eq!(*s.get(&table::PYTHONPATH), Setting::default(Vec::new()));
}

#[test]
fn pythonpath_from_cli_replaces_web_config() {
    let wc = web(&[("PYTHONPATH", "web"), ("ROOT", "/srv")]);
    let cli = CliOverrides::default().with(&table::PYTHONPATH, "%ROOT%/a;b");
    let s = resolve(&cli, Some(&wc), &[]);
    assert_eq!(
        *s.get(&table::PYTHONPATH),
        Setting::new(vec!["/srv/a".into(), "b".into()], Source::Cli)
    );
}

#[test]
fn pythonpath_unix_style_splits_colons() {
    let wc = web(&[("PYTHONPATH", "/srv/app:/srv/lib;C:/win")]);
    let s = Settings::resolve_with(
        &CliOverrides::default(),
        Some(&wc),
        &env_of(&[]),
        KeyCase::Sensitive,
        PathListStyle::Unix,
    )
    .expect("resolves");
    assert_eq!(s.get(&table::PYTHONPATH).value, vec!["/srv/app", "/srv/lib", "C:/win"]);
}

#[test]
fn windows_key_case_lets_any_spelling_set_a_setting() {
    let wc = web(&[("wsgi_handler", "lower.app"), ("Wsgi_Handler", "mixed.app")]);
    let insensitive = Settings::resolve_with(
        &CliOverrides::default(),
        Some(&wc),
        &env_of(&[]),
        KeyCase::Insensitive,
        PathListStyle::Windows,
    )
    .expect("resolves");
    assert_eq!(
        insensitive.get(&table::WSGI_HANDLER).value.as_deref(),
        Some("mixed.app")
    );

    let sensitive = resolve(&CliOverrides::default(), Some(&wc), &[]);
    assert_eq!(sensitive.get(&table::WSGI_HANDLER).value, None);
}

#[test]
fn restart_regex_empty_disables_and_matches_like_re_match() {
    let wc = web(&[("WSGI_RESTART_FILE_REGEX", "")]);
    let s = resolve(&CliOverrides::default(), Some(&wc), &[]);
    assert_eq!(*s.get(&table::RESTART_FILE_REGEX), Setting::new(None, from_web()));

    let s = resolve(&CliOverrides::default(), None, &[]);
    let r = s.get(&table::RESTART_FILE_REGEX).value.clone().expect("default");
    assert!(r.is_match(r"myapp\views.py"));
    assert!(r.is_match("web.config"));
    assert!(!r.is_match("static/site.css"));
    assert!(!r.is_match("x.pyc"));

    let custom = RestartRegex::new(r"\.data$").expect("compiles");
    assert!(!custom.is_match("a.data"), "re.match anchors at the start");
    let custom = RestartRegex::new(r".*\.data$").expect("compiles");
    assert!(custom.is_match("sub/a.data"));
    let alternation = RestartRegex::new(r"a|.*b").expect("compiles");
    assert!(alternation.is_match("xb"));
    assert!(!alternation.is_match("xa"));
    let named = RestartRegex::new(r"(?P<dir>\w+)[\\/].*\.py$").expect("python named group");
    assert!(named.is_match(r"pkg\mod.py"));
}

#[test]
fn restart_regex_python_only_syntax_is_a_clear_error() {
    let wc = web(&[("WSGI_RESTART_FILE_REGEX", r".*(?<!_test)\.py$")]);
    let err = try_resolve(&CliOverrides::default(), Some(&wc), &[]).expect_err("look-behind");
    assert_eq!(err.0.len(), 1);
    let msg = err.to_string();
    assert!(msg.contains("WSGI_RESTART_FILE_REGEX"), "{msg}");
    assert!(msg.contains(WEB), "{msg}");
    assert!(msg.contains("look-around"), "{msg}");
    assert!(
        !msg.contains("^(?:"),
        "positions refer to the pattern as written: {msg}"
    );
}

#[test]
fn bool_spellings() {
    for (text, want) in [
        ("1", true),
        ("TRUE", true),
        ("Yes", true),
        ("on", true),
        (" true ", true),
        ("0", false),
        ("False", false),
        ("NO", false),
        ("off", false),
    ] {
        assert_eq!(parse_bool(text), Some(want), "{text}");
    }
    for text in ["", "2", "y", "enabled", "truee"] {
        assert_eq!(parse_bool(text), None, "{text}");
    }
}

#[test]
fn bad_bool_names_key_value_and_source() {
    let wc = web(&[("PYFCGI_DEBUG", "maybe")]);
    let err =
        try_resolve(&CliOverrides::default(), Some(&wc), &[("PYFCGI_ACCESS_LOG", "2")]).expect_err("invalid bools");
    assert_eq!(
        err.0,
        vec![
            ConfigError::InvalidValue {
                key: "PYFCGI_DEBUG",
                value: "maybe".into(),
                from: from_web(),
                expected: table::BOOL_EXPECTED.into(),
            },
            ConfigError::InvalidValue {
                key: "PYFCGI_ACCESS_LOG",
                value: "2".into(),
                from: Source::Environment,
                expected: table::BOOL_EXPECTED.into(),
            },
        ]
    );
    let msg = err.to_string();
    assert!(
        msg.contains(r#"PYFCGI_DEBUG = "maybe" (from C:\site\web.config)"#),
        "{msg}"
    );
    assert!(msg.contains(r#"PYFCGI_ACCESS_LOG = "2" (from environment)"#), "{msg}");
    assert!(msg.contains("true/false"), "{msg}");
}

#[test]
fn numbers_and_log_levels() {
    let env = [("PYFCGI_MAX_REQUESTS", "1000"), ("PYFCGI_LOG_LEVEL", "Warning")];
    let s = resolve(&CliOverrides::default(), None, &env);
    assert_eq!(*s.get(&table::MAX_REQUESTS), Setting::new(1000, Source::Environment));
    assert_eq!(s.max_requests_limit(), Some(1000));
    assert_eq!(
        *s.get(&table::LOG_LEVEL),
        Setting::new(LogLevel::Warn, Source::Environment)
    );

    let env = [("PYFCGI_MAX_REQUESTS", "-1"), ("PYFCGI_LOG_LEVEL", "loud")];
    let err = try_resolve(&CliOverrides::default(), None, &env).expect_err("invalid");
    let msg = err.to_string();
    assert!(
        msg.contains(r#"PYFCGI_MAX_REQUESTS = "-1" (from environment)"#),
        "{msg}"
    );
    assert!(msg.contains(r#"PYFCGI_LOG_LEVEL = "loud""#), "{msg}");

    let cli = CliOverrides::default()
        .with(&table::LOG_LEVEL, "trace")
        .with(&table::MAX_REQUESTS, "5");
    let s = resolve(&cli, None, &env);
    assert_eq!(*s.get(&table::LOG_LEVEL), Setting::new(LogLevel::Trace, Source::Cli));
    assert_eq!(*s.get(&table::MAX_REQUESTS), Setting::new(5, Source::Cli));
}

#[test]
fn allow_path_info_is_presence_only() {
    let wc = web(&[("AllowPathInfoForScriptMappings", "")]);
    let s = resolve(&CliOverrides::default(), Some(&wc), &[]);
    assert_eq!(
        *s.get(&table::ALLOW_PATH_INFO_FOR_SCRIPT_MAPPINGS),
        Setting::new(true, from_web())
    );

    let s = resolve(
        &CliOverrides::default(),
        None,
        &[("AllowPathInfoForScriptMappings", "false")],
    );
    assert_eq!(
        *s.get(&table::ALLOW_PATH_INFO_FOR_SCRIPT_MAPPINGS),
        Setting::new(true, Source::Environment)
    );
}

#[test]
fn passthrough_and_paths_keep_their_source() {
    let wc = web(&[
        ("WSGI_PTVSD_SECRET", "s3cret"),
        ("WSGI_PTVSD_ADDRESS", "0.0.0.0:5678"),
        ("SCRIPT_NAME", "/app"),
        ("PYFCGI_VENV", r"C:\site\.venv"),
    ]);
    let env = [
        ("APPINSIGHTS_INSTRUMENTATIONKEY", "key"),
        ("PYFCGI_APP_ROOT", "/srv/site"),
    ];
    let s = resolve(&CliOverrides::default(), Some(&wc), &env);
    assert_eq!(
        *s.get(&table::PTVSD_SECRET),
        Setting::new(Some("s3cret".into()), from_web())
    );
    assert_eq!(s.get(&table::PTVSD_ADDRESS).value.as_deref(), Some("0.0.0.0:5678"));
    assert_eq!(
        *s.get(&table::SCRIPT_NAME),
        Setting::new(Some("/app".into()), from_web())
    );
    assert_eq!(
        *s.get(&table::APPINSIGHTS_INSTRUMENTATION_KEY),
        Setting::new(Some("key".into()), Source::Environment)
    );
    assert_eq!(s.get(&table::VENV).value.as_deref(), Some(Path::new(r"C:\site\.venv")));
    assert_eq!(
        *s.get(&table::APP_ROOT),
        Setting::new(Some(PathBuf::from("/srv/site")), Source::Environment)
    );
}

#[test]
fn exported_environ_is_every_app_setting_in_order() {
    let wc = web(&[
        ("DJANGO_SETTINGS_MODULE", "site.settings"),
        ("WSGI_HANDLER", "app.app"),
        ("PYFCGI_DEBUG", "1"),
        ("Custom", " spaced "),
    ]);
    let s = resolve(&CliOverrides::default(), Some(&wc), &[]);
    assert_eq!(s.exported_environ(), wc.entries.as_slice());
}

#[test]
fn key_that_cannot_be_an_environment_name_is_reported() {
    let wc = web(&[("A=B", "x")]);
    let err = try_resolve(&CliOverrides::default(), Some(&wc), &[]).expect_err("bad key");
    let msg = err.to_string();
    assert!(msg.contains("\"A=B\""), "{msg}");
    assert!(msg.contains(WEB), "{msg}");
}

#[test]
fn describe_rows_show_value_and_source() {
    let wc = web(&[("WSGI_HANDLER", "app.app"), ("WSGI_PTVSD_SECRET", "hidden")]);
    let s = resolve(&CliOverrides::default(), Some(&wc), &[("PYFCGI_DEBUG", "on")]);
    let rows = s.describe();
    let find = |name: &str| {
        rows.iter()
            .find(|r| r.name == name)
            .unwrap_or_else(|| panic!("row {name}"))
            .clone()
    };
    let handler = find("WSGI_HANDLER");
    assert_eq!(handler.value.as_deref(), Some("app.app"));
    assert_eq!(
        format!("{} = {} (from {})", handler.name, "app.app", handler.source),
        r"WSGI_HANDLER = app.app (from C:\site\web.config)"
    );
    assert_eq!(find("PYFCGI_DEBUG").value.as_deref(), Some("true"));
    assert_eq!(find("PYFCGI_DEBUG").source, Source::Environment);
    assert_eq!(find("WSGI_PTVSD_SECRET").value.as_deref(), Some("(set)"));
    assert_eq!(find("WSGI_LOG").value, None);
    assert_eq!(
        find("WSGI_RESTART_FILE_REGEX").value.as_deref(),
        Some(DEFAULT_RESTART_FILE_REGEX)
    );
    assert_eq!(rows.iter().filter(|r| r.name.starts_with("PYTHONPATH (")).count(), 2);
}

#[test]
fn source_display() {
    assert_eq!(Source::Cli.to_string(), "command line");
    assert_eq!(Source::Environment.to_string(), "environment");
    assert_eq!(Source::Default.to_string(), "default");
    assert_eq!(from_web().to_string(), WEB);
}

#[test]
fn end_to_end_from_a_real_file() {
    let dir = std::env::temp_dir().join(format!("pyfcgi-config-e2e-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::write(
        dir.join("Web.config"),
        "\u{feff}<?xml version=\"1.0\"?>\n<configuration>\n  <location path=\".\">\n    <appSettings>\n      \
         <add key=\" WSGI_HANDLER \" value=\"app.app\"/>\n    </appSettings>\n  </location>\n</configuration>\n",
    )
    .expect("write");
    let wc = AppSettings::load_from_dir(&dir).expect("loads").expect("present");
    let s = resolve(&CliOverrides::default(), Some(&wc), &[]);
    assert_eq!(s.get(&table::WSGI_HANDLER).value.as_deref(), Some("app.app"));
    assert_eq!(
        s.get(&table::WSGI_HANDLER).source,
        Source::WebConfig(dir.join("Web.config"))
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn interface_setting() {
    let s = resolve(&CliOverrides::default(), None, &[]);
    assert_eq!(s.get(&table::INTERFACE).value, Interface::Auto);
    assert_eq!(s.get(&table::INTERFACE).source, Source::Default);
    let s = resolve(&CliOverrides::default(), None, &[("PYFCGI_INTERFACE", " ASGI3 ")]);
    assert_eq!(s.get(&table::INTERFACE).value, Interface::Asgi);
    assert_eq!(s.get(&table::INTERFACE).source, Source::Environment);
    let err = try_resolve(&CliOverrides::default(), None, &[("PYFCGI_INTERFACE", "rsgi")]).expect_err("invalid");
    assert!(err.to_string().contains("auto, wsgi or asgi"), "{err}");
    let cli = CliOverrides::default().with(&table::INTERFACE, "wsgi");
    let s = resolve(&cli, None, &[("PYFCGI_INTERFACE", "asgi")]);
    assert_eq!(s.get(&table::INTERFACE).value, Interface::Wsgi);
    assert_eq!(s.get(&table::INTERFACE).source, Source::Cli);
}
