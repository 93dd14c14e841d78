//! A tiny blocking HTTP/1.1 client on `std::net::TcpStream`, for talking to the front servers in tests.
//!
//! Why not a crate such as `ureq`: the tests need things a convenience client hides or makes awkward — the exact
//! time each piece of a streamed body arrives, a 20 MiB upload produced on the fly with or without
//! `Transfer-Encoding: chunked`, the upload running in its own thread while the answer is read (so an application
//! that answers before reading the whole body cannot deadlock the test), `HEAD` bodies, and no retries or
//! redirects behind our back. That is about 250 lines with no dependency.
//!
//! One request per connection (`Connection: close`); the answer is framed by `Content-Length`, chunked encoding
//! or the end of the connection. Every read and write has a 60 s timeout so a broken server fails the test
//! instead of hanging it.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const IO_TIMEOUT: Duration = Duration::from_secs(60);

/// A request body.
pub enum Body {
    Empty,
    /// Sent with `Content-Length`.
    Bytes(Vec<u8>),
    /// `len` bytes produced by a reader, sent with `Content-Length`.
    Sized(u64, Box<dyn Read + Send>),
    /// Sent with `Transfer-Encoding: chunked`, in pieces of up to 64 KiB, as the reader produces them.
    Chunked(Box<dyn Read + Send>),
}

/// An HTTP request to `127.0.0.1:port`.
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

impl Request {
    pub fn new(method: &str, path: &str) -> Self {
        Self {
            method: method.to_owned(),
            path: path.to_owned(),
            headers: Vec::new(),
            body: Body::Empty,
        }
    }

    pub fn get(path: &str) -> Self {
        Self::new("GET", path)
    }

    pub fn head(path: &str) -> Self {
        Self::new("HEAD", path)
    }

    pub fn post(path: &str, body: impl Into<Vec<u8>>) -> Self {
        Self::new("POST", path).body(Body::Bytes(body.into()))
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn body(mut self, body: Body) -> Self {
        self.body = body;
        self
    }

    /// Sends the request to `127.0.0.1:port` and returns once the status line and headers are in.
    ///
    /// # Errors
    /// Connection and protocol errors.
    pub fn send(self, port: u16) -> io::Result<ResponseStream> {
        let started = Instant::now();
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        stream.set_nodelay(true)?;
        let mut head = format!("{} {} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n", self.method, self.path);
        let has = |name: &str| self.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
        if !has("connection") {
            head.push_str("Connection: close\r\n");
        }
        match &self.body {
            Body::Empty => {}
            Body::Bytes(bytes) => head.push_str(&format!("Content-Length: {}\r\n", bytes.len())),
            Body::Sized(len, _) => head.push_str(&format!("Content-Length: {len}\r\n")),
            Body::Chunked(_) => head.push_str("Transfer-Encoding: chunked\r\n"),
        }
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        let mut writer = stream.try_clone()?;
        writer.write_all(head.as_bytes())?;
        // The body goes out from its own thread while this one reads the answer.
        let upload = match self.body {
            Body::Empty => None,
            body => Some(std::thread::spawn(move || write_body(&mut writer, body))),
        };
        let mut reader = BufReader::with_capacity(64 * 1024, stream);
        let (status, reason, headers) = read_head(&mut reader)?;
        let head_at = started.elapsed();
        let no_body = self.method.eq_ignore_ascii_case("HEAD") || status == 204 || status == 304 || status < 200;
        let header = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        let framing = if no_body {
            Framing::Length(0)
        } else if header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
            Framing::Chunked { left: 0, done: false }
        } else if let Some(len) = header("content-length") {
            Framing::Length(
                len.trim()
                    .parse()
                    .map_err(|_| invalid(format!("bad Content-Length `{len}`")))?,
            )
        } else {
            Framing::UntilClose
        };
        Ok(ResponseStream {
            status,
            reason,
            headers,
            reader,
            framing,
            upload,
            started,
            head_at,
        })
    }
}

fn write_body(writer: &mut TcpStream, body: Body) -> io::Result<u64> {
    let mut sent = 0u64;
    match body {
        Body::Empty => {}
        Body::Bytes(bytes) => {
            writer.write_all(&bytes)?;
            sent = bytes.len() as u64;
        }
        Body::Sized(len, reader) => {
            sent = io::copy(&mut reader.take(len), writer)?;
        }
        Body::Chunked(mut reader) => {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = reader.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                writer.write_all(format!("{n:x}\r\n").as_bytes())?;
                writer.write_all(&buf[..n])?;
                writer.write_all(b"\r\n")?;
                sent += n as u64;
            }
            writer.write_all(b"0\r\n\r\n")?;
        }
    }
    writer.flush()?;
    Ok(sent)
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

fn read_line(reader: &mut impl BufRead) -> io::Result<String> {
    let mut line = Vec::new();
    reader.read_until(b'\n', &mut line)?;
    if line.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed before the answer",
        ));
    }
    while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        line.pop();
    }
    String::from_utf8(line).map_err(|e| invalid(format!("non-UTF-8 line: {e}")))
}

type Head = (u16, String, Vec<(String, String)>);

fn read_head(reader: &mut impl BufRead) -> io::Result<Head> {
    loop {
        let status_line = read_line(reader)?;
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap_or_default();
        if !version.starts_with("HTTP/1.") {
            return Err(invalid(format!("not an HTTP/1 status line: `{status_line}`")));
        }
        let status: u16 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| invalid(format!("bad status line `{status_line}`")))?;
        let reason = parts.next().unwrap_or_default().to_owned();
        let mut headers = Vec::new();
        loop {
            let line = read_line(reader)?;
            if line.is_empty() {
                break;
            }
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| invalid(format!("bad header line `{line}`")))?;
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
        // Skip interim answers such as `100 Continue`.
        if (100..200).contains(&status) && status != 101 {
            continue;
        }
        return Ok((status, reason, headers));
    }
}

enum Framing {
    Length(u64),
    Chunked { left: u64, done: bool },
    UntilClose,
}

/// An answer whose body has not been read yet: `Read` gives the decoded body as it arrives.
pub struct ResponseStream {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    reader: BufReader<TcpStream>,
    framing: Framing,
    upload: Option<JoinHandle<io::Result<u64>>>,
    started: Instant,
    head_at: Duration,
}

impl ResponseStream {
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// Time from connecting to the end of the response head.
    pub fn head_at(&self) -> Duration {
        self.head_at
    }

    /// Time since the request started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Reads the whole body, noting when each piece arrived (since the request was sent), to tell a streamed
    /// answer from a buffered one.
    pub fn read_timed(&mut self) -> (Vec<Duration>, Vec<u8>) {
        let mut arrivals = Vec::new();
        let mut body = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = self.read(&mut buf).expect("read a streamed body");
            if n == 0 {
                return (arrivals, body);
            }
            arrivals.push(self.elapsed());
            body.extend_from_slice(&buf[..n]);
        }
    }

    /// Reads the body to its end.
    ///
    /// # Errors
    /// I/O errors, a truncated body, or a failed upload.
    pub fn into_response(mut self) -> io::Result<Response> {
        let mut body = Vec::new();
        self.read_to_end(&mut body)?;
        let uploaded = match self.upload.take() {
            Some(handle) => Some(handle.join().map_err(|_| invalid("upload thread panicked".into()))?),
            None => None,
        };
        let _ = self.reader.get_ref().shutdown(Shutdown::Both);
        Ok(Response {
            status: self.status,
            reason: self.reason,
            headers: self.headers,
            body,
            uploaded,
            elapsed: self.started.elapsed(),
        })
    }

    fn read_chunk_size(&mut self) -> io::Result<u64> {
        let line = read_line(&mut self.reader)?;
        let size = line.split(';').next().unwrap_or_default().trim();
        u64::from_str_radix(size, 16).map_err(|_| invalid(format!("bad chunk size line `{line}`")))
    }
}

impl Read for ResponseStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        match self.framing {
            Framing::Length(0) => Ok(0),
            Framing::Length(left) => {
                let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                let n = self.reader.read(&mut buf[..want])?;
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("body truncated: {left} bytes missing"),
                    ));
                }
                self.framing = Framing::Length(left - n as u64);
                Ok(n)
            }
            Framing::UntilClose => self.reader.read(buf),
            Framing::Chunked { done: true, .. } => Ok(0),
            Framing::Chunked { left, .. } => {
                let mut left = left;
                if left == 0 {
                    left = self.read_chunk_size()?;
                    if left == 0 {
                        // Trailers, then the empty line.
                        while !read_line(&mut self.reader)?.is_empty() {}
                        self.framing = Framing::Chunked { left: 0, done: true };
                        return Ok(0);
                    }
                }
                let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                let n = self.reader.read(&mut buf[..want])?;
                if n == 0 {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "chunked body truncated"));
                }
                left -= n as u64;
                if left == 0 {
                    let crlf = read_line(&mut self.reader)?;
                    if !crlf.is_empty() {
                        return Err(invalid(format!("chunk not followed by CRLF but `{crlf}`")));
                    }
                }
                self.framing = Framing::Chunked { left, done: false };
                Ok(n)
            }
        }
    }
}

/// A complete answer.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// How sending the body went (bytes sent, or the error: a server may answer before reading it all).
    pub uploaded: Option<io::Result<u64>>,
    pub elapsed: Duration,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Panics (showing the answer) unless the status is `expected`.
    #[track_caller]
    pub fn assert_status(&self, expected: u16) -> &Self {
        assert_eq!(
            self.status,
            expected,
            "unexpected status; headers {:?}; body:\n{}",
            self.headers,
            String::from_utf8_lossy(&self.body[..self.body.len().min(4000)])
        );
        self
    }
}

fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Sends `request` and reads the whole answer, panicking (with the request line) on I/O errors.
#[track_caller]
pub fn request(port: u16, request: Request) -> Response {
    let line = format!("{} {} on port {port}", request.method, request.path);
    request
        .send(port)
        .and_then(ResponseStream::into_response)
        .unwrap_or_else(|e| panic!("{line}: {e}"))
}

/// `GET path`.
#[track_caller]
pub fn get(port: u16, path: &str) -> Response {
    request(port, Request::get(path))
}

/// `POST path` with `body` (`Content-Length`).
#[track_caller]
pub fn post(port: u16, path: &str, body: impl Into<Vec<u8>>) -> Response {
    request(port, Request::post(path, body))
}

/// `GET path` with a short timeout and no panic: for readiness probes.
pub fn probe(port: u16, path: &str) -> io::Result<Response> {
    let stream = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(500))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    let mut stream = stream;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )?;
    let mut all = Vec::new();
    stream.read_to_end(&mut all)?;
    let split = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| invalid("no header end".into()))?;
    let mut head_reader = &all[..split + 4];
    let (status, reason, headers) = read_head(&mut head_reader)?;
    Ok(Response {
        status,
        reason,
        headers,
        body: all[split + 4..].to_vec(),
        uploaded: None,
        elapsed: Duration::ZERO,
    })
}
