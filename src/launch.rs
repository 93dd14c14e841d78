//! Starting to serve: picks where connections come from (`--bind`, a listening socket inherited on fd 0, or on
//! Windows the IIS pipe), builds the server configuration from the command line, installs the stop signals and
//! runs the server with a given handler. Shared by the `pyfcgi` binary and the Rust-only responders used in tests
//! and benchmarks, so they all exercise the same start-up path.

use std::sync::Arc;
use std::time::Duration;

use crate::protocol::Limits;
use crate::server::{Handler, ServerConfig, Shutdown};
use crate::transport::{BindAddress, PeerFilter};

/// Server options of the command line.
#[derive(clap::Args, Debug, Clone)]
pub struct ServeOptions {
    /// Listen on HOST:PORT or unix:/path instead of the socket a web server passes on fd 0.
    #[arg(long, value_name = "ADDRESS", env = "PYFCGI_BIND")]
    pub bind: Option<BindAddress>,
    /// Worker threads: how many requests run at once. Python runs one thread at a time (the GIL), so more workers
    /// help only applications that wait (databases, upstream HTTP, long streams); for CPU-bound apps one worker
    /// is fastest, and processes (several pyfcgi behind the web server) add CPU.
    #[arg(long, value_name = "N", env = "PYFCGI_WORKERS", default_value_t = 1)]
    pub workers: usize,
    /// Most connections held open at once (reported to the web server as FCGI_MAX_CONNS). At the limit a new
    /// connection closes the one idle longest.
    #[arg(long, value_name = "N", env = "PYFCGI_MAX_CONNS", default_value_t = 1024)]
    pub max_conns: usize,
    /// Length of the listen queue for --bind (and, when given, for the socket inherited on fd 0). Default: the
    /// system's maximum (/proc/sys/net/core/somaxconn), so bursts of new connections are not dropped.
    #[arg(long, value_name = "N", env = "PYFCGI_BACKLOG")]
    pub backlog: Option<u32>,
    /// Seconds a kept connection may wait for its next request before pyfcgi closes it (0: never). Front servers
    /// reopen kept connections as needed.
    #[arg(long, value_name = "SECONDS", env = "PYFCGI_IDLE_TIMEOUT", default_value_t = 300)]
    pub idle_timeout: u64,
    /// Permissions of the socket file for --bind unix:/path, in octal.
    #[arg(long, value_name = "MODE", env = "PYFCGI_SOCKET_MODE", default_value = "660", value_parser = parse_octal)]
    pub socket_mode: u32,
    /// Seconds a graceful stop (SIGTERM, SIGINT, IIS shutdown event) waits for requests in flight.
    #[arg(long, value_name = "SECONDS", env = "PYFCGI_SHUTDOWN_TIMEOUT", default_value_t = 30)]
    pub shutdown_timeout: u64,
    /// Largest total size of a request's FastCGI parameters, in bytes.
    #[arg(long, value_name = "BYTES", env = "PYFCGI_MAX_PARAMS_BYTES", default_value_t = 1024 * 1024)]
    pub max_params_bytes: usize,
}

fn parse_octal(value: &str) -> Result<u32, String> {
    u32::from_str_radix(value.trim_start_matches("0o"), 8)
        .ok()
        .filter(|mode| *mode <= 0o7777)
        .ok_or_else(|| format!("`{value}` is not an octal file mode such as 660"))
}

/// Why serving could not start.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("invalid FCGI_WEB_SERVER_ADDRS: {0}")]
    PeerFilter(String),
    #[error(
        "no --bind address was given and fd 0 is not a listening socket: start pyfcgi from a FastCGI web \
         server (lighttpd bin-path, Apache mod_fcgid, spawn-fcgi, IIS) or pass --bind HOST:PORT or unix:/path"
    )]
    NoListener,
    #[cfg(unix)]
    #[error(transparent)]
    Listen(#[from] crate::transport::unix::ListenError),
    #[cfg(windows)]
    #[error(
        "{0}: pyfcgi expects to be started by IIS's FastCGI module, which passes the server end of a named pipe \
         (or a listening socket) as the stdin handle; register it with a FastCGI handler mapping"
    )]
    NotUnderIis(String),
    #[cfg(windows)]
    #[error("--bind is not supported on Windows: under IIS the connection comes from the stdin handle")]
    BindUnsupported,
    #[cfg(windows)]
    #[error(transparent)]
    Iis(std::io::Error),
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    #[error("server failed: {0}")]
    Serve(std::io::Error),
}

impl ServeOptions {
    /// The server configuration these options describe.
    ///
    /// # Errors
    /// When `FCGI_WEB_SERVER_ADDRS` is malformed.
    pub fn server_config(&self) -> Result<ServerConfig, LaunchError> {
        let peer_filter = PeerFilter::parse(std::env::var("FCGI_WEB_SERVER_ADDRS").ok().as_deref())
            .map_err(LaunchError::PeerFilter)?;
        Ok(ServerConfig {
            workers: self.workers.max(1),
            max_conns: self.max_conns.max(1),
            limits: Limits {
                max_params_bytes: self.max_params_bytes,
                ..Limits::default()
            },
            idle_timeout: (self.idle_timeout > 0).then(|| Duration::from_secs(self.idle_timeout)),
            shutdown_timeout: Duration::from_secs(self.shutdown_timeout),
            peer_filter,
        })
    }
}

/// Serves until stopped by a signal (or `shutdown` being triggered by the caller).
///
/// # Errors
/// See [`LaunchError`].
#[cfg(unix)]
pub fn serve(options: &ServeOptions, handler: Arc<dyn Handler>, shutdown: Shutdown) -> Result<(), LaunchError> {
    use crate::transport::unix::Listener;
    use crate::transport::unix::{reserve_descriptors, system_backlog};
    let config = options.server_config()?;
    let listener = match &options.bind {
        Some(address) => Listener::bind(
            address,
            options.socket_mode,
            options.backlog.unwrap_or_else(system_backlog),
        )?,
        None if Listener::fd0_is_listener() => Listener::from_fd0(options.backlog)?,
        None => return Err(LaunchError::NoListener),
    };
    let descriptors = reserve_descriptors(config.max_conns);
    tracing::debug!(
        descriptors,
        backlog = options.backlog,
        "descriptor table sized at start-up"
    );
    shutdown.install_signal_handlers().map_err(LaunchError::Signals)?;
    crate::server::pool::serve(listener, handler, config, shutdown).map_err(LaunchError::Serve)
}

/// Serves IIS until it closes the pipe or signals `_FCGI_SHUTDOWN_EVENT_` (or `shutdown` is triggered by the
/// caller). IIS passes the connection as the stdin handle and sends one request at a time per process, so
/// connections are served one after another on the calling thread, inside the handler's worker context.
///
/// # Errors
/// See [`LaunchError`].
#[cfg(windows)]
pub fn serve(options: &ServeOptions, handler: Arc<dyn Handler>, shutdown: Shutdown) -> Result<(), LaunchError> {
    use crate::protocol::ManagementValues;
    use crate::server::{serve_connection, Conn};
    use crate::transport::windows::{IisError, IisListener};

    if options.bind.is_some() {
        return Err(LaunchError::BindUnsupported);
    }
    let config = options.server_config()?;
    let listener = IisListener::from_stdin(&shutdown, config.peer_filter.clone()).map_err(|e| match e {
        IisError::NotIis(why) => LaunchError::NotUnderIis(why),
        IisError::Setup(err) => LaunchError::Iis(err),
    })?;
    // What this process really does: one connection, one request at a time.
    let values = ManagementValues {
        max_conns: 1,
        max_reqs: 1,
        mpxs_conns: false,
    };
    let mut result = Ok(());
    handler.run_worker(&mut |suspend| {
        result = loop {
            let mut accepted = None;
            suspend.suspend(&mut || accepted = Some(listener.accept()));
            let (stream, state) = match accepted {
                Some(Ok(Some(connection))) => connection,
                Some(Ok(None)) | None => break Ok(()),
                Some(Err(err)) => {
                    // Under IIS nobody sees stderr: say it in the log too.
                    tracing::error!(%err, mode = listener.mode(), "waiting for a connection failed; exiting");
                    break Err(LaunchError::Serve(err));
                }
            };
            let conn = Conn::new(Box::new(stream), config.limits, values);
            serve_connection(conn, handler.as_ref(), &shutdown, suspend);
            if !listener.after_connection(&state, &shutdown) {
                break Ok(());
            }
        };
    });
    tracing::info!(mode = listener.mode(), "stopped");
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn octal_modes_parse() {
        assert_eq!(parse_octal("660"), Ok(0o660));
        assert_eq!(parse_octal("0o666"), Ok(0o666));
        assert!(parse_octal("999").is_err());
        assert!(parse_octal("77777").is_err());
    }
}
