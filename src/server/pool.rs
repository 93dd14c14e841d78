//! The Unix serving engine: a fixed pool of worker threads and one readiness poller (epoll through `polling`).
//! Idle connections wait in the poller, not on a thread, so a web server that keeps many connections open
//! (nginx `fastcgi_keep_conn`) cannot starve the pool; a connection is handed to a worker only when it has input.
//! Workers take turns as the poller's waiter (leader/follower), so there is no hand-off between an I/O thread
//! and a request thread on the hot path. Connections are capped at `max_conns`: at the cap a new connection
//! closes the connection that has been idle longest, and only when none is idle is the listener disarmed, so that
//! further peers wait in the listen backlog. A connection idle longer than `idle_timeout` is closed (the leader
//! wakes for the earliest such deadline), so idle connections cannot hold every slot.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use polling::{Event, Events, Poller};
use tracing::{debug, error, info, warn};

use super::{serve_available, Conn, ConnOutcome, Handler, ServerConfig, Shutdown, Suspend};
use crate::transport::unix::{Accepted, Listener};

// `polling` reserves usize::MAX for its own notifier.
const LISTENER_KEY: usize = usize::MAX - 1;

struct Ready {
    events: Events,
    queue: VecDeque<usize>,
}

struct Shared {
    poller: Poller,
    listener: Listener,
    handler: Arc<dyn Handler>,
    config: ServerConfig,
    shutdown: Shutdown,
    ready: Mutex<Ready>,
    idle: Mutex<Idle>,
    open: AtomicUsize,
    next_key: AtomicUsize,
    listener_armed: AtomicBool,
    running_workers: Mutex<usize>,
    workers_done: Condvar,
}

/// A connection waiting in the poller for its next request (or the rest of one).
struct Parked {
    fd: RawFd,
    conn: Conn,
    since: Instant,
}

/// The parked connections, and the order they were parked in (oldest first). An entry of `order` whose
/// connection has left (a worker took it) or was parked again since is stale and skipped.
#[derive(Default)]
struct Idle {
    conns: HashMap<usize, Parked>,
    order: VecDeque<(Instant, usize)>,
}

impl Idle {
    fn park(&mut self, key: usize, parked: Parked) {
        self.order.push_back((parked.since, key));
        self.conns.insert(key, parked);
    }

    fn take(&mut self, key: usize) -> Option<Parked> {
        let parked = self.conns.remove(&key);
        if self.conns.is_empty() {
            self.order.clear();
        }
        parked
    }

    /// Drops stale entries at the front; the oldest live one's park time and key.
    fn oldest(&mut self) -> Option<(Instant, usize)> {
        while let Some(&(since, key)) = self.order.front() {
            if self.conns.get(&key).is_some_and(|p| p.since == since) {
                return Some((since, key));
            }
            self.order.pop_front();
        }
        None
    }

    /// Takes the connection idle longest, if it has been idle since `before` (or at all, with `None`).
    fn take_oldest(&mut self, before: Option<Instant>) -> Option<(usize, Parked)> {
        let (since, key) = self.oldest()?;
        if before.is_some_and(|before| since > before) {
            return None;
        }
        self.order.pop_front();
        self.take(key).map(|parked| (key, parked))
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves plain data behind, still consistent for our use.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Serves `listener` until `shutdown` is triggered and the requests in flight are done (or the configured
/// timeout passes).
///
/// # Errors
/// When the poller cannot be created or the listener registered.
pub fn serve(
    listener: Listener,
    handler: Arc<dyn Handler>,
    config: ServerConfig,
    shutdown: Shutdown,
) -> io::Result<()> {
    let poller = Poller::new()?;
    let workers = config.workers.max(1);
    let shared = Arc::new(Shared {
        poller,
        listener,
        handler,
        config,
        shutdown: shutdown.clone(),
        ready: Mutex::new(Ready {
            events: Events::new(),
            queue: VecDeque::new(),
        }),
        idle: Mutex::new(Idle::default()),
        open: AtomicUsize::new(0),
        next_key: AtomicUsize::new(0),
        listener_armed: AtomicBool::new(true),
        running_workers: Mutex::new(workers),
        workers_done: Condvar::new(),
    });
    // SAFETY: the listener lives in `shared` and is deleted from the poller before `shared` is dropped.
    unsafe {
        shared
            .poller
            .add(shared.listener.as_fd().as_raw_fd(), Event::readable(LISTENER_KEY))?
    };
    {
        let waker = Arc::downgrade(&shared);
        shutdown.on_trigger(move || {
            if let Some(shared) = waker.upgrade() {
                let _ = shared.poller.notify();
            }
        });
    }
    info!(
        listen = %shared.listener.describe(),
        workers,
        max_conns = shared.config.max_conns,
        idle_timeout_s = shared.config.idle_timeout.map(|t| t.as_secs()),
        "serving FastCGI"
    );

    let mut handles = Vec::with_capacity(workers);
    for index in 0..workers {
        let shared = shared.clone();
        let handle = thread::Builder::new()
            .name(format!("pyfcgi-worker-{index}"))
            .spawn(move || {
                let handler = shared.handler.clone();
                handler.run_worker(&mut |suspend| worker_loop(&shared, suspend));
                let mut running = lock(&shared.running_workers);
                *running -= 1;
                shared.workers_done.notify_all();
            })?;
        handles.push(handle);
    }

    // Wait for the stop request, then for the workers, at most `shutdown_timeout` after the request.
    let mut running = lock(&shared.running_workers);
    let mut deadline: Option<Instant> = None;
    while *running > 0 {
        if deadline.is_none() && shared.shutdown.is_triggered() {
            deadline = Some(Instant::now() + shared.config.shutdown_timeout);
        }
        let wait = match deadline {
            Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                Some(left) => left,
                None => {
                    warn!(
                        workers_busy = *running,
                        "stop timeout reached; requests still running are cut off"
                    );
                    return Ok(());
                }
            },
            None => Duration::from_millis(200),
        };
        running = shared
            .workers_done
            .wait_timeout(running, wait)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
    }
    drop(running);
    for handle in handles {
        let _ = handle.join();
    }
    let _ = shared.poller.delete(&shared.listener);
    let idle: Vec<_> = lock(&shared.idle).conns.drain().collect();
    for (_, parked) in idle {
        // SAFETY: `parked.conn` owns the descriptor and is still alive here.
        let _ = shared.poller.delete(unsafe { BorrowedFd::borrow_raw(parked.fd) });
    }
    info!("stopped");
    Ok(())
}

fn worker_loop(shared: &Shared, suspend: &dyn Suspend) {
    loop {
        let mut next = None;
        suspend.suspend(&mut || next = next_ready(shared));
        let Some(key) = next else { return };
        if key == LISTENER_KEY {
            accept_all(shared);
            continue;
        }
        let Some(Parked { fd, conn, .. }) = lock(&shared.idle).take(key) else {
            // Closed for idleness (or to make room) after its event was queued.
            continue;
        };
        match serve_available(conn, shared.handler.as_ref(), &shared.shutdown, suspend, false) {
            ConnOutcome::Idle(conn) => park(shared, key, fd, conn),
            ConnOutcome::Closed(conn) => {
                if let Some(conn) = conn {
                    // SAFETY: `conn` owns `fd` and is alive until the end of this block.
                    let _ = shared.poller.delete(unsafe { BorrowedFd::borrow_raw(fd) });
                    drop(conn);
                }
                // Without the connection (a handler panicked) the descriptor is already closed, and epoll
                // forgets closed descriptors by itself.
                closed(shared);
            }
        }
    }
}

/// Waits (as the poller's leader) for the next ready source; `None` once the server is stopping.
fn next_ready(shared: &Shared) -> Option<usize> {
    let mut ready = lock(&shared.ready);
    loop {
        if shared.shutdown.is_triggered() {
            return None;
        }
        if let Some(key) = ready.queue.pop_front() {
            return Some(key);
        }
        let timeout = close_idle(shared);
        let Ready { events, queue } = &mut *ready;
        events.clear();
        match shared.poller.wait(events, timeout) {
            Ok(_) => queue.extend(events.iter().map(|e| e.key)),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                error!(error = %e, "poller failed; stopping");
                shared.shutdown.trigger();
                return None;
            }
        }
    }
}

/// Closes the connections idle longer than the idle timeout; how long until the next one would be due.
fn close_idle(shared: &Shared) -> Option<Duration> {
    let limit = shared.config.idle_timeout?;
    loop {
        let now = Instant::now();
        let expired = {
            let mut idle = lock(&shared.idle);
            match idle.take_oldest(now.checked_sub(limit)) {
                Some(expired) => expired,
                None => {
                    let next = idle
                        .oldest()
                        .map(|(since, _)| (since + limit).saturating_duration_since(now));
                    // With nothing parked, look again after a whole timeout (see `park`).
                    return Some(next.unwrap_or(limit).max(Duration::from_millis(1)));
                }
            }
        };
        let (_, parked) = expired;
        debug!(
            peer = parked.conn.peer(),
            idle_s = limit.as_secs(),
            "closing a connection idle for the idle timeout"
        );
        close_parked(shared, parked);
    }
}

fn close_parked(shared: &Shared, parked: Parked) {
    // SAFETY: `parked.conn` owns `fd` and is alive until the end of this function.
    let _ = shared.poller.delete(unsafe { BorrowedFd::borrow_raw(parked.fd) });
    drop(parked);
    closed(shared);
}

fn accept_all(shared: &Shared) {
    loop {
        if shared.shutdown.is_triggered() {
            return;
        }
        let at_limit = shared.open.load(Ordering::Acquire) >= shared.config.max_conns;
        if at_limit && lock(&shared.idle).oldest().is_none() {
            // Every connection is busy: new ones wait in the listen backlog until one closes or goes idle.
            shared.listener_armed.store(false, Ordering::Release);
            debug!(
                max_conns = shared.config.max_conns,
                "connection limit reached and none is idle; not accepting for now"
            );
            return;
        }
        match shared.listener.accept(&shared.config.peer_filter) {
            Ok(Accepted::Connection(stream)) => {
                if at_limit {
                    // The new connection has a request coming; the one idle longest may never send another.
                    let oldest = lock(&shared.idle).take_oldest(None);
                    if let Some((_, parked)) = oldest {
                        debug!(
                            peer = parked.conn.peer(),
                            max_conns = shared.config.max_conns,
                            "connection limit reached; closing the connection idle longest"
                        );
                        close_parked(shared, parked);
                    }
                }
                let fd = stream.as_fd().as_raw_fd();
                let conn = Conn::new(
                    Box::new(stream),
                    shared.config.limits,
                    shared.config.management_values(),
                );
                shared.open.fetch_add(1, Ordering::AcqRel);
                let key = shared.next_key.fetch_add(1, Ordering::Relaxed);
                lock(&shared.idle).park(
                    key,
                    Parked {
                        fd,
                        conn,
                        since: Instant::now(),
                    },
                );
                // SAFETY: the connection owning `fd` stays in `idle` (or with a worker) until it is closed,
                // and closing a descriptor removes it from epoll.
                if let Err(e) = unsafe { shared.poller.add(fd, Event::readable(key)) } {
                    warn!(error = %e, "cannot watch a new connection; closing it");
                    drop(lock(&shared.idle).take(key));
                    closed(shared);
                }
            }
            Ok(Accepted::Refused(peer)) => {
                if crate::logging::throttle::allow(&peer, "refused") {
                    warn!(%peer, "connection refused: peer is not in FCGI_WEB_SERVER_ADDRS");
                }
            }
            Ok(Accepted::WouldBlock) => break,
            Err(e) => {
                // Typically EMFILE; retrying at once would spin, so pause briefly before re-arming.
                error!(error = %e, "accept failed");
                thread::sleep(Duration::from_millis(50));
                break;
            }
        }
    }
    rearm_listener(shared);
}

fn rearm_listener(shared: &Shared) {
    if let Err(e) = shared.poller.modify(&shared.listener, Event::readable(LISTENER_KEY)) {
        error!(error = %e, "cannot re-arm the listener; stopping");
        shared.shutdown.trigger();
    }
}

fn park(shared: &Shared, key: usize, fd: RawFd, conn: Conn) {
    // No wake-up for the leader: it never waits longer than a whole idle timeout, and on waking it waits again
    // for this connection's own deadline, so the connection is closed on time without a notify per request.
    lock(&shared.idle).park(
        key,
        Parked {
            fd,
            conn,
            since: Instant::now(),
        },
    );
    // SAFETY: the connection owning `fd` is in `idle`; it is removed (and later closed) only by the worker that
    // receives the event armed here.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    if let Err(e) = shared.poller.modify(borrowed, Event::readable(key)) {
        warn!(error = %e, "cannot watch an idle connection; closing it");
        if lock(&shared.idle).take(key).is_some() {
            let _ = shared.poller.delete(borrowed);
        }
        closed(shared);
        return;
    }
    // At the limit with the listener disarmed, this idle connection can now make room for a waiting one.
    if shared
        .listener_armed
        .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
        .is_ok()
    {
        rearm_listener(shared);
    }
}

fn closed(shared: &Shared) {
    let before = shared.open.fetch_sub(1, Ordering::AcqRel);
    if before >= shared.config.max_conns
        && shared
            .listener_armed
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    {
        rearm_listener(shared);
    }
}
