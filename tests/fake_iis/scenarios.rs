//! The scenarios. Each starts a fresh application process as IIS would and checks what IIS would see. They rely
//! only on the "echo contract" that both the Rust echo responder and the WSGI fixture app implement:
//! - `GET /info`: 200, `NAME=VALUE` lines including `method=`, `body_len=` and the server variables;
//! - `POST /echo`: the body back unchanged;
//! - `GET /stream?n=N&ms=M`: N lines `chunk i`, each flushed on its own, M ms apart;
//! - `GET /sleep?ms=M`: `slept` after M ms.
//!
//! The scenarios marked `wsgi_only` need more: `pyfcgi.exe` serving `tests/fixtures/flask_echo` (its `/raise`
//! route, `WSGI_HANDLER`, `WSGI_LOG` and wfastcgi's messages). They run only with `--wsgi-fixture`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::fcgi::{self, Request, Response};
use crate::iis::{Child, Client, Launch, Mode};

/// What the scenarios share: how to start the application and the IIS application it belongs to.
#[derive(Clone)]
pub struct Site {
    pub launch: Launch,
    /// The application directory.
    pub app_dir: PathBuf,
    /// `APPL_PHYSICAL_PATH`, with its trailing backslash.
    pub physical_path: String,
    /// `APPL_MD_PATH`.
    pub md_path: String,
    /// The `<appSettings>` of the site's web.config (empty: the site is configured through the environment).
    pub app_settings: Vec<(String, String)>,
    /// The handler's `scriptProcessor` (`exe|arguments`), for the web.config of a scenario's own site folder.
    pub script_processor: String,
    /// The application is `pyfcgi.exe` serving `tests/fixtures/flask_echo`: the `wsgi_only` scenarios run too.
    pub wsgi_fixture: bool,
}

type Outcome = Result<String, String>;

pub struct Scenario {
    pub name: &'static str,
    pub about: &'static str,
    pub modes: &'static [Mode],
    /// Needs `pyfcgi.exe` with the Flask fixture (see the module documentation).
    pub wsgi_only: bool,
    pub run: fn(&Site, Mode) -> Outcome,
}

const PIPES: &[Mode] = &[Mode::Overlapped, Mode::Sync];
const ALL: &[Mode] = &[Mode::Overlapped, Mode::Sync, Mode::Tcp];

pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "get",
        about: "GET /info with IIS server variables on a kept connection",
        modes: ALL,
        wsgi_only: false,
        run: get,
    },
    Scenario {
        name: "post",
        about: "POST a 300 KB body in IIS-sized STDIN records, echoed back exactly",
        modes: ALL,
        wsgi_only: false,
        run: post,
    },
    Scenario {
        name: "stream",
        about: "a streamed response arrives chunk by chunk, not at the end",
        modes: ALL,
        wsgi_only: false,
        run: stream,
    },
    Scenario {
        name: "many",
        about: "300 requests on the one kept connection",
        modes: ALL,
        wsgi_only: false,
        run: many,
    },
    Scenario {
        name: "get_values",
        about: "FCGI_GET_VALUES answers MAX_CONNS=1, MAX_REQS=1, MPXS_CONNS=0",
        modes: ALL,
        wsgi_only: false,
        run: get_values,
    },
    Scenario {
        name: "reconnect",
        about: "without FCGI_KEEP_CONN: the application disconnects and accepts the next connection",
        modes: ALL,
        wsgi_only: false,
        run: reconnect,
    },
    Scenario {
        name: "no_data",
        about: "a client that connected and left before ConnectNamedPipe (ERROR_NO_DATA) is skipped",
        modes: PIPES,
        wsgi_only: false,
        run: no_data,
    },
    Scenario {
        name: "eof_exit",
        about: "IIS closes the pipe for good: the process exits 0",
        modes: PIPES,
        wsgi_only: false,
        run: eof_exit,
    },
    Scenario {
        name: "shutdown_idle",
        about: "_FCGI_SHUTDOWN_EVENT_ while idle on a kept connection: exit 0 within 1 s",
        modes: ALL,
        wsgi_only: false,
        run: shutdown_idle,
    },
    Scenario {
        name: "shutdown_connect",
        about: "_FCGI_SHUTDOWN_EVENT_ while waiting in ConnectNamedPipe/accept: exit 0 within 1 s",
        modes: ALL,
        wsgi_only: false,
        run: shutdown_connect,
    },
    Scenario {
        name: "shutdown_busy",
        about: "_FCGI_SHUTDOWN_EVENT_ during a slow request: the response completes, then exit 0 within 1 s",
        modes: ALL,
        wsgi_only: false,
        run: shutdown_busy,
    },
    Scenario {
        name: "app_exception",
        about: "a Flask route raises (handled by Flask, then let through to pyfcgi): a safe 500, no traceback in \
                the body or on FCGI_STDERR, the traceback in WSGI_LOG; the kept connection serves on",
        modes: ALL,
        wsgi_only: true,
        run: app_exception,
    },
    Scenario {
        name: "bad_handler",
        about: "WSGI_HANDLER=nosuchmodule.app: two requests get a safe 500, wfastcgi's message in WSGI_LOG, no \
                FCGI_STDERR, the process stays up; the shutdown event ends it with exit 0",
        modes: ALL,
        wsgi_only: true,
        run: bad_handler,
    },
];

const EXIT_LIMIT: Duration = Duration::from_secs(1);

impl Site {
    /// The server variables IIS 10 sends for `method path?query` (wildcard handler mapping at the site root).
    pub fn params(&self, method: &str, path: &str, query: &str, body_len: usize) -> Vec<(String, String)> {
        let uri = if query.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{query}")
        };
        let translated = format!(
            "{}{}",
            self.physical_path,
            path.trim_start_matches('/').replace('/', "\\")
        );
        let root = self.physical_path.trim_end_matches('\\').to_owned();
        let mut p: Vec<(String, String)> = [
            ("URL", path),
            ("SCRIPT_NAME", path),
            ("PATH_INFO", path),
            ("PATH_TRANSLATED", &translated),
            ("SCRIPT_FILENAME", &translated),
            ("REQUEST_URI", &uri),
            ("QUERY_STRING", query),
            ("REQUEST_METHOD", method),
            ("DOCUMENT_ROOT", &root),
            ("SERVER_SOFTWARE", "Microsoft-IIS/10.0"),
            ("SERVER_PROTOCOL", "HTTP/1.1"),
            ("SERVER_PORT", "80"),
            ("SERVER_PORT_SECURE", "0"),
            ("SERVER_NAME", "localhost"),
            ("LOCAL_ADDR", "127.0.0.1"),
            ("GATEWAY_INTERFACE", "CGI/1.1"),
            ("REMOTE_ADDR", "127.0.0.1"),
            ("REMOTE_HOST", "127.0.0.1"),
            ("REMOTE_PORT", "50123"),
            ("REMOTE_USER", ""),
            ("LOGON_USER", ""),
            ("AUTH_TYPE", ""),
            ("AUTH_USER", ""),
            ("AUTH_PASSWORD", ""),
            (
                "CONTENT_TYPE",
                if body_len > 0 { "application/octet-stream" } else { "" },
            ),
            ("CONTENT_LENGTH", &body_len.to_string()),
            ("INSTANCE_ID", "1"),
            ("INSTANCE_NAME", "DEFAULT WEB SITE"),
            ("INSTANCE_META_PATH", "/LM/W3SVC/1"),
            ("HTTPS", "off"),
            ("HTTPS_KEYSIZE", ""),
            ("HTTPS_SECRETKEYSIZE", ""),
            ("HTTPS_SERVER_ISSUER", ""),
            ("HTTPS_SERVER_SUBJECT", ""),
            ("CERT_COOKIE", ""),
            ("CERT_FLAGS", ""),
            ("CERT_ISSUER", ""),
            ("CERT_SERIALNUMBER", ""),
            ("CERT_SUBJECT", ""),
            ("APPL_MD_PATH", &self.md_path),
            ("APPL_PHYSICAL_PATH", &self.physical_path),
            ("HTTP_HOST", "localhost"),
            ("HTTP_USER_AGENT", "fake-iis/1.0"),
            ("HTTP_ACCEPT", "*/*"),
            ("HTTP_CONNECTION", "keep-alive"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        if body_len > 0 {
            p.push(("HTTP_CONTENT_LENGTH".into(), body_len.to_string()));
        }
        p
    }

    pub fn request(&self, method: &str, path: &str, query: &str, body: Vec<u8>, keep_conn: bool) -> Request {
        Request {
            params: self.params(method, path, query, body.len()),
            body,
            keep_conn,
            // IIS forwards the entity body in pieces as it reads it.
            stdin_chunk: 8192,
        }
    }

    fn start(&self, mode: Mode, tag: &str) -> Result<Child, String> {
        Child::spawn(&self.launch, mode, tag, false).map_err(|e| format!("spawn: {e}"))
    }

    /// This site with `overrides` of its settings and `WSGI_LOG` set to a file of the scenario's own folder
    /// (`<app dir>\fake-iis-sites\<mode>-<name>\wsgi.log`), configured the way the site is: through the
    /// environment, or (when the site has appSettings) through a web.config in that folder, which then is the
    /// scenario's `APPL_PHYSICAL_PATH` (the site's web.config is shared by every scenario). Returns the site and
    /// the log's path.
    fn variant(&self, mode: Mode, name: &str, overrides: &[(&str, &str)]) -> Result<(Site, PathBuf), String> {
        let dir = self
            .app_dir
            .join("fake-iis-sites")
            .join(format!("{}-{name}", mode.name()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let log = dir.join("wsgi.log");
        let log_value = log.display().to_string();
        let overrides: Vec<(&str, &str)> = overrides
            .iter()
            .copied()
            .chain(std::iter::once(("WSGI_LOG", log_value.as_str())))
            .collect();
        let apply = |settings: &mut Vec<(String, String)>| {
            settings.retain(|(k, _)| !overrides.iter().any(|(o, _)| k.eq_ignore_ascii_case(o)));
            settings.extend(overrides.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        };
        let mut site = self.clone();
        if self.app_settings.is_empty() {
            // A web.config left in the site folder (by an earlier run with --app-setting) would override the
            // environment and quietly undo the overrides.
            let stale = std::fs::read_dir(&self.app_dir).ok().and_then(|entries| {
                entries.flatten().find(|e| {
                    e.file_name()
                        .to_str()
                        .is_some_and(|n| n.eq_ignore_ascii_case("web.config"))
                })
            });
            if let Some(entry) = stale {
                return Err(format!(
                    "{} exists, and its appSettings would override the environment: give them with --app-setting \
                     or remove it",
                    entry.path().display()
                ));
            }
            apply(&mut site.launch.env);
        } else {
            apply(&mut site.app_settings);
            let path = dir.join("web.config");
            std::fs::write(&path, web_config(&site.app_settings, &site.script_processor))
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            site.physical_path = physical_path(&dir);
        }
        Ok((site, log))
    }
}

/// `APPL_PHYSICAL_PATH` for a folder, as IIS sends it: no `\\?\` prefix, a trailing backslash.
pub fn physical_path(dir: &Path) -> String {
    let mut path = dir.display().to_string();
    if let Some(stripped) = path.strip_prefix(r"\\?\") {
        path = stripped.to_owned();
    }
    if !path.ends_with('\\') {
        path.push('\\');
    }
    path
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A site's web.config: `settings` in `<appSettings>` and a wildcard FastCGI handler mapping.
pub fn web_config(settings: &[(String, String)], script_processor: &str) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>\r\n<configuration>\r\n  <appSettings>\r\n");
    for (k, v) in settings {
        out.push_str(&format!(
            "    <add key=\"{}\" value=\"{}\" />\r\n",
            xml_escape(k),
            xml_escape(v)
        ));
    }
    out.push_str(&format!(
        "  </appSettings>\r\n  <system.webServer>\r\n    <handlers>\r\n      <add name=\"FastCGI\" path=\"*\" \
         verb=\"*\" modules=\"FastCgiModule\" scriptProcessor=\"{}\" resourceType=\"Unspecified\" \
         requireAccess=\"Script\" responseBufferLimit=\"0\" />\r\n    </handlers>\r\n  </system.webServer>\r\n\
         </configuration>\r\n",
        xml_escape(script_processor)
    ));
    out
}

fn connect(child: &Child) -> Result<Client, String> {
    child.connect().map_err(|e| format!("connect: {e}"))
}

/// Sends a request and reads its response. A large request is written from another thread while the response
/// is read, as IIS does: the application may answer before it has read the whole body.
fn call(conn: &mut Client, id: u16, request: &Request) -> Result<Response, String> {
    let bytes = request.encode(id);
    if bytes.len() <= 32 * 1024 {
        conn.write_all(&bytes).map_err(|e| format!("request {id}: send: {e}"))?;
        return fcgi::read_response(conn, id).map_err(|e| format!("request {id}: {e}"));
    }
    let mut writer = conn.try_clone().map_err(|e| format!("clone: {e}"))?;
    let sending = std::thread::spawn(move || writer.write_all(&bytes));
    let response = fcgi::read_response(conn, id).map_err(|e| format!("request {id}: {e}"));
    let sent = sending.join().map_err(|_| "the writer thread panicked".to_owned())?;
    let response = response?;
    sent.map_err(|e| format!("request {id}: send: {e}"))?;
    Ok(response)
}

fn expect_ok(response: &Response, what: &str) -> Result<(), String> {
    if response.status() != 200 || response.protocol_status != 0 {
        return Err(format!(
            "{what}: status {} protocol_status {}; body {:?}; stderr {:?}",
            response.status(),
            response.protocol_status,
            snippet(&response.stdout),
            snippet(&response.stderr)
        ));
    }
    if !response.stderr.is_empty() {
        return Err(format!(
            "{what}: unexpected FCGI_STDERR {:?} (IIS would answer 500)",
            snippet(&response.stderr)
        ));
    }
    Ok(())
}

fn snippet(data: &[u8]) -> String {
    let text = String::from_utf8_lossy(&data[..data.len().min(400)]).into_owned();
    if data.len() > 400 {
        format!("{text}...")
    } else {
        text
    }
}

fn expect_line(response: &Response, name: &str, value: &str) -> Result<(), String> {
    match response.line(name) {
        Some(v) if v == value => Ok(()),
        other => Err(format!("/info: {name} = {other:?}, expected {value:?}")),
    }
}

/// Ends a scenario the way IIS ends a process that is done: on a pipe, by closing it (the process must exit 0
/// by itself); in TCP mode, where a closed connection is not the end, with the shutdown event.
fn finish(mut child: Child, conn: Client, detail: String) -> Outcome {
    drop(conn);
    if child.mode.is_pipe() {
        let (took, code) = child.time_exit(Duration::from_secs(3));
        return match code {
            Some(0) => Ok(detail),
            Some(code) => Err(format!("exited with {code} after the pipe closed")),
            None => Err(format!("still running {took:?} after the pipe closed")),
        };
    }
    child.signal_shutdown();
    let (took, code) = child.time_exit(EXIT_LIMIT * 3);
    match code {
        Some(0) if took <= EXIT_LIMIT => Ok(detail),
        Some(0) => Err(format!("exit took {took:?} after the shutdown event")),
        Some(code) => Err(format!("exited with {code} after the shutdown event")),
        None => Err(format!("still running {took:?} after the shutdown event")),
    }
}

fn get(site: &Site, mode: Mode) -> Outcome {
    let child = site.start(mode, "get")?;
    let mut conn = connect(&child)?;
    let r = call(
        &mut conn,
        1,
        &site.request("GET", "/info", "x=1&y=%C3%A9", Vec::new(), true),
    )?;
    expect_ok(&r, "GET /info")?;
    expect_line(&r, "method", "GET")?;
    expect_line(&r, "body_len", "0")?;
    expect_line(&r, "SERVER_SOFTWARE", "Microsoft-IIS/10.0")?;
    expect_line(&r, "APPL_PHYSICAL_PATH", &site.physical_path)?;
    expect_line(&r, "INSTANCE_META_PATH", "/LM/W3SVC/1")?;
    expect_line(&r, "QUERY_STRING", "x=1&y=%C3%A9")?;
    // The WSGI fixture also reports what `sys.stdin` reads: under IIS fd 0 is this very pipe, which pyfcgi hides.
    if r.line("python_stdin").is_some() {
        expect_line(&r, "python_stdin", "'' b''")?;
    }
    // A second request on the same connection.
    let r = call(&mut conn, 1, &site.request("GET", "/info", "", Vec::new(), true))?;
    expect_ok(&r, "second GET /info")?;
    finish(child, conn, "2 requests".into())
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

fn post(site: &Site, mode: Mode) -> Outcome {
    let child = site.start(mode, "post")?;
    let mut conn = connect(&child)?;
    let body = pattern(300_000);
    let started = Instant::now();
    let r = call(&mut conn, 1, &site.request("POST", "/echo", "", body.clone(), true))?;
    let took = started.elapsed();
    expect_ok(&r, "POST /echo")?;
    if r.body() != body {
        return Err(format!(
            "echoed {} bytes, sent {} (or they differ)",
            r.body().len(),
            body.len()
        ));
    }
    let r = call(&mut conn, 1, &site.request("POST", "/info", "", pattern(70_000), true))?;
    expect_ok(&r, "POST /info")?;
    expect_line(&r, "method", "POST")?;
    expect_line(&r, "body_len", "70000")?;
    finish(child, conn, format!("300000 bytes echoed in {} ms", took.as_millis()))
}

fn stream(site: &Site, mode: Mode) -> Outcome {
    let child = site.start(mode, "stream")?;
    let mut conn = connect(&child)?;
    // A first request loads the application (wfastcgi-style, on the first request), so the timing below is the
    // streaming's alone.
    let warm = call(&mut conn, 1, &site.request("GET", "/info", "", Vec::new(), true))?;
    expect_ok(&warm, "GET /info before streaming")?;
    let started = Instant::now();
    let r = call(
        &mut conn,
        1,
        &site.request("GET", "/stream", "n=5&ms=200", Vec::new(), true),
    )?;
    expect_ok(&r, "GET /stream")?;
    let text = r.text();
    let expected: String = (0..5).map(|i| format!("chunk {i}\n")).collect();
    if text != expected {
        return Err(format!("body {text:?}, expected {expected:?}"));
    }
    let (Some(first), Some(last)) = (r.arrivals.first(), r.arrivals.last()) else {
        return Err("no STDOUT records".into());
    };
    let first_at = first.0 - started;
    let spread = last.0 - first.0;
    if r.arrivals.len() < 5 || first_at > Duration::from_millis(600) || spread < Duration::from_millis(600) {
        return Err(format!(
            "not streamed: {} STDOUT records, first after {first_at:?}, last {spread:?} later",
            r.arrivals.len()
        ));
    }
    finish(
        child,
        conn,
        format!(
            "{} records, first after {} ms, spread over {} ms",
            r.arrivals.len(),
            first_at.as_millis(),
            spread.as_millis()
        ),
    )
}

fn many(site: &Site, mode: Mode) -> Outcome {
    let child = site.start(mode, "many")?;
    let mut conn = connect(&child)?;
    let n = 300;
    let started = Instant::now();
    for i in 0..n {
        if i % 2 == 0 {
            let r = call(
                &mut conn,
                1,
                &site.request("GET", "/info", &format!("i={i}"), Vec::new(), true),
            )?;
            expect_ok(&r, "GET /info")?;
            expect_line(&r, "QUERY_STRING", &format!("i={i}"))?;
        } else {
            let body = format!("request {i}").into_bytes();
            let r = call(&mut conn, 1, &site.request("POST", "/echo", "", body.clone(), true))?;
            expect_ok(&r, "POST /echo")?;
            if r.body() != body {
                return Err(format!("request {i}: echoed {:?}", snippet(r.body())));
            }
        }
    }
    let took = started.elapsed();
    finish(
        child,
        conn,
        format!(
            "{n} requests in {} ms ({:.0}/s)",
            took.as_millis(),
            f64::from(n) / took.as_secs_f64()
        ),
    )
}

fn get_values(site: &Site, mode: Mode) -> Outcome {
    let child = site.start(mode, "get_values")?;
    let mut conn = connect(&child)?;
    let values = fcgi::get_values(&mut conn, &["FCGI_MAX_CONNS", "FCGI_MAX_REQS", "FCGI_MPXS_CONNS"])
        .map_err(|e| format!("GET_VALUES: {e}"))?;
    let get = |name: &str| values.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    if get("FCGI_MAX_CONNS") != Some("1") || get("FCGI_MAX_REQS") != Some("1") || get("FCGI_MPXS_CONNS") != Some("0") {
        return Err(format!("GET_VALUES_RESULT {values:?}"));
    }
    let r = call(&mut conn, 1, &site.request("GET", "/info", "", Vec::new(), true))?;
    expect_ok(&r, "GET /info after GET_VALUES")?;
    finish(child, conn, format!("{values:?}"))
}

/// Reads after the response until the application ends the connection.
fn expect_disconnect(conn: &mut Client) -> Result<(), String> {
    let mut rest = Vec::new();
    loop {
        match fcgi::read_record(conn) {
            Ok(None) => return Ok(()),
            Ok(Some(record)) => rest.push(record.0),
            Err(e) => return Err(format!("waiting for the disconnect: {e} (records {rest:?})")),
        }
    }
}

fn reconnect(site: &Site, mode: Mode) -> Outcome {
    let child = site.start(mode, "reconnect")?;
    let rounds = 3;
    let started = Instant::now();
    for round in 0..rounds {
        let mut conn = connect(&child)?;
        let body = pattern(100_000 + round);
        let r = call(&mut conn, 1, &site.request("POST", "/echo", "", body.clone(), false))?;
        expect_ok(&r, &format!("round {round}"))?;
        if r.body() != body {
            return Err(format!(
                "round {round}: echoed {} of {} bytes",
                r.body().len(),
                body.len()
            ));
        }
        expect_disconnect(&mut conn).map_err(|e| format!("round {round}: {e}"))?;
    }
    let took = started.elapsed();
    let mut conn = connect(&child)?;
    let r = call(&mut conn, 1, &site.request("GET", "/info", "", Vec::new(), true))?;
    expect_ok(&r, "kept connection after the reconnects")?;
    expect_line(&r, "keep_conn", "true").or_else(|_| expect_line(&r, "method", "GET"))?;
    finish(
        child,
        conn,
        format!("{rounds} connections in {} ms, then a kept one", took.as_millis()),
    )
}

fn no_data(site: &Site, mode: Mode) -> Outcome {
    let child = Child::spawn(&site.launch, mode, "no_data", true).map_err(|e| format!("spawn: {e}"))?;
    let mut conn = connect(&child)?;
    let r = call(&mut conn, 1, &site.request("GET", "/info", "", Vec::new(), true))?;
    expect_ok(&r, "GET /info after an abandoned connection")?;
    finish(child, conn, "served after ERROR_NO_DATA".into())
}

fn eof_exit(site: &Site, mode: Mode) -> Outcome {
    let mut child = site.start(mode, "eof_exit")?;
    let mut conn = connect(&child)?;
    let r = call(&mut conn, 1, &site.request("GET", "/info", "", Vec::new(), true))?;
    expect_ok(&r, "GET /info")?;
    drop(conn);
    let (took, code) = child.time_exit(Duration::from_secs(3));
    match code {
        Some(0) => Ok(format!("exited 0 {} ms after the pipe closed", took.as_millis())),
        Some(code) => Err(format!("exit code {code}")),
        None => Err(format!("still running {took:?} after the pipe closed")),
    }
}

fn timed_shutdown(child: &mut Child, what: &str) -> Outcome {
    child.signal_shutdown();
    let (took, code) = child.time_exit(EXIT_LIMIT * 3);
    match code {
        Some(0) if took <= EXIT_LIMIT => Ok(format!("exited 0 {} ms after the event ({what})", took.as_millis())),
        Some(0) => Err(format!("exit took {took:?} ({what}); the limit is {EXIT_LIMIT:?}")),
        Some(code) => Err(format!("exit code {code} ({what})")),
        None => Err(format!("still running {took:?} after the event ({what})")),
    }
}

fn shutdown_idle(site: &Site, mode: Mode) -> Outcome {
    let mut child = site.start(mode, "shutdown_idle")?;
    let mut conn = connect(&child)?;
    let r = call(&mut conn, 1, &site.request("GET", "/info", "", Vec::new(), true))?;
    expect_ok(&r, "GET /info")?;
    std::thread::sleep(Duration::from_millis(200));
    let outcome = timed_shutdown(&mut child, "idle on a kept connection");
    drop(conn);
    outcome
}

fn shutdown_connect(site: &Site, mode: Mode) -> Outcome {
    let mut child = site.start(mode, "shutdown_connect")?;
    // One request without keep-conn, so the application goes back to waiting for a connection.
    let mut conn = connect(&child)?;
    let r = call(&mut conn, 1, &site.request("GET", "/info", "", Vec::new(), false))?;
    expect_ok(&r, "GET /info")?;
    expect_disconnect(&mut conn)?;
    drop(conn);
    std::thread::sleep(Duration::from_millis(200));
    if !child.running() {
        return Err("exited after a closed connection without keep-conn".into());
    }
    timed_shutdown(&mut child, "waiting for a connection")
}

fn shutdown_busy(site: &Site, mode: Mode) -> Outcome {
    let mut child = site.start(mode, "shutdown_busy")?;
    let mut conn = connect(&child)?;
    // A first request makes sure the process is serving (a slow start-up, such as Flask's first import under
    // Wine, must not turn this into a shutdown before any request was accepted).
    let warm = call(&mut conn, 1, &site.request("GET", "/info", "", Vec::new(), true))?;
    expect_ok(&warm, "GET /info before the slow request")?;
    let request = site.request("GET", "/sleep", "ms=1500", Vec::new(), true);
    conn.write_all(&request.encode(1)).map_err(|e| format!("send: {e}"))?;
    std::thread::sleep(Duration::from_millis(300));
    child.signal_shutdown();
    let signalled = Instant::now();
    let r = fcgi::read_response(&mut conn, 1).map_err(|e| format!("the request in flight was cut short: {e}"))?;
    let answered = signalled.elapsed();
    expect_ok(&r, "GET /sleep")?;
    if r.text().trim() != "slept" {
        return Err(format!("body {:?}", r.text()));
    }
    let (took, code) = child.time_exit(EXIT_LIMIT * 3);
    drop(conn);
    match code {
        Some(0) if took <= EXIT_LIMIT => Ok(format!(
            "response {} ms after the event, exit 0 {} ms after the response",
            answered.as_millis(),
            took.as_millis()
        )),
        Some(0) => Err(format!("exit took {took:?} after the response")),
        Some(code) => Err(format!("exit code {code}")),
        None => Err(format!("still running {took:?} after the response")),
    }
}

/// A 500 that IIS can pass on as it is: a CGI status of 500, a clean END_REQUEST, nothing on FCGI_STDERR (IIS would
/// show it, traceback and all, with its default `stderrMode`), and a body that gives nothing away: none of
/// `secrets`, no traceback.
fn expect_safe_500(response: &Response, what: &str, secrets: &[&str]) -> Result<(), String> {
    if response.status() != 500 || response.protocol_status != 0 {
        return Err(format!(
            "{what}: status {} protocol_status {}, expected 500 and 0; body {:?}",
            response.status(),
            response.protocol_status,
            snippet(&response.stdout)
        ));
    }
    if !response.stderr.is_empty() {
        return Err(format!(
            "{what}: FCGI_STDERR {:?} (IIS would show it to the client)",
            snippet(&response.stderr)
        ));
    }
    let body = response.text();
    if body.trim().is_empty() {
        return Err(format!("{what}: an empty 500 body"));
    }
    let lower = body.to_lowercase();
    for secret in secrets.iter().copied().chain(["Traceback", "File \""]) {
        if lower.contains(&secret.to_lowercase()) {
            return Err(format!(
                "{what}: the 500 body gives away {secret:?}: {:?}",
                snippet(body.as_bytes())
            ));
        }
    }
    Ok(())
}

/// The last lines of a log, for a failure message.
fn log_tail(path: &Path) -> String {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(25)..].join("\n     | ");
            format!("\n   {}:\n     | {tail}", path.display())
        }
        Err(e) => format!("\n   {}: {e}", path.display()),
    }
}

/// Waits (up to 3 s) until the log, from byte `from` on, contains every one of `needles`; returns the log's
/// length then.
fn wait_log(path: &Path, from: usize, needles: &[&str]) -> Result<usize, String> {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let text = std::fs::read(path).unwrap_or_default();
        let new = String::from_utf8_lossy(text.get(from..).unwrap_or_default());
        let missing: Vec<&str> = needles.iter().copied().filter(|n| !new.contains(n)).collect();
        if missing.is_empty() {
            return Ok(text.len());
        }
        if Instant::now() >= deadline {
            return Err(format!("WSGI_LOG lacks {missing:?}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn app_exception(site: &Site, mode: Mode) -> Outcome {
    let (site, log) = site.variant(mode, "app_exception", &[])?;
    app_exception_in(&site, mode, &log).map_err(|e| e + &log_tail(&log))
}

fn app_exception_in(site: &Site, mode: Mode, log: &Path) -> Outcome {
    let child = site.start(mode, "app_exception")?;
    let mut conn = connect(&child)?;
    // The application is loaded by a first request; its start-up is not what is tested here.
    let r = call(&mut conn, 1, &site.request("GET", "/info", "", Vec::new(), true))?;
    expect_ok(&r, "GET /info")?;
    let mut seen = 0;
    for (escape, handler) in [(false, "Flask"), (true, "pyfcgi")] {
        let msg = format!("boom-{}-{handler}", mode.name());
        let query = if escape {
            format!("msg={msg}&escape=1")
        } else {
            format!("msg={msg}")
        };
        let what = format!("GET /raise?{query} (handled by {handler})");
        let r = call(&mut conn, 1, &site.request("GET", "/raise", &query, Vec::new(), true))?;
        expect_safe_500(&r, &what, &[msg.as_str(), "FixtureError", "fixture exception"])?;
        seen = wait_log(
            log,
            seen,
            &[
                "Traceback (most recent call last)",
                format!("FixtureError: fixture exception: {msg}").as_str(),
            ],
        )
        .map_err(|e| format!("{what}: {e}"))?;
        // The connection is kept and the next request is served normally.
        let r = call(
            &mut conn,
            1,
            &site.request("GET", "/info", "after=raise", Vec::new(), true),
        )?;
        expect_ok(&r, &format!("GET /info after {what}"))?;
        expect_line(&r, "QUERY_STRING", "after=raise")?;
    }
    finish(
        child,
        conn,
        "safe 500s from Flask's and pyfcgi's handlers, tracebacks in WSGI_LOG, then 200s".into(),
    )
}

fn bad_handler(site: &Site, mode: Mode) -> Outcome {
    let (site, log) = site.variant(mode, "bad_handler", &[("WSGI_HANDLER", "nosuchmodule.app")])?;
    bad_handler_in(&site, mode, &log).map_err(|e| e + &log_tail(&log))
}

fn bad_handler_in(site: &Site, mode: Mode, log: &Path) -> Outcome {
    let mut child = site.start(mode, "bad_handler")?;
    let mut conn = connect(&child)?;
    let mut seen = 0;
    for round in 1..=2 {
        let what = format!("request {round} with WSGI_HANDLER=nosuchmodule.app");
        let r = call(&mut conn, 1, &site.request("GET", "/info", "", Vec::new(), true))?;
        expect_safe_500(&r, &what, &["nosuchmodule", "could not be imported"])?;
        seen =
            wait_log(log, seen, &["\"nosuchmodule.app\" could not be imported"]).map_err(|e| format!("{what}: {e}"))?;
        std::thread::sleep(Duration::from_millis(100));
        if !child.running() {
            return Err(format!(
                "{what}: the process exited ({:?}); a failed load must not end it",
                child.wait_exit(Duration::ZERO)
            ));
        }
    }
    let outcome = timed_shutdown(&mut child, "after two failed loads, idle on a kept connection");
    drop(conn);
    outcome.map(|detail| format!("2 safe 500s, the process stayed up; {detail}"))
}
