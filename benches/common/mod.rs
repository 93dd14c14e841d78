//! What the benchmarks feed pyfcgi: a realistic request as nginx sends it. Shared by `protocol.rs` and `wsgi.rs`.

use pyfcgi::protocol::nv::write_pair;
use pyfcgi::protocol::record::{self, BeginRequestBody, RecordType, Role, FLAG_KEEP_CONN};

pub const REQUEST_ID: u16 = 1;

/// A request's parameters, in the order the web server sends them.
pub type Pairs = Vec<(&'static str, String)>;

/// The params nginx sends for `GET /hello?name=world` with the benchmark harness's configuration (Debian's
/// `fastcgi_params` with `SCRIPT_NAME ""` and `PATH_INFO $uri`) and a browser's request headers.
pub fn nginx_params() -> Pairs {
    [
        ("QUERY_STRING", "name=world"),
        ("REQUEST_METHOD", "GET"),
        ("CONTENT_TYPE", ""),
        ("CONTENT_LENGTH", ""),
        ("SCRIPT_NAME", ""),
        ("PATH_INFO", "/hello"),
        ("REQUEST_URI", "/hello?name=world"),
        ("DOCUMENT_URI", "/hello"),
        ("DOCUMENT_ROOT", "/usr/share/nginx/html"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("REQUEST_SCHEME", "http"),
        ("GATEWAY_INTERFACE", "CGI/1.1"),
        ("SERVER_SOFTWARE", "nginx/1.22.1"),
        ("REMOTE_ADDR", "127.0.0.1"),
        ("REMOTE_PORT", "52814"),
        ("SERVER_ADDR", "127.0.0.1"),
        ("SERVER_PORT", "8080"),
        ("SERVER_NAME", "localhost"),
        ("HTTP_HOST", "localhost:8080"),
        (
            "HTTP_USER_AGENT",
            "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
        ),
        (
            "HTTP_ACCEPT",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        ),
        ("HTTP_ACCEPT_LANGUAGE", "en-US,en;q=0.5"),
        ("HTTP_ACCEPT_ENCODING", "gzip, deflate, br"),
        ("HTTP_CONNECTION", "keep-alive"),
    ]
    .into_iter()
    .map(|(name, value)| (name, value.to_owned()))
    .collect()
}

/// [`nginx_params`] with the five values that differ between requests in real traffic changed as for request
/// number `i`: the client's port (another connection), the URI and, from it, the path and the query string.
/// Same names in the same order, so per-name caches still hit; per-value ones do not.
#[allow(dead_code)] // only the WSGI benchmarks use it
pub fn varied_params(i: usize) -> Pairs {
    let mut params = nginx_params();
    for (name, value) in &mut params {
        *value = match *name {
            "REMOTE_PORT" => (40000 + i).to_string(),
            "REQUEST_URI" => format!("/items/{i}?page={i}"),
            "PATH_INFO" | "DOCUMENT_URI" => format!("/items/{i}"),
            "QUERY_STRING" => format!("page={i}"),
            _ => continue,
        };
    }
    params
}

/// The PARAMS stream content (name-value pairs).
pub fn params_bytes(params: &[(&str, String)]) -> Vec<u8> {
    let mut raw = Vec::new();
    for (name, value) in params {
        write_pair(&mut raw, name.as_bytes(), value.as_bytes());
    }
    raw
}

/// A whole keep-conn request as a web server sends it: BEGIN_REQUEST, the PARAMS stream and its end, the body as
/// STDIN records of at most 65535 bytes, and the end of STDIN.
pub fn encode_request(params: &[(&str, String)], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let begin = BeginRequestBody {
        role: Role::Responder,
        flags: FLAG_KEEP_CONN,
    };
    record::write_record(&mut out, RecordType::BeginRequest, REQUEST_ID, &begin.encode());
    record::write_stream(&mut out, RecordType::Params, REQUEST_ID, &params_bytes(params));
    record::write_stream_end(&mut out, RecordType::Params, REQUEST_ID);
    record::write_stream(&mut out, RecordType::Stdin, REQUEST_ID, body);
    record::write_stream_end(&mut out, RecordType::Stdin, REQUEST_ID);
    out
}
