//! End to end with the real example applications (`examples/flask_app`, `examples/django_app`) and pyfcgi
//! installed in a virtual environment the way `pip install pyfcgi` would put it (`<venv>/bin/pyfcgi`, which finds
//! the venv from `pyvenv.cfg` one directory up), behind real front servers: nginx (`--bind`, Unix socket for Flask,
//! TCP for Django, keep-alive upstream, `fastcgi_buffering off` as in `examples/*/nginx.conf`), lighttpd spawning
//! `<venv>/bin/pyfcgi` with the listening socket on fd 0 (settings from `bin-environment`, log in `WSGI_LOG`) and
//! Apache `mod_proxy_fcgi`.
//!
//! The venv: `PYFCGI_E2E_VENV` names one prepared beforehand (`tests/e2e/prepare_venv.sh`; its `bin/pyfcgi` is used
//! as it is). Otherwise one is prepared once per run, cached in `target/e2e-venv-<X.Y>`, for the Python this build
//! links (`pyfcgi::python::BUILD_PYTHON`), with `tests/e2e/requirements.txt` from PyPI and this build's pyfcgi
//! binary copied into its `bin/`. `tests/e2e/matrix.sh 3.9 3.12` runs this file once per Python version.
//!
//! Nothing is skipped: a missing front server, a venv that cannot be prepared, or an app that does not import
//! fails the tests.

#![cfg(unix)] // venvs with bin/pyfcgi and Unix front servers; the Windows side is tests/fake_iis under Wine.

mod support;

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use support::frontends::{Apache, ApacheConfig, Frontend, Lighttpd, LighttpdConfig, Nginx, NginxConfig};
use support::http::{self, Body, Request, Response};
use support::venv::{manifest_dir, venv};
use support::{descendant_pids, exe_of, BindKind, PatternBody, Responder, Scratch, Spawn};

const MIB: u64 = 1024 * 1024;
const UPLOAD_LEN: u64 = 20 * MIB;
const UPLOAD_SEED: u64 = 0x5eed;

// ---------------------------------------------------------------------------------------------------------------
// The virtual environment

// ---------------------------------------------------------------------------------------------------------------
// The applications

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum App {
    Flask,
    Django,
}

impl App {
    fn name(self) -> &'static str {
        match self {
            Self::Flask => "flask",
            Self::Django => "django",
        }
    }

    fn root(self) -> PathBuf {
        manifest_dir().join("examples").join(format!("{}_app", self.name()))
    }

    /// `WSGI_HANDLER` / `--app` (no spaces: lighttpd's `bin-environment` and mod_fcgid take it as is).
    fn handler(self) -> &'static str {
        match self {
            Self::Flask => "app:app",
            Self::Django => "django.core.wsgi.get_wsgi_application()",
        }
    }

    /// The environment the app needs besides the handler.
    fn env(self) -> Vec<(&'static str, &'static str)> {
        match self {
            Self::Flask => vec![],
            Self::Django => vec![("DJANGO_SETTINGS_MODULE", "mysite.settings")],
        }
    }

    fn index_text(self) -> &'static str {
        match self {
            Self::Flask => "Hello from Flask on pyfcgi\n",
            Self::Django => "Hello from Django on pyfcgi\n",
        }
    }

    /// pyfcgi with `--bind`, as an nginx or Apache `mod_proxy_fcgi` deployment runs it.
    fn start_bound(self, kind: BindKind) -> Responder {
        let venv = venv();
        let root = self.root();
        let root = root.to_str().expect("UTF-8 path");
        let mut env = self.env();
        // `info`, not the support default `debug`: the access log is what the static-file check reads.
        env.push(("PYFCGI_LOG", "info"));
        Responder::start(
            &format!("pyfcgi-{}", self.name()),
            &venv.pyfcgi,
            &["--app", self.handler(), "--app-root", root, "--workers", "4"],
            &env,
            kind,
        )
    }

    /// `<venv>/bin/pyfcgi` with no arguments, settings in its environment, log in `log`: for lighttpd.
    fn spawn(self, log: &Path) -> Spawn {
        let mut spawn = Spawn::new(&venv().pyfcgi)
            .env("WSGI_HANDLER", self.handler())
            .env("PYFCGI_APP_ROOT", self.root().to_str().expect("UTF-8 path"))
            .env("WSGI_LOG", log.to_str().expect("UTF-8 path"));
        for (name, value) in self.env() {
            spawn = spawn.env(name, value);
        }
        spawn
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Small helpers: forms, cookies, JSON

fn percent_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn form_body(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn post_form(port: u16, path: &str, fields: &[(&str, &str)], cookie: Option<&str>) -> Response {
    let mut request =
        Request::post(path, form_body(fields)).header("Content-Type", "application/x-www-form-urlencoded");
    if let Some(cookie) = cookie {
        request = request.header("Cookie", cookie);
    }
    http::request(port, request)
}

/// The `value` of `<input ... name="NAME" value="...">` in a page.
fn hidden_field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no `{name}` field in the page:\n{html}"))
        + marker.len();
    let len = html[start..].find('"').expect("closing quote");
    html[start..start + len].to_owned()
}

/// `NAME=VALUE` of the `Set-Cookie` header that sets `name`.
fn cookie(answer: &Response, name: &str) -> String {
    answer
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie"))
        .filter_map(|(_, v)| v.split(';').next())
        .find(|pair| pair.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no `{name}` cookie set; headers {:?}", answer.headers))
        .to_owned()
}

/// A JSON text made comparable: Flask writes it compact, Django with spaces after `:` and `,`; `\uXXXX` escapes
/// (both default to ASCII output) are decoded.
fn json_normalized(text: &str) -> String {
    let compact = text.trim().replace(": ", ":").replace(", ", ",");
    let mut out = String::new();
    let mut chars = compact.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' && chars.peek() == Some(&'u') {
            chars.next();
            let hex: String = chars.by_ref().take(4).collect();
            let code = u32::from_str_radix(&hex, 16).expect("\\u escape");
            out.push(char::from_u32(code).expect("BMP character"));
        } else {
            out.push(c);
        }
    }
    out
}

/// The 20 MiB upload and its SHA-256 (computed once, by coreutils' `sha256sum`).
fn upload_sha256() -> &'static str {
    static SHA: OnceLock<String> = OnceLock::new();
    SHA.get_or_init(|| {
        let mut child = Command::new("sha256sum")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run sha256sum (coreutils)");
        let mut stdin = child.stdin.take().expect("stdin");
        io::copy(&mut PatternBody::new(UPLOAD_SEED, UPLOAD_LEN), &mut stdin).expect("feed sha256sum");
        drop(stdin);
        let output = child.wait_with_output().expect("sha256sum");
        assert!(output.status.success(), "sha256sum failed");
        String::from_utf8_lossy(&output.stdout)
            .split_whitespace()
            .next()
            .expect("digest")
            .to_owned()
    })
}

// ---------------------------------------------------------------------------------------------------------------
// The scenarios, the same for every front server

/// Where the scenarios run and how to read pyfcgi's log.
struct Site<'a> {
    app: App,
    port: u16,
    label: String,
    log: &'a dyn Fn() -> String,
}

impl Site<'_> {
    fn run_all(&self) {
        let started = Instant::now();
        let mut timings = Vec::new();
        let mut step = |name: &str, f: &dyn Fn(&Self)| {
            let t = Instant::now();
            f(self);
            timings.push(format!("{name} {:?}", t.elapsed()));
        };
        step("index", &Self::index);
        step("static", &Self::static_file);
        step("form", &Self::form);
        step("upload", &Self::upload);
        step("stream", &Self::stream);
        step("error", &Self::error);
        step("not_found", &Self::not_found);
        step("echo", &Self::echo_non_ascii_query);
        step("access_log", &Self::static_not_in_app_log);
        eprintln!(
            "[timing] {}: all scenarios in {:?} ({})",
            self.label,
            started.elapsed(),
            timings.join(", ")
        );
    }

    /// Waits (up to 5 s: `WSGI_LOG` may be written a moment later) until pyfcgi's log satisfies `condition`.
    fn wait_for_log(&self, what: &str, condition: impl Fn(&str) -> bool) -> String {
        let mut text = String::new();
        let found = support::wait_until(Duration::from_secs(5), || {
            text = (self.log)();
            condition(&text)
        });
        assert!(found, "{}: pyfcgi's log never showed {what}; log:\n{text}", self.label);
        text
    }

    fn index(&self) {
        let answer = http::get(self.port, "/");
        answer.assert_status(200);
        assert_eq!(answer.text(), self.app.index_text());
    }

    /// `/static/site.css` comes from the front server: same bytes as the file, and pyfcgi never saw the request.
    fn static_file(&self) {
        let want = fs::read(self.app.root().join("static/site.css")).expect("read site.css");
        let answer = http::get(self.port, "/static/site.css");
        answer.assert_status(200);
        assert!(
            answer.body == want,
            "{}: /static/site.css differs from the file",
            self.label
        );
        http::get(self.port, "/static/missing.css").assert_status(404);
    }

    /// Runs after everything else: the access log has lines for `/` and `/error` but none for `/static/`.
    fn static_not_in_app_log(&self) {
        let log = self.wait_for_log("access lines for / and /error", |log| {
            access_lines(log).iter().any(|l| l.contains("uri=/ "))
                && access_lines(log).iter().any(|l| l.contains("uri=/error"))
        });
        let leaked: Vec<&str> = access_lines(&log)
            .into_iter()
            .filter(|l| l.contains("/static/"))
            .collect();
        assert!(
            leaked.is_empty(),
            "{}: static files reached the app: {leaked:?}",
            self.label
        );
    }

    /// GET the form (token in a hidden field; Django also sets the `csrftoken` cookie), POST it back with a
    /// non-ASCII name, and POST without the token.
    fn form(&self) {
        let page = http::get(self.port, "/form");
        page.assert_status(200);
        let html = page.text();
        let name = "Zoë";
        match self.app {
            App::Flask => {
                let token = hidden_field(&html, "csrf_token");
                let answer = post_form(self.port, "/form", &[("csrf_token", &token), ("name", name)], None);
                answer.assert_status(200);
                assert_eq!(answer.text(), "Hello, Zoë!\n");
                // The example app answers a missing token with 400 (abort(400, "bad CSRF token")).
                post_form(self.port, "/form", &[("name", name)], None).assert_status(400);
            }
            App::Django => {
                let token = hidden_field(&html, "csrfmiddlewaretoken");
                let cookie = cookie(&page, "csrftoken");
                let answer = post_form(
                    self.port,
                    "/form",
                    &[("csrfmiddlewaretoken", &token), ("name", name)],
                    Some(&cookie),
                );
                answer.assert_status(200);
                assert_eq!(answer.text(), "Hello, Zoë!\n");
                post_form(self.port, "/form", &[("name", name)], Some(&cookie)).assert_status(403);
                post_form(self.port, "/form", &[("name", name)], None).assert_status(403);
            }
        }
    }

    /// A 20 MiB `multipart/form-data` upload; the app answers its size and SHA-256.
    fn upload(&self) {
        let boundary = "----pyfcgi-e2e-boundary-7MA4YWxkTrZu0gW";
        let mut head = String::new();
        let mut cookie = None;
        if self.app == App::Django {
            let page = http::get(self.port, "/upload");
            page.assert_status(200);
            let token = hidden_field(&page.text(), "csrfmiddlewaretoken");
            cookie = Some(self::cookie(&page, "csrftoken"));
            head.push_str(&format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"csrfmiddlewaretoken\"\r\n\r\n{token}\r\n"
            ));
        }
        head.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"payload.bin\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        ));
        let tail = format!("\r\n--{boundary}--\r\n");
        let len = head.len() as u64 + UPLOAD_LEN + tail.len() as u64;
        let body = io::Cursor::new(head.into_bytes())
            .chain(PatternBody::new(UPLOAD_SEED, UPLOAD_LEN))
            .chain(io::Cursor::new(tail.into_bytes()));
        let mut request = Request::new("POST", "/upload")
            .header("Content-Type", &format!("multipart/form-data; boundary={boundary}"))
            .body(Body::Sized(len, Box::new(body)));
        if let Some(cookie) = &cookie {
            request = request.header("Cookie", cookie);
        }
        let started = Instant::now();
        let answer = http::request(self.port, request);
        answer.assert_status(200);
        let json = json_normalized(&answer.text());
        assert!(
            json.contains(&format!("\"size\":{UPLOAD_LEN}")),
            "{}: wrong size in {json}",
            self.label
        );
        assert!(
            json.contains(&format!("\"sha256\":\"{}\"", upload_sha256())),
            "{}: wrong sha256 in {json}",
            self.label
        );
        eprintln!("[timing] {}: 20 MiB upload in {:?}", self.label, started.elapsed());
    }

    /// `/stream?n=5&delay=0.2`: five events, the first well before the last (nothing buffers the answer).
    fn stream(&self) {
        let mut answer = Request::get("/stream?n=5&delay=0.2")
            .send(self.port)
            .expect("send /stream");
        assert_eq!(answer.status, 200, "{}: /stream status", self.label);
        let (arrivals, body) = answer.read_timed();
        let text = String::from_utf8_lossy(&body);
        let events: Vec<&str> = text.lines().collect();
        assert_eq!(events.len(), 5, "{}: /stream body {text:?}", self.label);
        for (i, event) in events.iter().enumerate() {
            assert!(
                event.starts_with(&format!("event {i} at ")),
                "{}: {event:?}",
                self.label
            );
        }
        let first = arrivals[0];
        let last = *arrivals.last().expect("some body");
        eprintln!("[timing] {}: /stream pieces arrived at {arrivals:?}", self.label);
        assert!(
            last.saturating_sub(first) >= Duration::from_millis(500),
            "{}: the events arrived together ({arrivals:?}): the answer was buffered",
            self.label
        );
        assert!(
            arrivals.len() >= 3,
            "{}: expected the events in separate reads: {arrivals:?}",
            self.label
        );
    }

    /// `/error` raises: a 500 with a generic page (no traceback), the traceback in pyfcgi's log.
    fn error(&self) {
        let answer = http::get(self.port, "/error");
        answer.assert_status(500);
        let text = answer.text();
        for secret in ["Traceback", "RuntimeError", "fails on purpose", "views.py", "app.py"] {
            assert!(
                !text.contains(secret),
                "{}: the 500 page shows `{secret}`:\n{text}",
                self.label
            );
        }
        self.wait_for_log("the /error traceback", |log| {
            log.contains("Traceback (most recent call last)")
                && log.contains("RuntimeError: this page fails on purpose")
        });
    }

    /// An unknown path is the app's 404.
    fn not_found(&self) {
        let answer = http::get(self.port, "/no/such/page");
        answer.assert_status(404);
        assert!(
            answer.text().contains("Not Found"),
            "{}: not the app's 404 page:\n{}",
            self.label,
            answer.text()
        );
    }

    /// A percent-encoded UTF-8 query string is decoded by the app; the path routes as sent.
    fn echo_non_ascii_query(&self) {
        let answer = http::get(self.port, "/echo?q=%C3%A9%E2%82%AC&plain=a+b");
        answer.assert_status(200);
        let json = json_normalized(&answer.text());
        for want in [
            "\"q\":[\"é€\"]",
            "\"plain\":[\"a b\"]",
            "\"path\":\"/echo\"",
            "\"method\":\"GET\"",
        ] {
            assert!(
                json.contains(want),
                "{}: `{want}` missing from /echo: {json}",
                self.label
            );
        }
        // The app is mounted at `/`: an empty SCRIPT_NAME (Flask's script_root; Django's path is SCRIPT_NAME +
        // PATH_INFO, checked above).
        if self.app == App::Flask {
            assert!(
                json.contains("\"script_root\":\"\""),
                "{}: SCRIPT_NAME not empty: {json}",
                self.label
            );
        }
    }
}

/// pyfcgi's access-log lines (`pyfcgi::access: done method=GET uri=/ status=200 ...`).
fn access_lines(log: &str) -> Vec<&str> {
    log.lines().filter(|l| l.contains("pyfcgi::access")).collect()
}

/// The `<venv>/bin/pyfcgi` process that `server_pid` spawned, serving the socket it got on fd 0 (no `--bind`, fd 0
/// now `/dev/null`).
fn check_spawned_from_venv(server_pid: u32) {
    let pyfcgi = venv().pyfcgi.canonicalize().expect("pyfcgi path");
    let mut found = None;
    support::wait_until(Duration::from_secs(5), || {
        found = descendant_pids(server_pid)
            .into_iter()
            .find(|pid| exe_of(*pid).as_deref() == Some(pyfcgi.as_path()));
        found.is_some()
    });
    let pid = found.unwrap_or_else(|| panic!("no {} process under pid {server_pid}", pyfcgi.display()));
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).expect("cmdline");
    assert!(
        !String::from_utf8_lossy(&cmdline).contains("--bind"),
        "spawned with --bind: {cmdline:?}"
    );
    let fd0 = fs::read_link(format!("/proc/{pid}/fd/0")).expect("fd 0");
    assert_eq!(
        fd0,
        Path::new("/dev/null"),
        "fd 0 should be /dev/null after taking the socket"
    );
}

/// pyfcgi's start-up log names the venv and the Python version.
fn check_start_log(label: &str, log: &str) {
    let venv = venv();
    assert!(
        log.contains(&venv.dir.display().to_string()) && log.contains(&venv.python_version),
        "{label}: pyfcgi's log does not name the venv {} and Python {}:\n{log}",
        venv.dir.display(),
        venv.python_version
    );
}

fn nginx_config(app: App, upstream: support::Upstream) -> NginxConfig {
    // As examples/*/nginx.conf: keep-alive upstream, response buffering off, request buffering on, the whole path
    // in PATH_INFO and an empty SCRIPT_NAME (`param` writes the value as is, so the empty string is quoted).
    let mut config = NginxConfig::new(upstream)
        .static_dir(app.root().join("static"))
        .param("SCRIPT_NAME", "\"\"")
        .param("PATH_INFO", "$uri");
    config.response_buffering = false;
    config
}

// ---------------------------------------------------------------------------------------------------------------
// The tests

/// `<venv>/bin/pyfcgi check` finds the venv next to itself, reports its Python, and imports both apps from it.
#[test]
fn check_reports_venv_python_and_imports_apps() {
    let venv = venv();
    for app in [App::Flask, App::Django] {
        let root = app.root();
        let mut command = Command::new(&venv.pyfcgi);
        command
            .args(["check", "--app", app.handler(), "--app-root"])
            .arg(&root)
            .env_remove("VIRTUAL_ENV")
            .env_remove("PYFCGI_VENV")
            .env("NO_COLOR", "1");
        for (name, value) in app.env() {
            command.env(name, value);
        }
        let output = command.output().expect("run pyfcgi check");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(output.status.success(), "pyfcgi check {} failed:\n{text}", app.name());
        let site_packages = venv.dir.join(format!(
            "lib/python{}/site-packages",
            pyfcgi::python::BUILD_PYTHON_VERSION
        ));
        for want in [
            format!("Python {}", venv.python_version),
            format!("virtual environment: {}", venv.dir.display()),
            format!("prefix: {}", venv.dir.display()),
            format!("'{}'", site_packages.display()),
            format!("WSGI_HANDLER \"{}\" resolves to", app.handler()),
            "OK: the application imports and is callable.".to_owned(),
        ] {
            assert!(
                text.contains(&want),
                "pyfcgi check {}: `{want}` missing:\n{text}",
                app.name()
            );
        }
    }
}

#[test]
fn flask_behind_nginx_unix_socket() {
    let app = App::Flask;
    let pyfcgi = app.start_bound(BindKind::Unix);
    let nginx = Nginx::start(nginx_config(app, pyfcgi.upstream()));
    let log = || pyfcgi.log();
    check_start_log("flask nginx", &log());
    Site {
        app,
        port: nginx.port(),
        label: "flask nginx unix".into(),
        log: &log,
    }
    .run_all();
}

#[test]
fn django_behind_nginx_tcp() {
    let app = App::Django;
    let pyfcgi = app.start_bound(BindKind::Tcp);
    let nginx = Nginx::start(nginx_config(app, pyfcgi.upstream()));
    let log = || pyfcgi.log();
    check_start_log("django nginx", &log());
    Site {
        app,
        port: nginx.port(),
        label: "django nginx tcp".into(),
        log: &log,
    }
    .run_all();
}

fn behind_lighttpd(app: App) {
    let scratch = Scratch::new(&format!("{}-lighttpd-log", app.name()));
    let log_file = scratch.join("pyfcgi.log");
    let mut config = LighttpdConfig::spawn(app.spawn(&log_file))
        .streaming()
        .static_dir(app.root().join("static"));
    // Without it lighttpd sends the whole path as SCRIPT_NAME and no PATH_INFO for the "/" prefix, and a WSGI app
    // routes every request to its root.
    config
        .host_options
        .push("\"fix-root-scriptname\" => \"enable\"".to_owned());
    let lighttpd = Lighttpd::start(config);
    let log = || {
        format!(
            "{}\n{}",
            fs::read_to_string(&log_file).unwrap_or_default(),
            lighttpd.logs()
        )
    };
    let label = format!("{} lighttpd", app.name());
    Site {
        app,
        port: lighttpd.port(),
        label: label.clone(),
        log: &log,
    }
    .run_all();
    // After the requests: pyfcgi takes the socket off fd 0 only once the application has loaded.
    check_spawned_from_venv(lighttpd.pid());
    check_start_log(&label, &log());
}

#[test]
fn flask_behind_lighttpd_spawned_on_fd0() {
    behind_lighttpd(App::Flask);
}

#[test]
fn django_behind_lighttpd_spawned_on_fd0() {
    behind_lighttpd(App::Django);
}

/// Apache configuration for a WSGI application mounted at `/` behind `mod_proxy_fcgi`.
const APACHE_WSGI_ROOT: &str =
    "ProxyFCGISetEnvIf \"true\" SCRIPT_NAME \"\"\nProxyFCGISetEnvIf \"true\" PATH_INFO \"%{REQUEST_URI}\"\n";

fn behind_apache_proxy_fcgi(app: App, kind: BindKind) {
    let pyfcgi = app.start_bound(kind);
    let mut config = ApacheConfig::proxy_fcgi(pyfcgi.upstream())
        .streaming()
        .static_dir(app.root().join("static"));
    // mod_proxy_fcgi puts the whole path in SCRIPT_NAME and sends no PATH_INFO, so a WSGI app would route every
    // request to its root. As for nginx: the path (decoded, without the query) in PATH_INFO, SCRIPT_NAME empty.
    config.extra = APACHE_WSGI_ROOT.to_owned();
    let apache = Apache::start(config);
    let log = || pyfcgi.log();
    Site {
        app,
        port: apache.port(),
        label: format!("{} apache proxy_fcgi", app.name()),
        log: &log,
    }
    .run_all();
}

#[test]
fn flask_behind_apache_proxy_fcgi() {
    behind_apache_proxy_fcgi(App::Flask, BindKind::Tcp);
}

#[test]
fn django_behind_apache_proxy_fcgi() {
    behind_apache_proxy_fcgi(App::Django, BindKind::Unix);
}

/// Regression: a relative `--app-root` used to break the import, because pyfcgi changed into the application root
/// and then put the same relative path first on `sys.path`, where it named `<root>/<root>`.
#[test]
fn relative_app_root_imports_the_app() {
    let output = Command::new(&venv().pyfcgi)
        .args(["check", "--app", "app:app", "--app-root", "examples/flask_app"])
        .current_dir(manifest_dir())
        .output()
        .expect("run pyfcgi check");
    assert!(
        output.status.success(),
        "pyfcgi check with a relative --app-root failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
