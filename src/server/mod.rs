//! Drives FastCGI connections: decodes requests with the protocol state machine, runs each through a
//! [`Handler`] with an [`Exchange`] for its body and response, ends it correctly (drained body, one END_REQUEST),
//! keeps or closes the connection, and stops gracefully. On Unix a fixed pool of worker threads serves any
//! number of connections ([`pool`]); a single connection can also be served on the calling thread
//! ([`serve_connection`], used for IIS, which gives each process one connection). Owns no sockets' creation
//! (that is `transport`) and no Python (that is the handler).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use tracing::{debug, error, warn};

pub mod conn;
pub mod exchange;
pub mod handler;
#[cfg(unix)]
pub mod pool;
pub mod spool;

/// The stop signal lives in `transport` (whose blocking waits must notice it too); re-exported for handlers.
pub use crate::transport::Shutdown;
pub use conn::Conn;
pub use exchange::{Exchange, RequestError};
pub use handler::{Handler, NoSuspend, Suspend};

use crate::protocol::{Limits, ManagementValues, RequestHead};
use crate::transport::PeerFilter;
use conn::ConnEvent;
use exchange::Finish;

/// How the server runs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Worker threads, which is also the number of requests served at once.
    pub workers: usize,
    /// Connections held open at once. At the limit a new connection closes the one idle longest; when none is
    /// idle, further ones wait in the listen backlog.
    pub max_conns: usize,
    pub limits: Limits,
    /// How long a kept connection may wait for its next request before it is closed (`None`: for ever). Only the
    /// Unix pool serves several connections; under IIS each process has one, and IIS recycles idle processes.
    pub idle_timeout: Option<Duration>,
    /// How long a graceful stop waits for requests in flight.
    pub shutdown_timeout: Duration,
    pub peer_filter: PeerFilter,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            workers: 1,
            max_conns: 1024,
            idle_timeout: Some(Duration::from_secs(300)),
            limits: Limits::default(),
            shutdown_timeout: Duration::from_secs(30),
            peer_filter: PeerFilter::default(),
        }
    }
}

impl ServerConfig {
    /// GET_VALUES answers: the real limits of this process.
    pub fn management_values(&self) -> ManagementValues {
        ManagementValues {
            max_conns: u32::try_from(self.max_conns).unwrap_or(u32::MAX),
            max_reqs: u32::try_from(self.workers).unwrap_or(u32::MAX),
            mpxs_conns: false,
        }
    }
}

/// What became of a connection after serving what it had.
#[cfg_attr(not(unix), allow(dead_code))] // only the Unix pool looks inside
pub(crate) enum ConnOutcome {
    /// No whole request is waiting; serve it again when it is readable.
    Idle(Conn),
    /// The connection is finished; it is handed back (when it still exists) so the caller can unregister it
    /// before it is dropped and its descriptor closed.
    Closed(Option<Conn>),
}

/// Serves the requests a connection has. With `wait` false it returns [`ConnOutcome::Idle`] as soon as no more
/// input is available without blocking; with `wait` true it blocks (suspended) until the connection ends.
pub(crate) fn serve_available(
    mut conn: Conn,
    handler: &dyn Handler,
    shutdown: &Shutdown,
    suspend: &dyn Suspend,
    wait: bool,
) -> ConnOutcome {
    loop {
        match conn.poll_event() {
            Err(err) => {
                if crate::logging::throttle::allow(conn.peer(), "protocol") {
                    warn!(peer = conn.peer(), %err, "closing FastCGI connection");
                }
                let _ = conn.stream_mut().close();
                return ConnOutcome::Closed(Some(conn));
            }
            Ok(Some(ConnEvent::Request(head))) => match run_request(conn, head, handler, suspend) {
                Some((next, Finish::KeepOpen)) => conn = next,
                Some((done, Finish::Close)) => return ConnOutcome::Closed(Some(done)),
                None => return ConnOutcome::Closed(None),
            },
            Ok(Some(event)) => {
                // The parser only emits body events while a request runs; reaching this is a bug, not input.
                error!(
                    peer = conn.peer(),
                    ?event,
                    "body event outside a request; closing connection"
                );
                return ConnOutcome::Closed(Some(conn));
            }
            Ok(None) => {
                if conn.parser().close_requested() {
                    let _ = conn.stream_mut().close();
                    return ConnOutcome::Closed(Some(conn));
                }
                if shutdown.is_triggered() && !conn.parser().request_active() {
                    return ConnOutcome::Closed(Some(conn));
                }
                let filled = if wait {
                    let idle = !conn.has_buffered_input() && !conn.parser().request_active();
                    conn.stream_mut().set_idle(idle);
                    let mut result = None;
                    suspend.suspend(&mut || result = Some(conn.fill(true)));
                    conn.stream_mut().set_idle(false);
                    result.unwrap_or(Ok(Some(0)))
                } else {
                    conn.fill(false)
                };
                match filled {
                    Ok(Some(0)) => {
                        if conn.has_buffered_input() || conn.parser().request_active() {
                            if crate::logging::throttle::allow(conn.peer(), "truncated") {
                                warn!(peer = conn.peer(), "connection closed in the middle of a request");
                            }
                        } else {
                            debug!(peer = conn.peer(), "connection closed by the web server");
                        }
                        return ConnOutcome::Closed(Some(conn));
                    }
                    Ok(Some(_)) => {}
                    Ok(None) => return ConnOutcome::Idle(conn),
                    Err(err) => {
                        debug!(peer = conn.peer(), %err, "connection failed");
                        return ConnOutcome::Closed(Some(conn));
                    }
                }
            }
        }
    }
}

fn run_request(conn: Conn, head: RequestHead, handler: &dyn Handler, suspend: &dyn Suspend) -> Option<(Conn, Finish)> {
    let exchange = Exchange::new(conn, head.id, head.keep_conn);
    match catch_unwind(AssertUnwindSafe(|| handler.handle(head, exchange))) {
        Ok((exchange, app_status)) => {
            // Ending a request may block (draining an unread upload, a slow peer), so it runs suspended.
            let mut exchange = Some(exchange);
            let mut finished = None;
            suspend.suspend(&mut || finished = exchange.take().map(|e| e.finish(app_status)));
            finished
        }
        Err(_) => {
            error!("request handler panicked; its connection was closed");
            None
        }
    }
}

/// Serves one connection on the calling thread until it ends or a stop is requested between requests.
pub fn serve_connection(conn: Conn, handler: &dyn Handler, shutdown: &Shutdown, suspend: &dyn Suspend) {
    // With `wait` set, serve_available only returns once the connection is closed.
    let _ = serve_available(conn, handler, shutdown, suspend, true);
}
