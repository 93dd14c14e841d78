//! Unix transports: the listening socket inherited on fd 0 (`FCGI_LISTENSOCK_FILENO`), and TCP or Unix-domain
//! sockets bound by pyfcgi. Owns socket options (`TCP_NODELAY`, Unix socket permissions), replacing a stale socket
//! file safely, and the [`super::Stream`] implementation for accepted connections.

use std::fs;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use socket2::{Domain, SockRef, Socket};

use super::{BindAddress, PeerFilter, Readiness, Stream};

/// The FastCGI spec's name for the listening socket a web server passes to the application.
pub const FCGI_LISTENSOCK_FILENO: RawFd = 0;

/// Errors setting up a listener.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("fd 0 is not a listening socket: {0}")]
    NotAListener(String),
    #[error("cannot bind {address}: {source}")]
    Bind { address: String, source: io::Error },
    #[error("{0} exists and is not a socket; refusing to replace it")]
    NotASocket(PathBuf),
    #[error("{0} is in use by another running server")]
    InUse(PathBuf),
    #[error("cannot prepare {path}: {source}")]
    SocketFile { path: PathBuf, source: io::Error },
}

/// A listening socket.
#[derive(Debug)]
pub enum Listener {
    Tcp(TcpListener),
    Unix {
        listener: UnixListener,
        path: Option<PathBuf>,
    },
}

/// A connection accepted from a [`Listener`].
#[derive(Debug)]
pub enum SocketStream {
    Tcp { stream: TcpStream, peer: String },
    Unix { stream: UnixStream, peer: String },
}

/// What accepting produced.
pub enum Accepted {
    Connection(SocketStream),
    /// A TCP peer not in `FCGI_WEB_SERVER_ADDRS`; it has been closed.
    Refused(String),
    /// Nothing is waiting (the listener is non-blocking).
    WouldBlock,
}

impl Listener {
    /// Takes over the listening socket a FastCGI web server passes on fd 0. Checks that fd 0 really is a
    /// listening socket, moves it to a new descriptor and puts `/dev/null` on fd 0, so that nothing reading stdin
    /// (the application, for instance) can steal connections.
    ///
    /// # Errors
    /// [`ListenError::NotAListener`] when fd 0 is a terminal, a file, a pipe or a socket that is not listening.
    ///
    /// The web server chose the socket's listen backlog; `backlog`, when given (`--backlog`), replaces it.
    pub fn from_fd0(backlog: Option<u32>) -> Result<Self, ListenError> {
        // SAFETY: fd 0 stays open for the whole process; the borrow ends before we replace it below.
        let fd0 = unsafe { BorrowedFd::borrow_raw(FCGI_LISTENSOCK_FILENO) };
        let sock = SockRef::from(&fd0);
        let domain = sock.domain().map_err(|e| ListenError::NotAListener(e.to_string()))?;
        let listening = sock
            .is_listener()
            .map_err(|e| ListenError::NotAListener(e.to_string()))?;
        if !listening {
            return Err(ListenError::NotAListener("the socket is not listening".into()));
        }
        let owned: OwnedFd = fd0
            .try_clone_to_owned()
            .map_err(|e| ListenError::NotAListener(e.to_string()))?;
        replace_fd0_with_dev_null().map_err(|e| ListenError::NotAListener(format!("cannot free fd 0: {e}")))?;
        if let Some(backlog) = backlog {
            // listen() again on a listening socket only changes its backlog.
            Socket::from(
                owned
                    .try_clone()
                    .map_err(|e| ListenError::NotAListener(e.to_string()))?,
            )
            .listen(backlog_arg(backlog))
            .map_err(|e| ListenError::NotAListener(format!("cannot set the backlog: {e}")))?;
        }
        let listener = if domain == Domain::UNIX {
            Self::Unix {
                listener: UnixListener::from(owned),
                path: None,
            }
        } else {
            Self::Tcp(TcpListener::from(owned))
        };
        listener
            .set_nonblocking()
            .map_err(|e| ListenError::NotAListener(e.to_string()))?;
        Ok(listener)
    }

    /// Whether fd 0 looks like an inherited listening socket (the way to tell "spawned by a web server").
    pub fn fd0_is_listener() -> bool {
        // SAFETY: only inspected, never closed.
        let fd0 = unsafe { BorrowedFd::borrow_raw(FCGI_LISTENSOCK_FILENO) };
        SockRef::from(&fd0).is_listener().unwrap_or(false)
    }

    /// Binds `--bind`. A Unix socket path left behind by a dead server is replaced; one a live server still
    /// answers on, or a path that is not a socket, is an error. `mode` sets the socket file's permissions;
    /// `backlog` is the listen queue's length (see [`system_backlog`]).
    ///
    /// # Errors
    /// See [`ListenError`].
    pub fn bind(address: &BindAddress, unix_mode: u32, backlog: u32) -> Result<Self, ListenError> {
        let listener = match address {
            BindAddress::Tcp(addr) => {
                let bind_err = |source| ListenError::Bind {
                    address: addr.clone(),
                    source,
                };
                let addrs: Vec<_> = addr.to_socket_addrs().map_err(bind_err)?.collect();
                let mut last = io::Error::new(io::ErrorKind::InvalidInput, "the address resolved to nothing");
                let mut bound = None;
                for addr in addrs {
                    match listen_tcp(addr, backlog) {
                        Ok(listener) => {
                            bound = Some(listener);
                            break;
                        }
                        Err(e) => last = e,
                    }
                }
                Self::Tcp(bound.ok_or_else(|| bind_err(last))?)
            }
            BindAddress::Unix(path) => {
                remove_stale_socket(path)?;
                let listener = listen_unix(path, backlog).map_err(|source| ListenError::Bind {
                    address: path.display().to_string(),
                    source,
                })?;
                fs::set_permissions(path, fs::Permissions::from_mode(unix_mode)).map_err(|source| {
                    ListenError::SocketFile {
                        path: path.clone(),
                        source,
                    }
                })?;
                Self::Unix {
                    listener,
                    path: Some(path.clone()),
                }
            }
        };
        listener.set_nonblocking().map_err(|source| ListenError::Bind {
            address: listener.describe(),
            source,
        })?;
        Ok(listener)
    }

    fn set_nonblocking(&self) -> io::Result<()> {
        match self {
            Self::Tcp(l) => l.set_nonblocking(true),
            Self::Unix { listener, .. } => listener.set_nonblocking(true),
        }
    }

    /// For log lines: the address this listener accepts on.
    pub fn describe(&self) -> String {
        match self {
            Self::Tcp(l) => l.local_addr().map_or_else(|_| "tcp socket".into(), |a| a.to_string()),
            Self::Unix { path: Some(path), .. } => format!("unix:{}", path.display()),
            Self::Unix { listener, .. } => listener
                .local_addr()
                .ok()
                .and_then(|a| a.as_pathname().map(|p| format!("unix:{}", p.display())))
                .unwrap_or_else(|| "inherited unix socket".into()),
        }
    }

    /// The bound TCP port, for tests and log lines.
    pub fn local_port(&self) -> Option<u16> {
        match self {
            Self::Tcp(l) => l.local_addr().ok().map(|a| a.port()),
            Self::Unix { .. } => None,
        }
    }

    /// Accepts one connection without blocking, applying the peer filter and socket options.
    ///
    /// # Errors
    /// Accept failures other than "would block" (for example EMFILE); the caller logs and carries on.
    pub fn accept(&self, filter: &PeerFilter) -> io::Result<Accepted> {
        let result = match self {
            Self::Tcp(l) => l.accept().map(|(stream, addr)| {
                if !filter.allows(addr.ip()) {
                    return Accepted::Refused(addr.to_string());
                }
                // Without TCP_NODELAY small responses wait for the peer's delayed ACK (flup loses 44 ms per
                // request to this).
                let _ = stream.set_nodelay(true);
                Accepted::Connection(SocketStream::Tcp {
                    stream,
                    peer: addr.to_string(),
                })
            }),
            Self::Unix { listener, path } => listener.accept().map(|(stream, _)| {
                let peer = path
                    .as_ref()
                    .map_or_else(|| "unix socket".into(), |p| format!("unix:{}", p.display()));
                Accepted::Connection(SocketStream::Unix { stream, peer })
            }),
        };
        match result {
            Ok(accepted) => Ok(accepted),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Accepted::WouldBlock),
            Err(e) if e.kind() == io::ErrorKind::Interrupted || e.kind() == io::ErrorKind::ConnectionAborted => {
                Ok(Accepted::WouldBlock)
            }
            Err(e) => Err(e),
        }
    }
}

impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Self::Tcp(l) => l.as_fd(),
            Self::Unix { listener, .. } => listener.as_fd(),
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Self::Unix { path: Some(path), .. } = self {
            let _ = fs::remove_file(path);
        }
    }
}

/// The longest listen queue the system allows (`/proc/sys/net/core/somaxconn` on Linux, 4096 by default since
/// 5.4), the default backlog: a burst of connections to a freshly started process (a front server opening its
/// pool, a deploy's health checks) must not overflow a queue of 128 while the workers start.
pub fn system_backlog() -> u32 {
    fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|v| v.trim().parse::<u32>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(libc::SOMAXCONN as u32)
}

fn backlog_arg(backlog: u32) -> libc::c_int {
    // The kernel caps it at somaxconn anyway.
    libc::c_int::try_from(backlog.max(1)).unwrap_or(libc::c_int::MAX)
}

/// What `TcpListener::bind` does (SO_REUSEADDR so a restart binds while old connections linger in TIME_WAIT),
/// with our backlog instead of std's fixed 128.
fn listen_tcp(addr: std::net::SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), socket2::Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(backlog_arg(backlog))?;
    Ok(socket.into())
}

fn listen_unix(path: &Path, backlog: u32) -> io::Result<UnixListener> {
    let socket = Socket::new(Domain::UNIX, socket2::Type::STREAM, None)?;
    socket.bind(&socket2::SockAddr::unix(path)?)?;
    socket.listen(backlog_arg(backlog))?;
    Ok(UnixListener::from(OwnedFd::from(socket)))
}

/// Grows this process's descriptor table once, now, to hold `connections` more descriptors (raising the soft
/// `RLIMIT_NOFILE` towards the hard one if it is lower). The kernel otherwise grows the table as descriptors
/// are handed out (at 256, 512, 1024, ...), and in a multi-threaded process each growth waits for an RCU grace
/// period: `accept4` took 5-9 ms at fd 256 and 512, long enough for a burst of new connections to overflow the
/// listen queue. The table never shrinks, so doing it once at start-up removes those stalls. Returns the number
/// of descriptors the table now holds.
pub fn reserve_descriptors(connections: usize) -> usize {
    // Room for the listener, logs, Python's own files and the like besides the connections.
    let want = connections.saturating_add(64);
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid rlimit for the duration of the calls.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 0;
        }
        let want = want as libc::rlim_t;
        if limit.rlim_cur != libc::RLIM_INFINITY && limit.rlim_cur < want {
            let raised = libc::rlimit {
                rlim_cur: want.min(limit.rlim_max),
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit.rlim_cur = raised.rlim_cur;
            }
        }
    }
    let top = usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX).min(want);
    let Some(high) = top.checked_sub(1).and_then(|fd| libc::c_int::try_from(fd).ok()) else {
        return 0;
    };
    let Ok(null) = fs::File::open("/dev/null") else {
        return 0;
    };
    // SAFETY: fcntl(F_GETFD) only asks whether `high` is open. Descriptors are handed out lowest first, so the
    // highest one the limit allows is free unless the process already uses that many; dup2 onto it and close of
    // that same new descriptor then touch nothing anyone else owns.
    unsafe {
        if libc::fcntl(high, libc::F_GETFD) != -1 {
            // In use, so the table is already this large.
            return top;
        }
        if libc::dup2(null.as_raw_fd(), high) == high {
            libc::close(high);
            return top;
        }
    }
    0
}

fn remove_stale_socket(path: &Path) -> Result<(), ListenError> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(ListenError::SocketFile {
                path: path.to_owned(),
                source,
            })
        }
    };
    if !meta.file_type().is_socket() {
        return Err(ListenError::NotASocket(path.to_owned()));
    }
    match UnixStream::connect(path) {
        Ok(_) => Err(ListenError::InUse(path.to_owned())),
        Err(_) => fs::remove_file(path).map_err(|source| ListenError::SocketFile {
            path: path.to_owned(),
            source,
        }),
    }
}

fn replace_fd0_with_dev_null() -> io::Result<()> {
    let null = fs::File::open("/dev/null")?;
    // SAFETY: dup2 onto fd 0 atomically replaces the descriptor we already duplicated elsewhere.
    if unsafe { libc::dup2(null.as_raw_fd(), FCGI_LISTENSOCK_FILENO) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl SocketStream {
    fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Self::Tcp { stream, .. } => stream.as_fd(),
            Self::Unix { stream, .. } => stream.as_fd(),
        }
    }

    /// Every read that took data, blocking or not, goes through here: see [`quick_ack`].
    fn after_read(&self) {
        if let Self::Tcp { stream, .. } = self {
            quick_ack(stream);
        }
    }

    /// Wraps an already connected socket (tests, tools).
    pub fn from_tcp(stream: TcpStream) -> Self {
        let peer = stream.peer_addr().map_or_else(|_| "tcp peer".into(), |a| a.to_string());
        Self::Tcp { stream, peer }
    }
}

impl AsFd for SocketStream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd()
    }
}

impl Stream for SocketStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let result = match self {
                Self::Tcp { stream, .. } => stream.read(buf),
                Self::Unix { stream, .. } => stream.read(buf),
            };
            if matches!(result, Ok(n) if n > 0) {
                self.after_read();
            }
            match result {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // A peer that resets the connection has gone: for us that is the end of the stream.
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Ok(0),
                other => return other,
            }
        }
    }

    fn try_read(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        let fd = self.fd().as_raw_fd();
        loop {
            // SAFETY: `buf` is valid for writes of `buf.len()` bytes for the duration of the call.
            let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
            if n >= 0 {
                if n > 0 {
                    self.after_read();
                }
                // n is non-negative and at most buf.len().
                return Ok(Some(n as usize));
            }
            let err = io::Error::last_os_error();
            match err.kind() {
                io::ErrorKind::WouldBlock => return Ok(None),
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::ConnectionReset => return Ok(Some(0)),
                _ => return Err(err),
            }
        }
    }

    fn try_write(&mut self, buf: &[u8]) -> io::Result<Option<usize>> {
        let fd = self.fd().as_raw_fd();
        loop {
            // SAFETY: `buf` is valid for reads of `buf.len()` bytes for the duration of the call. MSG_NOSIGNAL:
            // a vanished peer is an EPIPE error here, never a SIGPIPE.
            let n = unsafe {
                libc::send(
                    fd,
                    buf.as_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
                )
            };
            if n >= 0 {
                // n is non-negative and at most buf.len().
                return Ok(Some(n as usize));
            }
            let err = io::Error::last_os_error();
            match err.kind() {
                io::ErrorKind::WouldBlock => return Ok(None),
                io::ErrorKind::Interrupted => continue,
                _ => return Err(err),
            }
        }
    }

    fn wait_ready(&mut self, want_read: bool) -> io::Result<Readiness> {
        let mut events = libc::POLLOUT;
        if want_read {
            events |= libc::POLLIN;
        }
        let mut pollfd = libc::pollfd {
            fd: self.fd().as_raw_fd(),
            events,
            revents: 0,
        };
        loop {
            // SAFETY: one valid pollfd for the duration of the call.
            if unsafe { libc::poll(&mut pollfd, 1, -1) } >= 0 {
                break;
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
        // An error or hang-up shows on both sides, so the next read or write reports it.
        let failed = pollfd.revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0;
        Ok(Readiness {
            readable: want_read && (pollfd.revents & libc::POLLIN != 0 || failed),
            writable: pollfd.revents & libc::POLLOUT != 0 || failed,
        })
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Self::Tcp { stream, .. } => stream.write_all(buf),
            Self::Unix { stream, .. } => stream.write_all(buf),
        }
    }

    fn close(&mut self) -> io::Result<()> {
        let result = match self {
            Self::Tcp { stream, .. } => stream.shutdown(Shutdown::Write),
            Self::Unix { stream, .. } => stream.shutdown(Shutdown::Write),
        };
        match result {
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
            other => other,
        }
    }

    fn peer(&self) -> &str {
        match self {
            Self::Tcp { peer, .. } | Self::Unix { peer, .. } => peer,
        }
    }
}

/// A web server like nginx sends a request in several writes on a long-lived connection (a buffered body goes
/// out in two), and Nagle's algorithm on its side holds the later write until our ACK of the earlier one arrives;
/// Linux delays that ACK up to 40 ms once a connection has left quick-ACK mode, and the kernel clears the mode
/// again as it goes. Re-arming quick ACKs after every read that took data removes the stall. Every read: the
/// first part of a request usually arrives through a non-blocking read, and re-arming only after blocking reads
/// left every POST above about 16 KiB waiting 44 ms behind nginx. (New connections start in quick-ACK mode, which
/// is why servers that close every connection never see it.)
#[cfg(target_os = "linux")]
fn quick_ack(stream: &TcpStream) {
    let on: libc::c_int = 1;
    // SAFETY: a valid socket descriptor, and `on` outlives the call; a failure only loses the optimisation.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_QUICKACK,
            std::ptr::from_ref(&on).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn quick_ack(_stream: &TcpStream) {}

/// Creates a socket from a raw descriptor handed over by a test harness or launcher.
///
/// # Safety
/// `fd` must be an open socket descriptor that nothing else owns.
pub unsafe fn socket_from_raw_fd(fd: RawFd) -> Socket {
    // SAFETY: guaranteed by the caller.
    unsafe { Socket::from_raw_fd(fd) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_path(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("pyfcgi-test-{}-{name}", std::process::id()))
    }

    #[test]
    fn tcp_bind_accepts_with_nodelay_and_filter() {
        let listener = Listener::bind(&BindAddress::Tcp("127.0.0.1:0".into()), 0o600, 16).unwrap();
        let port = listener.local_port().unwrap();
        assert!(matches!(
            listener.accept(&PeerFilter::default()).unwrap(),
            Accepted::WouldBlock
        ));

        let _client = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let accepted = loop {
            match listener.accept(&PeerFilter::default()).unwrap() {
                Accepted::WouldBlock => std::thread::yield_now(),
                other => break other,
            }
        };
        let Accepted::Connection(SocketStream::Tcp { stream, .. }) = accepted else {
            panic!("expected tcp")
        };
        assert!(stream.nodelay().unwrap());

        let _client = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let only_other = PeerFilter::parse(Some("10.1.2.3")).unwrap();
        let refused = loop {
            match listener.accept(&only_other).unwrap() {
                Accepted::WouldBlock => std::thread::yield_now(),
                other => break other,
            }
        };
        assert!(matches!(refused, Accepted::Refused(peer) if peer.starts_with("127.0.0.1:")));
    }

    #[test]
    fn unix_bind_sets_mode_and_replaces_stale_socket() {
        let path = temp_path("stale.sock");
        let _ = fs::remove_file(&path);
        {
            // A socket file whose server is gone.
            let stale = UnixListener::bind(&path).unwrap();
            drop(stale);
        }
        assert!(path.exists());
        let listener = Listener::bind(&BindAddress::Unix(path.clone()), 0o660, 16).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o660);
        // A second server on the same path is refused while the first one lives.
        assert!(matches!(
            Listener::bind(&BindAddress::Unix(path.clone()), 0o660, 16),
            Err(ListenError::InUse(_))
        ));
        drop(listener);
        assert!(!path.exists(), "the socket file is removed when the listener goes away");
    }

    #[test]
    fn unix_bind_refuses_to_replace_a_regular_file() {
        let path = temp_path("regular-file");
        fs::write(&path, b"precious").unwrap();
        assert!(matches!(
            Listener::bind(&BindAddress::Unix(path.clone()), 0o660, 16),
            Err(ListenError::NotASocket(_))
        ));
        assert_eq!(fs::read(&path).unwrap(), b"precious");
        fs::remove_file(&path).unwrap();
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn reserving_descriptors_grows_the_descriptor_table_once() {
        let fd_size = || {
            fs::read_to_string("/proc/self/status")
                .unwrap()
                .lines()
                .find_map(|l| l.strip_prefix("FDSize:").map(|v| v.trim().parse::<usize>().unwrap()))
                .unwrap()
        };
        let reserved = reserve_descriptors(3000);
        assert!(
            reserved >= 3000,
            "{reserved} descriptors reserved (is the hard RLIMIT_NOFILE below 3064?)"
        );
        assert!(fd_size() >= reserved, "FDSize {} after reserving {reserved}", fd_size());
        // Nothing is left open at the top.
        // SAFETY: only asks whether the descriptor is open.
        assert_eq!(unsafe { libc::fcntl(3063, libc::F_GETFD) }, -1);
    }

    #[test]
    fn system_backlog_is_the_kernel_maximum() {
        let backlog = system_backlog();
        if let Ok(max) = fs::read_to_string("/proc/sys/net/core/somaxconn") {
            assert_eq!(backlog.to_string(), max.trim());
        } else {
            assert!(backlog > 0);
        }
    }

    #[test]
    fn try_read_does_not_block() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let mut stream = SocketStream::Unix {
            stream: a,
            peer: "pair".into(),
        };
        let mut buf = [0u8; 8];
        assert_eq!(stream.try_read(&mut buf).unwrap(), None);
        b.write_all(b"hi").unwrap();
        assert_eq!(stream.try_read(&mut buf).unwrap(), Some(2));
        drop(b);
        assert_eq!(stream.try_read(&mut buf).unwrap(), Some(0));
    }
}
