//! Starting to serve: picks where connections come from (`--bind`, a listening socket inherited on fd 0, or on
//! Windows the IIS pipe), builds the server configuration from the command line, installs the stop signals and
//! runs the server with a given handler. Shared by the `pyfcgi` binary and the Rust-only responders used in tests
//! and benchmarks, so they all exercise the same start-up path.

use std::sync::Arc;
use std::time::Duration;

use crate::config::table::{self, Section};
use crate::config::{args, process_env, ConfigError, KeyCase, PathListStyle, Settings};
use crate::protocol::Limits;
use crate::server::{Handler, ServerConfig, Shutdown};
use crate::transport::{BindAddress, PeerFilter};

/// The server's settings (the [`Section::Server`] rows of the settings table), resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeOptions {
    pub bind: Option<BindAddress>,
    pub workers: usize,
    pub max_conns: usize,
    pub backlog: Option<u32>,
    pub idle_timeout: u64,
    pub socket_mode: u32,
    pub shutdown_timeout: u64,
    pub max_params_bytes: usize,
    /// `FCGI_WEB_SERVER_ADDRS`, already validated by the table.
    pub web_server_addrs: Option<String>,
}

impl ServeOptions {
    /// The server settings out of every resolved setting.
    pub fn from_settings(settings: &Settings) -> Self {
        ServeOptions {
            bind: settings.get(&table::BIND).value.clone(),
            workers: settings.get(&table::WORKERS).value,
            max_conns: settings.get(&table::MAX_CONNS).value,
            backlog: settings.get(&table::BACKLOG).value,
            idle_timeout: settings.get(&table::IDLE_TIMEOUT).value,
            socket_mode: settings.get(&table::SOCKET_MODE).value,
            shutdown_timeout: settings.get(&table::SHUTDOWN_TIMEOUT).value,
            max_params_bytes: settings.get(&table::MAX_PARAMS_BYTES).value,
            web_server_addrs: settings.get(&table::WEB_SERVER_ADDRS).value.clone(),
        }
    }
}

fn server_rows(meta: &table::Meta) -> bool {
    meta.section == Section::Server
}

/// For the Rust-only responders (tests, benchmarks): the server flags, resolved with the environment.
impl clap::FromArgMatches for ServeOptions {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let cli = args::overrides(matches, server_rows);
        let (settings, errors) =
            Settings::resolve_lenient(&cli, None, &process_env, KeyCase::native(), PathListStyle::native());
        let invalid: Vec<String> = errors
            .iter()
            .filter(|e| matches!(e, ConfigError::InvalidValue { key, .. } if table::ALL.iter().any(|r| r.meta().key == *key && server_rows(r.meta()))))
            .map(ToString::to_string)
            .collect();
        if !invalid.is_empty() {
            return Err(clap::Error::raw(
                clap::error::ErrorKind::ValueValidation,
                format!("{}\n", invalid.join("\n")),
            ));
        }
        Ok(Self::from_settings(&settings))
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl clap::Args for ServeOptions {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        args::augment(cmd, server_rows)
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        args::augment(cmd, server_rows)
    }
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
        let peer_filter = PeerFilter::parse(self.web_server_addrs.as_deref()).map_err(LaunchError::PeerFilter)?;
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
