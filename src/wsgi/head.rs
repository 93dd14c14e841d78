//! Validating what an application passes to `start_response` and turning it into the CGI header block FastCGI
//! carries (`Status: 200 OK\r\nName: value\r\n...\r\n`). Pure Rust over bytes: a CR/LF, a non-latin-1
//! character, a malformed status, a hop-by-hop header or a bad Content-Length is an error the WSGI layer turns into
//! a logged 500, never a broken response.

/// Why an application's status or headers were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    #[error("status {0:?} is not of the form '200 OK'")]
    BadStatus(String),
    #[error("header name {0:?} is not a valid HTTP token")]
    BadName(String),
    #[error("value of header {name:?} contains a control character (CR, LF or NUL): {value:?}")]
    BadValue { name: String, value: String },
    #[error("header {0:?} is hop-by-hop; PEP 3333 forbids applications to send it")]
    HopByHop(String),
    #[error("Content-Length {0:?} is not a non-negative integer")]
    BadContentLength(String),
    #[error("header {0:?} is reserved for the FastCGI/CGI response and cannot be set by the application")]
    Reserved(String),
    #[error("{0} is not encodable as latin-1 (PEP 3333 native strings)")]
    NotLatin1(String),
}

const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
];

/// A validated response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    pub block: Vec<u8>,
    pub content_length: Option<u64>,
}

/// RFC 9110 `tchar`, as a table: header names are checked byte by byte on every response.
const TCHAR: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric();
        b += 1;
    }
    let extra = b"!#$%&'*+-.^_`|~";
    let mut i = 0;
    while i < extra.len() {
        table[extra[i] as usize] = true;
        i += 1;
    }
    table
};

fn is_tchar(b: u8) -> bool {
    TCHAR[usize::from(b)]
}

fn text(bytes: &[u8]) -> String {
    bytes.iter().map(|b| char::from(*b)).collect()
}

/// Builds a header block one header at a time, validating as it goes (no intermediate copies of the headers).
#[derive(Debug)]
pub struct HeadBuilder {
    status: u16,
    block: Vec<u8>,
    content_length: Option<u64>,
}

impl HeadBuilder {
    /// Starts a block with the status line.
    ///
    /// # Errors
    /// [`HeadError::BadStatus`] unless `status` is three digits (100-999), optionally a space and a reason, with
    /// no control characters.
    pub fn new(status: &[u8], headers_hint: usize) -> Result<Self, HeadError> {
        let code = status
            .get(..3)
            .filter(|d| d.iter().all(u8::is_ascii_digit))
            .filter(|_| status.len() == 3 || status[3] == b' ')
            .filter(|_| status.iter().all(|b| *b == b'\t' || (*b >= 0x20 && *b != 0x7F)))
            .map(|d| d.iter().fold(0u16, |n, b| n * 10 + u16::from(b - b'0')))
            .filter(|code| (100..=999).contains(code))
            .ok_or_else(|| HeadError::BadStatus(text(status)))?;
        let mut block = Vec::with_capacity(64 + headers_hint * 40);
        block.extend_from_slice(b"Status: ");
        block.extend_from_slice(status);
        block.extend_from_slice(b"\r\n");
        Ok(Self {
            status: code,
            block,
            content_length: None,
        })
    }

    /// Adds one header.
    ///
    /// # Errors
    /// See [`HeadError`].
    pub fn header(&mut self, name: &[u8], value: &[u8]) -> Result<(), HeadError> {
        if name.is_empty() || !name.iter().all(|b| is_tchar(*b)) {
            return Err(HeadError::BadName(text(name)));
        }
        if HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h.as_bytes())) {
            return Err(HeadError::HopByHop(text(name)));
        }
        if name.eq_ignore_ascii_case(b"status") {
            return Err(HeadError::Reserved(text(name)));
        }
        if value.iter().any(|b| *b == b'\r' || *b == b'\n' || *b == 0) {
            return Err(HeadError::BadValue {
                name: text(name),
                value: text(value),
            });
        }
        if name.eq_ignore_ascii_case(b"content-length") {
            let trimmed = value.trim_ascii();
            let parsed = std::str::from_utf8(trimmed)
                .ok()
                .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or_else(|| HeadError::BadContentLength(text(value)))?;
            self.content_length = Some(parsed);
        }
        self.block.extend_from_slice(name);
        self.block.extend_from_slice(b": ");
        self.block.extend_from_slice(value);
        self.block.extend_from_slice(b"\r\n");
        Ok(())
    }

    pub fn finish(mut self) -> Head {
        self.block.extend_from_slice(b"\r\n");
        Head {
            status: self.status,
            block: self.block,
            content_length: self.content_length,
        }
    }
}

/// Builds the header block from latin-1 bytes.
///
/// # Errors
/// See [`HeadError`].
pub fn build(status: &[u8], headers: &[(Vec<u8>, Vec<u8>)]) -> Result<Head, HeadError> {
    let mut builder = HeadBuilder::new(status, headers.len())?;
    for (name, value) in headers {
        builder.header(name, value)?;
    }
    Ok(builder.finish())
}

/// Whether a response to this method with this status carries no body, so a Content-Length larger than what
/// was sent is not a truncation (HEAD, 1xx, 204, 304).
pub fn bodiless(method: &[u8], status: u16) -> bool {
    method.eq_ignore_ascii_case(b"HEAD") || (100..200).contains(&status) || status == 204 || status == 304
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(Vec<u8>, Vec<u8>)> {
        pairs
            .iter()
            .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn builds_the_cgi_block() {
        let head = build(
            b"404 Not Found",
            &h(&[("Content-Type", "text/plain"), ("Content-Length", "3")]),
        )
        .unwrap();
        assert_eq!(head.status, 404);
        assert_eq!(head.content_length, Some(3));
        assert_eq!(
            head.block,
            b"Status: 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\n"
        );
    }

    #[test]
    fn status_forms() {
        assert_eq!(build(b"200", &[]).unwrap().status, 200);
        assert_eq!(build(b"599 Custom Thing", &[]).unwrap().status, 599);
        for bad in [
            &b"OK"[..],
            b"20 OK",
            b"2000 OK",
            b"200OK",
            b"200 OK\r\nX: y",
            b"abc",
            b"",
            b"099 Low",
        ] {
            assert!(
                matches!(build(bad, &[]), Err(HeadError::BadStatus(_))),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn header_injection_is_refused() {
        assert!(matches!(
            build(b"200 OK", &h(&[("X-A", "1\r\nSet-Cookie: evil")])),
            Err(HeadError::BadValue { .. })
        ));
        assert!(matches!(
            build(b"200 OK", &h(&[("X-A", "1\n")])),
            Err(HeadError::BadValue { .. })
        ));
        assert!(matches!(
            build(b"200 OK", &h(&[("X-A", "a\0b")])),
            Err(HeadError::BadValue { .. })
        ));
        assert!(matches!(
            build(b"200 OK", &h(&[("Bad Name", "v")])),
            Err(HeadError::BadName(_))
        ));
        assert!(matches!(build(b"200 OK", &h(&[("", "v")])), Err(HeadError::BadName(_))));
        assert!(matches!(
            build(b"200 OK", &h(&[("X:Y", "v")])),
            Err(HeadError::BadName(_))
        ));
    }

    #[test]
    fn hop_by_hop_and_reserved_headers_are_refused() {
        for name in [
            "Connection",
            "keep-alive",
            "Transfer-Encoding",
            "Upgrade",
            "TE",
            "Trailers",
        ] {
            assert!(
                matches!(build(b"200 OK", &h(&[(name, "x")])), Err(HeadError::HopByHop(_))),
                "{name}"
            );
        }
        assert!(matches!(
            build(b"200 OK", &h(&[("Status", "500")])),
            Err(HeadError::Reserved(_))
        ));
    }

    #[test]
    fn content_length_must_be_a_number() {
        assert_eq!(
            build(b"200 OK", &h(&[("content-length", " 42 ")]))
                .unwrap()
                .content_length,
            Some(42)
        );
        for bad in ["-1", "1.5", "", "abc", "99999999999999999999999"] {
            assert!(matches!(
                build(b"200 OK", &h(&[("Content-Length", bad)])),
                Err(HeadError::BadContentLength(_))
            ));
        }
    }

    #[test]
    fn latin1_values_pass_through() {
        let head = build(b"200 OK", &[(b"X-Name".to_vec(), vec![b'c', b'a', b'f', 0xE9])]).unwrap();
        assert!(head.block.windows(4).any(|w| w == [b'c', b'a', b'f', 0xE9]));
    }

    #[test]
    fn bodiless_responses() {
        assert!(bodiless(b"HEAD", 200));
        assert!(bodiless(b"GET", 304));
        assert!(bodiless(b"GET", 204));
        assert!(!bodiless(b"GET", 200));
    }
}
