//! The interface between the server and what runs requests (the WSGI bridge, or a test responder). The server
//! owns connections and threads; a handler owns what happens inside one request, and may wrap each worker
//! thread's life (the WSGI bridge attaches the thread to the Python interpreter once, and detaches it around
//! every wait through [`Suspend`]).

use super::exchange::Exchange;
use crate::protocol::RequestHead;

/// Lets the server wait (for connections, for the next request) with the handler's per-thread state
/// suspended. The WSGI bridge releases the GIL here.
pub trait Suspend {
    fn suspend(&self, wait: &mut (dyn FnMut() + Send));
}

/// A [`Suspend`] that just waits.
pub struct NoSuspend;

impl Suspend for NoSuspend {
    fn suspend(&self, wait: &mut (dyn FnMut() + Send)) {
        wait();
    }
}

/// Runs requests. Implementations must be shareable across the worker threads.
pub trait Handler: Send + Sync + 'static {
    /// Runs one worker thread's serving loop, `serve`, inside whatever per-thread context the handler needs.
    /// `serve` must be called exactly once.
    fn run_worker(&self, serve: &mut dyn FnMut(&dyn Suspend)) {
        serve(&NoSuspend);
    }

    /// Serves one request and hands the exchange back. Errors are the handler's to report: by the time this
    /// returns, whatever the web server should see has been written to the exchange. The returned `u32` is
    /// END_REQUEST's application status (0 for success).
    fn handle(&self, request: RequestHead, exchange: Exchange) -> (Exchange, u32);
}
