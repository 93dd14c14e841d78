//! Real front servers from Debian's packages — nginx (`nginx-light`), lighttpd, Apache httpd (`apache2`,
//! `libapache2-mod-fcgid`) — started as the test's own foreground processes with generated configurations in a
//! scratch directory, on a free loopback port, logs beside the configuration. `start` returns once the server
//! answers on its port (checked with a per-instance token at `/__frontend_ready__`, so a port that someone else
//! grabbed in the meantime is detected and another one tried); drop stops the server and everything it spawned.
//!
//! A missing server binary is a test failure naming the package to install, never a skip.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::{find_program, http, with_port_retries, Scratch, ServerProcess, Spawn, StartError, Upstream};

/// The path every front server answers itself with its instance token, for the readiness check.
pub const READY_PATH: &str = "/__frontend_ready__";

/// What the tests need of any front server.
pub trait Frontend {
    /// The loopback port it listens on.
    fn port(&self) -> u16;
    /// Everything its logs say (error log, access log, captured output).
    fn logs(&self) -> String;
    /// Its main process (nginx master, lighttpd, Apache parent).
    fn pid(&self) -> u32;
}

/// The accessors every front server shares: each keeps its process, port and scratch directory.
macro_rules! frontend_accessors {
    ($($server:ty),+) => {$(
        impl $server {
            pub fn dir(&self) -> &Path {
                self.dir.path()
            }
        }

        impl Frontend for $server {
            fn port(&self) -> u16 {
                self.port
            }
            fn logs(&self) -> String {
                self.process.log_text()
            }
            fn pid(&self) -> u32 {
                self.process.pid()
            }
        }
    )+};
}

frontend_accessors!(Nginx, Lighttpd, Apache);

fn token(name: &str, port: u16) -> String {
    format!("ready-{name}-{}-{port}", std::process::id())
}

/// Waits until `process` answers `token` on `port`; a different answer or a bind failure means the port is taken.
/// Starts a front server whose output goes to `NAME.out` and whose logs are `error.log` and `access.log` in its
/// scratch directory, and returns once it answers with its readiness token.
fn spawn_ready(
    name: &str,
    command: Command,
    dir: &Scratch,
    port: u16,
    token: &str,
) -> Result<ServerProcess, StartError> {
    let mut process = ServerProcess::spawn(
        name,
        command,
        &dir.join(&format!("{name}.out")),
        &[dir.join("error.log"), dir.join("access.log")],
    );
    wait_ready(&mut process, port, token, Duration::from_secs(15))?;
    Ok(process)
}

fn wait_ready(process: &mut ServerProcess, port: u16, token: &str, timeout: Duration) -> Result<(), StartError> {
    let deadline = Instant::now() + timeout;
    loop {
        if process.exited().is_some() {
            let logs = process.log_text();
            if logs.contains("Address already in use") || logs.contains("(98)") {
                return Err(StartError::PortInUse);
            }
            return Err(StartError::Failed(format!("it exited early:\n{}", process.log_tail())));
        }
        match http::probe(port, READY_PATH) {
            Ok(answer) if answer.status == 200 && answer.text().contains(token) => return Ok(()),
            // Some other server answers on this port.
            Ok(_) => return Err(StartError::PortInUse),
            Err(_) => {}
        }
        if Instant::now() > deadline {
            return Err(StartError::Failed(format!(
                "no answer on port {port} within {timeout:?}:\n{}",
                process.log_tail()
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn quoted(path: &Path) -> String {
    let text = path.display().to_string();
    assert!(!text.contains('"'), "path {text} contains a double quote");
    text
}

// ---------------------------------------------------------------------------------------------------------------
// nginx

/// The parameters of Debian's `/etc/nginx/fastcgi_params`, written inline so the tests do not depend on /etc.
pub fn debian_fastcgi_params() -> Vec<(String, String)> {
    [
        ("QUERY_STRING", "$query_string"),
        ("REQUEST_METHOD", "$request_method"),
        ("CONTENT_TYPE", "$content_type"),
        ("CONTENT_LENGTH", "$content_length"),
        ("SCRIPT_NAME", "$fastcgi_script_name"),
        ("REQUEST_URI", "$request_uri"),
        ("DOCUMENT_URI", "$document_uri"),
        ("DOCUMENT_ROOT", "$document_root"),
        ("SERVER_PROTOCOL", "$server_protocol"),
        ("REQUEST_SCHEME", "$scheme"),
        ("HTTPS", "$https if_not_empty"),
        ("GATEWAY_INTERFACE", "CGI/1.1"),
        ("SERVER_SOFTWARE", "nginx/$nginx_version"),
        ("REMOTE_ADDR", "$remote_addr"),
        ("REMOTE_PORT", "$remote_port"),
        ("REMOTE_USER", "$remote_user"),
        ("SERVER_ADDR", "$server_addr"),
        ("SERVER_PORT", "$server_port"),
        ("SERVER_NAME", "$server_name"),
        ("REDIRECT_STATUS", "200"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// How nginx is set up in front of a FastCGI application.
#[derive(Debug, Clone)]
pub struct NginxConfig {
    /// Where `fastcgi_pass` goes (through an `upstream` block).
    pub upstream: Upstream,
    /// `keepalive N` in the upstream block together with `fastcgi_keep_conn on`; `None` for neither.
    pub keepalive: Option<u32>,
    /// `fastcgi_request_buffering` (nginx default: on). Off streams the body to the application as it arrives.
    pub request_buffering: bool,
    /// `fastcgi_buffering` (nginx default: on). Off sends the answer to the client as it arrives.
    pub response_buffering: bool,
    /// `client_max_body_size`.
    pub client_max_body_size: String,
    /// `location /static/ { alias DIR/; }` when set.
    pub static_dir: Option<PathBuf>,
    /// `fastcgi_param` lines (the value is written as is, so it may use nginx variables and `if_not_empty`).
    pub params: Vec<(String, String)>,
    /// Extra directives for the FastCGI `location /` block.
    pub extra_location: String,
}

impl NginxConfig {
    /// Keep-alive upstream (8 connections), buffering on both ways as nginx's defaults, Debian's parameters.
    pub fn new(upstream: Upstream) -> Self {
        Self {
            upstream,
            keepalive: Some(8),
            request_buffering: true,
            response_buffering: true,
            client_max_body_size: "64m".into(),
            static_dir: None,
            params: debian_fastcgi_params(),
            extra_location: String::new(),
        }
    }

    /// Both buffering directives off: bodies stream both ways.
    pub fn streaming(mut self) -> Self {
        self.request_buffering = false;
        self.response_buffering = false;
        self
    }

    pub fn keepalive(mut self, connections: Option<u32>) -> Self {
        self.keepalive = connections;
        self
    }

    pub fn static_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.static_dir = Some(dir.into());
        self
    }

    /// Sets a parameter, replacing one of the same name (nginx would otherwise send both).
    pub fn param(mut self, name: &str, value: &str) -> Self {
        self.params.retain(|(n, _)| n != name);
        self.params.push((name.to_owned(), value.to_owned()));
        self
    }

    fn render(&self, dir: &Path, port: u16, token: &str) -> String {
        let on = |b: bool| if b { "on" } else { "off" };
        let d = quoted(dir);
        let server = match &self.upstream {
            Upstream::Tcp(addr) => addr.to_string(),
            Upstream::Unix(path) => format!("unix:{}", quoted(path)),
        };
        let mut conf = format!(
            r#"daemon off;
master_process on;
worker_processes 1;
user root;
pid "{d}/nginx.pid";
error_log "{d}/error.log" info;
events {{ worker_connections 512; }}
http {{
    access_log "{d}/access.log";
    client_body_temp_path "{d}/tmp/body";
    fastcgi_temp_path "{d}/tmp/fastcgi";
    proxy_temp_path "{d}/tmp/proxy";
    scgi_temp_path "{d}/tmp/scgi";
    uwsgi_temp_path "{d}/tmp/uwsgi";
    default_type application/octet-stream;
    client_max_body_size {max_body};
    upstream app {{
        server {server};
"#,
            max_body = self.client_max_body_size,
        );
        if let Some(n) = self.keepalive {
            let _ = writeln!(conf, "        keepalive {n};");
        }
        let _ = write!(
            conf,
            r#"    }}
    server {{
        listen 127.0.0.1:{port};
        server_name localhost;
        location = {READY_PATH} {{ default_type text/plain; return 200 "{token}"; }}
"#
        );
        if let Some(static_dir) = &self.static_dir {
            let _ = writeln!(
                conf,
                "        location /static/ {{ alias \"{}/\"; }}",
                quoted(static_dir).trim_end_matches('/')
            );
        }
        let _ = writeln!(conf, "        location / {{");
        let _ = writeln!(conf, "            fastcgi_pass app;");
        let _ = writeln!(conf, "            fastcgi_keep_conn {};", on(self.keepalive.is_some()));
        let _ = writeln!(
            conf,
            "            fastcgi_request_buffering {};",
            on(self.request_buffering)
        );
        let _ = writeln!(conf, "            fastcgi_buffering {};", on(self.response_buffering));
        for (name, value) in &self.params {
            let _ = writeln!(conf, "            fastcgi_param {name} {value};");
        }
        conf.push_str(&self.extra_location);
        conf.push_str("\n        }\n    }\n}\n");
        conf
    }
}

/// A running nginx (master and one worker, as root so Unix sockets of any mode are reachable).
pub struct Nginx {
    process: ServerProcess,
    port: u16,
    dir: Scratch,
}

impl Nginx {
    pub fn start(config: NginxConfig) -> Self {
        let nginx = find_program("nginx", "PYFCGI_E2E_NGINX", "nginx-light");
        with_port_retries("nginx", |port| {
            let dir = Scratch::new("nginx");
            dir.mkdir("tmp");
            let token = token("nginx", port);
            let conf = dir.write("nginx.conf", config.render(dir.path(), port, &token));
            let mut command = Command::new(&nginx);
            command
                .arg("-p")
                .arg(dir.path())
                .arg("-e")
                .arg(dir.join("error.log"))
                .arg("-c")
                .arg(&conf);
            let process = spawn_ready("nginx", command, &dir, port, &token)?;
            Ok(Self { process, port, dir })
        })
    }
}

// ---------------------------------------------------------------------------------------------------------------
// lighttpd

/// Where lighttpd's `mod_fastcgi` gets its application from.
#[derive(Debug, Clone)]
pub enum LighttpdBackend {
    /// `bin-path`: lighttpd spawns the program with a listening Unix socket (`socket` in the scratch dir) on fd 0,
    /// `max-procs` 1, environment exactly `bin-environment` (lighttpd clears the rest).
    Spawn(Spawn),
    /// `host`/`port` or `socket` of an application that listens by itself.
    Connect(Upstream),
}

/// How lighttpd is set up in front of a FastCGI application.
#[derive(Debug, Clone)]
pub struct LighttpdConfig {
    pub backend: LighttpdBackend,
    /// The `fastcgi.server` prefix (default `/`).
    pub prefix: String,
    /// `check-local` (default false: `"disable"`, the application answers for paths with no file).
    pub check_local: bool,
    /// `server.stream-request-body` and `server.stream-response-body` = 2 (default false: lighttpd buffers).
    pub streaming: bool,
    /// `alias.url = ("/static/" => "DIR/")`, excluded from FastCGI.
    pub static_dir: Option<PathBuf>,
    /// Extra `"key" => value` entries for the FastCGI host, written as is (e.g. `"fix-root-scriptname" => "enable"`).
    pub host_options: Vec<String>,
}

impl LighttpdConfig {
    pub fn new(backend: LighttpdBackend) -> Self {
        Self {
            backend,
            prefix: "/".into(),
            check_local: false,
            streaming: false,
            static_dir: None,
            host_options: Vec::new(),
        }
    }

    pub fn spawn(program: Spawn) -> Self {
        Self::new(LighttpdBackend::Spawn(program))
    }

    pub fn streaming(mut self) -> Self {
        self.streaming = true;
        self
    }

    pub fn static_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.static_dir = Some(dir.into());
        self
    }

    fn render(&self, dir: &Path, port: u16) -> String {
        let d = quoted(dir);
        let stream = if self.streaming { 2 } else { 0 };
        let mut host = Vec::new();
        match &self.backend {
            LighttpdBackend::Spawn(spawn) => {
                host.push(format!("\"socket\" => \"{d}/fcgi.sock\""));
                host.push(format!("\"bin-path\" => \"{}\"", spawn.command_line()));
                host.push("\"max-procs\" => 1".into());
                let env: Vec<String> = spawn
                    .env
                    .iter()
                    .map(|(k, v)| {
                        assert!(!k.contains('"') && !v.contains('"'), "quote in bin-environment");
                        format!("\"{k}\" => \"{v}\"")
                    })
                    .collect();
                host.push(format!("\"bin-environment\" => ( {} )", env.join(", ")));
            }
            LighttpdBackend::Connect(Upstream::Tcp(addr)) => {
                host.push(format!("\"host\" => \"{}\"", addr.ip()));
                host.push(format!("\"port\" => {}", addr.port()));
            }
            LighttpdBackend::Connect(Upstream::Unix(path)) => {
                host.push(format!("\"socket\" => \"{}\"", quoted(path)));
            }
        }
        host.push(format!(
            "\"check-local\" => \"{}\"",
            if self.check_local { "enable" } else { "disable" }
        ));
        host.extend(self.host_options.iter().cloned());
        let mut conf = format!(
            r#"server.modules = ( "mod_access", "mod_alias", "mod_fastcgi", "mod_accesslog" )
server.document-root = "{d}/htdocs"
server.bind = "127.0.0.1"
server.port = {port}
server.errorlog = "{d}/error.log"
accesslog.filename = "{d}/access.log"
server.upload-dirs = ( "{d}/uploads" )
server.max-request-size = 65536
server.stream-request-body = {stream}
server.stream-response-body = {stream}
server.max-worker = 0
"#
        );
        if let Some(static_dir) = &self.static_dir {
            let _ = writeln!(
                conf,
                "alias.url = ( \"/static/\" => \"{}/\" )",
                quoted(static_dir).trim_end_matches('/')
            );
        }
        let _ = write!(
            conf,
            r#"$HTTP["url"] !~ "^({READY_PATH}|/static/)" {{
    fastcgi.server = ( "{prefix}" => ( "app" => ( {host} ) ) )
}}
"#,
            prefix = self.prefix,
            host = host.join(", "),
        );
        conf
    }
}

/// A running lighttpd (`lighttpd -D -f CONF`).
pub struct Lighttpd {
    process: ServerProcess,
    port: u16,
    dir: Scratch,
}

impl Lighttpd {
    pub fn start(config: LighttpdConfig) -> Self {
        let lighttpd = find_program("lighttpd", "PYFCGI_E2E_LIGHTTPD", "lighttpd");
        with_port_retries("lighttpd", |port| {
            let dir = Scratch::new("lighttpd");
            dir.mkdir("htdocs");
            dir.mkdir("uploads");
            let token = token("lighttpd", port);
            dir.write(&format!("htdocs{READY_PATH}"), &token);
            let conf = dir.write("lighttpd.conf", config.render(dir.path(), port));
            let mut command = Command::new(&lighttpd);
            command.arg("-D").arg("-f").arg(&conf);
            let process = spawn_ready("lighttpd", command, &dir, port, &token)?;
            Ok(Self { process, port, dir })
        })
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Apache httpd

/// How Apache reaches the FastCGI application.
#[derive(Debug, Clone)]
pub enum ApacheBackend {
    /// `mod_proxy_fcgi`: `ProxyPass "/" "fcgi://HOST:PORT/"` or `"unix:PATH|fcgi://localhost/"`. `enablereuse`
    /// keeps connections to the application open between requests.
    ProxyFcgi { upstream: Upstream, enablereuse: bool },
    /// `mod_fcgid`: spawns the program (`FcgidWrapper "CMD" virtual` on `/`) with a listening Unix socket on fd 0,
    /// one process at most, `FcgidInitialEnv` for the environment.
    Fcgid(Spawn),
}

/// How Apache is set up.
#[derive(Debug, Clone)]
pub struct ApacheConfig {
    pub backend: ApacheBackend,
    /// `flushpackets=on` (proxy_fcgi) / `FcgidOutputBufferSize 0` (fcgid): answers stream to the client.
    pub streaming: bool,
    /// `Alias "/static/" "DIR/"`, excluded from FastCGI.
    pub static_dir: Option<PathBuf>,
    /// `LogLevel` (default `warn`; e.g. `"warn proxy_fcgi:trace1"`).
    pub log_level: String,
    /// Extra configuration lines, appended at the end.
    pub extra: String,
}

impl ApacheConfig {
    pub fn new(backend: ApacheBackend) -> Self {
        Self {
            backend,
            streaming: false,
            static_dir: None,
            log_level: "warn".into(),
            extra: String::new(),
        }
    }

    pub fn proxy_fcgi(upstream: Upstream) -> Self {
        Self::new(ApacheBackend::ProxyFcgi {
            upstream,
            enablereuse: false,
        })
    }

    pub fn fcgid(program: Spawn) -> Self {
        Self::new(ApacheBackend::Fcgid(program))
    }

    pub fn streaming(mut self) -> Self {
        self.streaming = true;
        self
    }

    pub fn static_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.static_dir = Some(dir.into());
        self
    }

    fn render(&self, dir: &Path, port: u16, modules: &Path) -> String {
        let d = quoted(dir);
        let m = quoted(modules);
        let mut conf = format!(
            r#"ServerRoot "{d}"
DefaultRuntimeDir "{d}/run"
PidFile "{d}/run/httpd.pid"
Mutex file:{d}/run default
ErrorLog "{d}/error.log"
LogLevel {log_level}
LogFormat "%h \"%r\" %>s %b %D" timed
CustomLog "{d}/access.log" timed
Listen 127.0.0.1:{port}
ServerName 127.0.0.1
User www-data
Group www-data
LoadModule mpm_event_module "{m}/mod_mpm_event.so"
StartServers 1
ServerLimit 2
ThreadsPerChild 16
MaxRequestWorkers 32
MinSpareThreads 1
MaxSpareThreads 32
LoadModule authz_core_module "{m}/mod_authz_core.so"
LoadModule alias_module "{m}/mod_alias.so"
LoadModule proxy_module "{m}/mod_proxy.so"
LoadModule proxy_fcgi_module "{m}/mod_proxy_fcgi.so"
DocumentRoot "{d}/htdocs"
<Directory />
    AllowOverride None
    Require all denied
</Directory>
<Directory "{d}/htdocs">
    Require all granted
</Directory>
"#,
            log_level = self.log_level,
        );
        if let Some(static_dir) = &self.static_dir {
            let s = quoted(static_dir);
            let s = s.trim_end_matches('/');
            let _ = write!(
                conf,
                "Alias \"/static/\" \"{s}/\"\n<Directory \"{s}\">\n    Require all granted\n</Directory>\n"
            );
        }
        match &self.backend {
            ApacheBackend::ProxyFcgi { upstream, enablereuse } => {
                let target = match upstream {
                    Upstream::Tcp(addr) => format!("fcgi://{addr}/"),
                    Upstream::Unix(path) => format!("unix:{}|fcgi://localhost/", quoted(path)),
                };
                let mut options = Vec::new();
                if *enablereuse {
                    options.push("enablereuse=on");
                }
                if self.streaming {
                    options.push("flushpackets=on");
                }
                let _ = write!(
                    conf,
                    "ProxyPass \"{READY_PATH}\" \"!\"\nProxyPass \"/static/\" \"!\"\nProxyPass \"/\" \"{target}\" {}\n",
                    options.join(" ")
                );
            }
            ApacheBackend::Fcgid(spawn) => {
                let _ = writeln!(conf, "LoadModule fcgid_module \"{m}/mod_fcgid.so\"");
                let _ = write!(
                    conf,
                    r#"FcgidIPCDir "{d}/fcgid"
FcgidProcessTableFile "{d}/fcgid/shm"
FcgidMaxProcessesPerClass 1
FcgidMaxProcesses 4
FcgidMinProcessesPerClass 0
FcgidMaxRequestLen 67108864
FcgidMaxRequestInMem 65536
FcgidIOTimeout 60
FcgidConnectTimeout 10
"#
                );
                if self.streaming {
                    conf.push_str("FcgidOutputBufferSize 0\n");
                }
                for (name, value) in &spawn.env {
                    assert!(
                        !value.contains(char::is_whitespace),
                        "FcgidInitialEnv value with whitespace"
                    );
                    let _ = writeln!(conf, "FcgidInitialEnv {name} {value}");
                }
                let _ = write!(
                    conf,
                    r#"<Location "/">
    SetHandler fcgid-script
    Options +ExecCGI
    FcgidWrapper "{command}" virtual
</Location>
<Location "{READY_PATH}">
    SetHandler none
</Location>
<Location "/static/">
    SetHandler none
</Location>
"#,
                    command = spawn.command_line(),
                );
            }
        }
        conf.push_str(&self.extra);
        conf.push('\n');
        conf
    }
}

/// A running Apache httpd (`apache2 -f CONF -DFOREGROUND`, event MPM, children as `www-data`), with a
/// self-contained configuration: no `/etc/apache2`, no `APACHE_*` variables.
pub struct Apache {
    process: ServerProcess,
    port: u16,
    dir: Scratch,
}

impl Apache {
    pub fn start(config: ApacheConfig) -> Self {
        let apache = find_program("apache2", "PYFCGI_E2E_APACHE", "apache2");
        let modules = PathBuf::from(
            std::env::var_os("PYFCGI_E2E_APACHE_MODULES").unwrap_or_else(|| "/usr/lib/apache2/modules".into()),
        );
        for module in ["mod_mpm_event.so", "mod_proxy_fcgi.so"] {
            assert!(
                modules.join(module).is_file(),
                "{} is missing: `apt-get install apache2`",
                modules.join(module).display()
            );
        }
        if matches!(config.backend, ApacheBackend::Fcgid(_)) {
            assert!(
                modules.join("mod_fcgid.so").is_file(),
                "{} is missing: `apt-get install libapache2-mod-fcgid`",
                modules.join("mod_fcgid.so").display()
            );
        }
        with_port_retries("apache", |port| {
            let dir = Scratch::new("apache");
            dir.mkdir("htdocs");
            dir.mkdir("run");
            let token = token("apache", port);
            dir.write(&format!("htdocs{READY_PATH}"), &token);
            let conf = dir.write("httpd.conf", config.render(dir.path(), port, &modules));
            let mut command = Command::new(&apache);
            command
                .arg("-d")
                .arg(dir.path())
                .arg("-f")
                .arg(&conf)
                .arg("-DFOREGROUND")
                .env("LANG", "C");
            let process = spawn_ready("apache", command, &dir, port, &token)?;
            Ok(Self { process, port, dir })
        })
    }
}
