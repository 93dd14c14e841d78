//! Rate limiting of repeated warnings, so a hostile or broken local client cannot fill the disk through the log:
//! per peer (its address without the port, since every connection has a new one) and kind of warning, the
//! first [`BURST`] in each [`INTERVAL`] are logged, the rest only counted, and one summary line per interval
//! says how many were left out. [`Throttle`] is the pure bookkeeping (time is passed in); [`allow`] is the
//! process-wide instance the server asks before it warns.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Warnings of one kind from one peer logged per interval before the rest are only counted.
pub const BURST: u32 = 10;
/// The counting window, and the most often a summary line is written per peer and kind.
pub const INTERVAL: Duration = Duration::from_secs(60);
/// Peers tracked at once; further ones share one entry, so a flood from many addresses stays bounded.
const MAX_PEERS: usize = 1024;
const OTHER_PEERS: &str = "(other peers)";

/// How many warnings were left out for one peer and kind, over how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub peer: String,
    pub kind: &'static str,
    pub suppressed: u64,
    pub over: Duration,
}

#[derive(Debug)]
struct Window {
    started: Instant,
    logged: u32,
    suppressed: u64,
}

/// See the module documentation.
#[derive(Debug)]
pub struct Throttle {
    burst: u32,
    interval: Duration,
    max_peers: usize,
    windows: HashMap<(String, &'static str), Window>,
}

/// The peer without its port: `10.0.0.1:5432` and `[::1]:5432` name the host; anything else (a Unix socket)
/// is kept as it is.
pub fn peer_host(peer: &str) -> &str {
    if let Some(rest) = peer.strip_prefix('[') {
        if let Some(end) = rest.find(']') {
            return &rest[..end];
        }
    }
    match peer.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
            host
        }
        _ => peer,
    }
}

impl Throttle {
    pub fn new(burst: u32, interval: Duration, max_peers: usize) -> Self {
        Self {
            burst,
            interval,
            max_peers,
            windows: HashMap::new(),
        }
    }

    /// Whether a warning of `kind` about `peer` should be logged now, and the summary of the window that
    /// ended, if it left warnings out.
    pub fn check(&mut self, peer: &str, kind: &'static str, now: Instant) -> (bool, Option<Summary>) {
        let host = peer_host(peer);
        let mut key = (host.to_owned(), kind);
        if !self.windows.contains_key(&key) && self.windows.len() >= self.max_peers {
            // Forgetting quiet peers first: their windows ended and had nothing to report, or report now.
            let mut summaries = self.due(now);
            if self.windows.len() >= self.max_peers {
                key.0 = OTHER_PEERS.to_owned();
            }
            let (allowed, own) = self.check_key(key, now);
            return (allowed, own.or_else(|| summaries.pop()));
        }
        self.check_key(key, now)
    }

    fn check_key(&mut self, key: (String, &'static str), now: Instant) -> (bool, Option<Summary>) {
        let interval = self.interval;
        let burst = self.burst;
        let mut summary = None;
        let window = self.windows.entry(key.clone()).or_insert(Window {
            started: now,
            logged: 0,
            suppressed: 0,
        });
        let elapsed = now.saturating_duration_since(window.started);
        if elapsed >= interval {
            if window.suppressed > 0 {
                summary = Some(Summary {
                    peer: key.0,
                    kind: key.1,
                    suppressed: window.suppressed,
                    over: elapsed,
                });
            }
            *window = Window {
                started: now,
                logged: 0,
                suppressed: 0,
            };
        }
        if window.logged < burst {
            window.logged += 1;
            (true, summary)
        } else {
            window.suppressed += 1;
            (false, summary)
        }
    }

    /// Ends every window older than the interval: the summaries of those that left warnings out, so a flood
    /// that stopped is still reported; the others are forgotten.
    pub fn due(&mut self, now: Instant) -> Vec<Summary> {
        self.end_windows(now, self.interval)
    }

    /// Ends every window, reporting those that left warnings out (before the process exits).
    pub fn end_all(&mut self, now: Instant) -> Vec<Summary> {
        self.end_windows(now, Duration::ZERO)
    }

    fn end_windows(&mut self, now: Instant, older_than: Duration) -> Vec<Summary> {
        let mut summaries = Vec::new();
        self.windows.retain(|(peer, kind), window| {
            let elapsed = now.saturating_duration_since(window.started);
            if elapsed < older_than {
                return true;
            }
            if window.suppressed > 0 {
                summaries.push(Summary {
                    peer: peer.clone(),
                    kind,
                    suppressed: window.suppressed,
                    over: elapsed,
                });
            }
            false
        });
        summaries
    }

    /// Peers and kinds being tracked.
    pub fn len(&self) -> usize {
        self.windows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }
}

static GLOBAL: Mutex<Option<Throttle>> = Mutex::new(None);

fn with_global<R>(f: impl FnOnce(&mut Throttle) -> R) -> R {
    let mut guard = GLOBAL.lock().unwrap_or_else(PoisonError::into_inner);
    f(guard.get_or_insert_with(|| Throttle::new(BURST, INTERVAL, MAX_PEERS)))
}

fn report(summary: &Summary) {
    tracing::warn!(
        peer = %summary.peer,
        kind = summary.kind,
        suppressed = summary.suppressed,
        seconds = summary.over.as_secs(),
        "repeated warnings of this kind from this peer were left out of the log"
    );
}

/// Whether the caller should log its warning of `kind` about `peer` (see the module documentation). Called
/// only where a warning is about to be written, never on a request's normal path.
pub fn allow(peer: &str, kind: &'static str) -> bool {
    let (allowed, summary) = with_global(|t| t.check(peer, kind, Instant::now()));
    // Logged outside the lock: the log's own writer never waits for it.
    if let Some(summary) = summary {
        report(&summary);
    }
    allowed
}

/// Writes the summary of every window that left warnings out, ended or not (before the process exits).
pub fn report_pending() {
    let summaries = with_global(|t| t.end_all(Instant::now()));
    for summary in &summaries {
        report(summary);
    }
}

/// Writes the summaries of windows that ended (called about once a second by the log's writer thread).
pub fn report_due() {
    let summaries = with_global(|t| {
        if t.is_empty() {
            Vec::new()
        } else {
            t.due(Instant::now())
        }
    });
    for summary in &summaries {
        report(summary);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_n_are_logged_then_counted_then_summarised_once_per_interval() {
        let mut t = Throttle::new(3, Duration::from_secs(60), 100);
        let start = Instant::now();
        let allowed: Vec<bool> = (0..10)
            .map(|i| t.check("10.0.0.1:4000", "protocol", start + Duration::from_secs(i)).0)
            .collect();
        assert_eq!(
            allowed,
            [true, true, true, false, false, false, false, false, false, false]
        );
        // The next window's first warning is logged and brings the summary of the last one.
        let (allowed, summary) = t.check("10.0.0.1:4999", "protocol", start + Duration::from_secs(61));
        assert!(allowed);
        assert_eq!(
            summary,
            Some(Summary {
                peer: "10.0.0.1".into(),
                kind: "protocol",
                suppressed: 7,
                over: Duration::from_secs(61)
            })
        );
        // A window with nothing left out has nothing to say.
        let (_, summary) = t.check("10.0.0.1:1", "protocol", start + Duration::from_secs(200));
        assert_eq!(summary, None);
    }

    #[test]
    fn peers_and_kinds_are_counted_apart() {
        let mut t = Throttle::new(1, Duration::from_secs(60), 100);
        let now = Instant::now();
        assert!(t.check("10.0.0.1:1", "protocol", now).0);
        assert!(!t.check("10.0.0.1:2", "protocol", now).0);
        assert!(t.check("10.0.0.1:3", "truncated", now).0);
        assert!(t.check("10.0.0.2:1", "protocol", now).0);
        assert!(t.check("unix:/run/a.sock", "protocol", now).0);
        assert!(!t.check("unix:/run/a.sock", "protocol", now).0);
    }

    #[test]
    fn a_flood_that_stopped_is_summarised_by_the_periodic_check() {
        let mut t = Throttle::new(2, Duration::from_secs(60), 100);
        let start = Instant::now();
        for _ in 0..5000 {
            t.check("[::1]:8080", "protocol", start);
        }
        assert!(t.due(start + Duration::from_secs(59)).is_empty());
        let summaries = t.due(start + Duration::from_secs(60));
        assert_eq!(summaries.len(), 1);
        assert_eq!((summaries[0].peer.as_str(), summaries[0].suppressed), ("::1", 4998));
        assert!(t.is_empty(), "ended windows are forgotten");
        for _ in 0..3 {
            t.check("[::1]:8080", "protocol", start);
        }
        let at_exit = t.end_all(start + Duration::from_secs(5));
        assert_eq!((at_exit[0].suppressed, at_exit[0].over), (1, Duration::from_secs(5)));
    }

    #[test]
    fn many_peers_stay_bounded() {
        let mut t = Throttle::new(1, Duration::from_secs(60), 8);
        let now = Instant::now();
        let logged = (0..1000)
            .filter(|i| t.check(&format!("10.0.{}.{}:1", i / 256, i % 256), "protocol", now).0)
            .count();
        assert!(t.len() <= 9, "{}", t.len());
        // Eight peers get their own first line, all others share one.
        assert_eq!(logged, 9);
    }

    #[test]
    fn peer_host_drops_the_port_only() {
        assert_eq!(peer_host("127.0.0.1:5555"), "127.0.0.1");
        assert_eq!(peer_host("[::1]:5555"), "::1");
        assert_eq!(peer_host("::1"), "::1");
        assert_eq!(peer_host("unix:/run/x.sock"), "unix:/run/x.sock");
        assert_eq!(peer_host("pair"), "pair");
    }
}
