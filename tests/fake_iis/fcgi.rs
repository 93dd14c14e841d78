//! A small FastCGI client, written independently of pyfcgi's own protocol module so the harness does not test the
//! server with its own codec: request encoding (BEGIN_REQUEST, PARAMS, STDIN split into records), GET_VALUES,
//! and reading a response up to END_REQUEST with the arrival time of each STDOUT record.

use std::io::{self, Read, Write};
use std::time::Instant;

pub const BEGIN_REQUEST: u8 = 1;
pub const END_REQUEST: u8 = 3;
pub const PARAMS: u8 = 4;
pub const STDIN: u8 = 5;
pub const STDOUT: u8 = 6;
pub const STDERR: u8 = 7;
pub const GET_VALUES: u8 = 9;
pub const GET_VALUES_RESULT: u8 = 10;

/// Appends one record, padded to a multiple of 8 bytes.
pub fn record(out: &mut Vec<u8>, kind: u8, id: u16, content: &[u8]) {
    assert!(content.len() <= 0xffff);
    let padding = (8 - content.len() % 8) % 8;
    out.extend_from_slice(&[1, kind]);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&(content.len() as u16).to_be_bytes());
    out.extend_from_slice(&[padding as u8, 0]);
    out.extend_from_slice(content);
    out.extend(std::iter::repeat_n(0u8, padding));
}

fn nv_len(out: &mut Vec<u8>, len: usize) {
    if len < 128 {
        out.push(len as u8);
    } else {
        out.extend_from_slice(&(len as u32 | 0x8000_0000).to_be_bytes());
    }
}

/// Appends one name-value pair.
pub fn nv(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    nv_len(out, name.len());
    nv_len(out, value.len());
    out.extend_from_slice(name);
    out.extend_from_slice(value);
}

/// Appends `data` as records of at most `chunk` bytes, then the empty record that ends the stream.
pub fn stream(out: &mut Vec<u8>, kind: u8, id: u16, data: &[u8], chunk: usize) {
    for piece in data.chunks(chunk.clamp(1, 0xffff)) {
        record(out, kind, id, piece);
    }
    record(out, kind, id, &[]);
}

/// One request as the web server sends it.
pub struct Request {
    pub params: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub keep_conn: bool,
    /// Size of the STDIN records (IIS sends the body in pieces as it arrives).
    pub stdin_chunk: usize,
}

impl Request {
    pub fn encode(&self, id: u16) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body.len() + 4096);
        record(
            &mut out,
            BEGIN_REQUEST,
            id,
            &[0, 1, u8::from(self.keep_conn), 0, 0, 0, 0, 0],
        );
        let mut params = Vec::new();
        for (name, value) in &self.params {
            nv(&mut params, name.as_bytes(), value.as_bytes());
        }
        stream(&mut out, PARAMS, id, &params, 0xffff);
        stream(&mut out, STDIN, id, &self.body, self.stdin_chunk);
        out
    }
}

/// A response read up to its END_REQUEST.
pub struct Response {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub app_status: u32,
    pub protocol_status: u8,
    /// When each non-empty STDOUT record arrived, and its size.
    pub arrivals: Vec<(Instant, usize)>,
}

impl Response {
    fn split(&self) -> (&[u8], &[u8]) {
        match self.stdout.windows(4).position(|w| w == b"\r\n\r\n") {
            Some(at) => (&self.stdout[..at], &self.stdout[at + 4..]),
            None => (&self.stdout[..], &[]),
        }
    }

    /// The CGI status (200 when there is no `Status:` header).
    pub fn status(&self) -> u16 {
        let head = String::from_utf8_lossy(self.split().0).into_owned();
        head.lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.trim()
                    .eq_ignore_ascii_case("status")
                    .then(|| value.trim().to_owned())
            })
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(200)
    }

    pub fn body(&self) -> &[u8] {
        self.split().1
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(self.body()).into_owned()
    }

    /// A `NAME=VALUE` line of the body, for `/info`.
    pub fn line(&self, name: &str) -> Option<String> {
        let prefix = format!("{name}=");
        self.text()
            .lines()
            .find_map(|l| l.strip_prefix(&prefix).map(str::to_owned))
    }
}

/// Reads one record; `Ok(None)` at a clean end of stream.
pub fn read_record(r: &mut dyn Read) -> io::Result<Option<(u8, u16, Vec<u8>)>> {
    let mut header = [0u8; 8];
    let mut got = 0;
    while got < 8 {
        match r.read(&mut header[got..])? {
            0 if got == 0 => return Ok(None),
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n => got += n,
        }
    }
    if header[0] != 1 {
        return Err(io::Error::other(format!("bad record version {}", header[0])));
    }
    let len = u16::from_be_bytes([header[4], header[5]]) as usize;
    let mut content = vec![0u8; len + header[6] as usize];
    r.read_exact(&mut content)?;
    content.truncate(len);
    Ok(Some((header[1], u16::from_be_bytes([header[2], header[3]]), content)))
}

/// Reads records up to END_REQUEST for `id`.
pub fn read_response(r: &mut dyn Read, id: u16) -> io::Result<Response> {
    let mut response = Response {
        stdout: Vec::new(),
        stderr: Vec::new(),
        app_status: 0,
        protocol_status: 0,
        arrivals: Vec::new(),
    };
    loop {
        let Some((kind, rid, content)) = read_record(r)? else {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "connection ended before END_REQUEST ({} stdout bytes so far)",
                    response.stdout.len()
                ),
            ));
        };
        if rid != id {
            return Err(io::Error::other(format!(
                "record type {kind} for request {rid}, expected {id}"
            )));
        }
        match kind {
            STDOUT => {
                if !content.is_empty() {
                    response.arrivals.push((Instant::now(), content.len()));
                }
                response.stdout.extend_from_slice(&content);
            }
            STDERR => response.stderr.extend_from_slice(&content),
            END_REQUEST if content.len() == 8 => {
                response.app_status = u32::from_be_bytes([content[0], content[1], content[2], content[3]]);
                response.protocol_status = content[4];
                return Ok(response);
            }
            other => return Err(io::Error::other(format!("unexpected record type {other}"))),
        }
    }
}

/// Asks for the management values; returns the pairs of GET_VALUES_RESULT.
pub fn get_values(conn: &mut (impl Read + Write), names: &[&str]) -> io::Result<Vec<(String, String)>> {
    let mut body = Vec::new();
    for name in names {
        nv(&mut body, name.as_bytes(), b"");
    }
    let mut out = Vec::new();
    record(&mut out, GET_VALUES, 0, &body);
    conn.write_all(&out)?;
    let Some((kind, _, content)) = read_record(conn)? else {
        return Err(io::ErrorKind::UnexpectedEof.into());
    };
    if kind != GET_VALUES_RESULT {
        return Err(io::Error::other(format!("expected GET_VALUES_RESULT, got type {kind}")));
    }
    parse_nv(&content)
}

fn parse_nv(mut data: &[u8]) -> io::Result<Vec<(String, String)>> {
    fn len(data: &mut &[u8]) -> io::Result<usize> {
        let bad = || io::Error::other("malformed name-value pair");
        let first = *data.first().ok_or_else(bad)?;
        if first < 128 {
            *data = &data[1..];
            return Ok(first as usize);
        }
        let bytes: [u8; 4] = data.get(..4).ok_or_else(bad)?.try_into().map_err(|_| bad())?;
        *data = &data[4..];
        Ok((u32::from_be_bytes(bytes) & 0x7fff_ffff) as usize)
    }
    let mut pairs = Vec::new();
    while !data.is_empty() {
        let n = len(&mut data)?;
        let v = len(&mut data)?;
        if data.len() < n + v {
            return Err(io::Error::other("truncated name-value pair"));
        }
        pairs.push((
            String::from_utf8_lossy(&data[..n]).into_owned(),
            String::from_utf8_lossy(&data[n..n + v]).into_owned(),
        ));
        data = &data[n + v..];
    }
    Ok(pairs)
}
