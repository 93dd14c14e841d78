//! The `pyfcgi enable`/`disable` commands: the appcmd commands they would run (`--dry-run`, which works on any
//! OS) must register exactly what wfastcgi-enable registered, plus pyfcgi's settings, and be safe to repeat. And
//! `pyfcgi check`'s settings report: every layer's source, what web.config cannot change, IIS's process model.

use std::process::Command;

fn pyfcgi(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_pyfcgi"))
        .args(args)
        .output()
        .expect("pyfcgi runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn enable_dry_run_prints_idempotent_appcmd_commands_and_the_script_processor() {
    let (ok, out, err) = pyfcgi(&[
        "enable",
        "--dry-run",
        "--exe",
        r"C:\inetpub\app\.venv\Scripts\pyfcgi.exe",
        "--instance-max-requests",
        "10000",
        "--max-instances",
        "4",
        "--env",
        r"PATH=C:\Python311",
    ]);
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    let appcmd = r"C:\Windows\system32\inetsrv\appcmd.exe set config /section:system.webServer/fastCgi";
    assert_eq!(
        lines[0],
        format!(r#"{appcmd} "/-[fullPath='C:\inetpub\app\.venv\Scripts\pyfcgi.exe',arguments='']""#)
    );
    assert_eq!(
        lines[1],
        format!(
            r#"{appcmd} "/+[fullPath='C:\inetpub\app\.venv\Scripts\pyfcgi.exe',arguments='',signalBeforeTerminateSeconds='30',instanceMaxRequests='10000',maxInstances='4']""#
        )
    );
    assert!(
        lines[2].ends_with(r#".environmentVariables.[name='PATH',value='C:\Python311']""#),
        "{}",
        lines[2]
    );
    assert!(out.contains(r#""C:\inetpub\app\.venv\Scripts\pyfcgi.exe" can now be used as a FastCGI script processor"#));
    assert!(out.contains(r#"scriptProcessor="C:\inetpub\app\.venv\Scripts\pyfcgi.exe""#));
    assert!(out.contains(r#"responseBufferLimit="0""#));
}

#[test]
fn enable_accepts_a_custom_appcmd_like_wfastcgi_enable() {
    let (ok, out, err) = pyfcgi(&[
        "enable",
        "--dry-run",
        "--exe",
        r"C:\p\pyfcgi.exe",
        r"C:\Program Files\IIS Express\appcmd.exe",
        r"/apphostconfig:C:\cfg\applicationhost.config",
    ]);
    assert!(ok, "{err}");
    assert!(
        out.starts_with(
            r#""C:\Program Files\IIS Express\appcmd.exe" /apphostconfig:C:\cfg\applicationhost.config set config"#
        ),
        "{out}"
    );
}

#[test]
fn disable_dry_run_removes_the_registration() {
    let (ok, out, _) = pyfcgi(&["disable", "--dry-run", "--exe", r"C:\p\pyfcgi.exe"]);
    assert!(ok);
    assert!(
        out.contains(r#"set config /section:system.webServer/fastCgi "/-[fullPath='C:\p\pyfcgi.exe',arguments='']""#)
    );
    assert!(out.contains(r#""C:\p\pyfcgi.exe" is no longer registered for use with FastCGI"#));
}

#[cfg(not(windows))]
#[test]
fn enable_without_dry_run_off_windows_explains_itself() {
    let (ok, _, err) = pyfcgi(&["enable", "--exe", r"C:\p\pyfcgi.exe"]);
    assert!(!ok);
    assert!(err.contains("exists only on Windows; use --dry-run"), "{err}");
}

#[test]
fn bad_env_argument_is_reported() {
    let (ok, _, err) = pyfcgi(&["enable", "--dry-run", "--env", "NOEQUALS"]);
    assert!(!ok);
    assert!(err.contains(r#"--env "NOEQUALS" is not NAME=VALUE"#), "{err}");
}

#[test]
fn check_reports_each_source_what_web_config_cannot_set_and_the_iis_process_model() {
    let site = std::env::temp_dir().join(format!("pyfcgi-cli-check-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&site);
    std::fs::create_dir_all(&site).expect("site dir");
    std::fs::write(
        site.join("app.py"),
        "def app(environ, start_response):\n    start_response('200 OK', [])\n    return [b'ok']\n",
    )
    .expect("app.py");
    std::fs::write(
        site.join("web.config"),
        r#"<configuration><appSettings>
             <add key="WSGI_HANDLER" value="app.app"/>
             <add key="PYFCGI_WORKERS" value="4"/>
             <add key="PYFCGI_LOG_LEVEL" value="debug"/>
             <add key="FCGI_WEB_SERVER_ADDRS" value="10.0.0.1"/>
           </appSettings></configuration>"#,
    )
    .expect("web.config");
    let mut command = Command::new(env!("CARGO_BIN_EXE_pyfcgi"));
    command
        .args(["check", "--shutdown-timeout", "5", "--app-root"])
        .arg(&site)
        .env("PYFCGI_MAX_CONNS", "9");
    for (name, _) in std::env::vars_os() {
        let text = name.to_string_lossy();
        if (text.starts_with("PYFCGI_") || text.starts_with("WSGI_")) && text != "PYFCGI_MAX_CONNS" {
            command.env_remove(&name);
        }
    }
    let out = command.output().expect("pyfcgi check runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let web = site.join("web.config").display().to_string();
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    for line in [
        format!("  PYFCGI_WORKERS = 4 ({web})\n"),
        format!("  PYFCGI_LOG_LEVEL = debug ({web})\n"),
        "  PYFCGI_MAX_CONNS = 9 (environment)\n".to_owned(),
        "  PYFCGI_SHUTDOWN_TIMEOUT = 5 (command line)\n".to_owned(),
        "  FCGI_WEB_SERVER_ADDRS = (not set) (default)  <- IGNORED, see below\n".to_owned(),
        format!("FCGI_WEB_SERVER_ADDRS = \"10.0.0.1\" in {web} is ignored: web.config cannot set it"),
        "sends one request at a time to each pyfcgi process, so --workers".to_owned(),
        format!("PYFCGI_WORKERS = 4 ({web}) has no effect under IIS: raise maxInstances instead."),
        "OK: the application imports and is callable.".to_owned(),
    ] {
        assert!(stdout.contains(&line), "{line:?} missing from:\n{stdout}");
    }
    let _ = std::fs::remove_dir_all(&site);
}
