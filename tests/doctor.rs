//! `pyfcgi doctor` through the real binary, against the IIS configurations in tests/fixtures/iis/.
//!
//! `clean/drive` is a whole C:\ drive: IIS 10's default applicationHost.config with the CGI feature and pyfcgi
//! registered as `pyfcgi enable --instance-max-requests 10000` registers it, the site's web.config from
//! iis/web.config.flask, the venv, a base Python and a static folder. Each other fixture holds the files that
//! differ from it (whole files) and optionally a DELETE list; it is laid over a copy of `clean`. The copy is put
//! in a temporary folder and `C:\` in the configuration files is replaced by that folder, which is the only
//! change made to the fixtures (the doctor reads backslashes as `/` off Windows). Each case names the findings
//! expected, with the file and the line (found by a needle in the fixture, so editing a fixture keeps the test
//! honest).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

const AH: &str = "Windows/System32/inetsrv/config/applicationHost.config";
const WC: &str = "inetpub/mysite/web.config";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/iis")
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn rewrite_drive(dir: &Path, drive: &str) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rewrite_drive(&path, drive);
        } else if path.extension().is_some_and(|e| e == "config" || e == "cfg") {
            let text = std::fs::read_to_string(&path).unwrap();
            std::fs::write(&path, text.replace("C:\\", &format!("{drive}\\"))).unwrap();
        }
    }
}

/// A fixture laid out as a drive in a fresh temporary folder; returns the drive's path.
fn drive(case: &str) -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let root = std::env::temp_dir().join(format!(
        "pyfcgi-doctor-{}-{}-{case}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&root);
    let drive = root.join("C");
    copy_tree(&fixtures().join("clean/drive"), &drive);
    if case != "clean" {
        let overlay = fixtures().join(case);
        assert!(overlay.is_dir(), "no fixture {case}");
        if overlay.join("drive").is_dir() {
            copy_tree(&overlay.join("drive"), &drive);
        }
        if let Ok(list) = std::fs::read_to_string(overlay.join("DELETE")) {
            for path in list.lines().filter(|l| !l.trim().is_empty()) {
                let path = drive.join(path.trim());
                if path.is_dir() {
                    std::fs::remove_dir_all(&path).unwrap();
                } else {
                    std::fs::remove_file(&path).unwrap();
                }
            }
        }
    }
    rewrite_drive(&drive, &drive.display().to_string());
    drive
}

fn doctor(drive: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pyfcgi"))
        .arg("doctor")
        .arg("--apphost")
        .arg(drive.join(AH))
        .args(["--machine-memory", "8192"])
        .args(args)
        .env("SystemDrive", drive)
        .env("windir", drive.join("Windows"))
        .output()
        .expect("run pyfcgi doctor")
}

fn app_root(drive: &Path) -> String {
    format!("{}\\inetpub\\mysite", drive.display())
}

/// The 1-based line of the `nth` (1-based) line containing `needle` in the fixture file of `case`.
fn line_of(case: &str, file: &str, needle: &str, nth: usize) -> u64 {
    let overlay = fixtures().join(case).join("drive").join(file);
    let path = if overlay.is_file() {
        overlay
    } else {
        fixtures().join("clean/drive").join(file)
    };
    let text = std::fs::read_to_string(&path).unwrap();
    let index = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.contains(needle))
        .nth(nth - 1)
        .unwrap_or_else(|| panic!("{needle:?} (#{nth}) not in {}", path.display()))
        .0;
    index as u64 + 1
}

/// (finding id, file, needle on the expected line, which occurrence of the needle)
type Expected = (&'static str, &'static str, &'static str, usize);

fn run_case(case: &str, extra: &[&str], expected: &[Expected]) {
    let drive = drive(case);
    let root = app_root(&drive);
    let mut args = vec!["--json", "--app-root", root.as_str()];
    args.extend_from_slice(extra);
    let output = doctor(&drive, &args);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "{case}: --json output does not parse ({e}):\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    let mut found: Vec<(String, String, u64)> = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let file = f["file"].as_str().unwrap_or("").replace('\\', "/");
            let relative = file
                .strip_prefix(&format!("{}/", drive.display()))
                .unwrap_or(&file)
                .to_owned();
            (
                f["id"].as_str().unwrap().to_owned(),
                relative,
                f["line"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    let mut wanted: Vec<(String, String, u64)> = expected
        .iter()
        .map(|(id, file, needle, nth)| (id.to_string(), file.to_string(), line_of(case, file, needle, *nth)))
        .collect();
    found.sort();
    wanted.sort();
    assert_eq!(found, wanted, "{case}: findings differ; report:\n{stdout}");
    let code = output.status.code();
    assert_eq!(
        code,
        Some(if expected.is_empty() { 0 } else { 1 }),
        "{case}: exit status"
    );
    for finding in json["findings"].as_array().unwrap() {
        for field in ["problem", "effect", "fix"] {
            assert!(
                !finding[field].as_str().unwrap_or("").is_empty(),
                "{case}: {field} is empty in {finding}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(drive.parent().unwrap());
}

const PYFCGI_APP: &str = r#"mysite\.venv\Scripts\pyfcgi.exe" arguments"#;
const WFASTCGI_APP: &str = r#"wfastcgi.py" signalBeforeTerminateSeconds"#;

#[test]
fn clean_configuration_has_no_findings_whichever_way_the_application_is_named() {
    run_case("clean", &[], &[]);
    let drive = drive("clean");
    for args in [&["--site", "mysite"][..], &["--site", "MYSITE/"][..], &[][..]] {
        let output = doctor(&drive, args);
        let text = String::from_utf8_lossy(&output.stdout);
        assert_eq!(output.status.code(), Some(0), "{args:?}:\n{text}");
        assert!(text.contains("0 finding(s)"), "{text}");
        // It says which files it read, and which identity to check permissions for.
        assert!(
            text.contains("applicationHost.config") && text.contains(r"inetpub\mysite\web.config"),
            "{text}"
        );
        assert!(text.contains(r#"pyfcgi check --as "IIS AppPool\mysite""#), "{text}");
    }
    // Every site: the Default Web Site has no FastCGI handler and is reported as skipped, not as a problem.
    let text = String::from_utf8_lossy(&doctor(&drive, &[]).stdout).into_owned();
    assert!(
        text.contains("Application Default Web Site") && text.contains("skipped"),
        "{text}"
    );
}

#[test]
fn the_clean_fixture_is_what_pyfcgi_enable_and_the_flask_template_produce() {
    use pyfcgi::iis::doctor::xml::ConfigFile;
    // applicationHost.config's <application> is what `pyfcgi enable --instance-max-requests 10000` adds.
    let registration = pyfcgi::iis::Registration {
        exe: PathBuf::from(r"C:\inetpub\mysite\.venv\Scripts\pyfcgi.exe"),
        signal_before_terminate_seconds: 30,
        instance_max_requests: Some(10000),
        max_instances: None,
        activity_timeout: None,
        environment: Vec::new(),
    };
    let add = &registration.enable_commands()[1][3];
    let inner = add.strip_prefix("/+[").and_then(|s| s.strip_suffix(']')).unwrap();
    let from_appcmd: Vec<(String, String)> = inner
        .split(',')
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap();
            (name.to_owned(), value.trim_matches('\'').to_owned())
        })
        .collect();
    let path = fixtures().join("clean/drive").join(AH);
    let apphost = ConfigFile::load(&path, path.clone()).unwrap();
    let app = apphost.root.descend("system.webServer/fastCgi/application").unwrap();
    assert_eq!(app.attrs, from_appcmd);
    assert_eq!(
        format!("scriptProcessor=\"{}\"", registration.script_processor()),
        r#"scriptProcessor="C:\inetpub\mysite\.venv\Scripts\pyfcgi.exe""#
    );
    // web.config is the repository's Flask template with the site filled in.
    let template = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("iis/web.config.flask")).unwrap();
    let expected = template.replace("YOURSITE\\.venv", "mysite\\.venv").replace(
        r#"<!-- <add key="WSGI_LOG" value="C:\inetpub\logs\YOURSITE\pyfcgi.log" /> : a log file the app pool identity can write -->"#,
        r#"<add key="WSGI_LOG" value="C:\inetpub\logs\mysite\pyfcgi.log" />"#,
    );
    let fixture = std::fs::read_to_string(fixtures().join("clean/drive").join(WC)).unwrap();
    assert_eq!(fixture, expected);
}

#[test]
fn a_site_set_up_with_wfastcgi_enable() {
    run_case(
        "wfastcgi-enable",
        &[],
        &[
            ("wfastcgi-in-use", AH, WFASTCGI_APP, 1),
            ("instance-max-requests-default", AH, WFASTCGI_APP, 1),
            ("response-buffer-limit", WC, r#"name="Python FastCGI""#, 1),
            ("static-files-to-python", WC, r#"name="Python FastCGI""#, 1),
            ("http-errors-replace", AH, "<httpErrors lockAttributes", 1),
        ],
    );
}

#[test]
fn iis_features_and_matching() {
    run_case(
        "fastcgi-module-missing",
        &[],
        &[("fastcgi-module-missing", WC, r#"name="pyfcgi""#, 1)],
    );
    run_case(
        "script-processor-unmatched",
        &[],
        &[("script-processor-unmatched", WC, r#"name="pyfcgi""#, 1)],
    );
    run_case(
        "duplicate-entry",
        &[],
        &[("duplicate-entry", WC, r#"name="PyFCGI""#, 1)],
    );
    run_case(
        "handler-shadowed",
        &[],
        &[
            ("handler-shadowed", WC, r#"name="pyfcgi""#, 1),
            ("script-processor-unmatched", WC, r#"name="Python FastCGI""#, 1),
            // The location block removes only "pyfcgi"; the leftover handler still takes the static files.
            ("static-files-to-python", WC, r#"name="Python FastCGI""#, 1),
        ],
    );
    run_case(
        "no-fastcgi-handler",
        &[],
        &[("no-fastcgi-handler", AH, "<handlers accessPolicy", 1)],
    );
    run_case(
        "wfastcgi-registration-left",
        &[],
        &[("wfastcgi-registration-left", AH, WFASTCGI_APP, 1)],
    );
}

#[test]
fn configuration_iis_refuses_with_500_19() {
    run_case("config-unreadable", &[], &[("config-unreadable", WC, "a&b", 1)]);
    run_case(
        "section-locked",
        &[],
        &[
            ("section-locked", WC, "<handlers>", 1),
            ("section-locked", WC, "<handlers>", 2),
        ],
    );
    run_case("section-unknown", &[], &[("section-unknown", WC, "<rewrite>", 1)]);
    run_case(
        "section-apphost-only",
        &[],
        &[("section-apphost-only", WC, "<fastCgi>", 1)],
    );
}

#[test]
fn responses_errors_and_static_files() {
    run_case(
        "response-buffer-limit",
        &[],
        &[("response-buffer-limit", WC, r#"name="pyfcgi""#, 1)],
    );
    run_case(
        "http-errors-replace",
        &[],
        &[("http-errors-replace", WC, "<httpErrors", 1)],
    );
    run_case(
        "static-files-to-python",
        &[],
        &[("static-files-to-python", WC, r#"name="pyfcgi""#, 1)],
    );
}

#[test]
fn process_life_timeouts_and_memory() {
    run_case(
        "instance-max-requests-default",
        &[],
        &[("instance-max-requests-default", AH, PYFCGI_APP, 1)],
    );
    run_case(
        "signal-before-terminate",
        &[],
        &[("signal-before-terminate", AH, PYFCGI_APP, 1)],
    );
    run_case(
        "max-instances-memory",
        &[],
        &[("max-instances-memory", AH, PYFCGI_APP, 1)],
    );
    // 64 × 40 MB fits in 8 GB.
    run_case("max-instances-memory", &["--app-memory", "40"], &[]);
    run_case(
        "timeouts-short",
        &[],
        &[
            ("request-timeout-short", AH, PYFCGI_APP, 1),
            ("activity-timeout-short", AH, PYFCGI_APP, 1),
        ],
    );
    run_case(
        "clean",
        &["--stream-seconds", "600"],
        &[("request-timeout-short", AH, PYFCGI_APP, 1)],
    );
}

#[test]
fn settings_naming_files_that_do_not_exist() {
    run_case(
        "path-missing-settings",
        &[],
        &[
            ("path-missing", WC, r#"key="WSGI_LOG""#, 1),
            ("path-missing", WC, r#"key="PYTHONPATH""#, 1),
        ],
    );
    run_case(
        "path-missing-env",
        &[],
        &[("path-missing", AH, r#"name="PYFCGI_VENV""#, 1)],
    );
    run_case("path-missing-python", &[], &[("path-missing", AH, PYFCGI_APP, 1)]);
    run_case("path-missing-core-dll", &[], &[("path-missing", AH, PYFCGI_APP, 1)]);
    run_case(
        "wsgi-handler-missing",
        &[],
        &[("wsgi-handler-missing", AH, PYFCGI_APP, 1)],
    );
}

#[test]
fn text_report_names_file_line_effect_and_fix() {
    let drive = drive("response-buffer-limit");
    let output = doctor(&drive, &["--app-root", &app_root(&drive)]);
    assert_eq!(output.status.code(), Some(1));
    let text = String::from_utf8_lossy(&output.stdout);
    let line = line_of("response-buffer-limit", WC, r#"name="pyfcgi""#, 1);
    assert!(
        text.contains(&format!(
            r"warning[response-buffer-limit] {}\inetpub\mysite\web.config:{line}",
            drive.display()
        )),
        "{text}"
    );
    assert!(text.contains("What happens: streamed responses"), "{text}");
    assert!(text.contains(r#"appcmd.exe set config "mysite" -section:system.webServer/handlers "/[name='pyfcgi'].responseBufferLimit:0""#), "{text}");
    let _ = std::fs::remove_dir_all(drive.parent().unwrap());
}

#[test]
fn bad_arguments_and_missing_files_are_clear_errors() {
    let drive = drive("clean");
    let output = doctor(&drive, &["--site", "nosuchsite"]);
    assert_eq!(output.status.code(), Some(1));
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(
        err.contains(r#"no site named "nosuchsite""#) && err.contains(r#""mysite""#),
        "{err}"
    );
    let output = Command::new(env!("CARGO_BIN_EXE_pyfcgi"))
        .args(["doctor", "--apphost"])
        .arg(drive.join("missing.config"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("cannot read"),
        "{:?}",
        output
    );
}

#[cfg(not(windows))]
#[test]
fn check_as_says_it_is_windows_only() {
    let output = Command::new(env!("CARGO_BIN_EXE_pyfcgi"))
        .args(["check", "--as", r"IIS AppPool\mysite"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains(r#"--as "IIS AppPool\mysite" is Windows-only"#), "{err}");
}
