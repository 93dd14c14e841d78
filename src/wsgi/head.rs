//! Validating what an application passes to `start_response` and turning it into the CGI header block FastCGI
//! carries (`Status: 200 OK\r\nName: value\r\n...\r\n`). Pure Rust over bytes: a CR/LF, a non-latin-1
//! character, a malformed status, a hop-by-hop header or a bad Content-Length is an error the WSGI layer turns into
//! a logged 500, never a broken response. The block is capped (`PYFCGI_MAX_RESPONSE_HEADER_BYTES`), so an
//! application cannot make pyfcgi hold or send a head no front server would accept, and what HTTP forbids in a
//! response head (a Content-Length on 1xx and 204, RFC 9110 §8.6) is left out.

/// Why an application's status or headers were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    #[error("status {0:?} is not of the form '200 OK'")]
    BadStatus(String),
    #[error("header name {0:?} is not a valid HTTP token")]
    BadName(String),
    #[error("value of header {name:?} contains a control character (CR, LF or NUL): {value:?}")]
    BadValue { name: String, value: String },
    #[error(
        "header {name:?} ({size} bytes) makes the response head larger than {limit} bytes \
         (PYFCGI_MAX_RESPONSE_HEADER_BYTES)"
    )]
    TooLarge { name: String, size: usize, limit: usize },
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

/// At most this many bytes of an offending name or value are quoted in an error, so a huge value cannot flood
/// the log.
const QUOTED_MAX: usize = 200;

fn text(bytes: &[u8]) -> String {
    let mut out: String = bytes.iter().take(QUOTED_MAX).map(|b| char::from(*b)).collect();
    if bytes.len() > QUOTED_MAX {
        out.push_str(&format!("... ({} bytes)", bytes.len()));
    }
    out
}

/// The header block limit for a value of `PYFCGI_MAX_RESPONSE_HEADER_BYTES` (0 means unlimited).
pub fn limit(setting: u64) -> usize {
    match setting {
        0 => usize::MAX,
        n => usize::try_from(n).unwrap_or(usize::MAX),
    }
}

/// The default of `PYFCGI_MAX_RESPONSE_HEADER_BYTES`: far above what real applications send (cookies and CSP
/// headers reach a few KiB), far below what would hurt memory.
pub const DEFAULT_MAX_HEAD: usize = 64 * 1024;

/// RFC 9110 §8.6: no Content-Length in a 1xx or 204 response.
fn forbids_content_length(status: u16) -> bool {
    (100..200).contains(&status) || status == 204
}

/// Builds a header block one header at a time, validating as it goes (no intermediate copies of the headers).
#[derive(Debug)]
pub struct HeadBuilder {
    status: u16,
    block: Vec<u8>,
    content_length: Option<u64>,
    limit: usize,
}

impl HeadBuilder {
    /// Starts a block with the status line; the whole block may be at most `limit` bytes.
    ///
    /// # Errors
    /// [`HeadError::BadStatus`] unless `status` is three digits (100-999), optionally a space and a reason, with
    /// no control characters; [`HeadError::TooLarge`] if the status line alone exceeds `limit`.
    pub fn new(status: &[u8], headers_hint: usize, limit: usize) -> Result<Self, HeadError> {
        // "Status: " + status + CRLF + the final CRLF.
        if status.len() + 12 > limit {
            return Err(HeadError::TooLarge {
                name: "Status".into(),
                size: status.len(),
                limit,
            });
        }
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
            limit,
        })
    }

    /// Adds one header.
    ///
    /// # Errors
    /// See [`HeadError`].
    pub fn header(&mut self, name: &[u8], value: &[u8]) -> Result<(), HeadError> {
        // Checked first: a value too large to send is not scanned, copied or quoted.
        let size = name.len() + 2 + value.len();
        if self.block.len() + size + 4 > self.limit {
            return Err(HeadError::TooLarge {
                name: text(name),
                size,
                limit: self.limit,
            });
        }
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
            if forbids_content_length(self.status) {
                // Django's CommonMiddleware adds `Content-Length: 0` to its 204s; gunicorn drops it too.
                return Ok(());
            }
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
    let mut builder = HeadBuilder::new(status, headers.len(), DEFAULT_MAX_HEAD)?;
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
    fn a_header_past_the_limit_is_refused_with_its_name_and_size() {
        let big = vec![b'x'; 100_000];
        let err = build(b"200 OK", &[(b"X-Big".to_vec(), big)]).unwrap_err();
        assert_eq!(
            err,
            HeadError::TooLarge {
                name: "X-Big".into(),
                size: 100_007,
                limit: DEFAULT_MAX_HEAD
            }
        );
        // Many small headers add up: the one that crosses the limit is named.
        let mut builder = HeadBuilder::new(b"200 OK", 0, 1000).unwrap();
        for i in 0..30 {
            builder.header(format!("X-{i:02}").as_bytes(), &[b'v'; 20]).unwrap();
        }
        let err = builder.header(b"X-Last", &[b'v'; 200]).unwrap_err();
        assert!(matches!(err, HeadError::TooLarge { ref name, size: 208, limit: 1000 } if name == "X-Last"));
        assert!(HeadBuilder::new(b"200 OK", 0, 10).is_err());
        // Exactly at the limit is allowed.
        let mut builder = HeadBuilder::new(b"200 OK", 0, 16 + 4 + 6).unwrap();
        builder.header(b"A", b"bbb").unwrap();
        assert_eq!(builder.finish().block.len(), 26);
    }

    #[test]
    fn errors_quote_at_most_a_few_hundred_bytes_of_a_value() {
        let mut value = vec![b'a'; 10_000];
        value.push(b'\n');
        let err = build(b"200 OK", &[(b"X-A".to_vec(), value)]).unwrap_err();
        let message = err.to_string();
        assert!(message.len() < 400, "{message}");
        assert!(message.contains("(10001 bytes)"), "{message}");
    }

    #[test]
    fn content_length_is_left_out_of_1xx_and_204_responses() {
        for status in [&b"204 No Content"[..], b"100 Continue", b"199 Whatever"] {
            let head = build(status, &h(&[("Content-Length", "0"), ("X-A", "1")])).unwrap();
            assert_eq!(head.content_length, None);
            let block = String::from_utf8(head.block).unwrap();
            assert!(!block.to_ascii_lowercase().contains("content-length"), "{block}");
            assert!(block.contains("X-A: 1\r\n"));
        }
        // 304 and 200 keep it (RFC 9110 §8.6 allows it on 304: the length a 200 would have had).
        for status in [&b"304 Not Modified"[..], b"200 OK"] {
            let head = build(status, &h(&[("Content-Length", "7")])).unwrap();
            assert_eq!(head.content_length, Some(7));
        }
        // Still validated first: an invalid value is an application error whatever the status.
        assert!(build(b"204 No Content", &h(&[("Content-Length", "x")])).is_err());
    }

    #[test]
    fn bodiless_responses() {
        assert!(bodiless(b"HEAD", 200));
        assert!(bodiless(b"GET", 304));
        assert!(bodiless(b"GET", 204));
        assert!(!bodiless(b"GET", 200));
    }
}
