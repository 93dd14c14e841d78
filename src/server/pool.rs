//! The Unix serving engine: a fixed pool of worker threads and one readiness poller (epoll through `polling`).
//! Idle connections wait in the poller, not on a thread, so a web server that keeps many connections open
//! (nginx `fastcgi_keep_conn`) cannot starve the pool; a connection is handed to a worker only when it has input.
//! Workers take turns as the poller's waiter (leader/follower), so there is no hand-off between an I/O thread
//! and a request thread on the hot path. Connections are capped at `max_conns`; past that the listener is
//! disarmed and further peers wait in the listen backlog.

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
    idle: Mutex<HashMap<usize, (RawFd, Conn)>>,
    open: AtomicUsize,
    next_key: AtomicUsize,
    listener_armed: AtomicBool,
    running_workers: Mutex<usize>,
    workers_done: Condvar,
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
        idle: Mutex::new(HashMap::new()),
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
    let idle: Vec<_> = lock(&shared.idle).drain().collect();
    for (_, (fd, _conn)) in idle {
        // SAFETY: `_conn` owns the descriptor and is still alive here.
        let _ = shared.poller.delete(unsafe { BorrowedFd::borrow_raw(fd) });
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
        let Some((fd, conn)) = lock(&shared.idle).remove(&key) else {
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
        let Ready { events, queue } = &mut *ready;
        events.clear();
        match shared.poller.wait(events, None) {
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

fn accept_all(shared: &Shared) {
    loop {
        if shared.shutdown.is_triggered() {
            return;
        }
        if shared.open.load(Ordering::Acquire) >= shared.config.max_conns {
            shared.listener_armed.store(false, Ordering::Release);
            debug!(
                max_conns = shared.config.max_conns,
                "connection limit reached; not accepting for now"
            );
            return;
        }
        match shared.listener.accept(&shared.config.peer_filter) {
            Ok(Accepted::Connection(stream)) => {
                let fd = stream.as_fd().as_raw_fd();
                let conn = Conn::new(
                    Box::new(stream),
                    shared.config.limits,
                    shared.config.management_values(),
                );
                shared.open.fetch_add(1, Ordering::AcqRel);
                let key = shared.next_key.fetch_add(1, Ordering::Relaxed);
                lock(&shared.idle).insert(key, (fd, conn));
                // SAFETY: the connection owning `fd` stays in `idle` (or with a worker) until it is closed,
                // and closing a descriptor removes it from epoll.
                if let Err(e) = unsafe { shared.poller.add(fd, Event::readable(key)) } {
                    warn!(error = %e, "cannot watch a new connection; closing it");
                    drop(lock(&shared.idle).remove(&key));
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
    lock(&shared.idle).insert(key, (fd, conn));
    // SAFETY: the connection owning `fd` is in `idle`; it is removed (and later closed) only by the worker that
    // receives the event armed here.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    if let Err(e) = shared.poller.modify(borrowed, Event::readable(key)) {
        warn!(error = %e, "cannot watch an idle connection; closing it");
        if lock(&shared.idle).remove(&key).is_some() {
            let _ = shared.poller.delete(borrowed);
        }
        closed(shared);
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
