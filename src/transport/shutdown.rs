//! Graceful stop: a flag every worker checks between requests, the wake-ups that make blocked waits notice it,
//! and (on Unix) SIGTERM/SIGINT handlers that set it. It sits in `transport`, the lower of the two layers that
//! wait (the IIS pipe's reads must be cut short by it as the server's waits between requests are), so neither
//! `transport` nor `server` imports the other's types in both directions.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

type Waker = Box<dyn Fn() + Send + Sync>;

/// A cloneable stop signal. See the module documentation.
#[derive(Clone, Default)]
pub struct Shutdown {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    triggered: AtomicBool,
    wakers: Mutex<Vec<Waker>>,
}

impl Shutdown {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_triggered(&self) -> bool {
        self.inner.triggered.load(Ordering::Acquire)
    }

    /// Asks everything to stop and wakes whatever waits.
    pub fn trigger(&self) {
        self.inner.triggered.store(true, Ordering::Release);
        if let Ok(wakers) = self.inner.wakers.lock() {
            for wake in wakers.iter() {
                wake();
            }
        }
    }

    /// Registers something to call on [`Shutdown::trigger`] (for example waking a poller). Called at once if
    /// the stop was already asked for.
    pub fn on_trigger(&self, wake: impl Fn() + Send + Sync + 'static) {
        if let Ok(mut wakers) = self.inner.wakers.lock() {
            if self.is_triggered() {
                wake();
            }
            wakers.push(Box::new(wake));
        }
    }

    /// Triggers on SIGTERM and SIGINT (and SIGHUP is ignored, not fatal). Returns the signal thread's handle.
    ///
    /// # Errors
    /// When the signal handlers cannot be installed.
    #[cfg(unix)]
    pub fn install_signal_handlers(&self) -> std::io::Result<std::thread::JoinHandle<()>> {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])?;
        let shutdown = self.clone();
        std::thread::Builder::new()
            .name("pyfcgi-signals".into())
            .spawn(move || {
                for signal in signals.forever() {
                    if signal == SIGHUP {
                        tracing::info!("SIGHUP ignored (send SIGTERM to stop gracefully)");
                        continue;
                    }
                    let name = if signal == SIGTERM { "SIGTERM" } else { "SIGINT" };
                    tracing::info!(
                        signal = name,
                        "stopping: no new connections, finishing requests in flight"
                    );
                    shutdown.trigger();
                    break;
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn trigger_wakes_registered_and_late_wakers() {
        let shutdown = Shutdown::new();
        let woken = Arc::new(AtomicUsize::new(0));
        let w = woken.clone();
        shutdown.on_trigger(move || {
            w.fetch_add(1, Ordering::SeqCst);
        });
        assert!(!shutdown.is_triggered());
        shutdown.clone().trigger();
        assert!(shutdown.is_triggered());
        assert_eq!(woken.load(Ordering::SeqCst), 1);
        let w = woken.clone();
        shutdown.on_trigger(move || {
            w.fetch_add(10, Ordering::SeqCst);
        });
        assert_eq!(woken.load(Ordering::SeqCst), 11);
    }
}
