//! Where FastCGI connections come from, and the byte streams they are. On Unix: a listening socket inherited on
//! fd 0 (the FastCGI spawn model of lighttpd `bin-path`, Apache mod_fcgid and spawn-fcgi, which IIS also follows),
//! or a socket pyfcgi binds itself (`--bind HOST:PORT`, `--bind unix:/path`). On Windows: the named pipe or
//! listening socket IIS passes as the stdin handle. This module owns accepting, peer filtering
//! (`FCGI_WEB_SERVER_ADDRS`) and socket options; it knows nothing of records or requests.

use std::io;
use std::net::IpAddr;
use std::path::PathBuf;

pub mod memory;
pub mod shutdown;
#[cfg(unix)]
pub mod unix;

pub use shutdown::Shutdown;
#[cfg(windows)]
pub mod windows;

/// A connected, full-duplex byte stream to the web server.
pub trait Stream: Send {
    /// Blocking read; `Ok(0)` is end of stream.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize>;
    /// Non-blocking read: `Ok(None)` when nothing is available right now.
    fn try_read(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>>;
    /// Writes all of `buf`, blocking as needed.
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()>;
    /// Non-blocking write of a prefix of `buf`: `Ok(None)` when nothing can be written right now. Transports
    /// that cannot tell (the IIS pipe) block until all of `buf` is written, so callers never see `None` there.
    fn try_write(&mut self, buf: &[u8]) -> io::Result<Option<usize>> {
        self.write_all(buf)?;
        Ok(Some(buf.len()))
    }
    /// Blocks until the stream is writable, or (with `want_read`) readable, after [`Stream::try_write`]
    /// returned `None`. Readable includes end of stream and errors, which the next read reports.
    fn wait_ready(&mut self, _want_read: bool) -> io::Result<Readiness> {
        Ok(Readiness {
            readable: false,
            writable: true,
        })
    }
    /// Called when a connection ends without FCGI_KEEP_CONN: make sure everything written reaches the peer
    /// before the stream is closed (named pipes discard unread data on disconnect).
    fn close(&mut self) -> io::Result<()>;
    /// Who is on the other end, for log lines.
    fn peer(&self) -> &str;
    /// Whether the next blocking [`Stream::read`] waits for a new request (nothing of it received yet) rather
    /// than for more of one. The server sets it right before such a wait and clears it after. A transport whose
    /// blocking reads cannot otherwise notice a graceful stop (the IIS pipe) may end an idle read early with
    /// `Ok(0)` once a stop is asked for; a read that is not idle must never be cut short.
    fn set_idle(&mut self, _idle: bool) {}
}

/// What [`Stream::wait_ready`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Readiness {
    pub readable: bool,
    pub writable: bool,
}

/// What `--bind` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindAddress {
    /// `HOST:PORT`, e.g. `127.0.0.1:9000` or `[::1]:9000`.
    Tcp(String),
    /// `unix:/path/to/socket`.
    Unix(PathBuf),
}

impl std::str::FromStr for BindAddress {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err("unix: needs a socket path, e.g. unix:/run/pyfcgi.sock".into());
            }
            return Ok(Self::Unix(PathBuf::from(path)));
        }
        if s.rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
        {
            return Ok(Self::Tcp(s.to_owned()));
        }
        Err(format!("`{s}` is neither HOST:PORT nor unix:/path"))
    }
}

/// The peers allowed by `FCGI_WEB_SERVER_ADDRS` (a comma-separated list of IP addresses). Only TCP peers are
/// checked, as in the FastCGI spec; an absent or empty variable allows everyone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerFilter {
    allowed: Option<Vec<IpAddr>>,
}

impl PeerFilter {
    /// Parses the variable's value.
    ///
    /// # Errors
    /// Names the first entry that is not an IP address.
    pub fn parse(value: Option<&str>) -> Result<Self, String> {
        let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
            return Ok(Self::default());
        };
        let allowed = value
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(|a| {
                a.parse::<IpAddr>()
                    .map_err(|_| format!("FCGI_WEB_SERVER_ADDRS: `{a}` is not an IP address"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { allowed: Some(allowed) })
    }

    pub fn allows(&self, peer: IpAddr) -> bool {
        let Some(allowed) = &self.allowed else { return true };
        let peer = canonical(peer);
        allowed.iter().any(|a| canonical(*a) == peer)
    }

    pub fn is_restricted(&self) -> bool {
        self.allowed.is_some()
    }
}

/// An IPv4 peer on a dual-stack socket shows up as `::ffff:a.b.c.d`; compare it as the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_addresses_parse() {
        assert_eq!("127.0.0.1:9000".parse(), Ok(BindAddress::Tcp("127.0.0.1:9000".into())));
        assert_eq!("[::1]:9000".parse(), Ok(BindAddress::Tcp("[::1]:9000".into())));
        assert_eq!("localhost:1".parse(), Ok(BindAddress::Tcp("localhost:1".into())));
        assert_eq!("unix:/tmp/x.sock".parse(), Ok(BindAddress::Unix("/tmp/x.sock".into())));
        assert!("unix:".parse::<BindAddress>().is_err());
        assert!("9000".parse::<BindAddress>().is_err());
        assert!("host:port".parse::<BindAddress>().is_err());
        assert!(":9000".parse::<BindAddress>().is_err());
    }

    #[test]
    fn peer_filter_allows_listed_addresses_only() {
        let filter = PeerFilter::parse(Some("127.0.0.1, 10.0.0.5,::1")).unwrap();
        assert!(filter.is_restricted());
        assert!(filter.allows("127.0.0.1".parse().unwrap()));
        assert!(filter.allows("::ffff:10.0.0.5".parse().unwrap()));
        assert!(filter.allows("::1".parse().unwrap()));
        assert!(!filter.allows("127.0.0.2".parse().unwrap()));
    }

    #[test]
    fn empty_peer_filter_allows_everyone() {
        for value in [None, Some(""), Some("  ")] {
            let filter = PeerFilter::parse(value).unwrap();
            assert!(!filter.is_restricted());
            assert!(filter.allows("192.0.2.1".parse().unwrap()));
        }
    }

    #[test]
    fn bad_peer_filter_names_the_entry() {
        let err = PeerFilter::parse(Some("127.0.0.1,webserver")).unwrap_err();
        assert!(err.contains("`webserver`"), "{err}");
    }
}
