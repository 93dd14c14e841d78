//! The access log, built to stay on: one line per request, formatted by the request's own thread into a buffer
//! only that thread appends to, and written by the log's writer thread in batches (one write per thread's
//! batch, a few milliseconds after the first line of the batch). The request path allocates nothing once the
//! buffer has grown to its working size, takes no shared lock (its buffer's mutex is contended only during the
//! writer's swap, a few times a second), makes no system call except, at most once per batch, waking the
//! writer, and formats with plain byte pushes. Lines look like the other log lines
//! (`2026-01-02T03:04:05.678901Z [pid]  INFO pyfcgi::access: done method=GET uri=/ status=200 bytes=5
//! ms=0.123`). If the writer cannot keep up (a stalled disk), a thread's buffer stops growing at
//! [`MAX_PENDING`] and further lines are counted and reported as dropped instead of filling memory.
//!
//! The same writer thread also reopens the log on SIGUSR1 and writes the rate limiter's summaries.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::{self, Thread};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long the writer waits after being woken, so the lines of a busy moment go out in one write.
const GATHER: Duration = Duration::from_millis(5);
/// The writer's idle wake-up, for the rate limiter's summaries and a SIGUSR1 that arrived.
const TICK: Duration = Duration::from_secs(1);
/// Most bytes one thread's buffer holds while the writer is behind.
pub const MAX_PENDING: usize = 4 << 20;

/// One request, as the access line reports it.
#[derive(Debug, Clone, Copy)]
pub struct AccessRecord<'a> {
    pub method: &'a [u8],
    pub uri: &'a [u8],
    pub status: u16,
    pub bytes: u64,
    pub micros: u64,
    /// False when the response could not be completed (`incomplete` instead of `done`).
    pub complete: bool,
}

fn push_padded(out: &mut Vec<u8>, mut n: u64, width: usize) {
    let mut digits = [b'0'; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let len = digits.len() - i;
    for _ in len..width {
        out.push(b'0');
    }
    out.extend_from_slice(&digits[i..]);
}

fn push_number(out: &mut Vec<u8>, n: u64) {
    push_padded(out, n, 0);
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ`, as tracing's default timer writes it (UTC).
pub fn push_timestamp(out: &mut Vec<u8>, time: SystemTime) {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Howard Hinnant's days-to-civil algorithm, for the proleptic Gregorian calendar.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    push_padded(out, year.max(0) as u64, 4);
    out.push(b'-');
    push_padded(out, month as u64, 2);
    out.push(b'-');
    push_padded(out, day as u64, 2);
    out.push(b'T');
    push_padded(out, rem / 3600, 2);
    out.push(b':');
    push_padded(out, rem % 3600 / 60, 2);
    out.push(b':');
    push_padded(out, rem % 60, 2);
    out.push(b'.');
    push_padded(out, u64::from(since.subsec_micros()), 6);
    out.push(b'Z');
}

/// Appends text with control characters, spaces and invalid UTF-8 escaped as `\xNN`, so a request line cannot
/// forge log lines or terminal escapes.
fn push_escaped(out: &mut Vec<u8>, text: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut rest = text;
    while !rest.is_empty() {
        let (valid, bad) = match std::str::from_utf8(rest) {
            Ok(s) => (s.as_bytes(), None),
            Err(e) => (&rest[..e.valid_up_to()], Some(e.valid_up_to())),
        };
        for &b in valid {
            if b <= b' ' || b == 0x7F || b == b'\\' {
                out.extend_from_slice(&[b'\\', b'x', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
            } else {
                out.push(b);
            }
        }
        match bad {
            Some(at) => {
                let b = rest[at];
                out.extend_from_slice(&[b'\\', b'x', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
                rest = &rest[at + 1..];
            }
            None => break,
        }
    }
}

/// Formats one access line (with its newline) onto `out`.
pub fn format_line(out: &mut Vec<u8>, time: SystemTime, pid: u32, record: &AccessRecord<'_>) {
    push_timestamp(out, time);
    out.extend_from_slice(b" [");
    push_number(out, u64::from(pid));
    out.extend_from_slice(b"]  INFO pyfcgi::access: ");
    out.extend_from_slice(if record.complete { b"done" } else { b"incomplete" });
    out.extend_from_slice(b" method=");
    push_escaped(out, record.method);
    out.extend_from_slice(b" uri=");
    push_escaped(out, record.uri);
    out.extend_from_slice(b" status=");
    push_number(out, u64::from(record.status));
    out.extend_from_slice(b" bytes=");
    push_number(out, record.bytes);
    out.extend_from_slice(b" ms=");
    push_number(out, record.micros / 1000);
    out.push(b'.');
    push_padded(out, record.micros % 1000, 3);
    out.push(b'\n');
}

/// One thread's pending lines.
#[derive(Default)]
struct Slot {
    lines: Mutex<Vec<u8>>,
}

impl Slot {
    fn lock(&self) -> MutexGuard<'_, Vec<u8>> {
        self.lines.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

static SLOTS: Mutex<Vec<Arc<Slot>>> = Mutex::new(Vec::new());
static WRITER: OnceLock<Thread> = OnceLock::new();
/// Serialises draining, so the writer thread and an explicit [`flush`] never reorder one thread's lines.
static DRAINING: Mutex<()> = Mutex::new(());
static DROPPED: AtomicU64 = AtomicU64::new(0);
static REOPEN: AtomicBool = AtomicBool::new(false);

thread_local! {
    static LOCAL: RefCell<Option<Arc<Slot>>> = const { RefCell::new(None) };
}

fn lock<T>(mutex: &'static Mutex<T>) -> MutexGuard<'static, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn pid() -> u32 {
    static PID: OnceLock<u32> = OnceLock::new();
    *PID.get_or_init(std::process::id)
}

fn writer() -> &'static Thread {
    WRITER.get_or_init(|| {
        thread::Builder::new()
            .name("pyfcgi-log".into())
            .spawn(writer_loop)
            .map(|handle| handle.thread().clone())
            // Without a writer thread lines are written by `flush` (at exit) only; unpark on the current
            // thread is harmless.
            .unwrap_or_else(|_| thread::current())
    })
}

/// Records one request's access line (see the module documentation).
pub fn record(record: &AccessRecord<'_>) {
    let now = SystemTime::now();
    let wake = LOCAL.try_with(|local| {
        let mut local = local.borrow_mut();
        let slot = local.get_or_insert_with(|| {
            let slot = Arc::new(Slot::default());
            lock(&SLOTS).push(slot.clone());
            slot
        });
        let mut lines = slot.lock();
        if lines.len() >= MAX_PENDING {
            DROPPED.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        let first = lines.is_empty();
        format_line(&mut lines, now, pid(), record);
        first
    });
    match wake {
        Ok(true) => writer().unpark(),
        Ok(false) => {}
        // The thread is being torn down and its buffer is gone: write this one line directly.
        Err(_) => {
            let mut line = Vec::with_capacity(256);
            format_line(&mut line, now, pid(), record);
            super::write_raw(&line);
        }
    }
}

/// Asks the writer thread to reopen the log file (SIGUSR1). Safe to call from a signal-handling thread.
pub fn request_reopen() {
    REOPEN.store(true, Ordering::Release);
    writer().unpark();
}

fn writer_loop() {
    loop {
        thread::park_timeout(TICK);
        thread::sleep(GATHER);
        drain();
        super::throttle::report_due();
    }
}

/// Writes every pending line now (at exit, and from the writer thread).
pub fn flush() {
    drain();
}

fn drain() {
    let _draining = lock(&DRAINING);
    if REOPEN.swap(false, Ordering::AcqRel) {
        super::reopen_now();
    }
    let mut spare = Vec::new();
    let slots: Vec<Arc<Slot>> = {
        let mut slots = lock(&SLOTS);
        // A slot only the registry holds belongs to a thread that ended; it goes once it is empty.
        slots.retain(|s| Arc::strong_count(s) > 1 || !s.lock().is_empty());
        slots.clone()
    };
    for slot in slots {
        {
            let mut lines = slot.lock();
            if lines.is_empty() {
                continue;
            }
            // The thread keeps a buffer of the same capacity, so it does not grow it again.
            if spare.capacity() < lines.capacity() {
                spare.reserve(lines.capacity());
            }
            std::mem::swap(&mut *lines, &mut spare);
        }
        super::write_raw(&spare);
        spare.clear();
    }
    let dropped = DROPPED.swap(0, Ordering::Relaxed);
    if dropped > 0 {
        tracing::warn!(
            dropped,
            "access log lines were dropped because the log could not be written fast enough"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(record: &AccessRecord<'_>, time: SystemTime) -> String {
        let mut out = Vec::new();
        format_line(&mut out, time, 4242, record);
        String::from_utf8(out).unwrap()
    }

    fn sample() -> AccessRecord<'static> {
        AccessRecord {
            method: b"GET",
            uri: b"/a?b=1",
            status: 200,
            bytes: 5,
            micros: 1234,
            complete: true,
        }
    }

    #[test]
    fn the_line_has_the_fields_and_layout_of_the_other_log_lines() {
        let time = UNIX_EPOCH + Duration::new(1_767_323_045, 678_901_000);
        assert_eq!(
            line(&sample(), time),
            "2026-01-02T03:04:05.678901Z [4242]  INFO pyfcgi::access: done method=GET uri=/a?b=1 status=200 \
             bytes=5 ms=1.234\n"
        );
        let incomplete = AccessRecord {
            complete: false,
            status: 500,
            micros: 7,
            ..sample()
        };
        assert!(line(&incomplete, UNIX_EPOCH).starts_with("1970-01-01T00:00:00.000000Z [4242]  INFO"));
        assert!(
            line(&incomplete, UNIX_EPOCH).ends_with("incomplete method=GET uri=/a?b=1 status=500 bytes=5 ms=0.007\n")
        );
    }

    #[test]
    fn timestamps_match_the_calendar() {
        for (secs, text) in [
            (951_782_400, "2000-02-29T00:00:00"),
            (4_107_542_399, "2100-02-28T23:59:59"),
            (1_709_164_800, "2024-02-29T00:00:00"),
            (1_735_689_599, "2024-12-31T23:59:59"),
        ] {
            let mut out = Vec::new();
            push_timestamp(&mut out, UNIX_EPOCH + Duration::from_secs(secs));
            assert_eq!(&String::from_utf8(out).unwrap()[..19], text);
        }
    }

    #[test]
    fn a_request_line_cannot_forge_log_lines() {
        let record = AccessRecord {
            uri: b"/x\n2026-01-01T00:00:00Z  ERROR forged \x1b[31m\xff\\",
            ..sample()
        };
        let text = line(&record, UNIX_EPOCH);
        assert_eq!(text.matches('\n').count(), 1);
        assert!(text.contains(r"uri=/x\x0a2026-01-01T00:00:00Z\x20\x20ERROR\x20forged\x20\x1b[31m\xff\x5c status="));
    }
}
